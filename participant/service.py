"""The participant service: wait for a round, train on local flows, submit the encoded update.

The chain is the source of truth: before doing anything for a round the service
reads whether it has already submitted, so a restart (at any point) never
submits twice. Training is seeded from the federation, the round and the
participant's address, and error feedback is committed to disk only after the
submission is on chain, so a retry after a crash produces the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event

from contracts.client import Ledger, RoundState
from contracts.errors import AlreadySubmitted, DeadlinePassed, RoundNotOpen
from faults import Backoff, FedLedgerError
from federation.descriptor import Descriptor
from federation.model import load_model_bytes
from federation.privacy import check_dp_delta
from flows import FlowDataset
from ipfs import ContentStore, cid_to_digest, digest_to_cid
from participant.budget import PrivacyAccount
from participant.compression import ErrorFeedback
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
        settings: TrainingSettings | None = None,
        poll_seconds: float = 0.5,
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
        self.ledger = ledger
        self.store = store
        self.descriptor = descriptor
        self.data = data
        self.settings = settings or TrainingSettings()
        self.poll_seconds = poll_seconds
        self.address: str = ledger.account
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._ef_path = self.state_dir / "error-feedback.safetensors"
        self.privacy: PrivacyAccount | None = None
        dp = self.settings.dp
        if dp is not None:
            check_dp_delta(dp.delta, len(data))  # refuse at start-up, not in the middle of a round
            # The history survives restarts, so composition covers every round this member ever trained.
            self.privacy = PrivacyAccount(
                self.state_dir / "privacy-history.json", delta=dp.delta, budget=dp.budget, accountant=dp.accountant
            )
        self._on_event = on_event or (lambda kind, info: None)
        self._on_progress = on_progress

    # -- one round -------------------------------------------------------------------------
    def _error_feedback(self) -> ErrorFeedback:
        if self._ef_path.exists():
            return ErrorFeedback.load(self._ef_path, self.descriptor.spec)
        return ErrorFeedback(self.descriptor.spec)

    def round_seed(self, round_id: int) -> int:
        material = f"{self.descriptor.seed}:{round_id}:{self.address.lower()}".encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:4], "big")

    def step(self) -> Submitted | None:
        """Take part in the open round if there is one and we have not submitted yet."""
        if not self.ledger.is_participant(self.address):
            raise ParticipantError(
                f"{self.address} is not a registered participant of ledger {self.ledger.address}",
                hint="ask the federation's admin to run `fedledger register`",
            )
        round_id = self.ledger.current_round()
        if round_id == 0:
            return None
        info = self.ledger.get_round(round_id)
        if info.state != RoundState.OPEN:
            return None
        if self.ledger.get_submission(round_id, self.address) is not None:
            return None  # already submitted (perhaps before a restart)
        if self.ledger.now() >= info.deadline - self.settings.deadline_margin:
            return None  # too late to get a transaction in before the deadline
        return self._take_part(round_id, info.base_model, info.deadline)

    def make_update(self, task: RoundTask, base_weights: dict, deadline: int) -> ProducedUpdate:
        """The update this member sends for ``task`` (a subclass outside the service may send another)."""
        return produce_update(
            task, self.descriptor.spec, base_weights, self.data, self.settings,
            feedback=self._error_feedback(), privacy=self.privacy, progress=self._on_progress,
        )  # fmt: skip

    def _take_part(self, round_id: int, base_digest: bytes, deadline: int) -> Submitted:
        spec = self.descriptor.spec
        base_cid = digest_to_cid(base_digest)
        self._on_event("fetch", {"round": round_id, "cid": base_cid})
        t0 = time.perf_counter()
        base_bytes = self.store.get(base_cid)  # the store verifies every block against the CID
        _, base_weights = load_model_bytes(base_bytes, spec)
        t_fetch = time.perf_counter() - t0
        self._on_event("fetched", {"round": round_id, "cid": base_cid, "seconds": t_fetch})

        self._on_event("train", {"round": round_id, "records": len(self.data)})
        t1 = time.perf_counter()
        task = RoundTask(round_id, self.address, base_digest, self.round_seed(round_id))
        made = self.make_update(task, base_weights, deadline)
        t_train = time.perf_counter() - t1
        blob = made.blob

        t2 = time.perf_counter()
        cid = self.store.put(blob)
        self.store.pin(cid)
        t_store = time.perf_counter() - t2 + t_fetch

        if self.ledger.now() >= deadline:
            raise RoundMissed(f"round {round_id}'s deadline passed while training; the update was not submitted")
        self._on_event("submit", {"round": round_id, "cid": cid, "bytes": len(blob)})
        t3 = time.perf_counter()
        tx = self.ledger.submit_update(round_id, cid_to_digest(cid), made.header.num_samples, made.header.epsilon_milli)
        t_chain = time.perf_counter() - t3
        # Only now does the residual move on: a crash before this point retrains to the same bytes.
        if made.feedback is not None:
            made.feedback.save(self._ef_path)
        log.info("round %d: submitted %s (%d bytes, %d samples)", round_id, cid, len(blob), made.header.num_samples)
        return Submitted(
            round_id, cid, len(blob), made.header.num_samples, t_train, t_store, t_chain, tx.gas_used,
            dict(made.trained.metrics), made.trained.privacy,
        )  # fmt: skip

    # -- the loop --------------------------------------------------------------------------
    def run(self, *, rounds: int | None = None, stop: Event | None = None, idle_exit: float | None = None) -> list[Submitted]:
        """Submit to up to ``rounds`` rounds (None: until stopped). ``idle_exit``: give up after that many idle seconds."""
        stop = stop or Event()
        done: list[Submitted] = []
        idle_since = time.monotonic()
        backoff = Backoff(initial=max(0.5, self.poll_seconds))
        while not stop.is_set() and (rounds is None or len(done) < rounds):
            try:
                outcome = self.step()
            except (DeadlinePassed, RoundNotOpen, AlreadySubmitted, RoundMissed) as exc:
                # The round moved on while we trained (or a previous run's transaction landed): not fatal.
                log.warning("round skipped: %s", exc)
                self._on_event("skipped", {"error": str(exc), "kind": type(exc).__name__})
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
                self._on_event("submitted", outcome.__dict__)
                idle_since = time.monotonic()
                continue
            if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                break
            stop.wait(self.poll_seconds)
        return done
