#!/usr/bin/env python3
"""Robust aggregation, copy / free-rider detection and contribution-scoring cost.

Three tables:

1. final macro-F1 (test set) after R rounds with 0 %, 20 % and 40 % malicious
   participants (sign-flip, scale x100, label-flip, same-value), for FedAvg and each robust
   rule, on the synthetic data and on NSL-KDD (KDDTrain+_20Percent.txt: stratified 20 %
   test, 5 % public validation slice, the rest split iid);
2. detection of planted copiers and free-riders (copy, copy-noise, free-ride,
   free-ride-noise): flagged, scored at most 0, and honest members flagged by mistake;
3. scoring time per round for N = 5, 20 and 50 members (leave-one-out and GTG-Shapley):
   coalition evaluations and wall time.

Every run goes through fedledger.attacks.harness.run_attacks: real local training, the
update codec, and federation.rounds.assessment.assess_round (the code a real round runs).

Usage: .venv/bin/python scripts/bench_robust.py [--datasets synthetic,nsl-kdd] [--nsl-kdd FILE] [--participants 10]
           [--rounds 8] [--seeds 0,1,2] [--clip-norm 2.0] [--skip-accuracy] [--skip-detection] [--skip-scoring] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from federation.rounds.scoring import ScoringRule  # noqa: E402
from fedledger.attacks.harness import AttackRun, run_attacks  # noqa: E402
from fedledger.attacks.kinds import AttackSpec  # noqa: E402
from flows import FlowDataset, load_dataset  # noqa: E402
from flows.partition import stratified_holdout  # noqa: E402
from flows.synthetic import generate  # noqa: E402


def datasets(names: list[str], seed: int, nsl_kdd: Path | None = None) -> dict[str, tuple[FlowDataset, FlowDataset, FlowDataset]]:
    out = {}
    for name in names:
        if name == "synthetic":
            out[name] = (generate(20_000, seed), generate(4_000, seed + 1_000_003), generate(2_000, seed + 7))
        elif name == "nsl-kdd":
            if nsl_kdd is None or not nsl_kdd.is_file():
                raise SystemExit(f"NSL-KDD training file not found: {nsl_kdd} (pass --nsl-kdd PATH/TO/KDDTrain+_20Percent.txt)")
            train, test = load_dataset("nsl-kdd", nsl_kdd, seed=seed, test_fraction=0.2)
            keep, public = stratified_holdout(train.labels, 0.05, seed)
            out[name] = (train.subset(keep), test, train.subset(public))
        else:
            raise SystemExit(f"unknown data set {name!r}")
    return out


def strategies(n: int, clip: float) -> list[tuple[str, str, dict[str, Any]]]:
    f = max(1, int(0.4 * n))  # Multi-Krum told to tolerate the worst case we plant
    return [
        ("fedavg", "fedavg", {}),
        (f"fedavg clip {clip:g}", "fedavg", {"clip_norm": clip}),
        ("median", "median", {}),
        ("trimmed-mean 0.2", "trimmed-mean", {"trim": 0.2}),
        ("trimmed-mean 0.4", "trimmed-mean", {"trim": 0.4}),
        (f"multi-krum f={f}", "multi-krum", {"f": f}),
    ]


def attack_settings(n: int) -> list[tuple[str, list[AttackSpec]]]:
    k20, k40 = max(1, round(0.2 * n)), max(1, round(0.4 * n))
    return [
        ("clean", []),
        ("20% sign-flip", [AttackSpec("sign-flip", k20)]),
        ("20% scale100", [AttackSpec("scale100", k20)]),
        ("20% label-flip", [AttackSpec("label-flip", k20)]),
        ("20% same-value", [AttackSpec("same-value", k20)]),
        ("40% sign-flip", [AttackSpec("sign-flip", k40)]),
        ("40% scale100", [AttackSpec("scale100", k40)]),
    ]


def accuracy_table(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    seeds = [int(x) for x in args.seeds.split(",")]
    for dname, (train, test, val) in data.items():
        settings = attack_settings(args.participants)
        spread = f", mean ± sd over seeds {args.seeds}" if len(seeds) > 1 else ""
        print(f"\n## final macro-F1 after {args.rounds} rounds, {args.participants} members, {dname}{spread}\n")
        print("| strategy | " + " | ".join(s for s, _ in settings) + " |")
        print("|---|" + "---:|" * len(settings))
        for label, name, params in strategies(args.participants, args.clip_norm):
            cells = []
            for setting, attacks in settings:
                f1s = []
                for seed in seeds:  # the seed draws the partition, the planted members and the training order
                    started = time.perf_counter()
                    run = run_attacks(
                        AttackRun(participants=args.participants, rounds=args.rounds, strategy=name, strategy_params=params,
                                  attacks=attacks, score_contributions=False, seed=seed),
                        train, test, val,
                    )  # fmt: skip
                    f1s.append(100 * run["final"]["macro_f1"])
                    rows.append({"data": dname, "strategy": label, "setting": setting, "seed": seed, "macro_f1": f1s[-1] / 100,
                                 "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
                mean = sum(f1s) / len(f1s)
                sd = (sum((x - mean) ** 2 for x in f1s) / (len(f1s) - 1)) ** 0.5 if len(f1s) > 1 else None
                cells.append(f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else ""))
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return rows


def detection_table(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    print(f"\n## planted copiers and free-riders, {args.participants} members, {args.rounds} rounds, FedAvg + leave-one-out\n")
    print("| data | planted (member-rounds) | flagged | scored <= 0 | honest member-rounds | honest flagged |")
    print("|---|---:|---:|---:|---:|---:|")
    cheats = [AttackSpec(k, 1) for k in ("copy", "copy-noise", "free-ride", "free-ride-noise")]
    for dname, (train, test, val) in data.items():
        run = run_attacks(AttackRun(participants=args.participants, rounds=args.rounds, attacks=cheats, seed=args.seed), train, test, val)
        d = run["detection"]
        rows.append({"data": dname, **d})
        print(f"| {dname} | {d['planted_copy_or_free_ride']} | {d['flagged']} | {d['scored_at_most_0']} | {d['honest']} | {d['honest_flagged']} |", flush=True)
    return rows


def scoring_table(args: argparse.Namespace, data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    dname = next(iter(data))
    train, test, val = data[dname]
    print(f"\n## scoring cost per round ({dname}, round 2 of a FedAvg federation, validation {len(val)} flows)\n")
    print("| N | rule | evaluations | permutations | seconds |")
    print("|---:|---|---:|---:|---:|")
    for n in (5, 20, 50):
        for rule in (ScoringRule("leave-one-out"), ScoringRule("gtg-shapley")):
            run = run_attacks(AttackRun(participants=n, rounds=2, scoring=rule, seed=args.seed), train, test, val)
            s = run["rounds"][-1]["scoring"]
            rows.append({"n": n, "rule": rule.rule, **s})
            print(f"| {n} | {rule.rule} | {s['evaluations']} | {s.get('permutations', '-')} | {s['seconds']:.2f} |", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="synthetic,nsl-kdd")
    ap.add_argument("--nsl-kdd", type=Path, help="NSL-KDD training file (KDDTrain+_20Percent.txt), for the nsl-kdd data set")
    ap.add_argument("--participants", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--clip-norm", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0, help="data sets, detection and scoring runs")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds averaged in the accuracy table")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-detection", action="store_true")
    ap.add_argument("--skip-scoring", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    data = datasets([d for d in args.datasets.split(",") if d], args.seed, args.nsl_kdd)
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_accuracy:
        out["accuracy"] = accuracy_table(args, data)
    if not args.skip_detection:
        out["detection"] = detection_table(args, data)
    if not args.skip_scoring:
        out["scoring"] = scoring_table(args, data)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
