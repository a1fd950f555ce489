"""Round deadlines are judged by block time; services also run by the wall clock.

A chain's clock can run ahead of the host's (a test chain whose time was moved
forward, a node with a skewed clock), so "now" is the later of the two.
"""

from __future__ import annotations

import time
from typing import Any


def chain_now(ledger: Any) -> int:
    """Seconds since the epoch: the later of the wall clock and the latest block's timestamp."""
    from contracts.errors import RpcUnavailable

    try:
        block_ts = int(ledger.w3.eth.get_block("latest")["timestamp"])
    except Exception as exc:  # noqa: BLE001 - web3 raises many transport types; map them to one
        raise RpcUnavailable(ledger.rpc_url, f"{type(exc).__name__}: {exc}") from None
    return max(int(time.time()), block_ts)
