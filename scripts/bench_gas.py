#!/usr/bin/env python3
"""Gas used by FederationLedger's transactions, read from receipts on a fresh local anvil.

    .venv/bin/python scripts/bench_gas.py

Prints one table row per operation with its target, and exits 1 if any target is missed.
Arguments are worst cases for calldata cost: digests without zero bytes, the largest
sample count and epsilon, and negative scores (sign-extended to 32 non-zero bytes).
Gas is deterministic: machine load changes timings, never these figures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.anvil import LocalAnvil  # noqa: E402
from contracts.client import Ledger  # noqa: E402

SUBMIT_TARGET = 110_000
FINALIZE_BASE, FINALIZE_PER_PARTICIPANT = 60_000, 25_000
SCORED = (1, 10, 50)


@dataclass
class Row:
    operation: str
    gas: int
    target: int | None

    @property
    def ok(self) -> bool:
        return self.target is None or self.gas <= self.target


def _digest(tag: int, i: int) -> bytes:
    # No zero bytes: each costs 16 gas of calldata instead of 4.
    return bytes(((tag * 131 + i * 7 + k) % 255) + 1 for k in range(32))


def run() -> list[Row]:
    rows: list[Row] = []
    finals: list[Row] = []
    with LocalAnvil(accounts=max(SCORED) + 2) as chain:
        admin_key, coordinator_key, *member_keys = chain.accounts
        admin = Ledger.deploy(chain.rpc_url, admin_key, _digest(0, 0), 1)
        rows.append(Row("deploy", admin.deployment.gas_used, None))
        rows.append(Row("setCoordinator", admin.set_coordinator(coordinator_key.address).gas_used, None))
        registered = [admin.register_participant(k.address, f"organisation-{i:02d}").gas_used
                      for i, k in enumerate(member_keys)]
        rows.append(Row("registerParticipant (max of 50)", max(registered), None))
        coordinator = admin.with_account(coordinator_key)
        members = [admin.with_account(k) for k in member_keys]
        deadline = chain.block_timestamp() + 24 * 3600
        for case, n in enumerate(SCORED, start=1):
            opened = coordinator.open_round(admin.latest_model(), deadline)
            if case == 1:
                rows.append(Row("openRound", opened.gas_used, None))
            submits = [
                m.submit_update(opened.round_id, _digest(case, i), 2**64 - 1, 2**32 - 1).gas_used
                for i, m in enumerate(members[:n])
            ]
            if case == len(SCORED):
                rows.append(Row("submitUpdate, first of a round", submits[0], SUBMIT_TARGET))
                rows.append(Row("submitUpdate, later (max)", max(submits[1:]), SUBMIT_TARGET))
            scored = [m.account for m in members[:n]]
            final = coordinator.finalize_round(
                opened.round_id, _digest(case, 100), _digest(case, 101), scored, [-(2**31)] * n
            )
            finals.append(Row(f"finalizeRound, {n} scored", final.gas_used, FINALIZE_BASE + FINALIZE_PER_PARTICIPANT * n))
        aborted = coordinator.open_round(admin.latest_model(), deadline)
        finals.append(Row("abortRound", coordinator.abort_round(aborted.round_id).gas_used, None))
    return rows + finals


def main() -> int:
    rows = run()
    width = max(len(r.operation) for r in rows)
    print(f"| {'operation':<{width}} | {'gas used':>9} | {'target':>9} | met |")
    print(f"|{'-' * (width + 2)}|{'-' * 10}:|{'-' * 10}:|:---:|")
    for r in rows:
        target = f"{r.target:,}" if r.target is not None else "-"
        met = "-" if r.target is None else ("yes" if r.ok else "NO")
        print(f"| {r.operation:<{width}} | {r.gas:>9,} | {target:>9} | {met:^3} |")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
