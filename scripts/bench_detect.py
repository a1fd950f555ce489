"""Detection and sharing throughput, printed as a table.

    .venv/bin/python scripts/bench_detect.py --data PATH/TO/KDDTrain+_20Percent.txt [--rows 1000000] [--repeat 3]

Builds a ``--rows``-row NSL-KDD file in a temporary directory by repeating the rows of
``--data`` (default: the repository's small NSL-KDD fixture), trains a model on ``--data``
(two local epochs, the default 64-32 MLP) and, in one run, times:

* a plain read of the file: ``pyarrow.csv.read_csv`` of the whole file (multi-threaded,
  types inferred), and pyarrow's streaming reader;
* ``fedledger detect``'s pass over the same file: stream, encode, score, write alerts,
  with its peak memory (each pass in a child process);
* ``fedledger share stix`` on ``--alerts`` synthetic alerts (2,000 sources, every family):
  reading, redacting and aggregating them, building and serialising the bundle, and
  stix2-validator on the result.

Target: detect at least 50 % of the plain read's rows per second. Reports the median (and
the best) of ``--repeat`` runs, interleaved, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_file(src: Path, rows: int, out: Path) -> int:
    lines = [ln for ln in src.read_bytes().splitlines(keepends=True) if ln.strip()]
    with open(out, "wb") as fh:
        full, rest = divmod(rows, len(lines))
        block = b"".join(lines)
        for _ in range(full):
            fh.write(block)
        fh.write(b"".join(lines[:rest]))
    return out.stat().st_size


def train_model(src: Path):  # noqa: ANN201
    from federation.model import ModelSpec
    from federation.model.network import init_model
    from federation.training import train_local
    from fedledger.intel.provenance import Provenance, VerifiedModel
    from flows import load_split

    split = load_split("nsl-kdd", src, None, test_fraction=0.0)
    spec = ModelSpec.for_dataset(split.train)
    result = train_local(spec, init_model(spec, 0), split.train, epochs=2, batch_size=256, lr=5e-3)
    prov = Provenance(31337, "0x" + "00" * 20, 1, "QmBench", "QmBench", "bench", spec.schema_id)
    return VerifiedModel(spec, result.weights, None, prov), split.schema, split.normaliser  # type: ignore[arg-type]


def _plain_read(path: str, streaming: bool) -> tuple[float, int, int]:
    import pyarrow.csv as pacsv

    t = time.perf_counter()
    if streaming:
        n = sum(b.num_rows for b in pacsv.open_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True,
                                                                                         block_size=4 << 20)))  # fmt: skip
    else:
        n = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=True)).num_rows
    return time.perf_counter() - t, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB


def _detect(path: str, src: str, out: str) -> tuple[float, int, int]:
    from fedledger.intel.detect import detect, file_batches

    model, schema, normaliser = train_model(Path(src))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with open(out, "w", encoding="utf-8", buffering=1 << 20) as sink:
        summary = detect(file_batches([Path(path)], "nsl-kdd", schema, normaliser), model, sink)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, summary.flows, max(peak - base, 0) * 1024  # bytes above the set-up (ru_maxrss is in KiB)


def _in_child(fn, *args):  # noqa: ANN001, ANN002, ANN202
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def synthetic_alerts(out: Path, n: int, sources: int = 2000) -> None:
    from fedledger.intel.alerts import format_lines, utc_stamp

    rng = np.random.default_rng(0)
    classes = ("normal", "dos", "probe", "r2l", "u2r")
    t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
    with open(out, "w", encoding="utf-8") as fh:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            src = rng.integers(0, sources, m)
            eps = {
                "src_ip": np.asarray([f"198.51.{s // 250}.{s % 250 + 1}" for s in src], dtype=object),
                "dst_ip": np.asarray([f"10.0.{i // 250}.{i % 250 + 1}" for i in rng.integers(0, 5000, m)], dtype=object),
                "dst_port": np.asarray([str(p) for p in rng.choice([22, 80, 443, 3389], m)], dtype=object),
                "protocol": np.full(m, "tcp", dtype=object),
            }
            fh.write(format_lines(np.arange(start + 1, start + m + 1), 1 + src % 4, rng.uniform(0.5, 1.0, m).astype(np.float32),
                                  classes, model="QmBench", round_id=1, time=utc_stamp(t0 + timedelta(seconds=start)),
                                  file="bench.csv", endpoints=eps))  # fmt: skip


def _stix(alerts: str, out: str) -> dict[str, float]:
    from fedledger.intel.provenance import Provenance
    from fedledger.intel.redact import Redactor
    from fedledger.intel.share import load_aggregate
    from fedledger.intel.share_options import ShareOptions
    from fedledger.intel.stix import build_bundle, bundle_text, validate
    from fedledger.intel.tlp import tlp

    prov = Provenance(31337, "0x" + "00" * 20, 1, "QmBench", "QmBench", "bench", "nsl-kdd/v1")
    t0 = time.perf_counter()
    agg = load_aggregate(Path(alerts), Redactor())
    t1 = time.perf_counter()
    bundle = build_bundle(agg, prov, ShareOptions("Bench Org", tlp("amber"), 0.9))
    text = bundle_text(bundle)
    Path(out).write_text(text, encoding="utf-8")
    t2 = time.perf_counter()
    ok = validate(text).ok
    t3 = time.perf_counter()
    return {"read": t1 - t0, "build": t2 - t1, "validate": t3 - t2, "alerts": agg.alerts, "groups": len(agg.groups),
            "objects": len(bundle.objects), "valid": ok, "bytes": len(text)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "nsl_kdd_train.txt",
                    help="An NSL-KDD file whose rows are repeated (and trained on).")  # fmt: skip
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stix-repeat", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fedledger-bench-detect-") as tmp:
        flows = Path(tmp) / "flows.txt"
        size = build_file(args.data, args.rows, flows)
        print(f"{args.rows:,} NSL-KDD rows ({size / 2**20:.0f} MiB) from {args.data.name}", flush=True)
        runs: dict[str, list[tuple[float, int, int]]] = {"read": [], "stream": [], "detect": []}
        for _ in range(args.repeat):
            runs["read"].append(_in_child(_plain_read, str(flows), False))
            runs["stream"].append(_in_child(_plain_read, str(flows), True))
            runs["detect"].append(_in_child(_detect, str(flows), str(args.data), str(Path(tmp) / "alerts.jsonl")))
        alerts_written = sum(1 for _ in open(Path(tmp) / "alerts.jsonl", "rb"))
        read = statistics.median(r[0] for r in runs["read"])
        print()
        print(f"| pass | seconds (median of {args.repeat}) | best | flows/s (median) | vs plain read (median) | peak memory |")
        print("|---|---:|---:|---:|---:|---:|")
        labels = {"read": "pyarrow.csv.read_csv (plain read, whole file)", "stream": "pyarrow open_csv (streaming read)",
                  "detect": f"fedledger detect (read, encode, score, write {alerts_written:,} alerts)"}  # fmt: skip
        for key, label in labels.items():
            s = statistics.median(r[0] for r in runs[key])
            best = min(r[0] for r in runs[key])
            mem = max(r[2] for r in runs[key])
            mem_text = f"{mem / 2**20:.0f} MiB" + (" above set-up" if key == "detect" else " RSS")
            print(f"| {label} | {s:.2f} | {best:.2f} | {args.rows / s:,.0f} | {read / s:.0%} | {mem_text} |")
        ratio = read / statistics.median(r[0] for r in runs["detect"])
        print(f"\ndetect at {ratio:.0%} of the plain read's rate (target >= 50 %): {'met' if ratio >= 0.5 else 'MISSED'}")

        alerts = Path(tmp) / "bench-alerts.jsonl"
        synthetic_alerts(alerts, args.alerts)
        res = [_in_child(_stix, str(alerts), str(Path(tmp) / "bundle.json")) for _ in range(args.stix_repeat)]
        r = {k: statistics.median(x[k] for x in res) if isinstance(res[0][k], float) else res[0][k] for k in res[0]}
        print()
        print("| STIX export | alerts | groups | objects | read + aggregate (s) | build + serialise (s) | total (s) | stix2-validator (s) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.alerts:,} synthetic alerts, 2,000 sources | {r['alerts']:,} | {r['groups']:,} | {r['objects']:,} | "
              f"{r['read']:.2f} | {r['build']:.2f} | {r['read'] + r['build']:.2f} | {r['validate']:.2f} ({'valid' if r['valid'] else 'INVALID'}) |")  # fmt: skip


if __name__ == "__main__":
    main()
