"""The coordinator service: opens rounds, closes them, finalises or aborts them on chain.

A round, as the coordinator drives it:

1. ``openRound`` on the lineage's head, with a deadline (and, in secure-aggregation mode, a
   share deadline);
2. members commit to their updates on chain; their bytes stay off the store until
   submissions close (the deadline, or every eligible member submitted: the chain says which);
3. then the coordinator reveals the round's scoring hold-out (committed by CID in the
   descriptor), waits up to the reveal window for every member's bytes, and derives the
   round exactly as the audit will (:mod:`federation.replay`);
4. it pins (and optionally archives) every accepted update, puts the global model, the
   strategy state and the manifest in the store, and finalises with the aggregated members'
   scores; or aborts when submissions fell short of the quorum. When submissions reached the
   quorum but too few updates were accepted, the chain refuses an abort until the deadline
   plus the grace period: the coordinator waits for it.

Everything it decides is derived from chain and store state, so it can be killed and
restarted at any point: it re-reads the open round, re-fetches, re-derives the same global
model and manifest (content-addressed, so putting them again is harmless) and finalises.
The contract refuses a second finalisation, so no round is ever finalised twice or differently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event

from contracts.client import Ledger, RoundState, TxResult
from contracts.history import submissions_closed_at
from faults import Backoff, Deadline, FedLedgerError, run_in_context
from federation.descriptor import Descriptor
from federation.fetch import fetch_update, update_limit
from federation.replay import Replay
from federation.rounds.derive import RoundResult
from federation.secagg import SecureParams, UnmaskError
from federation.secagg.params import MODE as SECURE_MODE
from ipfs import ContentStore, cid_to_digest, content_cid, digest_to_cid

log = logging.getLogger("fedledger.coordinator")


class CoordinatorError(FedLedgerError):
    """The coordinator cannot proceed."""


@dataclass(frozen=True)
class CoordinatorSettings:
    round_seconds: int = 120
    fetch_timeout: float | None = None  # the reveal window; None: the descriptor's reveal_seconds
    fetch_workers: int = 4
    poll_seconds: float = 0.5
    share_seconds: int | None = None  # secure aggregation: the share phase; None: a third of the round
    holdout_dir: Path | None = None  # the scoring hold-outs, by CID, revealed one per round
    archive_dir: Path | None = None  # also keep every accepted update as a CAR file here


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
        self._on_event = on_event or (lambda kind, info: None)
        self.replay = Replay(ledger, store, self.descriptor, descriptor_cid, fetch_timeout=self.reveal_seconds)
        problems = self.replay.check_federation()
        if problems:
            raise CoordinatorError(
                "; ".join(problems), hint="pass the descriptor CID that `fedledger deploy` printed for this ledger"
            )
        self._closing: dict[int, Deadline] = {}  # round -> its reveal window, from when its submissions closed
        self._waiting_logged: set[tuple[int, str]] = set()
        self.secure = SecureParams.from_privacy(self.descriptor.privacy) if self.descriptor.privacy_mode == SECURE_MODE else None
        self._keys_wait_started: float | None = None

    @property
    def reveal_seconds(self) -> float:
        s = self.settings.fetch_timeout
        return float(self.descriptor.reveal_seconds if s is None else s)

    # -- the round protocol ----------------------------------------------------------------
    def open_round(self) -> int:
        base = self.ledger.latest_model()
        now = self.ledger.now()
        share_deadline = 0
        if self.secure is not None:  # the share phase first, then the whole round for training and commitments
            share_deadline = now + (self.settings.share_seconds or self.secure.share_seconds)
        deadline = (share_deadline or now) + self.settings.round_seconds
        tx = self.ledger.open_round(base, deadline, share_deadline)
        self._on_event("opened", {"round": tx.round_id, "deadline": deadline, "gas": tx.gas_used})
        log.info("opened round %d (deadline in %ds)", tx.round_id, self.settings.round_seconds)
        return tx.round_id

    def ready_to_close(self, round_id: int) -> bool:
        return self.ledger.round_phases(round_id).submissions_closed

    def reveal_holdout(self, round_id: int) -> str | None:
        """Put round ``round_id``'s scoring hold-out in the store, now that no member can train on it for this round."""
        cid = self.descriptor.holdout_for(round_id)
        if cid is None or self.store.has(cid):
            return cid
        directory = self.settings.holdout_dir
        path = directory / cid if directory is not None else None
        if path is None or not path.is_file():
            raise CoordinatorError(
                f"round {round_id} is scored on hold-out {cid}, which is not in the store and not in "
                f"{directory or 'a hold-out directory'}",
                hint="pass --holdout-dir with the hold-out files `fedledger deploy` wrote",
            )
        data = path.read_bytes()
        if content_cid(data) != cid:
            raise CoordinatorError(f"hold-out file {path} does not hash to {cid}; it was altered")
        self._put(data)
        self._on_event("holdout", {"round": round_id, "cid": cid})
        return cid

    def close_round(self, round_id: int) -> RoundOutcome | None:
        """Finalise (or abort) the round whose submissions have closed; None while it must wait for the grace period."""
        info = self.ledger.get_round(round_id)
        if info.state != RoundState.OPEN:
            raise CoordinatorError(f"round {round_id} is not open (state {info.state.name})")
        phases = self.ledger.round_phases(round_id)
        if not phases.submissions_closed:
            raise CoordinatorError(f"round {round_id} still takes submissions", hint="wait for its deadline")
        quorum = self.replay.quorum
        if info.submission_count < quorum:
            return self._abort(round_id, f"quorum not reached: {info.submission_count} of {quorum} updates")

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.reveal_holdout(round_id)
        if self.secure is not None:
            if not self._reveals_in(round_id, info, phases):
                return None
            window = Deadline.after(self.reveal_seconds)  # members put their masked bytes before revealing shares
        else:
            window = self._closing.setdefault(round_id, Deadline.after(self.reveal_seconds))
        subs = self.ledger.submissions(round_id)
        limit = update_limit(self.descriptor)

        def fetch(s):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            got = fetch_update(self.store, digest_to_cid(s.update), max_bytes=limit, until=window)
            return s.participant, got, time.perf_counter() - started

        self._on_event("fetching", {"round": round_id, "count": len(subs)})
        with ThreadPoolExecutor(max_workers=max(1, self.settings.fetch_workers)) as pool:
            timed = list(pool.map(run_in_context(fetch), subs))
        fetched = {participant: got for participant, got, _ in timed}
        timings["fetch"] = time.perf_counter() - t0
        for participant, (_, err), seconds in timed:
            self._on_event("fetched", {"round": round_id, "participant": participant, "seconds": seconds, "error": err})

        t1 = time.perf_counter()
        self._on_event("aggregating", {"round": round_id})
        inputs = self.replay.gather(round_id, fetched=fetched)
        try:
            derived = self.replay.derive(round_id, inputs)
        except UnmaskError as exc:
            return self._wait_or_abort(round_id, phases, f"the round cannot be unmasked: {exc}")
        result = derived.result
        timings["aggregate"] = time.perf_counter() - t1
        if len(result.aggregated) < quorum:
            reason = f"{len(result.aggregated)} of {info.submission_count} updates could be aggregated; the quorum is {quorum}"
            return self._wait_or_abort(round_id, phases, reason)

        t2 = time.perf_counter()
        gcid, mcid = self.publish(result)
        self.keep_accepted(round_id, result)
        timings["store"] = time.perf_counter() - t2

        t3 = time.perf_counter()
        tx = self.finalize(round_id, gcid, mcid, result.aggregated, result)
        timings["chain"] = time.perf_counter() - t3
        self._closing.pop(round_id, None)
        self._on_event("finalized", {"round": round_id, "global": gcid, "manifest": mcid, "gas": tx.gas_used})
        log.info("finalised round %d: global %s, manifest %s", round_id, gcid, mcid)
        return RoundOutcome(round_id, True, result, tx.gas_used, None, timings)

    def _wait_or_abort(self, round_id: int, phases, reason: str) -> RoundOutcome | None:  # noqa: ANN001
        """Abort once the chain allows it (after the grace period); until then wait, saying why once."""
        if self.ledger.now() >= phases.abortable_at:
            return self._abort(round_id, reason)
        if (round_id, reason) not in self._waiting_logged:
            self._waiting_logged.add((round_id, reason))
            log.warning("round %d: %s; the chain allows an abort from %d", round_id, reason, phases.abortable_at)
            self._on_event("waiting", {"round": round_id, "reason": reason, "abortable_at": phases.abortable_at})
        return None

    def _reveals_in(self, round_id: int, info, phases) -> bool:  # noqa: ANN001
        """Secure aggregation: every committed member revealed its shares, or the reveal windows have passed."""
        if phases.reveal_count >= info.submission_count:
            return True
        closed_at = submissions_closed_at(self.ledger, round_id)
        if self.ledger.now() >= closed_at + 2 * self.reveal_seconds:  # one window for the masked bytes, one for the shares
            return True
        if (round_id, "reveals") not in self._waiting_logged:
            self._waiting_logged.add((round_id, "reveals"))
            log.info("round %d: waiting for shares: %d of %d committed members revealed", round_id, phases.reveal_count,
                     info.submission_count)  # fmt: skip
        return False

    def _abort(self, round_id: int, reason: str) -> RoundOutcome:
        tx = self.ledger.abort_round(round_id)
        self._closing.pop(round_id, None)
        self._on_event("aborted", {"round": round_id, "reason": reason, "gas": tx.gas_used})
        log.warning("round %d aborted: %s", round_id, reason)
        return RoundOutcome(round_id, False, None, tx.gas_used, reason)

    def publish(self, result: RoundResult) -> tuple[str, str]:
        """Put the global model, the strategy state and the manifest in the store; returns (model, manifest) CIDs."""
        gcid = self._put(result.global_model)
        if result.state_out:
            self._put(result.state_out)
        return gcid, self._put(result.manifest_bytes)

    def keep_accepted(self, round_id: int, result: RoundResult) -> None:
        """Pin every accepted update (and archive it as CAR when asked): the audit must find them for ever."""
        from ipfs.car import export_car

        cids = [digest_to_cid(u.digest) for u in result.accepted]
        secure = result.manifest.get("secure_aggregation")
        if secure is not None:  # the unmasking needs every survivor's masked bytes and every bundle it used
            cids = [e["update"] for e in result.manifest["submissions"] if e["status"] == "accepted"]
            cids += [c for m in secure["members"] for c in (m["shares"], m["reveal"]) if c is not None]
        for cid in cids:
            self.store.pin(cid)
            if self.settings.archive_dir is not None:
                target = self.settings.archive_dir / f"round-{round_id}"
                target.mkdir(parents=True, exist_ok=True)
                path = target / f"{cid}.car"
                if not path.exists():
                    tmp = path.with_suffix(".car.tmp")
                    with open(tmp, "wb") as fh:
                        export_car(self.store, cid, fh)
                    tmp.replace(path)

    def finalize(self, round_id: int, gcid: str, mcid: str, participants: list[str], result: RoundResult) -> TxResult:
        """Record the round on chain: its global model, its manifest and every aggregated participant's score."""
        return self.ledger.finalize_round(
            round_id, cid_to_digest(gcid), cid_to_digest(mcid), participants, [result.scores[a] for a in participants]
        )

    def _put(self, data: bytes) -> str:
        cid = self.store.put(data)
        self.store.pin(cid)
        return cid

    def finalized_rounds(self) -> int:
        """How many rounds the ledger holds finalised (the lineage's length counts rebased-away ones too)."""
        return sum(
            1 for r in range(1, self.ledger.current_round() + 1) if self.ledger.get_round(r).state == RoundState.FINALIZED
        )

    def step(self, target_rounds: int | None) -> RoundOutcome | str | None:
        """Advance the protocol by one move. Returns an outcome, ``"opened"``, ``"done"`` or None (waiting)."""
        current = self.ledger.current_round()
        if current and self.ledger.get_round(current).state == RoundState.OPEN:
            if self.ready_to_close(current):
                return self.close_round(current)
            return None
        if target_rounds is not None and self.finalized_rounds() >= target_rounds:
            return "done"
        if not self.ledger.participant_count():
            raise CoordinatorError("no participants are registered", hint="register organisations with `fedledger register`")
        if self.secure is not None and not self._enough_keys():
            return None
        self.open_round()
        return "opened"

    def _enough_keys(self) -> bool:
        """Secure aggregation: a round needs at least the threshold's number of members with a key bound on chain."""
        assert self.secure is not None
        members = self.ledger.participants()
        keyed = sum(1 for m in members if self.ledger.member_key(m) is not None)
        # Every member, or the threshold once members have had a share phase's time to bind theirs.
        first = self._keys_wait_started = self._keys_wait_started or time.monotonic()
        if keyed == len(members) or (keyed >= self.secure.threshold and time.monotonic() - first >= self.secure.share_seconds):
            self._keys_wait_started = None
            return True
        if (0, f"keys-{keyed}") not in self._waiting_logged:
            self._waiting_logged.add((0, f"keys-{keyed}"))
            log.info("waiting for members' keys: %d of %d members bound one, the threshold is %d", keyed, len(members),
                     self.secure.threshold)  # fmt: skip
        return False

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
