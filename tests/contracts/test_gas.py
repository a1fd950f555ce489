"""Gas budgets from the issue, as a regression guard (gas is deterministic, not a timing).

The full table with 50 scored participants is scripts/bench_gas.py; this checks the same
targets on the cases that fit the test chain's 20 accounts."""

from __future__ import annotations

SUBMIT_TARGET = 110_000


def finalize_target(n: int) -> int:
    return 60_000 + 25_000 * n


def test_submit_and_finalize_stay_within_budget(make_federation):
    fed = make_federation(participants=10)
    worst_digest = lambda i: bytes((i * 7 + k) % 255 + 1 for k in range(32))  # noqa: E731 - no zero bytes
    for n in (1, 10):
        rid = fed.open_round()
        gas = [
            m.submit_update(rid, worst_digest(n * 100 + i), 2**64 - 1, 2**32 - 1).gas_used
            for i, m in enumerate(fed.participants[:n])
        ]
        assert max(gas) <= SUBMIT_TARGET, gas  # gas[0] is the first submission of the round
        final = fed.coordinator.finalize_round(
            rid, worst_digest(1), worst_digest(2), fed.addresses[:n], [-(2**31)] * n
        )
        assert final.gas_used <= finalize_target(n), (n, final.gas_used)
