"""A participant's privacy budget: its DP history on disk, composed before every round it trains.

The history survives restarts, so composition covers every round this member ever
trained; the budget is checked before training, so a refused round leaves nothing
behind. What one mechanism costs is :mod:`federation.privacy`'s, the same figures the
coordinator and the audit compute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.privacy import (
    Accountant,
    Mechanism,
    PrivacyError,
    check_accountant,
    check_dp_delta,
    check_epsilon,
    composed_epsilon,
    mechanism_epsilon,
    to_milli,
)
from participant.statefiles import write_private

HISTORY_FORMAT = "fedledger-dp-history/2"


class InvalidPrivacyHistory(PrivacyError):
    """The accountant history file in the state directory is unreadable or inconsistent."""


class PrivacyBudgetExhausted(PrivacyError):
    """Training this round would take the composed epsilon over the participant's budget."""

    def __init__(self, message: str, *, spent: float, projected: float, budget: float) -> None:
        super().__init__(
            message,
            hint="the participant has spent its privacy budget: stop submitting, or have the consortium agree a "
            "larger --dp-budget (a budget is a policy decision, not a tuning knob)",
        )
        self.spent = spent
        self.projected = projected
        self.budget = budget


@dataclass(frozen=True)
class SpentRound:
    round_id: int
    mechanism: Mechanism
    delta: float
    epsilon: float  # this round's spend on its own, at ``delta``
    epsilon_milli: int  # what goes in the header and on chain

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round_id, "mechanism": self.mechanism.to_dict(), "delta": self.delta,
            "epsilon": self.epsilon, "epsilon_milli": self.epsilon_milli,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, r: dict[str, Any]) -> SpentRound:
        mech = dict(r["mechanism"])
        # Histories written before the mechanism carried its delta and accountant keep them beside it.
        mech.setdefault("delta", float(r["delta"]))
        mech.setdefault("accountant", r.get("accountant", "rdp"))
        return cls(int(r["round"]), Mechanism.from_dict(mech), float(r["delta"]), float(r["epsilon"]), int(r["epsilon_milli"]))


class PrivacyAccount:
    """A participant's DP history, kept as JSON in its state directory so composition survives restarts.

    Every round a member trains under DP is one entry, keyed by the federation (chain id,
    ledger, descriptor) and the round, and tagged with a fingerprint of the data it trained
    on. The composed epsilon runs over every entry with this account's data fingerprint, in
    whichever federation it was spent: the same records released to two federations are
    released twice. (Entries of unknown data, from histories written before entries were
    tagged, count against every data set: over-counting is safe, under-counting is not.) Writing a (federation, round) again replaces it. Entries are recorded
    *before* the update is submitted: a crash in between over-counts, never under-counts.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        delta: float,
        budget: float | None,
        accountant: Accountant = "rdp",
        federation: str = "",
        data: str = "",
    ) -> None:
        check_dp_delta(delta)
        check_accountant(accountant)
        if budget is not None:
            check_epsilon(budget, "DP budget")
        self.path = Path(path) if path is not None else None
        self.delta = float(delta)
        self.budget = None if budget is None else float(budget)
        self.accountant: Accountant = accountant
        self.federation = federation  # "chain_id:ledger:descriptor" of the federation training now
        self.data = data  # fingerprint of the flows this member trains on
        self.entries: dict[tuple[str, int], tuple[str, SpentRound]] = {}  # (federation, round) -> (data, spend)
        if self.path is not None and self.path.exists():
            self._load()

    @property
    def rounds(self) -> dict[int, SpentRound]:
        """This federation's rounds."""
        return {r: spent for (fed, r), (_, spent) in sorted(self.entries.items()) if fed == self.federation}

    def _load(self) -> None:
        assert self.path is not None
        try:
            obj = json.loads(self.path.read_text())
            fmt = obj.get("format")
            if fmt == "fedledger-dp-history/1":  # entries of one federation, before they were keyed by it
                for r in obj["rounds"]:
                    spent = SpentRound.from_dict(r)
                    self.entries[("", spent.round_id)] = ("", spent)
                return
            if fmt != HISTORY_FORMAT:
                raise ValueError(f"format {fmt!r} is not {HISTORY_FORMAT}")
            for e in obj["entries"]:
                spent = SpentRound.from_dict(e)
                self.entries[(str(e["federation"]), spent.round_id)] = (str(e["data"]), spent)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, PrivacyError) as exc:
            raise InvalidPrivacyHistory(
                f"privacy history {self.path} cannot be read: {exc}",
                hint="restore it from a backup; deleting it would forget privacy already spent",
            ) from None

    def history(self, exclude_round: int | None = None) -> list[Mechanism]:
        """Every mechanism run on this data, in any federation (without this federation's ``exclude_round``)."""
        return [
            spent.mechanism for (fed, r), (data, spent) in sorted(self.entries.items())
            if data in (self.data, "") and not (fed == self.federation and r == exclude_round)
        ]  # fmt: skip

    def composed(self, extra: Sequence[Mechanism] = (), exclude_round: int | None = None) -> float:
        """Composed epsilon at this account's delta over the history (without ``exclude_round``) plus ``extra``."""
        return composed_epsilon([*self.history(exclude_round), *extra], self.delta, self.accountant)

    def naive_sum(self) -> float:
        return sum(s.epsilon_milli for d, s in self.entries.values() if d in (self.data, "")) / 1000

    def check_can_spend(self, round_id: int, mechanism: Mechanism) -> float:
        """The composed epsilon after ``round_id`` with ``mechanism``; raises if that is over the budget."""
        spent = self.composed(exclude_round=round_id)
        projected = self.composed([mechanism], exclude_round=round_id)
        if self.budget is not None and projected > self.budget:
            raise PrivacyBudgetExhausted(
                f"privacy budget exhausted: {len(self.history(round_id))} rounds have spent epsilon {spent:.3f} "
                f"(composed, {self.accountant.upper()}, delta {self.delta:g}); round {round_id} would take it to "
                f"{projected:.3f}, over the budget of {self.budget:g}. Nothing was trained or submitted.",
                spent=spent, projected=projected, budget=self.budget,
            )  # fmt: skip
        return projected

    def record(self, round_id: int, mechanism: Mechanism) -> SpentRound:
        if mechanism.delta != self.delta or mechanism.accountant != self.accountant:
            raise PrivacyError(
                f"round {round_id} ran at delta {mechanism.delta:g} ({mechanism.accountant}); this history is kept at "
                f"delta {self.delta:g} ({self.accountant})"
            )
        eps = mechanism_epsilon(mechanism)
        spent = SpentRound(round_id, mechanism, self.delta, eps, to_milli(eps))
        self.entries[(self.federation, round_id)] = (self.data, spent)
        self.save()
        return spent

    def summary(self) -> dict[str, Any]:
        """Per-round spend in this federation and the composed total over all of them (the CLI's and the demo's JSON)."""
        return {
            "accountant": self.accountant,
            "delta": self.delta,
            "budget": self.budget,
            "rounds": [s.to_dict() for _, s in sorted(self.rounds.items())],
            "composed_epsilon": self.composed(),
            "naive_sum_epsilon": self.naive_sum(),
            "federations": sorted({fed for (fed, _), (d, _) in self.entries.items() if d == self.data}),
        }

    def save(self) -> None:
        if self.path is None:
            return
        entries = [
            {**spent.to_dict(), "federation": fed, "data": data}
            for (fed, _), (data, spent) in sorted(self.entries.items())
        ]  # fmt: skip
        obj = {"format": HISTORY_FORMAT, "accountant": self.accountant, "delta": self.delta, "budget": self.budget,
               "entries": entries}  # fmt: skip
        write_private(self.path, json.dumps(obj, indent=1, sort_keys=True).encode())
