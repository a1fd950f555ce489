#!/usr/bin/env python3
"""Gas used by FederationLedger's transactions, read from receipts on a fresh local anvil.

    .venv/bin/python scripts/bench_gas.py

Prints one table row per operation with its target, and exits 1 if any target is missed.
Arguments are worst cases for calldata cost: digests without zero bytes, the largest
sample count and epsilon, and negative scores (sign-extended to 32 non-zero bytes). Where a
row says "max", it is the largest of every such call made. Secure-aggregation calls run on a
second ledger deployed in that mode. Gas is deterministic: machine load changes timings, never
these figures. The chain clock is moved forward (evm_increaseTime) to pass deadlines.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.anvil import LocalAnvil  # noqa: E402
from contracts.client import Ledger  # noqa: E402

SUBMIT_TARGET = 80_000
FINALIZE_BASE, FINALIZE_PER_PARTICIPANT = 60_000, 20_000
SCORED = (1, 10, 50)
MEMBERS = max(SCORED)
SECURE_MEMBERS = 10
ROUND_SECONDS = 24 * 3600


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


def _pass(chain: LocalAnvil, until: int) -> None:
    chain.increase_time(max(1, until - chain.block_timestamp()))


def _public(chain: LocalAnvil) -> list[Row]:
    admin_key, coordinator_key, *member_keys = chain.accounts[: MEMBERS + 2]
    admin = Ledger.deploy(chain.rpc_url, admin_key, _digest(0, 0), 1, descriptor=_digest(0, 1))
    rows = [Row("deploy", admin.deployment.gas_used, None)]
    rows.append(Row("setCoordinator", admin.set_coordinator(coordinator_key.address).gas_used, None))
    registered = [
        admin.register_participant(k.address, f"organisation-{i:02d}").gas_used for i, k in enumerate(member_keys)
    ]
    rows.append(Row(f"registerParticipant (max of {MEMBERS})", max(registered), None))
    coordinator = admin.with_account(coordinator_key)
    members = [admin.with_account(k) for k in member_keys]
    keys = [m.set_member_key(_digest(9, i)).gas_used for i, m in enumerate(members[:SECURE_MEMBERS])]
    rows.append(Row("setMemberKey (max)", max(keys), None))

    opens, firsts, laters, finals = [], [], [], []
    for case, n in enumerate(SCORED, start=1):
        opened = coordinator.open_round(admin.latest_model(), chain.block_timestamp() + ROUND_SECONDS)
        opens.append(opened.gas_used)
        gas = [
            m.submit_update(opened.round_id, _digest(case, i), 2**64 - 1, 2**32 - 1).gas_used
            for i, m in enumerate(members[:n])
        ]
        firsts.append(gas[0])
        laters.extend(gas[1:])
        if n < MEMBERS:  # not everyone submitted: submissions close at the deadline
            _pass(chain, admin.get_round(opened.round_id).deadline)
        final = coordinator.finalize_round(
            opened.round_id, _digest(case, 100), _digest(case, 101), [m.account for m in members[:n]], [-(2**31)] * n
        )
        finals.append(Row(f"finalizeRound, {n} scored", final.gas_used, FINALIZE_BASE + FINALIZE_PER_PARTICIPANT * n))
    rows.append(Row("openRound (max)", max(opens), None))
    rows.append(Row("submitUpdate, first of a round (max)", max(firsts), SUBMIT_TARGET))
    rows.append(Row("submitUpdate, later (max)", max(laters), SUBMIT_TARGET))
    rows.extend(finals)

    aborted = coordinator.open_round(admin.latest_model(), chain.block_timestamp() + ROUND_SECONDS)
    _pass(chain, admin.get_round(aborted.round_id).deadline)  # closed with no submission: short of the quorum
    rows.append(Row("abortRound (coordinator, no quorum)", coordinator.abort_round(aborted.round_id).gas_used, None))
    late = coordinator.open_round(admin.latest_model(), chain.block_timestamp() + ROUND_SECONDS)
    members[0].submit_update(late.round_id, _digest(7, 0), 2**64 - 1, 2**32 - 1)
    _pass(chain, admin.round_phases(late.round_id).abortable_at)
    rows.append(Row("abortRound (member, after the grace)", members[1].abort_round(late.round_id).gas_used, None))
    rows.append(Row("rebaseLineage", admin.rebase_lineage(1).gas_used, None))
    return rows


def _secure(chain: LocalAnvil) -> list[Row]:
    admin_key, coordinator_key, *member_keys = chain.accounts[: SECURE_MEMBERS + 2]
    admin = Ledger.deploy(chain.rpc_url, admin_key, _digest(20, 0), 1, descriptor=_digest(20, 1), secure_aggregation=True)
    admin.set_coordinator(coordinator_key.address)
    for i, k in enumerate(member_keys):
        admin.register_participant(k.address, f"organisation-{i:02d}")
    coordinator = admin.with_account(coordinator_key)
    members = [admin.with_account(k) for k in member_keys]
    now = chain.block_timestamp()
    opened = coordinator.open_round(admin.latest_model(), now + ROUND_SECONDS, share_deadline=now + 3600)
    rid = opened.round_id
    shares = [m.publish_shares(rid, _digest(21, i)).gas_used for i, m in enumerate(members)]
    # Every eligible member shared, so the share phase closed; submissions close with the last sharer.
    submits = [m.submit_update(rid, _digest(22, i), 2**64 - 1, 2**32 - 1).gas_used for i, m in enumerate(members)]
    reveals = [m.reveal_shares(rid, _digest(23, i)).gas_used for i, m in enumerate(members)]
    final = coordinator.finalize_round(
        rid, _digest(24, 0), _digest(24, 1), [m.account for m in members], [-(2**31)] * len(members)
    )
    n = len(members)
    return [
        Row("deploy (secure aggregation)", admin.deployment.gas_used, None),
        Row("openRound (secure aggregation)", opened.gas_used, None),
        Row(f"publishShares (max of {n})", max(shares), None),
        Row(f"submitUpdate, secure (max of {n})", max(submits), SUBMIT_TARGET),
        Row(f"revealShares (max of {n})", max(reveals), None),
        Row(f"finalizeRound, secure, {n} scored", final.gas_used, FINALIZE_BASE + FINALIZE_PER_PARTICIPANT * n),
    ]


def run() -> list[Row]:
    with LocalAnvil(accounts=MEMBERS + 2) as chain:
        return _public(chain) + _secure(chain)


def main() -> int:
    rows = run()
    width = max(len(r.operation) for r in rows)
    print(f"| {'operation':<{width}} | {'gas used':>9} | {'target':>9} | met |")
    print(f"|{'-' * (width + 2)}|{'-' * 10}:|{'-' * 10}:|:---:|")
    for r in rows:
        target = f"{r.target:,}" if r.target is not None else "-"
        met = "-" if r.target is None else ("yes" if r.ok else "NO")
        print(f"| {r.operation:<{width}} | {r.gas:>9,} | {target:>9} | {met:^3} |")
    missed = [r for r in rows if not r.ok]
    for r in missed:
        print(f"missed: {r.operation} uses {r.gas:,} gas, {r.gas - r.target:,} over its target of {r.target:,}",
              file=sys.stderr)  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
