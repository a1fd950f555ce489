"""Property test: random call sequences from random accounts against a small Python model
of the ledger's membership and round state machine, compared after every step.

Every call is made for real on anvil; the model predicts either success or the exact custom
error (with its values) the contract must raise, following the contract's documented rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from contracts import errors
from contracts.client import Ledger, RoundState

ZERO = bytes(32)
DIGESTS = [bytes([i]) * 32 for i in range(1, 5)]  # a small pool, so duplicates happen
EXPIRE = 1000  # seconds the clock jumps; deadlines are always well inside or outside it


@dataclass
class ModelRound:
    base: bytes
    deadline: int
    state: RoundState = RoundState.OPEN
    updates: dict[str, bytes] = field(default_factory=dict)  # participant -> digest, in order
    expired: bool = False


class LedgerModel:
    def __init__(self, admin: str, coordinator: str, genesis: bytes, min_updates: int) -> None:
        self.admin, self.coordinator, self.latest, self.min_updates = admin, coordinator, genesis, min_updates
        self.order: list[str] = []  # first-registration order
        self.active: set[str] = set()
        self.rounds: dict[int, ModelRound] = {}
        self.score: dict[str, int] = {}
        self.epsilon: dict[str, int] = {}

    @property
    def current(self) -> int:
        return len(self.rounds)

    def open(self) -> bool:
        return self.current > 0 and self.rounds[self.current].state is RoundState.OPEN


def expect(call, error: type[errors.LedgerRevert] | None, **values):
    """Run ``call``; it must succeed (error None) or raise ``error`` carrying ``values``."""
    if error is None:
        return call()
    try:
        call()
    except errors.LedgerRevert as exc:
        assert type(exc) is error, f"expected {error.__name__}{values}, got {exc}"
        for name, value in values.items():
            assert getattr(exc, name) == value, f"{error.__name__}.{name}: {getattr(exc, name)!r} != {value!r}"
        return None
    raise AssertionError(f"expected {error.__name__}{values}, but the call succeeded")


class LedgerMachine(RuleBasedStateMachine):
    chain = None  # set by the test
    accts = None

    @initialize(min_updates=st.integers(1, 2))
    def deploy(self, min_updates):
        admin, coordinator = self.accts[0], self.accts[1]
        genesis = os.urandom(32)
        self.ledger = Ledger.deploy(self.chain.rpc_url, admin, genesis, min_updates)
        self.ledger.set_coordinator(coordinator.address)
        self.model = LedgerModel(admin.address, coordinator.address, genesis, min_updates)
        self.actors = self.accts[:8]  # admin, coordinator and six others
        self.handles = {a.address: self.ledger.with_account(a) for a in self.actors}

    def handle(self, index: int) -> Ledger:
        return self.handles[self.actors[index].address]

    # ------------------------------------------------------------------ membership

    @rule(actor=st.integers(0, 7), member=st.integers(2, 7))
    def register(self, actor, member):
        m, who, addr = self.model, self.actors[actor].address, self.actors[member].address
        if who != m.admin:
            expect(lambda: self.handle(actor).register_participant(addr, "org"), errors.NotAdmin, account=who)
        elif addr in m.active:
            expect(lambda: self.handle(actor).register_participant(addr, "org"), errors.AlreadyRegistered, account=addr)
        else:
            self.handle(actor).register_participant(addr, "org")
            m.active.add(addr)
            if addr not in m.order:
                m.order.append(addr)

    @rule(actor=st.integers(0, 7), member=st.integers(2, 7))
    def remove(self, actor, member):
        m, who, addr = self.model, self.actors[actor].address, self.actors[member].address
        if who != m.admin:
            expect(lambda: self.handle(actor).remove_participant(addr), errors.NotAdmin, account=who)
        elif addr not in m.active:
            expect(lambda: self.handle(actor).remove_participant(addr), errors.NotParticipant, account=addr)
        else:
            self.handle(actor).remove_participant(addr)
            m.active.discard(addr)

    # ------------------------------------------------------------------ rounds

    @rule(actor=st.integers(0, 7), right_base=st.booleans(), future=st.booleans())
    def open_round(self, actor, right_base, future):
        m, who = self.model, self.actors[actor].address
        base = m.latest if right_base else os.urandom(32)
        deadline = self.chain.block_timestamp() + (300 if future else -5)
        call = lambda: self.handle(actor).open_round(base, deadline)  # noqa: E731
        if who != m.coordinator:
            expect(call, errors.NotCoordinator, account=who)
        elif m.open():
            expect(call, errors.RoundStillOpen, roundId=m.current)
        elif base != m.latest:
            expect(call, errors.BaseModelMismatch, expected=m.latest, given=base)
        elif not future:
            expect(call, errors.DeadlineNotInFuture, deadline=deadline)
        else:
            result = call()
            m.rounds[m.current + 1] = ModelRound(base, deadline)
            assert result.round_id == m.current

    @rule(
        actor=st.integers(0, 7),
        next_round=st.booleans(),
        digest=st.sampled_from([*DIGESTS, ZERO, None]),
        samples=st.sampled_from([0, 1, 2**64 - 1]),
        epsilon=st.sampled_from([0, 1, 2**32 - 1]),
    )
    def submit(self, actor, next_round, digest, samples, epsilon):
        m, who = self.model, self.actors[actor].address
        rid = max(m.current, 1) + (1 if next_round else 0)
        update = os.urandom(32) if digest is None else digest
        call = lambda: self.handle(actor).submit_update(rid, update, samples, epsilon)  # noqa: E731
        rnd = m.rounds.get(rid)
        if who not in m.active:
            expect(call, errors.NotParticipant, account=who)
        elif rnd is None or rnd.state is not RoundState.OPEN:
            expect(call, errors.RoundNotOpen, roundId=rid)
        elif rnd.expired:
            expect(call, errors.DeadlinePassed, roundId=rid, deadline=rnd.deadline)
        elif update == ZERO:
            expect(call, errors.EmptyUpdate, roundId=rid)
        elif samples == 0:
            expect(call, errors.NoSamples, roundId=rid)
        elif who in rnd.updates:
            expect(call, errors.AlreadySubmitted, roundId=rid, participant=who, update=rnd.updates[who])
        elif update in rnd.updates.values():
            expect(call, errors.DuplicateUpdate, roundId=rid, update=update)
        else:
            call()
            rnd.updates[who] = update
            m.epsilon[who] = m.epsilon.get(who, 0) + epsilon

    @rule(
        actor=st.integers(0, 7),
        next_round=st.booleans(),
        picks=st.lists(st.integers(2, 7), max_size=4),
        scores=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=4, max_size=4),
        short=st.booleans(),
    )
    def finalize(self, actor, next_round, picks, scores, short):
        m, who = self.model, self.actors[actor].address
        rid = max(m.current, 1) + (1 if next_round else 0)
        chosen = [self.actors[i].address for i in picks]
        given = scores[: len(chosen)]
        if short and chosen:
            given = given[:-1]
        global_model, manifest = os.urandom(32), os.urandom(32)
        call = lambda: self.handle(actor).finalize_round(rid, global_model, manifest, chosen, given)  # noqa: E731
        rnd = m.rounds.get(rid)
        if who != m.coordinator:
            return expect(call, errors.NotCoordinator, account=who)
        if rnd is None or rnd.state is not RoundState.OPEN:
            return expect(call, errors.RoundNotOpen, roundId=rid)
        if len(rnd.updates) < m.min_updates:
            return expect(call, errors.QuorumNotReached, have=len(rnd.updates), need=m.min_updates)
        if len(chosen) != len(given):
            return expect(call, errors.LengthMismatch, participants=len(chosen), scores=len(given))
        seen: set[str] = set()
        for p in chosen:
            if p not in rnd.updates:
                return expect(call, errors.NotSubmitter, roundId=rid, participant=p)
            if p in seen:
                return expect(call, errors.AlreadyScored, roundId=rid, participant=p)
            seen.add(p)
        call()
        for p, s in zip(chosen, given, strict=True):
            m.score[p] = m.score.get(p, 0) + s
        rnd.state = RoundState.FINALIZED
        m.latest = global_model
        return None

    @rule(actor=st.integers(0, 7), next_round=st.booleans())
    def abort(self, actor, next_round):
        m, who = self.model, self.actors[actor].address
        rid = max(m.current, 1) + (1 if next_round else 0)
        rnd = m.rounds.get(rid)
        call = lambda: self.handle(actor).abort_round(rid)  # noqa: E731
        if who != m.coordinator:
            expect(call, errors.NotCoordinator, account=who)
        elif rnd is None or rnd.state is not RoundState.OPEN:
            expect(call, errors.RoundNotOpen, roundId=rid)
        else:
            call()
            rnd.state = RoundState.ABORTED

    @rule()
    def let_deadline_pass(self):
        self.chain.increase_time(EXPIRE)
        for rnd in self.model.rounds.values():
            rnd.expired = True

    # ------------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self):
        if not hasattr(self, "model"):
            return
        m, fn = self.model, self.ledger.contract.functions
        members = [a.address for a in self.actors[2:]]
        # One batched JSON-RPC request per step keeps the example count affordable.
        with self.ledger.w3.batch_requests() as batch:
            batch.add(fn.currentRound())
            batch.add(fn.latestModel())
            batch.add(fn.participants())
            for address in members:
                batch.add(fn.totalScore(address))
                batch.add(fn.totalEpsilonMilli(address))
            results = batch.execute()
        current, latest, participants, *totals = results
        assert current == m.current
        assert bytes(latest) == m.latest
        assert list(participants) == [a for a in m.order if a in m.active]
        assert totals[0::2] == [m.score.get(a, 0) for a in members]
        assert totals[1::2] == [m.epsilon.get(a, 0) for a in members]
        if m.current:
            info = self.ledger.get_round(m.current)
            rnd = m.rounds[m.current]
            assert (info.state, info.base_model, info.submission_count) == (rnd.state, rnd.base, len(rnd.updates))
            assert self.ledger.submitters(m.current) == list(rnd.updates)


def test_ledger_behaves_like_its_model(anvil, accounts):
    machine = type("BoundLedgerMachine", (LedgerMachine,), {"chain": anvil, "accts": accounts})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
