"""The coordinator service: opens rounds, closes them, finalises or aborts them on chain.

Everything the coordinator decides is derived from chain and store state, so it
can be killed and restarted at any point: it re-reads the open round, re-fetches
the updates, re-derives the same global model and manifest (content-addressed, so
putting them again is harmless) and finalises. The contract refuses a second
finalisation of a round, so no round is ever finalised twice or differently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Event

from contracts.client import Ledger, RoundState, TxResult
from faults import Backoff, Deadline, FedLedgerError, run_in_context
from federation.descriptor import Descriptor
from federation.fetch import fetch_update
from federation.flowset import load_flowset
from federation.manifest import Manifest
from federation.model import load_model_bytes
from federation.rounds.derive import RoundInputs, RoundResult, derive_round
from federation.rounds.validation import SubmissionInput
from flows import FlowDataset
from ipfs import ContentStore, cid_to_digest, digest_to_cid

log = logging.getLogger("fedledger.coordinator")


class CoordinatorError(FedLedgerError):
    """The coordinator cannot proceed."""


@dataclass(frozen=True)
class CoordinatorSettings:
    round_seconds: int = 120
    fetch_timeout: float = 30.0
    fetch_workers: int = 4
    poll_seconds: float = 0.5


@dataclass
class RoundOutcome:
    round_id: int
    finalized: bool
    result: RoundResult | None = None
    gas_used: int = 0
    reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class CoordinatorService:
    def __init__(
        self,
        ledger: Ledger,
        store: ContentStore,
        descriptor_cid: str,
        *,
        settings: CoordinatorSettings | None = None,
        on_event: Callable[[str, dict], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.descriptor_cid = descriptor_cid
        self.descriptor = Descriptor.from_bytes(store.get(descriptor_cid))
        self.settings = settings or CoordinatorSettings()
        self._validation: FlowDataset | None = None
        self._on_event = on_event or (lambda kind, info: None)

    @property
    def validation(self) -> FlowDataset:
        if self._validation is None:
            self._validation = load_flowset(self.store.get(self.descriptor.validation), self.descriptor.spec)
        return self._validation

    # -- chain reading ---------------------------------------------------------------------
    def finalized_rounds(self) -> list[int]:
        return [r for r in range(1, self.ledger.current_round() + 1) if self.ledger.get_round(r).state == RoundState.FINALIZED]

    def previous_state(self, round_id: int) -> bytes | None:
        """Strategy state written by the last finalised round before ``round_id``."""
        for r in range(round_id - 1, 0, -1):
            info = self.ledger.get_round(r)
            if info.state == RoundState.FINALIZED:
                manifest = Manifest.parse(self.store.get(digest_to_cid(info.manifest)))
                return self.store.get(manifest.state_out) if manifest.state_out else None
        return None

    # -- the round protocol ----------------------------------------------------------------
    def open_round(self) -> int:
        base = self.ledger.latest_model()
        deadline = self.ledger.now() + self.settings.round_seconds
        tx = self.ledger.open_round(base, deadline)
        self._on_event("opened", {"round": tx.round_id, "deadline": deadline, "gas": tx.gas_used})
        log.info("opened round %d (deadline in %ds)", tx.round_id, self.settings.round_seconds)
        return tx.round_id

    def ready_to_close(self, round_id: int) -> bool:
        info = self.ledger.get_round(round_id)
        if self.ledger.now() >= info.deadline:
            return True
        return info.submission_count >= len(self.ledger.participants())

    def close_round(self, round_id: int) -> RoundOutcome:
        """Finalise (or, without quorum, abort) the open round ``round_id``."""
        info = self.ledger.get_round(round_id)
        if info.state != RoundState.OPEN:
            raise CoordinatorError(f"round {round_id} is not open (state {info.state.name})")
        submitters = self.ledger.submitters(round_id)
        min_updates = self.ledger.min_updates()
        timings: dict[str, float] = {}
        if len(submitters) < min_updates:
            tx = self.ledger.abort_round(round_id)
            reason = f"quorum not reached: {len(submitters)} of {min_updates} updates"
            self._on_event("aborted", {"round": round_id, "reason": reason, "gas": tx.gas_used})
            log.warning("round %d aborted: %s", round_id, reason)
            return RoundOutcome(round_id, False, None, tx.gas_used, reason)

        t0 = time.perf_counter()
        subs = [self.ledger.get_submission(round_id, a) for a in submitters]
        until = Deadline.after(self.settings.fetch_timeout)
        limit = self.descriptor.max_update_bytes

        def fetch(s):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            got = fetch_update(self.store, digest_to_cid(s.update), max_bytes=limit, until=until)
            return got, time.perf_counter() - started

        self._on_event("fetching", {"round": round_id, "count": len(subs)})
        with ThreadPoolExecutor(max_workers=max(1, self.settings.fetch_workers)) as pool:
            timed = list(pool.map(run_in_context(fetch), subs))
        fetched = [got for got, _ in timed]
        timings["fetch"] = time.perf_counter() - t0
        for a, ((_, err), seconds) in zip(submitters, timed, strict=True):
            self._on_event("fetched", {"round": round_id, "participant": a, "seconds": seconds, "error": err})

        base_bytes = self.store.get(digest_to_cid(info.base_model))
        _, base_weights = load_model_bytes(base_bytes, self.descriptor.spec)
        registered = set(self.ledger.participants())
        inputs = RoundInputs(
            round_id=round_id,
            descriptor_cid=self.descriptor_cid,
            descriptor=self.descriptor,
            base_model=base_bytes,
            base_weights=base_weights,
            state_in=self.previous_state(round_id),
            submissions=[
                SubmissionInput(a, s.update, s.num_samples, s.epsilon_milli, data, err)
                for a, s, (data, err) in zip(submitters, subs, fetched, strict=True)
            ],
            absent=sorted(registered - set(submitters)),
            validation=self.validation,
        )
        t1 = time.perf_counter()
        self._on_event("aggregating", {"round": round_id})
        result = derive_round(inputs)
        timings["aggregate"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        gcid, mcid = self.publish(result)
        timings["store"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        tx = self.finalize(round_id, gcid, mcid, list(submitters), result)
        timings["chain"] = time.perf_counter() - t3
        self._on_event("finalized", {"round": round_id, "global": gcid, "manifest": mcid, "gas": tx.gas_used})
        log.info("finalised round %d: global %s, manifest %s", round_id, gcid, mcid)
        return RoundOutcome(round_id, True, result, tx.gas_used, None, timings)

    def publish(self, result: RoundResult) -> tuple[str, str]:
        """Put the global model, the strategy state and the manifest in the store; returns (model, manifest) CIDs."""
        gcid = self._put(result.global_model)
        if result.state_out:
            self._put(result.state_out)
        return gcid, self._put(result.manifest_bytes)

    def finalize(self, round_id: int, gcid: str, mcid: str, participants: list[str], result: RoundResult) -> TxResult:
        """Record the round on chain: its global model, its manifest and every participant's score."""
        return self.ledger.finalize_round(
            round_id, cid_to_digest(gcid), cid_to_digest(mcid), participants, [result.scores[a] for a in participants]
        )

    def _put(self, data: bytes) -> str:
        cid = self.store.put(data)
        self.store.pin(cid)
        return cid

    def step(self, target_rounds: int | None) -> RoundOutcome | str | None:
        """Advance the protocol by one move. Returns an outcome, ``"opened"``, ``"done"`` or None (waiting)."""
        current = self.ledger.current_round()
        if current and self.ledger.get_round(current).state == RoundState.OPEN:
            if self.ready_to_close(current):
                return self.close_round(current)
            return None
        if target_rounds is not None and len(self.finalized_rounds()) >= target_rounds:
            return "done"
        if not self.ledger.participants():
            raise CoordinatorError("no participants are registered", hint="register organisations with `fedledger register`")
        self.open_round()
        return "opened"

    def run(self, *, rounds: int | None = None, stop: Event | None = None) -> list[RoundOutcome]:
        """Run until the ledger holds ``rounds`` finalised rounds (None: until stopped)."""
        stop = stop or Event()
        outcomes: list[RoundOutcome] = []
        backoff = Backoff(initial=1.0)
        while not stop.is_set():
            try:
                out = self.step(rounds)
            except FedLedgerError as exc:
                if not exc.transient:
                    raise
                log.warning("transient failure, retrying: %s", exc)
                self._on_event("retry", {"error": str(exc), "kind": type(exc).__name__})
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if out == "done":
                break
            if isinstance(out, RoundOutcome):
                outcomes.append(out)
                continue
            if out is None:
                stop.wait(self.settings.poll_seconds)
        return outcomes


__all__ = ["CoordinatorError", "CoordinatorService", "CoordinatorSettings", "RoundOutcome"]
