"""Timings of the data layer, printed as a table.

    .venv/bin/python scripts/bench_data.py [--nsl-kdd PATH] [--repeat N]

Reports the best of N runs (wall clock) for: generating synthetic flows, reading
and encoding the NSL-KDD file when present, and each partitioner split.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from flows.load import load_split
from flows.partition import partition
from flows.synthetic import generate


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsl-kdd", type=Path, default=os.environ.get("FEDLEDGER_NSL_KDD"),
                    help="NSL-KDD training file for the loading row (default $FEDLEDGER_NSL_KDD; skipped without one)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    rows: list[tuple[str, int, float]] = []
    generate(1000, 0)  # warm-up: imports, allocator
    for n in (50_000, 200_000):
        rows.append((f"synthetic.generate({n:,})", n, _best(lambda n=n: generate(n, 0), args.repeat)))
    if args.nsl_kdd is not None and args.nsl_kdd.is_file():
        n = sum(1 for _ in args.nsl_kdd.open())
        rows.append(("load_split nsl-kdd (read+encode+normalise)", n,
                     _best(lambda: load_split("nsl-kdd", args.nsl_kdd), args.repeat)))
    labels = generate(200_000, 1).labels
    for split in ("iid", "dirichlet:0.5", "families"):
        rows.append((f"partition 200,000 rows / 10 parties, {split}", 200_000,
                     _best(lambda s=split: partition(labels, 10, s, 0), args.repeat)))

    print(f"| {'operation':<52} | {'rows':>9} | {'seconds':>8} | {'rows/s':>11} |")
    print(f"|{'-' * 54}|{'-' * 10}:|{'-' * 9}:|{'-' * 12}:|")
    for name, n, sec in rows:
        print(f"| {name:<52} | {n:>9,} | {sec:>8.3f} | {n / sec:>11,.0f} |")


if __name__ == "__main__":
    main()
