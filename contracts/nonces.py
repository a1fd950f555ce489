"""Nonces per (endpoint, chain, sender), shared by every ledger connection in the process.

Threads sending from one key must never reuse or skip a nonce, and asking the node
for the pending count before every transaction costs a round trip; so the next
nonce is cached under a lock, and dropped (re-read from the node) whenever a send
fails or a receipt does not arrive.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class NonceSlot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next: int | None = None


_nonce_slots: dict[tuple[str, int, str], NonceSlot] = {}
_nonce_slots_lock = threading.Lock()


def forget_nonces() -> None:
    """Drop every cached nonce, e.g. after rewinding a dev chain with ``evm_revert``."""
    with _nonce_slots_lock:
        for slot in _nonce_slots.values():
            with slot.lock:
                slot.next = None


def nonce_slot(rpc_url: str, chain_id: int, address: str) -> NonceSlot:
    """One nonce counter per (endpoint, chain, sender), shared by every Ledger in the process,
    so threads sending from one key never reuse or skip a nonce."""
    key = (rpc_url, chain_id, address)
    with _nonce_slots_lock:
        return _nonce_slots.setdefault(key, NonceSlot())
