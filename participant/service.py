"""The participant service: follow the chain round by round, train on local flows, commit, then reveal.

A round, as a member takes part in it:

1. **check the base**: before training on a global model, re-derive the round that produced
   it from the chain and the store (:mod:`federation.replay`, the audit's derivation) and
   refuse a model the derivation does not reproduce — a coordinator cannot slip in a crafted
   model (trap weights that make the next update leak the member's flows);
2. **train and commit**: produce the update (:func:`participant.update.produce_update`), keep
   its bytes in the private state directory, and submit only its digest: the commitment;
3. **reveal**: once submissions close (the deadline, or every eligible member submitted: the
   chain says which), put the bytes in the store for the coordinator. Until then no other
   member can read, copy or race them.

The chain is the source of truth and every step is idempotent: a restart at any point reads
whether the member already submitted and whether it revealed; an update committed to but not
yet submitted is submitted from disk (with DP it cannot be re-derived: its noise is fresh),
and the error-feedback residual moves on only once the submission is on chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event

from contracts.client import Ledger, RoundState
from contracts.errors import (
    AlreadySubmitted,
    LedgerRevert,
    NotEligible,
    NotParticipant,
    RoundNotOpen,
    SubmissionsClosed,
)
from faults import Backoff, FedLedgerError
from federation.descriptor import Descriptor
from federation.genesis import ParentModel, follow_lineage
from federation.model import InvalidModelFile, load_model_bytes
from federation.privacy import check_dp_delta
from federation.replay import Replay
from federation.secagg.params import MODE as SECURE_MODE
from federation.updates import InvalidUpdate
from flows import FlowDataset
from ipfs import ContentStore, cid_to_digest, content_cid, digest_to_cid
from participant.budget import PrivacyAccount
from participant.compression import ErrorFeedback
from participant.secure import SecureMember
from participant.statefiles import private_dir, write_private
from participant.update import (
    ProducedUpdate,
    RoundTask,
    TrainingSettings,
    produce_update,
)

log = logging.getLogger("fedledger.participant")

__all__ = ["ParticipantError", "ParticipantService", "RoundMissed", "Submitted", "TrainingSettings"]


class ParticipantError(FedLedgerError):
    """The participant cannot take part in a round."""


class RoundMissed(ParticipantError):
    """The round closed before this participant could submit; it will take part in the next one."""


class BaseRefused(ParticipantError):
    """The round's base model is not what re-deriving the round that produced it gives; nothing was trained."""


@dataclass
class Submitted:
    round_id: int
    cid: str
    update_bytes: int
    num_samples: int
    train_seconds: float
    store_seconds: float
    chain_seconds: float
    gas_used: int
    metrics: dict = field(default_factory=dict)
    privacy: dict | None = None  # this round's DP spend and the composed total so far (None without DP)
    verify_seconds: float = 0.0  # re-deriving the round that produced the base model


def data_fingerprint(data: FlowDataset) -> str:
    """sha256 of the encoded flows: the key under which their privacy spend composes."""
    h = hashlib.sha256(data.schema_id.encode())
    h.update(data.features.tobytes())
    h.update(data.labels.tobytes())
    return h.hexdigest()


class ParticipantService:
    """Takes part in the federation's rounds for one organisation."""

    def __init__(
        self,
        ledger: Ledger,
        store: ContentStore,
        descriptor: Descriptor,
        data: FlowDataset,
        *,
        state_dir: str | Path,
        descriptor_cid: str | None = None,
        settings: TrainingSettings | None = None,
        poll_seconds: float = 0.5,
        verify_base: bool = True,
        on_event: Callable[[str, dict], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if ledger.account is None:
            raise ParticipantError("the participant needs a signing key", hint="pass --keystore or set FEDLEDGER_PRIVATE_KEY")
        spec = descriptor.spec
        if data.schema_id != spec.schema_id or data.features.shape[1] != spec.input_dim or data.classes != spec.classes:
            raise ParticipantError(
                f"local data ({data.schema_id}, {data.features.shape[1]} features) does not fit this federation's "
                f"model ({spec.schema_id}, {spec.input_dim} features)",
                hint="load the flows with the federation's dataset format",
            )
        if len(data) == 0:
            raise ParticipantError("local data holds no flow records")
        if descriptor.digest() != ledger.descriptor_digest():
            raise ParticipantError(
                f"the descriptor given is not the one ledger {ledger.address} was deployed for",
                hint="pass the descriptor CID that `fedledger deploy` printed for this ledger (--descriptor)",
            )
        self.ledger = ledger
        self.store = store
        self.descriptor = descriptor
        self.descriptor_cid = descriptor_cid or content_cid(descriptor.to_bytes())
        self.data = data
        self.settings = settings or TrainingSettings()
        self.poll_seconds = poll_seconds
        self.verify_base = verify_base
        self.address: str = ledger.account
        self.state_dir = private_dir(state_dir)
        self.federation_key = f"{ledger.chain_id}:{ledger.address}:{self.descriptor_cid}"
        self.fed_dir = private_dir(self.state_dir / f"{ledger.chain_id}-{ledger.address}")
        self._ef_path = self.fed_dir / "error-feedback.safetensors"
        dp = self.settings.dp
        self._mode = "plain" if dp is None else f"dp-{dp.level}"
        self.privacy: PrivacyAccount | None = None
        if dp is not None:
            check_dp_delta(dp.delta, len(data))  # refuse at start-up, not in the middle of a round
            # One history for every federation this state directory takes part in: the same flows composed.
            self.privacy = PrivacyAccount(
                self.state_dir / "privacy-history.json", delta=dp.delta, budget=dp.budget, accountant=dp.accountant,
                federation=self.federation_key, data=data_fingerprint(data),
            )  # fmt: skip
        self.replay = Replay(ledger, store, descriptor, self.descriptor_cid, fetch_timeout=30.0, score_contributions=False)
        self._verified: set[bytes] = set()  # base digests this member re-derived itself
        self._unusable: set[int] = set()  # rounds whose base trains to non-finite values: skipped, not retried
        self._on_event = on_event or (lambda kind, info: None)
        self._on_progress = on_progress
        # Secure aggregation: masks, shares and reveals (participant.secure); None in public mode.
        self.secure: SecureMember | None = SecureMember(self) if descriptor.privacy_mode == SECURE_MODE else None

    # -- private state -----------------------------------------------------------------------
    def _error_feedback(self) -> ErrorFeedback:
        return ErrorFeedback.load(self._ef_path, self.descriptor.spec, f"{self.federation_key}:{self._mode}")

    def _pending_path(self, round_id: int, kind: str) -> Path:
        return self.fed_dir / "updates" / f"round-{round_id}.{kind}"

    def _pending(self, round_id: int) -> bytes | None:
        path = self._pending_path(round_id, "update")
        return path.read_bytes() if path.exists() else None

    def round_seed(self, round_id: int) -> int:
        material = f"{self.descriptor.seed}:{round_id}:{self.address.lower()}".encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:4], "big")

    # -- one step ----------------------------------------------------------------------------
    def step(self) -> Submitted | None:
        """Do what the open round needs from this member now: reveal, train and commit, or nothing."""
        if not self.ledger.is_participant(self.address):
            raise ParticipantError(
                f"{self.address} is not a registered participant of ledger {self.ledger.address}",
                hint="ask the federation's admin to run `fedledger register`",
            )
        if self.secure is not None:
            self.secure.bind_key()  # before any round opens: a round counts the keys bound before it
        round_id = self.ledger.current_round()
        if round_id == 0:
            return None
        info = self.ledger.get_round(round_id)
        if info.state != RoundState.OPEN:
            return None
        phases = self.ledger.round_phases(round_id)
        if self.secure is not None:
            return self.secure.step(round_id, info, phases)
        mine = self.ledger.get_submission(round_id, self.address)
        if mine is not None:
            if phases.submissions_closed:
                self.reveal(round_id, mine.update)
            return None
        if phases.submissions_closed or self.ledger.now() >= info.deadline - self.settings.deadline_margin:
            return None  # too late to get a transaction in before the deadline
        if round_id in self._unusable:
            return None
        return self._take_part(round_id, info.base_model, phases.base_round, info.deadline)

    def reveal(self, round_id: int, digest: bytes) -> bool:
        """Put the committed update's bytes in the store, now that submissions have closed (once)."""
        marker = self._pending_path(round_id, "revealed")
        if marker.exists():
            return False
        blob = self._pending(round_id)
        if blob is None:
            log.warning("round %d: the update committed on chain is not in %s; it cannot be revealed", round_id, self.fed_dir)
            write_private(marker, b"missing")
            return False
        cid = self.store.put(blob)
        if cid_to_digest(cid) != digest:
            raise ParticipantError(f"round {round_id}: the kept update is not the one committed on chain ({cid})")
        self.store.pin(cid)
        write_private(marker, cid.encode())
        self._on_event("revealed", {"round": round_id, "cid": cid, "bytes": len(blob)})
        log.info("round %d: revealed %s", round_id, cid)
        return True

    def verify(self, base_round: int, base_digest: bytes) -> float:
        """Re-derive ``base_round`` and refuse its model unless the derivation gives ``base_digest``; returns seconds."""
        if base_digest in self._verified:
            return 0.0
        t0 = time.perf_counter()
        if base_round == 0:
            return self._verify_genesis(base_digest, t0)
        try:
            derived = self.replay.derived(base_round)
        except FedLedgerError as exc:
            raise BaseRefused(
                f"round {base_round}'s global model cannot be re-derived ({exc}); refusing to train on it",
                hint="the updates, hold-out or manifest of that round are missing from the store; ask the coordinator",
            ) from None
        seconds = time.perf_counter() - t0
        self._on_event("verified", {"round": base_round, "seconds": seconds, "ok": derived.global_digest == base_digest})
        if derived.global_digest != base_digest:
            raise BaseRefused(
                f"round {base_round}'s global model {digest_to_cid(base_digest)} is not the aggregate of its updates "
                f"(re-derived: {digest_to_cid(derived.global_digest)}); refusing to train on it",
                hint="a model the audit cannot re-derive may be crafted to make updates leak flows; alert the consortium",
            )
        self._verified.add(base_digest)
        return seconds

    def _verify_genesis(self, base_digest: bytes, t0: float) -> float:
        """The genesis is the one the descriptor commits to (a pretraining is re-run), and a parent's link holds.

        A parent on another chain is left to the audit (``fedledger audit --parent-rpc``): a
        member reads only its own chain.
        """
        problems = self.replay.check_genesis() if base_digest == self.ledger.genesis_model() else [
            f"round 0's model {digest_to_cid(base_digest)} is not the ledger's genesis model"
        ]  # fmt: skip
        genesis = self.descriptor.genesis
        if not problems and isinstance(genesis, ParentModel) and genesis.chain_id == self.ledger.chain_id:
            def attach(chain_id: int, address: str) -> Ledger:
                return Ledger.attach(self.ledger.rpc_url, address, expected_chain_id=chain_id)

            links = follow_lineage(self.descriptor, self.ledger.address, self.store, attach, limit=1)  # its own link only
            problems = list(links[0].problems)
        seconds = time.perf_counter() - t0
        self._on_event("verified", {"round": 0, "seconds": seconds, "ok": not problems})
        if problems:
            raise BaseRefused(
                f"the genesis model cannot be trusted: {problems[0]}; refusing to train on it",
                hint="a genesis the audit cannot re-derive may be crafted to make updates leak flows; alert the consortium",
            )
        self._verified.add(base_digest)
        return seconds

    def make_update(self, task: RoundTask, base_weights: dict, deadline: int) -> ProducedUpdate:
        """The update this member sends for ``task`` (a subclass outside the service may send another)."""
        if self.secure is not None:
            return self.secure.make_update(task, base_weights)
        return produce_update(
            task, self.descriptor.spec, base_weights, self.data, self.settings,
            feedback=self._error_feedback(), privacy=self.privacy, progress=self._on_progress,
        )  # fmt: skip

    @property
    def personal_model_path(self) -> Path:
        """Where this member's personal model is kept (canonical model bytes; never submitted or stored)."""
        return self.fed_dir / "personal-model.bin"

    def personalise(self, base_round: int, base_cid: str, base_weights: dict) -> dict:
        """Fine-tune the global model of ``base_round`` on the local data into this member's personal model (kept on disk)."""
        from federation.model import save_model_bytes
        from participant.personal import personalise

        s = self.settings
        weights, how = personalise(
            self.descriptor.spec, base_weights, self.data, epochs=s.personal_epochs, seed=self.round_seed(base_round + 1),
            batch_size=s.batch_size, lr=s.lr, class_weights=s.class_weights, optimizer=s.optimizer,
            absent_class_scale=1.0, logit_calibration=s.logit_calibration,
        )  # fmt: skip
        info = {"global_round": base_round, "global_cid": base_cid, **how}
        write_private(self.personal_model_path, save_model_bytes(self.descriptor.spec, weights))
        write_private(self.personal_model_path.with_suffix(".json"), json.dumps(info, sort_keys=True).encode())
        self._on_event("personalised", info)
        return info

    def _take_part(self, round_id: int, base_digest: bytes, base_round: int, deadline: int) -> Submitted | None:
        spec = self.descriptor.spec
        verify_seconds = self.verify(base_round, base_digest) if self.verify_base else 0.0
        t0 = t1 = time.perf_counter()
        blob = self._pending(round_id)
        made: ProducedUpdate | None = None
        t_train = 0.0
        if blob is None:
            base_cid = digest_to_cid(base_digest)
            self._on_event("fetch", {"round": round_id, "cid": base_cid})
            t_fetch0 = time.perf_counter()
            try:
                _, base_weights = load_model_bytes(self.store.get(base_cid), spec)  # every block verified
            except InvalidModelFile as exc:
                raise RoundMissed(f"round {round_id}'s base model {base_cid} cannot be trained on: {exc}") from None
            self._on_event("fetched", {"round": round_id, "cid": base_cid, "seconds": time.perf_counter() - t_fetch0})
            self._on_event("train", {"round": round_id, "records": len(self.data)})
            t1 = time.perf_counter()
            task = RoundTask(round_id, self.address, base_digest, self.round_seed(round_id), self.ledger.chain_id, self.ledger.address)
            try:
                made = self.make_update(task, base_weights, deadline)
            except InvalidUpdate as exc:
                if exc.reason != "non-finite":
                    raise
                self._unusable.add(round_id)  # the same base trains the same way: skip the round, do not retrain
                raise RoundMissed(
                    f"round {round_id}: training on round {base_round}'s model {base_cid} gives non-finite values; "
                    "skipping this round",
                    hint="the base model is unusable (weights far too large); the admin can rebase the lineage on an "
                    "earlier round (`fedledger admin rebase`)",
                ) from None
            t_train = time.perf_counter() - t1
            if self.settings.personal_epochs:
                self.personalise(base_round, base_cid, base_weights)
            blob = made.blob
            # Kept before anything is submitted: a restart submits these bytes, never new ones.
            write_private(self._pending_path(round_id, "update"), blob)
            if made.feedback is not None:
                write_private(self._pending_path(round_id, "feedback"), made.feedback.to_bytes())
        t2 = time.perf_counter()
        cid = self.store.put(blob, only_hash=True)  # the commitment; the bytes stay private until submissions close
        t_store = time.perf_counter() - t2 + (t1 - t0 if made is not None else 0.0)
        from federation.updates import read_header

        header = read_header(blob)
        if self.ledger.now() >= deadline:
            raise RoundMissed(f"round {round_id}'s deadline passed while training; the update was not submitted")
        self._on_event("submit", {"round": round_id, "cid": cid, "bytes": len(blob)})
        t3 = time.perf_counter()
        gas = self._submit(round_id, cid, header.num_samples, header.epsilon_milli)
        t_chain = time.perf_counter() - t3
        # Only now does the residual move on: a crash before this point resubmits the same bytes.
        feedback = self._pending_path(round_id, "feedback")
        if feedback.exists():
            feedback.replace(self._ef_path)
        log.info("round %d: committed %s (%d bytes, %d samples)", round_id, cid, len(blob), header.num_samples)
        outcome = Submitted(
            round_id, cid, len(blob), header.num_samples, t_train, t_store, t_chain, gas,
            dict(made.trained.metrics) if made else {}, made.trained.privacy if made else None, verify_seconds,
        )  # fmt: skip
        self._on_event("submitted", outcome.__dict__)
        return outcome

    def _submit(self, round_id: int, cid: str, num_samples: int, epsilon_milli: int) -> int:
        """Submit the commitment; every revert of it ends in a retry, a skipped round or a clear error."""
        try:
            return self.ledger.submit_update(round_id, cid_to_digest(cid), num_samples, epsilon_milli).gas_used
        except AlreadySubmitted:
            return 0  # an earlier attempt of ours landed (a restart, a receipt that timed out)
        except (SubmissionsClosed, RoundNotOpen) as exc:
            raise RoundMissed(f"round {round_id} closed before the commitment landed: {exc}") from None
        except NotEligible:
            raise RoundMissed(f"{self.address} registered after round {round_id} opened; it takes part from the next round") from None
        except NotParticipant:
            raise ParticipantError(f"{self.address} is no longer a member of ledger {self.ledger.address}") from None
        except LedgerRevert as exc:
            raise ParticipantError(f"round {round_id}: the commitment was refused: {exc}", hint=exc.hint) from None

    # -- the loop --------------------------------------------------------------------------
    def _unrevealed(self, rounds: list[Submitted]) -> bool:
        """Whether the latest round this member committed to is still open and not yet revealed."""
        if not rounds:
            return False
        last = rounds[-1].round_id
        if self.secure is None and self._pending_path(last, "revealed").exists():
            return False
        return self.ledger.get_round(last).state == RoundState.OPEN

    def run(self, *, rounds: int | None = None, stop: Event | None = None, idle_exit: float | None = None) -> list[Submitted]:
        """Take part in up to ``rounds`` rounds (None: until stopped), revealing the last one before returning.

        ``idle_exit``: give up after that many seconds with nothing to do.
        """
        stop = stop or Event()
        done: list[Submitted] = []
        idle_since = time.monotonic()
        backoff = Backoff(initial=max(0.5, self.poll_seconds))
        while not stop.is_set():
            try:
                if rounds is not None and len(done) >= rounds and not self._unrevealed(done):
                    break
                outcome = self.step() if rounds is None or len(done) < rounds else self._reveal_last(done)
            except (RoundMissed, BaseRefused) as exc:
                log.warning("round skipped: %s", exc)
                self._on_event("skipped", {"error": str(exc), "kind": type(exc).__name__})
                stop.wait(self.poll_seconds)
                continue
            except FedLedgerError as exc:
                if not exc.transient:
                    raise
                log.warning("transient failure, retrying: %s", exc)
                self._on_event("retry", {"error": str(exc), "kind": type(exc).__name__})
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if outcome is not None:
                done.append(outcome)
                idle_since = time.monotonic()
                continue
            if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                break
            stop.wait(self.poll_seconds)
        return done

    def _reveal_last(self, done: list[Submitted]) -> None:
        last = done[-1]
        if self.secure is not None:  # the masked bytes, then the shares: step() does both for the open round
            if self.ledger.current_round() == last.round_id:
                self.step()
            return None
        if self.ledger.round_phases(last.round_id).submissions_closed:
            self.reveal(last.round_id, cid_to_digest(last.cid))
        return None
