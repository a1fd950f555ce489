#!/usr/bin/env python3
"""Update compression: bytes per update vs dense float32, and the macro-F1 it costs.

NSL-KDD (KDDTrain+_20Percent.txt, stratified 20 % held out), 5 organisations,
the same rounds, seeds and training recipe for every codec; only the codec
differs.  Error feedback (the participant keeps what the codec dropped and
adds it to its next delta) is on unless the row says otherwise.  Bytes are
whole update files (124-byte header + zstd frame), averaged over all updates
of all rounds; "dense float32" is 4 bytes per parameter with no header.
macro-F1 is the final round's, averaged over the seeds; the cost is in points
(1 point = 0.01) against the uncompressed float32 run with the same seeds.

Target: >= 100x smaller uplink for <= 0.5 points of macro-F1.

Usage: .venv/bin/python scripts/bench_compression.py --train PATH/TO/KDDTrain+_20Percent.txt [--rounds 20] [--seeds 0,1,2]
           [--hidden 256,128] [--split iid] [--codecs "none;int8;topk:0.01+int8"] [--json OUT]
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
    ap.add_argument("--train", type=Path, required=True, help="NSL-KDD training file (KDDTrain+_20Percent.txt)")
    ap.add_argument("--participants", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--hidden", default="256,128", help="MLP hidden sizes (65,797 parameters on NSL-KDD by default)")
    ap.add_argument("--split", default="iid")
    ap.add_argument("--codecs", default=DEFAULT_CODECS, help="';'-separated; append ' no-ef' to switch error feedback off")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.train.exists():
        print(f"NSL-KDD training file not found: {args.train} (pass --train)", file=sys.stderr)
        return 1
    seeds = [int(s) for s in args.seeds.split(",")]
    hidden = tuple(int(h) for h in args.hidden.split(","))
    runs: dict[str, list[dict]] = {}
    for entry in [c.strip() for c in args.codecs.split(";") if c.strip()]:
        codec, _, flag = entry.partition(" ")
        for seed in seeds:
            cfg = SimulationConfig(
                dataset="nsl-kdd", train=str(args.train), participants=args.participants, split=args.split,
                rounds=args.rounds, codec=codec, error_feedback=flag != "no-ef", hidden=hidden, seed=seed,
                class_weights="sqrt",
            )  # fmt: skip
            started = time.perf_counter()
            r = run_simulation(cfg)
            runs.setdefault(entry, []).append(r)
            print(f"{entry} seed {seed}: macro-F1 {r['final']['macro_f1']:.4f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    first = next(iter(runs.values()))[0]
    dense = first["model"]["dense_float32_bytes"]
    ref_key = next((k for k in runs if k.split(" ")[0] == "none"), None)
    ref_f1 = sum(r["final"]["macro_f1"] for r in runs[ref_key]) / len(seeds) if ref_key else None
    support = first["data"]["test_support"]
    classes = first["data"]["classes"]
    # u2r has 2 test rows in this hold-out: one flip moves macro-F1 by 10 points, so also show
    # macro-F1 over the classes with at least 20 test rows, which is what the codec changes.
    common = [c for c, n in zip(classes, support) if n >= 20]

    def f1_common(r: dict) -> float:
        return sum(r["final"]["f1"].get(c, 0.0) for c in common) / len(common)

    ref_common = sum(f1_common(r) for r in runs[ref_key]) / len(seeds) if ref_key else None
    head = ("codec", "error feedback", "bytes/update", "vs dense float32", "macro-F1", "cost (points)",
            f"macro-F1 ({','.join(common)})", "cost (points)", "meets target")  # fmt: skip
    rows = [head]
    for entry, rs in runs.items():
        sizes = [b for r in rs for rnd in r["rounds"] for b in rnd["update_bytes"].values()]
        mean_bytes = sum(sizes) / len(sizes)
        f1 = sum(r["final"]["macro_f1"] for r in rs) / len(rs)
        ratio = dense / mean_bytes
        cost = (ref_f1 - f1) * 100 if ref_f1 is not None else float("nan")
        f1c = sum(f1_common(r) for r in rs) / len(rs)
        cost_c = (ref_common - f1c) * 100 if ref_common is not None else float("nan")
        meets = "yes" if ratio >= 100 and cost <= 0.5 else "no"
        rows.append((entry.split(" ")[0], "no" if entry.endswith("no-ef") else "yes", f"{mean_bytes:,.0f}", f"{ratio:.1f}x",
                     f"{f1:.4f}", f"{cost:+.2f}", f"{f1c:.4f}", f"{cost_c:+.2f}", meets))  # fmt: skip
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
        args.json.write_text(json.dumps({k: [{"final": r["final"], "rounds": r["rounds"], "config": r["config"]} for r in v] for k, v in runs.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
