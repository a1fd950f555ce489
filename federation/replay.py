"""Re-deriving a federation's rounds from the chain and the store alone, round by round along the lineage.

The coordinator (to finalise), the auditor (to check) and every participant (to check the
model it is about to train on) assemble a round's inputs the same way, here:

* the chain says which members were eligible when the round opened, who submitted what
  (digest, samples, epsilon, in on-chain order), the quorum, the base round;
* the store holds the descriptor (its digest is the ledger's), the base model, the public
  validation set, the round's scoring hold-out (revealed once submissions close) and every
  update's bytes;
* the strategy state and last round's updates (for the replay check) come from this
  object's own derivation of the base round, never from an earlier manifest.

Each derived round is cached, so following a running federation costs one derivation per
new round; a newcomer derives from round one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from contracts.client import Ledger, RoundState
from contracts.history import (
    eligible_members,
    secure_round_bundles,
    secure_round_members,
)
from faults import Deadline, FedLedgerError
from federation.descriptor import Descriptor
from federation.fetch import AVAILABILITY_REASONS, fetch_update, update_limit
from federation.flowset import load_flowset
from federation.genesis import Pretraining
from federation.manifest import MAX_MANIFEST_BYTES, Manifest
from federation.model import load_model_bytes
from federation.rounds.derive import RoundInputs, RoundResult, derive_round
from federation.rounds.secure import SecureInputs
from federation.rounds.validation import SubmissionInput
from federation.secagg import SecureParams, SecureRound
from federation.secagg.params import MODE as SECURE_MODE
from federation.secagg.shares import MAX_BUNDLE_BYTES
from flows import FlowDataset
from ipfs import (
    ContentNotFound,
    ContentStore,
    StoreError,
    cid_to_digest,
    content_cid,
    digest_to_cid,
)

Fetched = Mapping[str, tuple[bytes | None, str | None]]


class ReplayError(FedLedgerError):
    """A round cannot be re-derived: its inputs are missing from the store or inconsistent with the chain."""


@dataclass
class Derived:
    round_id: int
    inputs: RoundInputs
    result: RoundResult

    @property
    def global_digest(self) -> bytes:
        return cid_to_digest(content_cid(self.result.global_model))


class Replay:
    """Assembles and derives rounds of one federation; cached per round."""

    def __init__(
        self,
        ledger: Ledger,
        store: ContentStore,
        descriptor: Descriptor,
        descriptor_cid: str,
        *,
        fetch_timeout: float = 10.0,
        score_contributions: bool = True,
        keep: int = 4,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.descriptor = descriptor
        self.descriptor_cid = descriptor_cid
        self.fetch_timeout = fetch_timeout
        self.score_contributions = score_contributions
        self.keep = keep  # derived rounds kept in memory (the ones the next rounds need)
        self._derived: dict[int, Derived] = {}
        self._sets: dict[str, FlowDataset] = {}
        self.quorum = ledger.min_updates()
        self._genesis_problems: list[str] | None = None  # a pretrained genesis is re-derived once

    # -- the federation's fixed content ------------------------------------------------------
    def check_federation(self) -> list[str]:
        """The descriptor is the one the ledger names, and the genesis model the one it commits to."""
        problems = []
        if self.descriptor.digest() != self.ledger.descriptor_digest():
            problems.append(
                f"descriptor: {self.descriptor_cid} is not the descriptor ledger {self.ledger.address} was deployed for "
                f"({digest_to_cid(self.ledger.descriptor_digest())})"
            )
        problems.extend(self.check_genesis())
        return problems

    def check_genesis(self) -> list[str]:
        """The genesis model the descriptor commits to (a pretraining re-run, a parent's model read) is the chain's."""
        if self._genesis_problems is None:
            self._genesis_problems = self._genesis_problems_now()
        return list(self._genesis_problems)

    def _genesis_problems_now(self) -> list[str]:
        g = self.descriptor.genesis
        on_chain = digest_to_cid(self.ledger.genesis_model())
        try:
            derived = self.descriptor.genesis_model(self.store)
        except ContentNotFound as exc:
            return [f"genesis: cannot re-derive the {g.kind if g else 'seeded'} genesis model, content is missing: {exc}"]
        except FedLedgerError as exc:
            return [f"genesis: cannot re-derive the genesis model: {str(exc).splitlines()[0]}"]
        expected = content_cid(derived)
        if expected == on_chain:
            return []
        how = "the descriptor commits to"
        if isinstance(g, Pretraining):
            import torch

            how = (f"re-running the descriptor's pretraining (torch {torch.__version__} here, "
                   f"{g.torch or 'unrecorded'} when it was made) gives")  # fmt: skip
        return [f"genesis: {how} genesis model {expected}, the chain starts from {on_chain}"]

    def flowset(self, cid: str) -> FlowDataset:
        if cid not in self._sets:
            self._sets[cid] = load_flowset(self.store.get(cid, max_bytes=1 << 31), self.descriptor.spec)
        return self._sets[cid]

    def scoring_set(self, round_id: int) -> tuple[FlowDataset, str]:
        """The set round ``round_id`` is scored on: its hold-out (revealed at its close), else the public validation set."""
        cid = self.descriptor.holdout_for(round_id) or self.descriptor.validation
        return self.flowset(cid), cid

    # -- one round ---------------------------------------------------------------------------
    def gather(
        self,
        round_id: int,
        *,
        fetched: Fetched | None = None,
        until: Deadline | None = None,
        fetch: Callable[[str, str], tuple[bytes | None, str | None]] | None = None,
        reveals_from: Collection[str] | None = None,
    ) -> RoundInputs:
        """Everything round ``round_id`` is derived from.

        ``fetched`` gives an update's bytes (or why they are missing) by participant, as the
        caller established them; the others are fetched here until ``until``. In secure
        aggregation, ``reveals_from`` limits the reveal bundles to those members' (the ones a
        finalised round's manifest records as used); by default every one on chain.
        """
        info = self.ledger.get_round(round_id)
        phases = self.ledger.round_phases(round_id)
        spec = self.descriptor.spec
        base_cid = digest_to_cid(info.base_model)
        base_bytes = self.store.get(base_cid, max_bytes=64 + 2 * 4 * spec.num_parameters() + (1 << 20))
        _, base_weights = load_model_bytes(base_bytes, spec)
        state_in, previous = None, []
        if phases.base_round:
            base = self.derived(phases.base_round)
            if base.global_digest != info.base_model:
                raise ReplayError(
                    f"round {round_id} starts from {base_cid}, but round {phases.base_round} re-derives to "
                    f"{digest_to_cid(base.global_digest)}"
                )
            state_in, previous = base.result.state_out, base.result.aggregated_updates
        limit = update_limit(self.descriptor)
        until = until or Deadline.after(self.fetch_timeout)
        subs = []
        for s in self.ledger.submissions(round_id):
            cid = digest_to_cid(s.update)
            if fetched is not None and s.participant in fetched:
                data, err = fetched[s.participant]
            elif fetch is not None:
                data, err = fetch(s.participant, cid)
            else:
                data, err = fetch_update(self.store, cid, max_bytes=limit, until=until)
            subs.append(SubmissionInput(s.participant, s.update, s.num_samples, s.epsilon_milli, data, err))
        scoring, scoring_cid = self.scoring_set(round_id)
        secure = self.secure_inputs(round_id, reveals_from=reveals_from) if self.descriptor.privacy_mode == SECURE_MODE else None
        return RoundInputs(
            round_id=round_id, descriptor_cid=self.descriptor_cid, descriptor=self.descriptor, base_model=base_bytes,
            base_weights=base_weights, state_in=state_in, submissions=subs,
            eligible=eligible_members(self.ledger, round_id), validation=scoring, scoring_set=scoring_cid,
            chain_id=self.ledger.chain_id, ledger=self.ledger.address, quorum=self.quorum,
            base_round=phases.base_round, previous=previous, score_contributions=self.score_contributions,
            secure=secure,
        )  # fmt: skip

    def secure_round(self, round_id: int) -> SecureRound:
        """The round's members and their X25519 keys, as the chain fixed them when it opened."""
        params = SecureParams.from_privacy(self.descriptor.privacy)
        return SecureRound(self.ledger.chain_id, self.ledger.address, round_id, params, secure_round_members(self.ledger, round_id))

    def secure_inputs(self, round_id: int, *, reveals_from: Collection[str] | None = None) -> SecureInputs:
        """The secure round's members, and the share and reveal bundles its events reference (None where not fetchable)."""
        rnd = self.secure_round(round_id)
        shares, reveals = secure_round_bundles(self.ledger, round_id)
        if reveals_from is not None:
            unknown = sorted(set(reveals_from) - set(reveals))
            if unknown:
                raise ReplayError(f"round {round_id}'s manifest uses reveals the chain does not record, from {unknown}")
            reveals = {m: d for m, d in reveals.items() if m in set(reveals_from)}

        def get(digest: bytes) -> bytes | None:
            try:
                return self.store.get(digest_to_cid(digest), max_bytes=MAX_BUNDLE_BYTES)
            except StoreError:
                return None

        return SecureInputs(
            rnd, {m: get(d) for m, d in shares.items()}, {m: digest_to_cid(d) for m, d in shares.items()},
            {m: get(d) for m, d in reveals.items()}, {m: digest_to_cid(d) for m, d in reveals.items()},
        )  # fmt: skip

    def derive(self, round_id: int, inputs: RoundInputs | None = None, **gather: object) -> Derived:
        """Derive round ``round_id`` (from ``inputs``, or gathered now) and keep it for the rounds after."""
        inputs = inputs or self.gather(round_id, **gather)  # type: ignore[arg-type]
        derived = Derived(round_id, inputs, derive_round(inputs))
        self.remember(derived)
        return derived

    def remember(self, derived: Derived) -> None:
        self._derived[derived.round_id] = derived
        for old in sorted(self._derived)[: max(0, len(self._derived) - self.keep)]:
            del self._derived[old]

    def derived(self, round_id: int) -> Derived:
        """Round ``round_id`` as derived here (deriving it, and what it stands on, if not yet)."""
        if round_id in self._derived:
            return self._derived[round_id]
        info = self.ledger.get_round(round_id)
        if info.state is not RoundState.FINALIZED or info.manifest is None:
            raise ReplayError(f"round {round_id} is {info.state.name.lower()}: no model to start from")
        manifest = self.manifest(info.manifest)
        unavailable = {e.participant: (None, e.reason) for e in manifest.submissions if e.reason in AVAILABILITY_REASONS}
        inputs = self.gather(round_id, fetched=unavailable, reveals_from=manifest.secure_reveals)
        # An update the round accepted that cannot be fetched now makes the round underivable, not different:
        # deriving without it would give another model and read as a crafted one.
        accepted = {e.participant for e in manifest.submissions if e.accepted}
        gone = [s for s in inputs.submissions if s.data is None and s.participant in accepted]
        if gone:
            raise ReplayError(
                f"round {round_id} cannot be re-derived: its accepted update {gone[0].cid} from {gone[0].participant} "
                f"is not available now ({gone[0].fetch_error})",
                hint="import it from the coordinator's CAR archive (fedledger ipfs dag import) or fetch it from a node that pins it",
            )
        return self.derive(round_id, inputs)

    def manifest(self, digest: bytes) -> Manifest:
        return Manifest.parse(self.store.get(digest_to_cid(digest), max_bytes=MAX_MANIFEST_BYTES))

    def recorded_unavailable(self, manifest_digest: bytes) -> dict[str, tuple[None, str]]:
        """The updates a finalised round's manifest records as not fetched in time.

        Whether bytes arrived before the reveal window closed is the one fact of the past a
        re-derivation cannot establish again, so it is taken from the manifest (whose digest
        is on chain); everything else is re-derived. An update recorded unavailable that can
        be fetched now is the audit's to report (a disputed round).
        """
        manifest = self.manifest(manifest_digest)
        return {e.participant: (None, e.reason) for e in manifest.submissions if e.reason in AVAILABILITY_REASONS}
