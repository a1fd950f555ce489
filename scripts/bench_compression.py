#!/usr/bin/env python3
"""Update compression: bytes per update vs dense float32, and the macro-F1 it costs.

NSL-KDD (e.g. KDDTrain+_20Percent.txt), 5 organisations, the same rounds, seeds
and training recipe for every codec; only the codec differs.  Each codec is
tested on two hold-outs cut from the file: "stratified" (20 % of every class)
and "novel" (the attack names flows.taxonomy.NOVEL_HOLDOUT keeps out of
training, plus 20 % of the other names).  Error feedback (the participant keeps what the codec dropped and
adds it to its next delta) is on unless the row says otherwise.  Bytes are
whole update files (124-byte header + zstd frame), averaged over all updates
of all rounds; "dense float32" is 4 bytes per parameter with no header.
macro-F1 is the final round's, averaged over the seeds; the cost is in points
(1 point = 0.01) against the uncompressed float32 run with the same seeds and hold-out.

Usage: .venv/bin/python scripts/bench_compression.py --train FILE [--rounds 20] [--seeds 0,1,2]
           [--hidden 256,128] [--split iid] [--codecs "none;int8;topk:0.01+int8"]
           [--holdouts stratified,novel] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedledger.simulate import SimulationConfig, run_simulation  # noqa: E402

DEFAULT_CODECS = "none;int8;topk:0.05+int8:256;topk:0.02+int8;topk:0.01+int8;topk:0.02+int8 no-ef"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True, help="an NSL-KDD training file, e.g. KDDTrain+_20Percent.txt")
    ap.add_argument("--participants", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--hidden", default="256,128", help="MLP hidden sizes (65,797 parameters on NSL-KDD by default)")
    ap.add_argument("--split", default="iid")
    ap.add_argument("--codecs", default=DEFAULT_CODECS, help="';'-separated; append ' no-ef' to switch error feedback off")
    ap.add_argument("--holdouts", default="stratified,novel", help="test sets cut from --train: stratified, novel or both")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.train.exists():
        print(f"NSL-KDD training file not found: {args.train} (pass --train)", file=sys.stderr)
        return 1
    seeds = [int(s) for s in args.seeds.split(",")]
    hidden = tuple(int(h) for h in args.hidden.split(","))
    holdouts = [h.strip() for h in args.holdouts.split(",") if h.strip()]
    entries = [c.strip() for c in args.codecs.split(";") if c.strip()]
    runs: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        codec, _, flag = entry.partition(" ")
        for holdout in holdouts:
            for seed in seeds:
                cfg = SimulationConfig(
                    dataset="nsl-kdd", train=str(args.train), participants=args.participants, split=args.split,
                    rounds=args.rounds, codec=codec, error_feedback=flag != "no-ef", hidden=hidden, seed=seed,
                    class_weights="sqrt", holdout=holdout,
                )  # fmt: skip
                started = time.perf_counter()
                r = run_simulation(cfg)
                runs.setdefault((entry, holdout), []).append(r)
                print(f"{entry} {holdout} seed {seed}: macro-F1 {r['final']['macro_f1']:.4f} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)  # fmt: skip

    first = next(iter(runs.values()))[0]
    dense = first["model"]["dense_float32_bytes"]
    ref_entry = next((e for e in entries if e.split(" ")[0] == "none"), None)

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    head = ["codec", "error feedback", "bytes/update", "vs dense float32"]
    for h in holdouts:
        head += [f"{h}: macro-F1", "cost (points)", "binary acc."]
    head.append("meets target (>= 100x, <= 1 point on every hold-out)")
    rows = [tuple(head)]
    for entry in entries:
        sizes = [b for h in holdouts for r in runs[(entry, h)] for rnd in r["rounds"] for b in rnd["update_bytes"].values()]
        mean_bytes = mean(sizes)
        ratio = dense / mean_bytes
        row = [entry.split(" ")[0], "no" if entry.endswith("no-ef") else "yes", f"{mean_bytes:,.0f}", f"{ratio:.1f}x"]
        worst = -float("inf")
        for h in holdouts:
            f1 = mean([r["final"]["macro_f1"] for r in runs[(entry, h)]])
            ref = mean([r["final"]["macro_f1"] for r in runs[(ref_entry, h)]]) if ref_entry else float("nan")
            cost = (ref - f1) * 100
            worst = max(worst, cost)
            row += [f"{f1:.4f}", f"{cost:+.2f}", f"{mean([r['final']['binary_accuracy'] for r in runs[(entry, h)]]):.4f}"]
        row.append("yes" if ratio >= 100 and worst <= 1.0 else "no")
        rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(
        f"(model {first['model']['parameters']:,} parameters = {dense:,} bytes dense float32; split {args.split}, "
        f"{args.participants} organisations, {args.rounds} rounds, seeds {args.seeds}; 2-core machine shared with other jobs)"
    )
    if args.json:
        args.json.write_text(json.dumps({f"{e} {h}": [{"final": r["final"], "rounds": r["rounds"], "config": r["config"]} for r in v]
                                         for (e, h), v in runs.items()}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
