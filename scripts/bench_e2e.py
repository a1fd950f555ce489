#!/usr/bin/env python3
"""End-to-end round time for N participants as OS processes (synthetic data), split by phase.

    .venv/bin/python scripts/bench_e2e.py --participants 5 20 50 --rounds 2

For each N: a fresh anvil chain and embedded store, a federation with N registered
organisations (each a separate `fedledger participant run` process holding
--records flows), R rounds driven by the coordinator in this process, then the audit.

Columns (seconds, mean over rounds):
  round      wall time from openRound to the finalize receipt
  reveal     from the moment submissions close on chain to every committed update being in the
             store (the commit-then-reveal phase: members put their bytes only once submissions close)
  train      participants' local training (mean per participant; they run in parallel)
  store      participants' base fetch + update put (mean) + coordinator's update fetches and puts
  chain      participants' submitUpdate (mean) + coordinator's openRound and finalizeRound
  aggregate  coordinator: validate, aggregate, leave-one-out scoring (N+1 evaluations)
  audit      re-deriving the round from chain and store
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def run(n: int, rounds: int, records: int, console: Console) -> dict:
    from contracts.anvil import LocalAnvil
    from coordinator.service import CoordinatorService, CoordinatorSettings
    from federation.flowset import flowset_bytes
    from fedledger.audit import Auditor
    from fedledger.demo import OrgProcess, chain_args
    from fedledger.deploy import create_federation
    from flows.partition import partition
    from flows.synthetic import generate
    from ipfs import EmbeddedStore, digest_to_cid

    with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{n}-") as tmp, LocalAnvil(accounts=n + 2) as chain:
        tmpd = Path(tmp)
        store = EmbeddedStore(tmpd / "store")
        train = generate(records * n, 1)
        parts = partition(train.labels, n, "dirichlet:1.0", 1, classes=train.classes)
        admin, coordinator_key, *orgs = chain.accounts
        fed = create_federation(
            rpc_url=chain.rpc_url, admin=admin, store=store, name=f"bench-{n}", validation=generate(2000, 2),
            min_updates=max(1, n // 2), seed=1, coordinator=coordinator_key.address, holdout_dir=tmpd / "holdouts",
        )  # fmt: skip
        procs = []
        for i, (acct, idx) in enumerate(zip(orgs, parts, strict=True)):
            fed.ledger.register_participant(acct.address, f"org-{i}")
            d = tmpd / f"org-{i}"
            d.mkdir()
            (d / "flows.flowset").write_bytes(flowset_bytes(train.subset(idx)))
            p = OrgProcess(i, f"org-{i}", acct.address, d, len(idx), [])
            p.start(
                acct, chain_args(chain.rpc_url, fed.ledger.address, chain.chain_id, fed.descriptor_cid, tmpd / "store", None),
                ["--rounds", str(rounds), "--epochs", "1"],
            )  # fmt: skip
            procs.append(p)
        # Let every process import torch and attach before the first round opens, so round 1 is not
        # measuring Python start-up.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all((p.dir / "participant.log").exists() for p in procs):
            time.sleep(0.5)
        time.sleep(min(60, 4 + 0.6 * n))
        coord = CoordinatorService(
            fed.ledger.with_account(coordinator_key), store, fed.descriptor_cid,
            settings=CoordinatorSettings(round_seconds=max(120, 10 * n), fetch_timeout=30, poll_seconds=0.2,
                                         holdout_dir=tmpd / "holdouts"),
        )  # fmt: skip
        walls, reveals = [], []
        outcomes = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            coord.open_round()
            rid = fed.ledger.current_round()
            while not coord.ready_to_close(rid):
                time.sleep(0.05)
            closed_at = time.perf_counter()
            pending = {digest_to_cid(s.update) for s in fed.ledger.submissions(rid)}
            while pending and time.perf_counter() - closed_at < 120:
                pending = {c for c in pending if not store.has(c)}
                time.sleep(0.05)
            reveals.append(time.perf_counter() - closed_at)
            out = coord.close_round(rid)
            walls.append(time.perf_counter() - t0)
            outcomes.append(out)
        audit_times = []
        auditor = Auditor(fed.ledger, store, descriptor_cid=fed.descriptor_cid)
        t0 = time.perf_counter()
        report = auditor.audit()
        audit_total = time.perf_counter() - t0
        audit_times = [v.seconds for v in report.rounds]
        for p in procs:
            try:
                p.proc.wait(timeout=60)
            except Exception:  # noqa: BLE001
                p.proc.kill()
        ev = [e for p in procs for e in p.read_events() if e.get("event") == "submitted"]
        mean = lambda xs: statistics.fmean(xs) if xs else 0.0  # noqa: E731
        return {
            "n": n,
            "round": mean(walls),
            "reveal": mean(reveals),
            "train": mean([e["train_seconds"] for e in ev]),
            "store": mean([e["store_seconds"] for e in ev]) + mean([o.timings.get("fetch", 0) + o.timings.get("store", 0) for o in outcomes]),
            "chain": mean([e["chain_seconds"] for e in ev]) + mean([o.timings.get("chain", 0) for o in outcomes]),
            "aggregate": mean([o.timings.get("aggregate", 0) for o in outcomes]),
            "audit": mean(audit_times),
            "audit_total": audit_total,
            "accepted": mean([sum(v.accepted for v in o.result.verdicts) for o in outcomes if o.result]),
            "ok": report.ok,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, nargs="+", default=[5, 20, 50])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--records", type=int, default=2000, help="flows per participant")
    args = ap.parse_args()
    console = Console(stderr=True)
    rows = []
    for n in args.participants:
        console.print(f"running N={n} …")
        rows.append(run(n, args.rounds, args.records, console))
    table = Table(title=f"end-to-end round time (s), {args.rounds} rounds, {args.records} flows per participant, {os.cpu_count()} cores")
    for col in ("N", "round", "reveal", "train", "store", "chain", "aggregate", "audit/round", "accepted", "audit ok"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["n"]), f"{r['round']:.2f}", f"{r['reveal']:.2f}", f"{r['train']:.2f}", f"{r['store']:.3f}", f"{r['chain']:.3f}",
            f"{r['aggregate']:.2f}", f"{r['audit']:.2f}", f"{r['accepted']:.0f}", str(r["ok"]),
        )  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
