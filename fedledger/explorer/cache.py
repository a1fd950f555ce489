"""Audit verdicts kept on disk, keyed by what the chain says about each round.

A round's verdict is a function of the round's on-chain record (its id, state, base model,
global model and manifest digests), the strategy state carried from earlier rounds (itself
fixed by the chain's earlier rounds) and the store's content, which is addressed by those
digests. So a verdict computed once holds for as long as those digests do: the cache key is
exactly them, and a round whose record changed (it was finalised since, the chain was
replaced) simply misses. The file also records the shape of :class:`RoundVerdict`, so a
verdict written by an audit with other fields is audited again rather than misread.

One JSON file per ledger; written atomically (temporary file, then rename), and a file that
cannot be read is set aside and started afresh, never a reason to fail.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from contracts.records import RoundInfo
from fedledger.audit import RoundVerdict

CACHE_FORMAT = "fedledger-explorer-cache/2"
MAX_CACHE_BYTES = 64 << 20  # 200 rounds take ~100 KB; a file far past this is not ours
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fedledger/explorer`` (``~/.cache/fedledger/explorer``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fedledger" / "explorer"


def round_key(info: RoundInfo) -> str:
    """round id, state, base, global model and manifest digests: what a verdict depends on."""
    def hx(b: bytes | None) -> str:
        return b.hex() if b else "-"

    return f"{info.round_id}:{info.state.name.lower()}:{hx(info.base_model)}:{hx(info.global_model)}:{hx(info.manifest)}"


def _verdict_shape() -> list[str]:
    return sorted(f.name for f in fields(RoundVerdict))


@dataclass(frozen=True)
class CachedVerdict:
    verdict: RoundVerdict
    audited_at: float


class VerdictCache:
    """The verdicts of one ledger's rounds, in ``<dir>/<chain id>-<ledger>.json``."""

    def __init__(self, directory: Path, *, ledger: str, chain_id: int, descriptor: str | None) -> None:
        self.path = Path(directory) / f"{chain_id}-{ledger.lower()}.json"
        self._header = {"format": CACHE_FORMAT, "ledger": ledger.lower(), "chain_id": chain_id,
                        "descriptor": descriptor, "verdict_fields": _verdict_shape()}  # fmt: skip
        self._rounds: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._load()

    def __len__(self) -> int:
        return len(self._rounds)

    def get(self, info: RoundInfo) -> CachedVerdict | None:
        entry = self._rounds.get(str(info.round_id))
        if entry is None or entry.get("key") != round_key(info):
            return None
        try:
            return CachedVerdict(RoundVerdict(**entry["verdict"]), float(entry.get("audited_at", 0)))
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, info: RoundInfo, verdict: RoundVerdict) -> None:
        self._rounds[str(info.round_id)] = {"key": round_key(info), "verdict": asdict(verdict), "audited_at": time.time()}
        self._dirty = True

    def clear(self) -> None:
        self._rounds.clear()
        self._dirty = True

    def save(self) -> None:
        """Write the file if anything changed (atomically: a reader never sees half a file)."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".explorer-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({**self._header, "rounds": self._rounds}, f, sort_keys=True)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:  # a read-only cache dir costs speed, never a page
            log.warning("explorer: cannot write the verdict cache %s: %s", self.path, exc)

    def _load(self) -> None:
        try:
            if not self.path.exists():
                return
            if self.path.stat().st_size > MAX_CACHE_BYTES:
                raise ValueError(f"larger than {MAX_CACHE_BYTES} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            header = {k: data.get(k) for k in self._header}
            if header != self._header or not isinstance(data.get("rounds"), dict):
                log.info("explorer: the verdict cache %s is for another ledger or audit; starting afresh", self.path)
                return
            self._rounds = {k: v for k, v in data["rounds"].items() if isinstance(v, dict)}
        except (OSError, ValueError) as exc:
            log.warning("explorer: ignoring the unreadable verdict cache %s: %s", self.path, exc)
