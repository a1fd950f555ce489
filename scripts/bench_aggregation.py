#!/usr/bin/env python3
"""Aggregation throughput: fedledger's streaming FedAvg vs Flower's ``aggregate()`` vs a numpy bandwidth baseline.

K updates of P float32 parameters (K = 10, 100; P = 1M, 10M).  Every case runs
in its own subprocess so peak memory (VmHWM) is per case.  The updates are the
same arrays for every method (update i is drawn from a generator seeded with i).

* fedledger: ``FedAvg().aggregate`` over a generator that produces one update at
  a time (as the coordinator decodes them from the store); the time spent
  producing updates is measured inside the generator and subtracted.
* numpy a+b: the memory-bandwidth floor, one float32 ``acc += x`` pass over the
  same streamed updates (same subtraction).
* Flower: ``flwr.server.strategy.aggregate.aggregate`` on the K updates held in
  memory (its API takes a list).  flwr would downgrade typer/rich/packaging in
  the project's venv, so it lives in a separate venv that this script creates
  (bench-out/flwr-venv) with the same numpy version.

GB/s = K*P*4 bytes of update data / seconds.  "models" = peak RSS above the
process's RSS before the updates, in units of one float32 model (P*4 bytes);
fedledger and numpy also hold the base model (1 model) allocated before that.

Usage: .venv/bin/python scripts/bench_aggregation.py [--sizes 1e6,1e7] [--ks 10,100] [--repeat 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLWR_VENV = ROOT / "bench-out" / "flwr-venv"
N_TENSORS = 4
# Same for every method: one thread, and glibc's mmap threshold pinned so freed
# model-sized buffers go back to the OS instead of being kept in the heap (the
# default threshold grows after the first free, which inflates RSS by whole models).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _shapes(p: int) -> list[int]:
    # Four tensors of unequal size, like a layered model.
    sizes = [p // 2, p // 4, p // 8]
    return sizes + [p - sum(sizes)]


def _make_update(i: int, p: int):  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(1000 + i)
    flat = rng.random(p, dtype=np.float32)
    flat -= np.float32(0.5)
    out, start = {}, 0
    for t, size in enumerate(_shapes(p)):
        out[f"t{t}"] = flat[start : start + size]
        start += size
    return out


def _samples(i: int) -> int:
    return 100 + (i * 7919) % 5000


def _worker(method: str, k: int, p: int) -> dict:
    import numpy as np

    gen_time = 0.0
    _make_update(0, 16)  # first use of numpy's Generator costs a few MB of RSS: not the aggregator's
    if method == "flower":
        from flwr.server.strategy.aggregate import aggregate

        rss0 = _status("VmRSS")
        results = []
        for i in range(k):
            u = _make_update(i, p)
            results.append(([u[f"t{t}"] for t in range(N_TENSORS)], _samples(i)))
        t0 = time.perf_counter()
        out = aggregate(results)
        seconds = time.perf_counter() - t0
        check = float(sum(np.sum(a, dtype=np.float64) for a in out))
    else:
        sys.path.insert(0, str(ROOT))
        from federation.rounds.strategies import FedAvg, WeightedUpdate

        base = {f"t{t}": np.zeros(s, dtype=np.float32) for t, s in enumerate(_shapes(p))}
        rss0 = _status("VmRSS")

        def stream():  # type: ignore[no-untyped-def]
            nonlocal gen_time
            for i in range(k):
                t = time.perf_counter()
                upd = WeightedUpdate("0x" + f"{i + 1:040x}", _samples(i), _make_update(i, p))
                gen_time += time.perf_counter() - t
                yield upd
                del upd

        t0 = time.perf_counter()
        if method == "fedledger":
            out_d, _ = FedAvg(sample_cap=None).aggregate(base, stream())
            check = float(sum(np.sum(a, dtype=np.float64) for a in out_d.values()))
        else:  # numpy bandwidth floor: acc += x, float32, same stream
            acc = {key: np.zeros_like(v) for key, v in base.items()}
            for upd in stream():
                for key, x in upd.delta.items():
                    np.add(acc[key], x, out=acc[key])
                del upd, x
            check = float("nan")
        seconds = time.perf_counter() - t0 - gen_time
    return {"seconds": seconds, "peak_extra": _status("VmHWM") - rss0, "check": check}


def _mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _ensure_flwr_venv() -> Path | None:
    py = FLWR_VENV / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import flwr.server.strategy.aggregate"], capture_output=True)
        if ok.returncode == 0:
            return py
    import numpy

    print(f"creating {FLWR_VENV} with flwr and numpy=={numpy.__version__} ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(FLWR_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"numpy=={numpy.__version__}", "flwr"], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"cannot set up Flower's venv ({exc}); Flower columns are left empty", file=sys.stderr)
        return None
    return py


def _run(python: str, method: str, k: int, p: int) -> dict:
    proc = subprocess.run(
        [python, __file__, "--worker", method, str(k), str(p)], capture_output=True, text=True, env={**os.environ, **WORKER_ENV}
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "K", "P"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="1e6,1e7", help="parameter counts, comma-separated")
    ap.add_argument("--ks", default="10,100", help="numbers of updates, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest is reported")
    ap.add_argument("--no-flower", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args()
    if args.worker:
        method, k, p = args.worker[0], int(args.worker[1]), int(float(args.worker[2]))
        print(json.dumps(_worker(method, k, p)))
        return 0
    flwr_py = None if args.no_flower else _ensure_flwr_venv()
    rows = []
    for p in [int(float(s)) for s in args.sizes.split(",")]:
        for k in [int(s) for s in args.ks.split(",")]:
            row: dict = {"K": k, "P": p}
            for method in ("numpy", "fedledger", "flower"):
                if method == "flower":
                    need = int(2.3 * k * p * 4) + (1 << 30)  # K inputs + K weighted copies + slack
                    if flwr_py is None:
                        row[method] = {"error": "flwr not available"}
                        continue
                    if need > _mem_available() * 0.8:
                        row[method] = {"error": f"skipped: needs ~{need / 2**30:.1f} GiB, {_mem_available() / 2**30:.1f} GiB free"}
                        continue
                python = str(flwr_py) if method == "flower" else sys.executable
                best = None
                for _ in range(args.repeat):
                    r = _run(python, method, k, p)
                    if "error" in r or best is None or r["seconds"] < best["seconds"]:
                        best = r
                    if "error" in r:
                        break
                row[method] = best
                print(f"  K={k} P={p:.0e} {method}: {best}", file=sys.stderr)
            rows.append(row)

    def cell(r: dict, k: int, p: int) -> tuple[str, str, str]:
        if "error" in r:
            return ("-", "-", "-")
        return (f"{r['seconds']:.3f}", f"{k * p * 4 / r['seconds'] / 1e9:.2f}", f"{r['peak_extra'] / (p * 4):.2f}")

    head = ("K", "params", "numpy a+b s", "GB/s", "fedledger s", "GB/s", "models", "flower s", "GB/s", "models", "ours/flower", "ours/a+b")
    lines = [head]
    for row in rows:
        k, p = row["K"], row["P"]
        n, f, w = row["numpy"], row["fedledger"], row["flower"]
        nc, fc, wc = cell(n, k, p), cell(f, k, p), cell(w, k, p)
        vs_flower = f"{w['seconds'] / f['seconds']:.2f}x" if "error" not in w and "error" not in f else (w.get("error", "-"))
        vs_bw = f"{n['seconds'] / f['seconds'] * 100:.0f}%" if "error" not in n and "error" not in f else "-"
        lines.append((str(k), f"{p / 1e6:g}M", nc[0], nc[1], fc[0], fc[1], fc[2], wc[0], wc[1], wc[2], vs_flower, vs_bw))
        if "error" not in w and "error" not in f and abs(w["check"] - f["check"]) > 1e-3 * max(1.0, abs(f["check"])):
            print(f"warning: results differ for K={k} P={p}: {f['check']} vs {w['check']}", file=sys.stderr)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print("| " + " | ".join(c.rjust(widths[j]) for j, c in enumerate(line)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("(2-core machine shared with other jobs; timings are noisy. ours/flower = Flower's seconds / ours; "
          "ours/a+b = share of the numpy bandwidth floor reached; models = peak RSS above the pre-update RSS / (P*4 bytes).)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
