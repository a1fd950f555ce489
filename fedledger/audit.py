"""The audit: re-derive every round from the chain and the store alone, trusting nothing it did not re-derive.

For the federation, the auditor checks that the descriptor is the one the ledger was deployed
for and that it commits to the genesis model the chain starts from. For each round:

* **finalised**: the manifest (parsed in bounded time and memory) describes this round; every
  update's bytes match their digest and are validated again; the members eligible when the
  round opened (replayed from the chain's membership events, never copied from the manifest)
  give the absent list; the strategy state and last round's updates come from the auditor's
  own derivation of the base round; aggregation and scoring are re-run, and the global model's
  bytes, every verdict, every score, the scored set (at least the quorum) and the manifest's
  bytes must equal what the chain and the store hold;
* **aborted**: who aborted, when, with how many submissions; the chain allows the coordinator to
  abort only short of the quorum and anyone only after the grace period — the audit says which
  happened, and whether a round aborted after its grace period would have reached the quorum;
* **open**: reported as such.

Availability is kept apart from correctness. Whether an update's bytes arrived within the
reveal window is a fact of the past the manifest records: an update recorded unavailable that
the auditor *can* fetch makes the round **disputed** (the coordinator may have closed the
window early, or the member revealed late on purpose); content the round needs that has
become unavailable since (an accepted update, the manifest, a hold-out) makes the round
**unverifiable**, reported as such and not as a mismatch. A hostile manifest or descriptor is
a named problem of its round, and the report of every other round survives.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.client import Ledger, RoundState
from contracts.history import lineage
from faults import Deadline, FedLedgerError
from federation.descriptor import Descriptor, InvalidDescriptor
from federation.fetch import AVAILABILITY_REASONS, fetch_update, update_limit
from federation.genesis import Link, follow_lineage, lineage_mismatches
from federation.manifest import InvalidManifest, Manifest
from federation.privacy import Mechanism, compose_declared
from federation.replay import Replay
from federation.secagg import UnmaskError
from federation.secagg.shares import MAX_BUNDLE_BYTES
from ipfs import ContentNotFound, ContentStore, StoreError, digest_to_cid

MISMATCH, DISPUTED, UNVERIFIABLE = "mismatch", "disputed", "unverifiable"


class AuditError(FedLedgerError):
    """The audit cannot start (no federation to audit, descriptor missing)."""


class NotAMember(AuditError):
    """The address asked about never was a participant of the ledger."""


@dataclass
class RoundVerdict:
    round_id: int
    state: str  # the chain's: open, finalized, aborted
    ok: bool  # nothing differs, nothing disputed, everything still available
    mismatches: list[str] = field(default_factory=list)  # what the chain or the store holds and the audit re-derives differently
    notes: list[str] = field(default_factory=list)
    disputed: list[str] = field(default_factory=list)  # updates recorded unavailable that can be fetched now
    unavailable: list[str] = field(default_factory=list)  # content the round needs that cannot be fetched now
    accepted: int = 0
    rejected: int = 0
    aggregated: int = 0
    global_model: str | None = None
    manifest: str | None = None
    seconds: float = 0.0
    # participant -> the DP mechanism and epsilon_milli of its accepted update, re-derived (DP rounds only)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``verified``, ``mismatch``, ``disputed``, ``unverifiable``, or the state of a round with nothing to derive."""
        if self.mismatches:
            return MISMATCH
        if self.disputed:
            return DISPUTED
        if self.unavailable:
            return UNVERIFIABLE
        return "verified" if self.state == "finalized" else self.state

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}

    def finish(self, t0: float) -> RoundVerdict:
        self.ok = not (self.mismatches or self.disputed or self.unavailable)
        self.seconds = time.perf_counter() - t0
        return self


@dataclass
class AuditReport:
    ledger: str
    descriptor: str | None
    genesis_ok: bool
    rounds: list[RoundVerdict]
    mismatches: list[str] = field(default_factory=list)
    # participant -> per-round spend, the ledger's naive sum and the composed total (see privacy_spend)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    rebases: list[dict[str, Any]] = field(default_factory=list)
    # the ledgers this federation's genesis descends from, each link checked on its chain (federation.genesis)
    lineage: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.genesis_ok and not self.mismatches and all(r.ok for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "descriptor": self.descriptor,
            "ok": self.ok,
            "genesis_ok": self.genesis_ok,
            "mismatches": self.mismatches,
            "rebases": self.rebases,
            "lineage": self.lineage,
            "rounds": [r.to_dict() for r in self.rounds],
            "privacy": self.privacy,
        }


class Auditor:
    def __init__(
        self,
        ledger: Ledger,
        store: ContentStore,
        *,
        descriptor_cid: str | None = None,
        fetch_timeout: float = 10.0,
        parent_rpcs: dict[int, str] | None = None,
    ):
        """``parent_rpcs`` maps a chain id to the JSON-RPC URL its ledgers are read at, for a lineage that
        leaves this chain (this chain's own ledgers are read through ``ledger``'s connection)."""
        self.ledger = ledger
        self.parent_rpcs = dict(parent_rpcs or {})
        self.store = store
        self.descriptor_cid = descriptor_cid
        self.fetch_timeout = fetch_timeout
        self._descriptor: Descriptor | None = None
        self._replay: Replay | None = None

    # -- the federation ----------------------------------------------------------------------
    def _find_descriptor_cid(self) -> str:
        """The descriptor the ledger names: its CID is the ledger's digest."""
        return self.descriptor_cid or digest_to_cid(self.ledger.descriptor_digest())

    def descriptor(self) -> Descriptor:
        if self._descriptor is None:
            self.descriptor_cid = self._find_descriptor_cid()
            self._descriptor = Descriptor.from_bytes(self.store.get(self.descriptor_cid, max_bytes=16 << 20))
        return self._descriptor

    @property
    def replay(self) -> Replay:
        if self._replay is None:
            self._replay = Replay(self.ledger, self.store, self.descriptor(), str(self.descriptor_cid),
                                  fetch_timeout=self.fetch_timeout)  # fmt: skip
        return self._replay

    def check_genesis(self) -> list[str]:
        return self.replay.check_federation()

    def attach_parent(self, chain_id: int, address: str) -> Ledger:
        """A read-only connection to a parent ledger on chain ``chain_id``."""
        if chain_id == self.ledger.chain_id:
            url = self.parent_rpcs.get(chain_id, self.ledger.rpc_url)
        elif chain_id in self.parent_rpcs:
            url = self.parent_rpcs[chain_id]
        else:
            raise AuditError(
                f"the lineage reaches chain {chain_id}, and no JSON-RPC URL is known for it",
                hint=f"pass --parent-rpc {chain_id}=URL",
            )
        return Ledger.attach(url, address, expected_chain_id=chain_id)

    def check_lineage(self) -> list[Link]:
        """Every link from this federation's genesis up to the first seeded or pretrained ancestor."""
        return follow_lineage(self.descriptor(), self.ledger.address, self.store, self.attach_parent)

    # -- one round ---------------------------------------------------------------------------
    def audit_round(self, round_id: int) -> RoundVerdict:
        """Audit one round; every problem, expected or not, becomes a named finding of this round."""
        t0 = time.perf_counter()
        info = self.ledger.get_round(round_id)
        v = RoundVerdict(round_id, info.state.name.lower(), True)
        try:
            if info.state == RoundState.FINALIZED:
                self._audit_finalized(round_id, info, v)
            elif info.state == RoundState.ABORTED:
                self._audit_aborted(round_id, info, v)
        except (ContentNotFound,) as exc:
            v.unavailable.append(f"content this round needs is not in the store: {exc}")
        except FedLedgerError as exc:
            v.mismatches.append(f"re-derivation failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - by design: one hostile round must not end the audit of the others
            v.mismatches.append(f"re-derivation failed: {type(exc).__name__}: {str(exc)[:300]}")
        return v.finish(t0)

    def _audit_finalized(self, round_id: int, info, v: RoundVerdict) -> None:  # noqa: ANN001
        bad = v.mismatches.append
        v.global_model = digest_to_cid(info.global_model)
        v.manifest = digest_to_cid(info.manifest)
        try:
            manifest_bytes = self.store.get(v.manifest, max_bytes=16 << 20)
        except ContentNotFound:
            v.unavailable.append(f"manifest {v.manifest} is not in the store")
            return
        except StoreError as exc:
            bad(f"manifest {v.manifest}: {exc}")
            return
        try:
            parsed = Manifest.parse(manifest_bytes)
        except InvalidManifest as exc:
            bad(f"manifest {v.manifest}: {exc}")
            return
        if parsed.round_id != round_id:
            bad(f"manifest is for round {parsed.round_id}, not {round_id}")
        if parsed.federation != self.descriptor_cid:
            bad(f"manifest names federation {parsed.federation}, not {self.descriptor_cid}")

        subs = self.ledger.submissions(round_id)
        listed = [e.participant for e in parsed.submissions]
        if listed != [s.participant for s in subs]:
            bad(f"manifest lists submissions {listed}, the chain's order is {[s.participant for s in subs]}")
        recorded = {e.participant: e for e in parsed.submissions}
        until = Deadline.after(self.fetch_timeout)
        limit = update_limit(self.descriptor())
        fetched: dict[str, tuple[bytes | None, str | None]] = {}
        for s in subs:
            cid = digest_to_cid(s.update)
            entry = recorded.get(s.participant)
            if entry is not None and entry.update != cid:
                bad(f"{s.participant}: manifest records update {entry.update}, the chain {cid}")
            data, err = fetch_update(self.store, cid, max_bytes=limit, until=until)
            if entry is not None and entry.reason in AVAILABILITY_REASONS:
                if data is not None:
                    v.disputed.append(
                        f"{s.participant}: update {cid} was recorded as {entry.reason} and can be fetched now"
                    )
                data, err = None, entry.reason
            elif data is None and entry is not None and entry.accepted:
                v.unavailable.append(f"{s.participant}: accepted update {cid} cannot be fetched now ({err})")
            fetched[s.participant] = (data, err)
        secure = parsed.raw.get("secure_aggregation")
        if isinstance(secure, dict):  # the bundles the unmasking used must still be there
            for m in secure.get("members", []):
                for what in ("shares", "reveal"):
                    cid = m.get(what) if isinstance(m, dict) else None
                    if isinstance(cid, str) and not self._fetchable(cid):
                        v.unavailable.append(f"{m.get('participant')}: {what} bundle {cid} cannot be fetched now")
        if v.unavailable:
            return  # the re-derivation would differ for want of bytes, not because anyone cheated

        try:
            derived = self.replay.derive(round_id, fetched=fetched, reveals_from=parsed.secure_reveals)
        except UnmaskError as exc:
            bad(f"the round was finalised but its sum cannot be unmasked from the chain and the store: {exc}")
            v.notes.extend(f"{f.party}: {f.problem}" for f in exc.findings)
            return
        result = derived.result
        if derived.global_digest != info.global_model:
            bad(f"global model: re-derived {digest_to_cid(derived.global_digest)}, the chain records {v.global_model}")
        if parsed.state_in != result.manifest.get("state_in"):
            # Named apart: a forged server-optimiser state is the cause, the model and scores only follow from it.
            bad(
                f"strategy state: the manifest's state_in is {parsed.state_in}, the rounds before re-derive "
                f"{result.manifest.get('state_in')}"
            )
        chain_scores = {s.participant: s.score for s in subs}
        for sub, verdict in zip(derived.inputs.submissions, result.verdicts, strict=True):
            entry = recorded.get(sub.participant)
            status = "accepted" if verdict.accepted else "rejected"
            if entry is None or entry.status != status or entry.reason != verdict.reason:
                bad(
                    f"{sub.participant}: manifest says {entry.status if entry else None} ({entry.reason if entry else None}), "
                    f"re-validation says {status} ({verdict.reason})"
                )
            expected = result.scores[sub.participant] if sub.participant in result.aggregated else None
            if chain_scores.get(sub.participant) != expected:
                bad(f"{sub.participant}: score on chain {chain_scores.get(sub.participant)}, re-derived {expected}")
        if len(result.aggregated) < self.replay.quorum:
            bad(f"{len(result.aggregated)} updates re-derive as aggregated, below the quorum of {self.replay.quorum}")
        if result.manifest_bytes != manifest_bytes and not v.mismatches:
            diff = sorted(k for k in set(result.manifest) | set(parsed.raw) if result.manifest.get(k) != parsed.raw.get(k))
            bad(f"manifest: re-derived manifest differs in {diff}")
        if isinstance(result.manifest.get("secure_aggregation"), dict):
            v.notes.extend(f"{f['party']}: {f['problem']}" for f in result.manifest["secure_aggregation"]["findings"])
        for verdict in result.verdicts:
            if verdict.accepted and verdict.privacy is not None:
                v.privacy[verdict.participant] = dict(verdict.privacy)
            elif verdict.reason in ("epsilon-mismatch", "epsilon-inconsistent", "dp-section"):
                v.notes.append(f"{verdict.participant}: privacy claim rejected ({verdict.reason}): {verdict.detail}")
        v.accepted = sum(1 for x in result.verdicts if x.accepted)
        v.rejected = len(result.verdicts) - v.accepted
        v.aggregated = len(result.aggregated)

    def _audit_aborted(self, round_id: int, info, v: RoundVerdict) -> None:  # noqa: ANN001
        phases = self.ledger.round_phases(round_id)
        events = self.ledger.get_events(("RoundAborted",), from_block=info.closed_block, to_block=info.closed_block,
                                        round_id=round_id)  # fmt: skip
        if len(events) != 1:
            v.mismatches.append(f"no RoundAborted log in block {info.closed_block}")
            return
        by = events[0].args["by"]
        when = int(self.ledger.w3.eth.get_block(info.closed_block)["timestamp"])
        quorum = self.replay.quorum
        if when < phases.abortable_at:
            v.notes.append(f"aborted by the coordinator {by} with {info.submission_count} of {quorum} submissions")
            if info.submission_count >= quorum:
                v.mismatches.append(f"aborted before its grace period with {info.submission_count} submissions, the quorum is {quorum}")
            return
        v.notes.append(f"aborted by {by} after its grace period, with {info.submission_count} submissions")
        if info.submission_count >= quorum:
            # Could it have been finalised? Re-derive with what can be fetched now.
            try:
                derived = self.replay.derive(round_id)
            except FedLedgerError as exc:
                v.notes.append(f"could not re-derive it: {exc}")
                if isinstance(exc, UnmaskError):
                    v.notes.extend(f"{f.party}: {f.problem}" for f in exc.findings)
                return
            if len(derived.result.aggregated) >= quorum:
                v.notes.append(
                    f"its updates re-derive to {len(derived.result.aggregated)} aggregated, reaching the quorum: "
                    "the coordinator did not finalise a round it could have"
                )

    def _fetchable(self, cid: str) -> bool:
        try:
            self.store.get(cid, max_bytes=MAX_BUNDLE_BYTES)
            return True
        except StoreError:
            return False

    # -- everything ----------------------------------------------------------------------------
    def audit(self, rounds: list[int] | None = None) -> AuditReport:
        """Audit every round (or the listed ones: the rounds they stand on are re-derived, not audited)."""
        try:
            self.descriptor()
        except (StoreError, InvalidDescriptor) as exc:
            raise AuditError(f"cannot load the federation descriptor: {exc}") from None
        genesis_problems = self.check_genesis()
        wanted = set(rounds) if rounds else None
        verdicts = [self.audit_round(r) for r in range(1, self.ledger.current_round() + 1) if wanted is None or r in wanted]
        report = AuditReport(self.ledger.address, self.descriptor_cid, not genesis_problems, verdicts, genesis_problems)
        links = self.check_lineage()
        report.lineage = [link.to_dict() for link in links]
        report.mismatches.extend(lineage_mismatches(links))
        try:
            report.rebases = [asdict(r) | {"model": digest_to_cid(r.model) if any(r.model) else None}
                              for r in lineage(self.ledger).rebases]  # fmt: skip
        except FedLedgerError as exc:
            report.mismatches.append(f"lineage: {exc}")
        report.privacy = self.privacy_spend(verdicts)
        return report

    def privacy_spend(self, verdicts: list[RoundVerdict]) -> dict[str, dict[str, Any]]:
        """Each DP member's spend: per round, the ledger's naive sum, and the total composed by the accountant.

        The composed total is recomputed from the DP mechanisms the accepted updates
        declare (each checked against its claimed epsilon during re-derivation), with
        the same accountant the participant used, so it does not rest on the member's word.
        """
        sections: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for v in verdicts:
            for addr, p in v.privacy.items():
                sections.setdefault(addr, []).append((v.round_id, p))
        out: dict[str, dict[str, Any]] = {}
        for addr, rows in sorted(sections.items()):
            params = [Mechanism(**{k: p[k] for k in p if k != "epsilon_milli"}) for _, p in rows]
            out[addr] = {
                "rounds": [{"round": r, "epsilon": p["epsilon_milli"] / 1000, **p} for r, p in rows],
                "ledger_total_epsilon": self.ledger.total_epsilon_milli(addr) / 1000,  # naive sum, every submission
                "composed_epsilon": compose_declared(params),
                "accountant": params[0].accountant,
                "delta": max(d.delta for d in params),
            }
        return out


__all__ = ["AuditError", "AuditReport", "Auditor", "RoundVerdict"]
