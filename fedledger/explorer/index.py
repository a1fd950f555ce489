"""What the explorer knows about the federation: the chain's rounds, their manifests and audit verdicts.

:meth:`FederationIndex.refresh` follows the chain: it reads the rounds it has not seen closed
(a closed round never changes), parses each new manifest, and audits every round that has no
verdict yet, in order, with one :class:`fedledger.audit.Auditor` whose replay keeps the
rounds it derived (so the next round's base and strategy state cost nothing). Verdicts are cached on disk by round and digests
(:mod:`fedledger.explorer.cache`), so a restart re-audits nothing and a new round costs one
audit. Pages read an immutable :class:`Snapshot`, replaced whole after each step, so rendering
never waits for the chain, the store or an audit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.client import Ledger
from contracts.records import RoundInfo, RoundState
from faults import FedLedgerError, deadline
from federation.genesis import lineage_mismatches
from federation.manifest import InvalidManifest, Manifest
from fedledger.audit import AuditError, Auditor, RoundVerdict
from fedledger.explorer.cache import VerdictCache, round_key
from ipfs import ContentStore, StoreError, digest_to_cid

log = logging.getLogger(__name__)
CLOSED = (RoundState.FINALIZED, RoundState.ABORTED)


@dataclass(frozen=True)
class RoundEntry:
    """One round: the chain's record, its manifest (finalised rounds) and the audit's verdict once there is one."""

    info: RoundInfo
    manifest: Manifest | None = None
    manifest_error: str | None = None
    verdict: RoundVerdict | None = None
    audited_at: float | None = None
    audit_error: str | None = None
    scores: dict[str, int] = field(default_factory=dict)  # what the chain recorded (ContributionScored), by address


@dataclass(frozen=True)
class Member:
    address: str
    name: str
    active: bool  # registered now (a removed member keeps its history)
    total_score: int
    total_epsilon_milli: int


@dataclass(frozen=True)
class Snapshot:
    """Everything a page shows without asking the chain or the store again."""

    version: int
    ledger: str
    chain_id: int
    genesis_model: bytes
    descriptor_cid: str | None = None
    descriptor: dict[str, Any] | None = None  # the descriptor's JSON as stored, new fields included
    genesis_mismatches: tuple[str, ...] | None = None  # None until the descriptor is known
    lineage: tuple[dict[str, Any], ...] = ()  # the genesis's parent links across ledgers, each checked
    coordinator: str | None = None
    min_updates: int = 0
    current_round: int = 0
    latest_model: bytes | None = None
    members: tuple[Member, ...] = ()
    rounds: tuple[RoundEntry, ...] = ()  # rounds[i] is round i + 1
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)  # the audit's composed spend per DP member
    refreshed_at: float = 0.0
    error: str | None = None  # what the last refresh could not read
    auditing: int | None = None  # the round being audited now

    def round(self, round_id: int) -> RoundEntry | None:
        return self.rounds[round_id - 1] if 1 <= round_id <= len(self.rounds) else None

    def member(self, address: str) -> Member | None:
        low = address.lower()
        return next((m for m in self.members if m.address.lower() == low), None)


@dataclass
class _Audited:
    key: str
    verdict: RoundVerdict
    audited_at: float


class FederationIndex:
    """Follows one ledger; :meth:`refresh` is called by a poller, :meth:`snapshot` by every page."""

    def __init__(
        self,
        ledger: Ledger,
        store: ContentStore,
        *,
        cache_dir: Path,
        descriptor_cid: str | None = None,
        read_timeout: float = 10.0,
        fetch_timeout: float = 10.0,
        audit_timeout: float = 600.0,
        reaudit: bool = False,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.cache_dir = Path(cache_dir)
        self.read_timeout = read_timeout
        self.audit_timeout = audit_timeout
        self.reaudit = reaudit
        self.auditor = Auditor(ledger, store, descriptor_cid=descriptor_cid, fetch_timeout=fetch_timeout)
        self.audits_run = 0  # rounds re-derived by this index (the rest came from the cache)
        self._lock = threading.Lock()  # one refresh at a time
        self._cache: VerdictCache | None = None
        self._rounds: dict[int, RoundEntry] = {}
        self._audited: dict[int, _Audited] = {}
        self._audit_errors: dict[int, str] = {}
        self._snap = Snapshot(0, ledger.address, ledger.chain_id, b"")
        self._fixed: dict[str, Any] = {}

    def snapshot(self) -> Snapshot:
        return self._snap

    # -- following the chain ------------------------------------------------------------------
    def refresh(self) -> Snapshot:
        """Read what is new on chain, then audit what has no verdict; never raises for a node or store that is down."""
        with self._lock:
            error = None
            try:
                with deadline(self.read_timeout):
                    self._read_chain()
            except FedLedgerError as exc:
                error = str(exc)
            self._publish(error=error)
            if error is None:
                self._audit_pending()
            return self._snap

    def _read_chain(self) -> bool:
        ledger = self.ledger
        if "genesis" not in self._fixed:
            self._fixed["genesis"] = ledger.genesis_model()
        self._load_descriptor()
        current = ledger.current_round()
        changed = current != self._fixed.get("current") or "members" not in self._fixed
        for r in range(1, current + 1):
            known = self._rounds.get(r)
            if known is not None and known.info.state in CLOSED:
                continue
            info = ledger.get_round(r)
            if known is not None and known.info == info:
                continue
            changed = True
            self._rounds[r] = self._entry(info)
        if changed:
            self._fixed["current"] = current
            self._fixed["coordinator"] = ledger.coordinator()
            self._fixed["min_updates"] = ledger.min_updates()
            self._fixed["latest"] = ledger.latest_model()
            self._fixed["members"] = self._read_members()
        return changed

    def _entry(self, info: RoundInfo) -> RoundEntry:
        if info.state is not RoundState.FINALIZED or info.manifest is None:
            return RoundEntry(info)
        # The scores as the chain holds them, from the finalising transaction's events (one query).
        events = self.ledger.get_events(
            ("ContributionScored",), from_block=info.closed_block, to_block=info.closed_block, round_id=info.round_id
        )
        scores = {e.args["participant"]: int(e.args["score"]) for e in events}
        try:
            manifest = Manifest.parse(self.store.get(digest_to_cid(info.manifest)))
        except (StoreError, InvalidManifest) as exc:
            return RoundEntry(info, manifest_error=str(exc), scores=scores)
        return RoundEntry(info, manifest=manifest, scores=scores)

    def _read_members(self) -> tuple[Member, ...]:
        addresses = {a.lower(): a for a in self.ledger.participants()}
        for entry in self._rounds.values():  # a removed member still has its rounds
            for s in entry.manifest.submissions if entry.manifest else ():
                addresses.setdefault(s.participant.lower(), s.participant)
        members = []
        for address in addresses.values():
            members.append(Member(
                address, self.ledger.participant_name(address), self.ledger.is_participant(address),
                self.ledger.total_score(address), self.ledger.total_epsilon_milli(address),
            ))  # fmt: skip
        return tuple(sorted(members, key=lambda m: (not m.active, m.name.lower(), m.address)))

    def _load_descriptor(self) -> None:
        if "descriptor" in self._fixed:
            return
        try:
            self.auditor.descriptor()
        except AuditError:  # no finalised round names it yet, and none was given
            return
        except FedLedgerError as exc:  # not in the store (yet), or not a descriptor: the rounds still show
            self._fixed["descriptor_error"] = f"federation descriptor: {exc}"
            return
        self._fixed.pop("descriptor_error", None)
        cid = str(self.auditor.descriptor_cid)
        self._fixed["descriptor_cid"] = cid
        self._fixed["descriptor"] = json.loads(self.store.get(cid))  # the Auditor parsed and checked these bytes
        links = self.auditor.check_lineage()  # a pretrained genesis is re-run, a parent's link checked, once
        self._fixed["lineage"] = tuple(link.to_dict() for link in links)
        self._fixed["genesis_mismatches"] = (*self.auditor.check_genesis(), *lineage_mismatches(links))
        self._cache = VerdictCache(self.cache_dir, ledger=self.ledger.address, chain_id=self.ledger.chain_id, descriptor=cid)
        if self.reaudit:
            self._cache.clear()

    # -- auditing -----------------------------------------------------------------------------
    def _audit_pending(self) -> None:
        if self._cache is None:
            return
        try:
            for r in sorted(self._rounds):
                info = self._rounds[r].info
                if info.state is RoundState.OPEN:  # nothing to re-derive until it closes
                    continue
                done = self._audited.get(r)
                if done is not None and done.key == round_key(info):
                    continue
                cached = self._cache.get(info)
                if cached is not None:
                    self._audited[r] = _Audited(round_key(info), cached.verdict, cached.audited_at)
                    continue
                self._publish(auditing=r)
                self._audit(r)
                self._cache.save()
                self._publish()
        except FedLedgerError as exc:  # retried at the next refresh
            log.warning("explorer: audit stopped: %s", exc)
        except Exception:  # a bug must not stop the explorer from following the chain
            log.exception("explorer: audit failed")
        finally:
            self._cache.save()
            self._publish()

    def _audit(self, r: int) -> None:
        """Re-derive round ``r``; the rounds it stands on are derived by the auditor's replay as needed."""
        info = self._rounds[r].info
        try:
            with deadline(self.audit_timeout):
                verdict = self.auditor.audit_round(r)
        except Exception as exc:
            self._audit_errors[r] = f"{type(exc).__name__}: {exc}"
            raise
        self.audits_run += 1
        self._audit_errors.pop(r, None)
        audited = _Audited(round_key(info), verdict, time.time())
        self._audited[r] = audited
        self._cache.put(info, verdict)

    # -- snapshots ----------------------------------------------------------------------------
    def _publish(self, *, error: str | None = None, auditing: int | None = None) -> None:
        error = error or self._fixed.get("descriptor_error")
        rounds = []
        for r in sorted(self._rounds):
            entry = self._rounds[r]
            done = self._audited.get(r)
            valid = done is not None and done.key == round_key(entry.info)
            rounds.append(RoundEntry(
                entry.info, entry.manifest, entry.manifest_error,
                done.verdict if valid else None, done.audited_at if valid else None, self._audit_errors.get(r), entry.scores,
            ))  # fmt: skip
        verdicts = [e.verdict for e in rounds if e.verdict is not None]
        privacy = self._snap.privacy
        if len(verdicts) != self._fixed.get("privacy_count") and auditing is None:
            try:
                with deadline(self.read_timeout):
                    privacy = self.auditor.privacy_spend(verdicts)
                self._fixed["privacy_count"] = len(verdicts)
            except FedLedgerError as exc:
                error = error or str(exc)
        f = self._fixed
        # The version moves only when a page would show something else: the pages' poll reloads on it.
        seen = (tuple((round_key(e.info), e.verdict is not None, e.manifest_error, e.audit_error) for e in rounds),
                auditing, error, f.get("members"), f.get("descriptor_cid"), f.get("coordinator"))  # fmt: skip
        version = self._snap.version + (seen != self._fixed.get("seen"))
        self._fixed["seen"] = seen
        self._snap = Snapshot(
            version=version,
            ledger=self.ledger.address,
            chain_id=self.ledger.chain_id,
            genesis_model=f.get("genesis", b""),
            descriptor_cid=f.get("descriptor_cid"),
            descriptor=f.get("descriptor"),
            genesis_mismatches=f.get("genesis_mismatches"),
            lineage=f.get("lineage", ()),
            coordinator=f.get("coordinator"),
            min_updates=f.get("min_updates", 0),
            current_round=f.get("current", 0),
            latest_model=f.get("latest"),
            members=f.get("members", ()),
            rounds=tuple(rounds),
            privacy=privacy,
            refreshed_at=time.time(),
            error=error,
            auditing=auditing,
        )
