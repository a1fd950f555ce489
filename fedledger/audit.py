"""The audit: re-derive every finalised round from the chain and the store alone.

For each round the auditor checks, and names exactly what differs when a check fails:

* genesis: the federation descriptor commits to the genesis model the chain starts from;
* lineage: each round's base is the previous finalised round's global model;
* the manifest's bytes match its on-chain digest (the store verifies every block) and
  it describes this round: same base, same global model, same submissions in on-chain
  order (digest, samples, epsilon);
* every update's bytes match their digest; validation is re-run on each;
* aggregation is re-run and the global model's bytes match the on-chain digest;
* scores are recomputed and equal the ones on chain; the manifest re-derives byte for byte.

Whether an update could be fetched before the deadline is a fact of the past: when the
manifest records an update as unavailable and it cannot be fetched now either, the
auditor agrees; when it can be fetched now, the auditor notes it (it may have been
added late) but keeps the recorded verdict, since a late update was rightly excluded.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.client import Ledger, RoundState
from faults import Deadline, FedLedgerError
from federation.descriptor import Descriptor, InvalidDescriptor
from federation.fetch import AVAILABILITY_REASONS, fetch_update
from federation.flowset import load_flowset
from federation.manifest import InvalidManifest, Manifest
from federation.model import load_model_bytes
from federation.privacy import Mechanism, compose_declared
from federation.rounds.derive import RoundInputs, derive_round
from federation.rounds.validation import SubmissionInput
from ipfs import ContentStore, StoreError, cid_to_digest, content_cid, digest_to_cid


class AuditError(FedLedgerError):
    """The audit cannot start (no federation to audit, descriptor missing)."""


class NotAMember(AuditError):
    """The address asked about never was a participant of the ledger."""


@dataclass
class RoundVerdict:
    round_id: int
    state: str
    ok: bool
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    global_model: str | None = None
    manifest: str | None = None
    seconds: float = 0.0
    # participant -> the DP mechanism and epsilon_milli of its accepted update, re-derived (DP rounds only)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class AuditReport:
    ledger: str
    descriptor: str | None
    genesis_ok: bool
    rounds: list[RoundVerdict]
    mismatches: list[str] = field(default_factory=list)
    # participant -> per-round spend, the ledger's naive sum and the composed total (see privacy_spend)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)

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
            "rounds": [asdict(r) for r in self.rounds],
            "privacy": self.privacy,
        }


class Auditor:
    def __init__(self, ledger: Ledger, store: ContentStore, *, descriptor_cid: str | None = None, fetch_timeout: float = 10.0):
        self.ledger = ledger
        self.store = store
        self.descriptor_cid = descriptor_cid
        self.fetch_timeout = fetch_timeout
        self._descriptor: Descriptor | None = None
        self._validation = None

    # -- the federation ----------------------------------------------------------------------
    def _find_descriptor_cid(self) -> str:
        if self.descriptor_cid:
            return self.descriptor_cid
        for r in range(1, self.ledger.current_round() + 1):
            info = self.ledger.get_round(r)
            if info.state == RoundState.FINALIZED:
                return Manifest.parse(self.store.get(digest_to_cid(info.manifest))).federation
        raise AuditError(
            "no finalised round names the federation descriptor",
            hint="pass --descriptor CID (printed by `fedledger deploy` and kept in the federation's TOML)",
        )

    def descriptor(self) -> Descriptor:
        if self._descriptor is None:
            self.descriptor_cid = self._find_descriptor_cid()
            self._descriptor = Descriptor.from_bytes(self.store.get(self.descriptor_cid))
        return self._descriptor

    def genesis_digest(self) -> bytes:
        return self.ledger.genesis_model()

    def check_genesis(self) -> list[str]:
        desc = self.descriptor()
        expected = cid_to_digest(content_cid(desc.genesis_model()))
        chain = self.genesis_digest()
        if expected != chain:
            return [
                f"genesis: the descriptor {self.descriptor_cid} commits to genesis model {digest_to_cid(expected)}, "
                f"the chain starts from {digest_to_cid(chain)}"
            ]
        return []

    # -- one round ---------------------------------------------------------------------------
    def audit_round(self, round_id: int, *, expected_base: bytes | None = None, state_in: bytes | None = None) -> tuple[RoundVerdict, bytes | None]:
        """Audit one round; returns the verdict and the strategy state it produced (for the next round)."""
        t0 = time.perf_counter()
        info = self.ledger.get_round(round_id)
        v = RoundVerdict(round_id, info.state.name.lower(), True)
        if info.state != RoundState.FINALIZED:
            v.seconds = time.perf_counter() - t0
            return v, state_in
        bad = v.mismatches.append
        v.global_model = digest_to_cid(info.global_model)
        v.manifest = digest_to_cid(info.manifest)
        if expected_base is not None and info.base_model != expected_base:
            bad(f"lineage: base {digest_to_cid(info.base_model)} is not the previous global model {digest_to_cid(expected_base)}")
        desc = self.descriptor()
        try:
            manifest_bytes = self.store.get(v.manifest)
            parsed = Manifest.parse(manifest_bytes)
        except StoreError as exc:
            bad(f"manifest {v.manifest}: {exc}")
            v.ok = False
            return v, state_in
        except InvalidManifest as exc:
            bad(f"manifest {v.manifest}: {exc}")
            v.ok = False
            return v, state_in
        manifest = parsed.raw
        if parsed.round_id != round_id:
            bad(f"manifest is for round {parsed.round_id}, not {round_id}")
        if parsed.federation != self.descriptor_cid:
            bad(f"manifest names federation {parsed.federation}, not {self.descriptor_cid}")

        try:
            base_bytes = self.store.get(digest_to_cid(info.base_model))
            _, base_weights = load_model_bytes(base_bytes, desc.spec)
        except FedLedgerError as exc:
            bad(f"base model {digest_to_cid(info.base_model)}: {exc}")
            v.ok = False
            return v, state_in

        submitters = self.ledger.submitters(round_id)
        recorded = {e["participant"]: e for e in manifest["submissions"]}
        listed = [e.participant for e in parsed.submissions]
        if listed != list(submitters):
            bad(f"manifest lists submissions {listed}, the chain's order is {list(submitters)}")
        subs: list[SubmissionInput] = []
        chain_scores: dict[str, int | None] = {}
        until = Deadline.after(self.fetch_timeout)
        for addr in submitters:
            s = self.ledger.get_submission(round_id, addr)
            if s is None:  # the contract lists only submitters; a gap means the node answered inconsistently
                bad(f"{addr}: listed as a submitter of round {round_id} but has no submission")
                continue
            chain_scores[addr] = s.score
            entry = recorded.get(addr, {})
            cid = digest_to_cid(s.update)
            if entry.get("update") != cid:
                bad(f"{addr}: manifest records update {entry.get('update')}, the chain {cid}")
            data, err = fetch_update(self.store, cid, max_bytes=desc.max_update_bytes, until=until)
            if entry.get("reason") in AVAILABILITY_REASONS:
                if data is not None:
                    v.notes.append(f"{addr}: update {cid} was recorded as {entry['reason']} and is fetchable now; kept excluded")
                data, err = None, entry["reason"]
            elif data is None and entry.get("status") == "accepted":
                bad(f"{addr}: accepted update {cid} cannot be fetched now ({err})")
            subs.append(SubmissionInput(addr, s.update, s.num_samples, s.epsilon_milli, data, err))

        if self._validation is None:
            self._validation = load_flowset(self.store.get(desc.validation), desc.spec)
        inputs = RoundInputs(
            round_id=round_id,
            descriptor_cid=str(self.descriptor_cid),
            descriptor=desc,
            base_model=base_bytes,
            base_weights=base_weights,
            state_in=state_in,
            submissions=subs,
            absent=list(parsed.absent),
            validation=self._validation,
        )
        try:
            result = derive_round(inputs)
        except FedLedgerError as exc:
            bad(f"re-derivation failed: {exc}")
            v.ok = False
            return v, state_in

        derived_global = cid_to_digest(content_cid(result.global_model))
        if derived_global != info.global_model:
            bad(f"global model: re-derived {digest_to_cid(derived_global)}, the chain records {v.global_model}")
        for sub, verdict in zip(subs, result.verdicts, strict=True):
            entry = recorded.get(sub.participant, {})
            status = "accepted" if verdict.accepted else "rejected"
            if entry.get("status") != status or entry.get("reason") != verdict.reason:
                bad(
                    f"{sub.participant}: manifest says {entry.get('status')} ({entry.get('reason')}), "
                    f"re-validation says {status} ({verdict.reason})"
                )
            chain_score = chain_scores[sub.participant]
            if chain_score != result.scores[sub.participant]:
                bad(f"{sub.participant}: score on chain {chain_score}, recomputed {result.scores[sub.participant]}")
        if result.manifest_bytes != manifest_bytes and not v.mismatches:
            diff = sorted(k for k in set(result.manifest) | set(manifest) if result.manifest.get(k) != manifest.get(k))
            bad(f"manifest: re-derived manifest differs in {diff}")
        for verdict in result.verdicts:
            if verdict.accepted and verdict.privacy is not None:
                v.privacy[verdict.participant] = dict(verdict.privacy)
            elif verdict.reason in ("epsilon-mismatch", "epsilon-inconsistent"):
                v.notes.append(f"{verdict.participant}: privacy claim rejected ({verdict.reason}): {verdict.detail}")
        v.accepted = sum(1 for x in result.verdicts if x.accepted)
        v.rejected = len(result.verdicts) - v.accepted
        v.ok = not v.mismatches
        v.seconds = time.perf_counter() - t0
        return v, result.state_out

    # -- everything ----------------------------------------------------------------------------
    def audit(self, rounds: list[int] | None = None) -> AuditReport:
        """Audit every round (or the listed ones; lineage and state are still followed from round 1)."""
        try:
            self.descriptor()
        except (StoreError, InvalidDescriptor) as exc:
            raise AuditError(f"cannot load the federation descriptor: {exc}") from None
        genesis_problems = self.check_genesis()
        verdicts: list[RoundVerdict] = []
        expected_base = self.genesis_digest()
        state: bytes | None = None
        wanted = set(rounds) if rounds else None
        for r in range(1, self.ledger.current_round() + 1):
            info = self.ledger.get_round(r)
            if info.state != RoundState.FINALIZED:
                if wanted is None or r in wanted:
                    verdicts.append(RoundVerdict(r, info.state.name.lower(), True))
                continue
            if wanted is not None and r not in wanted:
                # Follow lineage and strategy state without the full re-derivation.
                state = self._state_after(info)
                expected_base = info.global_model
                continue
            verdict, state = self.audit_round(r, expected_base=expected_base, state_in=state)
            verdicts.append(verdict)
            expected_base = info.global_model
        report = AuditReport(self.ledger.address, self.descriptor_cid, not genesis_problems, verdicts, genesis_problems)
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

    def _state_after(self, info) -> bytes | None:  # noqa: ANN001
        manifest = Manifest.parse(self.store.get(digest_to_cid(info.manifest)))
        return self.store.get(manifest.state_out) if manifest.state_out else None
