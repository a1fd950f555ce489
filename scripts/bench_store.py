#!/usr/bin/env python3
"""Benchmark of the embedded store against the floors of the machine.

For each size, side by side in one run:
  sha256      hashlib.sha256 over the bytes: the floor of computing any CID
  only-hash   the Kubo-identical CID without storing (ipfs add -n)
  file-write  the bytes written to one file, fsync'd with its directory: the disk's floor
  put         EmbeddedStore.put: every block written and durable, root pinned
  get         EmbeddedStore.get_to: every block read back and re-hashed (cold: the
              store's pages are dropped from the page cache first)

Every operation runs in its own child process, streaming its input from one source
file (already in the page cache, the same for all), so the peak RSS of the child is
the memory the operation needs plus the interpreter. Each figure is the median of
--repeat runs, interleaved so that all operations see the same background load.

Usage:
  .venv/bin/python scripts/bench_store.py                      # 1 MiB, 64 MiB, 1 GiB
  .venv/bin/python scripts/bench_store.py --sizes 1MiB,64MiB --repeat 5
  .venv/bin/python scripts/bench_store.py --kubo-vector-7g     # also the 7.9 GB Kubo vector (slow)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIECE = 262_144
UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
TARGETS = {  # op: (floor op, minimum ratio)
    "only-hash": ("sha256", 0.50),
    "put": ("file-write", 0.80),
    "get": ("put", 1.00),
}
MEMORY_LIMIT_MIB = 64


def parse_size(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def human(n: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if n >= UNITS[unit] and n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]} {unit}"
    return f"{n} B"


# --- the child side: one operation, timed inside the process -----------------


def child(op: str, src: str, work: str, cid: str | None, sync: str) -> dict:
    from ipfs.builder import build
    from ipfs.embedded import EmbeddedStore

    size = os.path.getsize(src)
    result: dict = {}
    if op in ("put", "get"):
        # Creating a store (its shard directories) is a one-time cost, not a put's.
        store = EmbeddedStore(work, sync=sync)
    if op == "get":
        _drop_cache(Path(work))
    with open(src, "rb", buffering=0) as fh:
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        rss_before = usage_before.ru_maxrss
        t0 = time.perf_counter()
        if op == "sha256":
            h = hashlib.sha256()
            buf = bytearray(PIECE)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                h.update(view[:n])
            result["out"] = h.hexdigest()
        elif op == "only-hash":
            result["out"] = build(fh)[0]
        elif op == "file-write":
            target = Path(work) / "plain.bin"
            buf = bytearray(PIECE)
            view = memoryview(buf)
            with open(target, "wb", buffering=0) as out:
                while n := fh.readinto(buf):
                    out.write(view[:n])
                os.fsync(out.fileno())
            dfd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
        elif op == "put":
            result["out"] = store.put(fh)
        elif op == "get":
            sink = _HashSink()
            store.get_to(cid, sink)
            result["out"] = sink.count
        else:
            raise SystemExit(f"unknown op {op}")
        elapsed = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        cpu_user=usage.ru_utime - usage_before.ru_utime,
        cpu_sys=usage.ru_stime - usage_before.ru_stime,
        op=op,
        seconds=elapsed,
        mib_s=size / elapsed / (1 << 20),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        base_rss_mib=rss_before / 1024,
    )
    return result


class _HashSink:
    """Where get writes: counts the bytes (a consumer that keeps nothing)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, b) -> int:
        self.count += len(b)
        return len(b)


def _drop_cache(store_dir: Path) -> None:
    # The blocks were fsync'd by put, so their pages are clean and can be dropped:
    # get then reads from the disk, not from memory put left behind.
    for path in store_dir.glob("blocks/*/*.data"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- the parent side ----------------------------------------------------------


def run_child(op: str, src: Path, work: Path, cid: str | None, sync: str) -> dict:
    cmd = [sys.executable, __file__, "--child", op, str(src), str(work), cid or "-", sync]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{op} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def make_source(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(os.urandom(n))
            left -= n
    with open(path, "rb") as fh:  # warm the page cache so every op reads it alike
        while fh.read(8 << 20):
            pass


def bench_size(size: int, scratch: Path, repeat: int, sync: str) -> dict[str, list[dict]]:
    src = scratch / f"src-{size}.bin"
    make_source(src, size)
    expected_sha = None
    results: dict[str, list[dict]] = {op: [] for op in ("sha256", "only-hash", "file-write", "put", "get")}
    try:
        for _ in range(repeat):
            sha = run_child("sha256", src, scratch, None, sync)
            expected_sha = expected_sha or sha["out"]
            results["sha256"].append(sha)
            only = run_child("only-hash", src, scratch, None, sync)
            results["only-hash"].append(only)
            fw_dir = Path(tempfile.mkdtemp(dir=scratch))
            results["file-write"].append(run_child("file-write", src, fw_dir, None, sync))
            shutil.rmtree(fw_dir)
            store_dir = Path(tempfile.mkdtemp(dir=scratch))
            put = run_child("put", src, store_dir, None, sync)
            if put["out"] != only["out"]:
                raise SystemExit(f"put gave {put['out']} but only-hash gave {only['out']}")
            results["put"].append(put)
            get = run_child("get", src, store_dir, put["out"], sync)
            if get["out"] != size:
                raise SystemExit(f"get returned {get['out']} bytes, expected {size}")
            results["get"].append(get)
            shutil.rmtree(store_dir)
    finally:
        src.unlink(missing_ok=True)
    return results


def report(all_results: dict[int, dict[str, list[dict]]]) -> bool:
    ok = True
    header = (
        f"| {'size':>7} | {'operation':<10} | {'MiB/s':>7} | {'vs floor':>19} | {'target':>15} "
        f"| {'peak RSS':>10} | {'CPU user+sys s':>14} | met |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for size, results in all_results.items():
        med = {op: statistics.median(r["mib_s"] for r in runs) for op, runs in results.items()}
        for op in ("sha256", "only-hash", "file-write", "put", "get"):
            peak = max(r["peak_rss_mib"] for r in results[op])
            vs, target, met = "(floor)", "", ""
            if op in TARGETS:
                floor, minimum = TARGETS[op]
                ratio = med[op] / med[floor]
                vs = f"{ratio:6.0%} of {floor}"
                target = f">= {minimum:.0%}"
                good = ratio >= minimum
                met = "yes" if good else "NO"
                ok &= good
            if size >= UNITS["GiB"] and op in ("only-hash", "put", "get"):
                mem_ok = peak < MEMORY_LIMIT_MIB
                target = (target + f", <{MEMORY_LIMIT_MIB} MiB").lstrip(", ")
                met = ("yes" if (met in ("", "yes") and mem_ok) else "NO")
                ok &= mem_ok
            cpu_u = statistics.median(r["cpu_user"] for r in results[op])
            cpu_s = statistics.median(r["cpu_sys"] for r in results[op])
            cpu = f"{cpu_u:.3f}+{cpu_s:.3f}"
            print(
                f"| {human(size):>7} | {op:<10} | {med[op]:7.0f} | {vs:>19} | {target:>15} "
                f"| {peak:6.1f} MiB | {cpu:>14} | {met:^3} |"
            )
    base = min(r["base_rss_mib"] for res in all_results.values() for runs in res.values() for r in runs)
    print(f"\nPeak RSS is the whole child process; the interpreter with the store imported starts at ~{base:.0f} MiB.")
    print("CPU is the child's user+sys seconds for the operation (median), all threads.")
    return ok


def kubo_vector_7g() -> None:
    """Stream content(7,936,671,745) through only-hash: the three-layer Kubo vector."""
    from ipfs.builder import CHUNK_SIZE, DagBuilder

    vectors = json.loads((ROOT / "tests" / "vectors" / "kubo-cids-large.json").read_text())
    vector = max(vectors["vectors"], key=lambda v: v["size"])
    n = vector["size"]
    tag = b"fedledger-vector-%d-" % n
    builder = DagBuilder()
    whole = hashlib.sha256()
    counter = 0
    produced = 0
    t0 = time.perf_counter()
    per_chunk = CHUNK_SIZE // 32
    while produced < n:
        chunk = b"".join([hashlib.sha256(tag + str(i).encode()).digest() for i in range(counter, counter + per_chunk)])
        counter += per_chunk
        chunk = chunk[: n - produced]
        whole.update(chunk)
        builder.add_chunk(chunk)
        produced += len(chunk)
    root = builder.finish()
    from ipfs.cid import cidv0_from_multihash

    cid = cidv0_from_multihash(root.multihash)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n7.9 GB Kubo vector ({n} bytes, three DAG layers), generated and only-hashed in {elapsed:.0f} s, peak RSS {peak:.0f} MiB")
    print(f"  content sha256 {'matches' if whole.hexdigest() == vector['sha256'] else 'DIFFERS'}; CID {cid} "
          f"{'== Kubo' if cid == vector['cid'] else '!= Kubo ' + vector['cid']}")
    if cid != vector["cid"]:
        raise SystemExit(1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        op, src, work, cid, sync = sys.argv[2:7]
        print(json.dumps(child(op, src, work, None if cid == "-" else cid, sync)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1MiB,64MiB,1GiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation; the median is reported")
    parser.add_argument("--dir", default=None, help="scratch directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--sync", default="auto", choices=["auto", "fsync", "syncfs"], help="embedded store flush mode")
    parser.add_argument("--kubo-vector-7g", action="store_true", help="also only-hash the 7.9 GB Kubo vector")
    parser.add_argument("--skip-table", action="store_true", help="with --kubo-vector-7g: only the vector")
    args = parser.parse_args()
    ok = True
    if not args.skip_table:
        scratch = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
        try:
            results = {}
            for text in args.sizes.split(","):
                size = parse_size(text.strip())
                results[size] = bench_size(size, scratch, args.repeat, args.sync)
            load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"\nscripts/bench_store.py --sizes {args.sizes} --repeat {args.repeat} --sync {args.sync}"
                  f"  ({os.cpu_count()} cores, load average {load} at the end, scratch {scratch})\n")
            ok = report(results)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.kubo_vector_7g:
        kubo_vector_7g()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
