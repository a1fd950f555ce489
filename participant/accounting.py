"""Privacy accounting: what one DP mechanism costs, and what a history of them costs composed.

A participant's spend is a list of :class:`Mechanism` records (one per round it
trained in). The composed epsilon comes from opacus's accountant (RDP by
default, PRV optionally) over that whole history — tighter than the naive sum
the ledger's ``totalEpsilonMilli`` gives, and the number the budget is checked
against. The same functions run in the participant (to decide whether it may
train) and in the audit (to recompute every claimed epsilon from the mechanism
parameters an update declares), so both sides get the same figures.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fedledger.errors import FedLedgerError

ACCOUNTANTS = ("rdp", "prv")
LEVELS = ("record", "client")
HISTORY_FORMAT = "fedledger-dp-history/1"
Accountant = Literal["rdp", "prv"]


class PrivacyError(FedLedgerError):
    """Differential-privacy settings or accounting that cannot be used."""


class InvalidPrivacySettings(PrivacyError):
    """An epsilon, delta, budget or mechanism parameter outside what DP allows."""


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


class InvalidPrivacyHistory(PrivacyError):
    """The accountant history file in the state directory is unreadable or inconsistent."""


@dataclass(frozen=True)
class Mechanism:
    """One round's DP mechanism: ``steps`` Gaussian steps at ``noise_multiplier`` with subsampling ``sample_rate``.

    ``level`` "record": DP-SGD (per-sample clipping at ``clip_norm``); "client": the
    whole update clipped to ``clip_norm`` and noised once (sample_rate 1, one step).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    clip_norm: float
    level: str = "record"

    def __post_init__(self) -> None:
        bad = []
        if not (isinstance(self.noise_multiplier, (int, float)) and math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            bad.append(f"noise multiplier must be a finite number > 0, got {self.noise_multiplier!r}")
        if not (isinstance(self.sample_rate, (int, float)) and 0 < self.sample_rate <= 1):
            bad.append(f"sample rate must be in (0, 1], got {self.sample_rate!r}")
        if type(self.steps) is not int or not 1 <= self.steps <= 10_000_000:
            bad.append(f"steps must be an integer in 1..1e7, got {self.steps!r}")
        if not (isinstance(self.clip_norm, (int, float)) and math.isfinite(self.clip_norm) and self.clip_norm > 0):
            bad.append(f"clipping norm must be a finite number > 0, got {self.clip_norm!r}")
        if self.level not in LEVELS:
            bad.append(f"level must be one of {LEVELS}, got {self.level!r}")
        if bad:
            raise InvalidPrivacySettings("DP mechanism: " + "; ".join(bad))

    def as_tuple(self) -> tuple[float, float, int]:
        """The (noise multiplier, sample rate, steps) triple opacus accountants keep in ``history``."""
        return (float(self.noise_multiplier), float(self.sample_rate), int(self.steps))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Any) -> Mechanism:
        if not isinstance(obj, dict) or set(obj) != {"noise_multiplier", "sample_rate", "steps", "clip_norm", "level"}:
            raise InvalidPrivacySettings(f"DP mechanism record {obj!r} does not have the expected fields")
        return cls(**obj)


def check_delta(delta: float, n_records: int | None = None) -> None:
    """delta must be in (0, 1/n): at 1/n "leak one record in full" is already within the guarantee."""
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < delta < 1):
        raise InvalidPrivacySettings(
            f"DP delta must be in (0, 1), got {delta!r}", hint="use a delta well below 1/n, e.g. 1e-5"
        )
    if n_records is not None and delta >= 1.0 / n_records:
        raise InvalidPrivacySettings(
            f"DP delta {delta:g} is not below 1/n = {1.0 / n_records:g} for n = {n_records} local records",
            hint="a delta at or above 1/n allows leaking whole records; choose delta << 1/n (e.g. 1/(10 n) or 1e-5)",
        )


def check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise InvalidPrivacySettings(f"DP accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def composed_epsilon(mechanisms: Iterable[Mechanism], delta: float, accountant: Accountant = "rdp") -> float:
    """epsilon at ``delta`` of all ``mechanisms`` run one after another, composed by the accountant."""

    check_accountant(accountant)
    check_delta(delta)
    # Composition is commutative, so runs of the same (sigma, q) merge into one entry with their steps
    # summed: the same figure, and one accountant evaluation per distinct mechanism instead of per round.
    steps: dict[tuple[float, float], int] = {}
    for m in mechanisms:
        sigma, q, k = m.as_tuple()
        steps[(sigma, q)] = steps.get((sigma, q), 0) + k
    return _epsilon(tuple(sorted((s, q, k) for (s, q), k in steps.items())), float(delta), accountant)


@functools.lru_cache(maxsize=256)
def _epsilon(history: tuple[tuple[float, float, int], ...], delta: float, accountant: str) -> float:
    # Cached: a round asks for the same history several times (budget check, record, summary), and the
    # RDP orders' evaluation costs ~0.3 s each time on this machine.
    from opacus.accountants import create_accountant

    if not history:
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = list(history)
    with warnings.catch_warnings():
        # "optimal order is the largest alpha": the bound is still valid, only not the tightest possible.
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta))


def mechanism_epsilon(mechanism: Mechanism, delta: float, accountant: Accountant = "rdp") -> float:
    """epsilon at ``delta`` of one mechanism on its own (a round's spend)."""
    return composed_epsilon([mechanism], delta, accountant)


def to_milli(epsilon: float) -> int:
    """epsilon x 1000 rounded UP, so the ledger never under-reports (the 1e-9 absorbs float noise on exact values)."""
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise InvalidPrivacySettings(f"epsilon {epsilon!r} cannot be recorded")
    return int(math.ceil(epsilon * 1000 - 1e-9))


def calibrate_noise(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: Accountant = "rdp"
) -> float:
    """The smallest noise multiplier (to opacus's 0.01 tolerance) whose ``steps`` steps cost at most ``target_epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    check_epsilon(target_epsilon)
    check_delta(delta)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # see composed_epsilon
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
                    accountant=accountant,
                )
            )  # fmt: skip
    except ValueError as exc:  # opacus: "The privacy budget is too low."
        raise InvalidPrivacySettings(
            f"no noise level reaches epsilon {target_epsilon:g} at delta {delta:g} ({exc})",
            hint="raise the epsilon, or train fewer steps",
        ) from None


def check_epsilon(epsilon: float, what: str = "DP epsilon") -> None:
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InvalidPrivacySettings(
            f"{what} must be a finite number > 0, got {epsilon!r}",
            hint="epsilon <= 0 would mean no information at all may leak, which no training can satisfy",
        )


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


class PrivacyAccount:
    """A participant's DP history, kept as JSON in its state directory so composition survives restarts.

    One entry per round; writing a round again replaces it (a retry after a crash
    retrains the same round with the same mechanism). Entries are recorded
    *before* the update is submitted: a crash in between over-counts, never
    under-counts.
    """

    def __init__(self, path: str | Path | None, *, delta: float, budget: float | None, accountant: Accountant = "rdp") -> None:
        check_delta(delta)
        check_accountant(accountant)
        if budget is not None:
            check_epsilon(budget, "DP budget")
        self.path = Path(path) if path is not None else None
        self.delta = float(delta)
        self.budget = None if budget is None else float(budget)
        self.accountant: Accountant = accountant
        self.rounds: dict[int, SpentRound] = {}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            obj = json.loads(self.path.read_text())
            if obj.get("format") != HISTORY_FORMAT:
                raise ValueError(f"format {obj.get('format')!r} is not {HISTORY_FORMAT}")
            for r in obj["rounds"]:
                spent = SpentRound(int(r["round"]), Mechanism.from_dict(r["mechanism"]), float(r["delta"]),
                                   float(r["epsilon"]), int(r["epsilon_milli"]))  # fmt: skip
                self.rounds[spent.round_id] = spent
        except (OSError, ValueError, KeyError, TypeError, AttributeError, PrivacyError) as exc:
            raise InvalidPrivacyHistory(
                f"privacy history {self.path} cannot be read: {exc}",
                hint="restore it from a backup; deleting it would forget privacy already spent",
            ) from None

    def history(self, exclude_round: int | None = None) -> list[Mechanism]:
        return [s.mechanism for r, s in sorted(self.rounds.items()) if r != exclude_round]

    def composed(self, extra: Sequence[Mechanism] = (), exclude_round: int | None = None) -> float:
        """Composed epsilon at this account's delta over the history (without ``exclude_round``) plus ``extra``."""
        return composed_epsilon([*self.history(exclude_round), *extra], self.delta, self.accountant)

    def naive_sum(self) -> float:
        return sum(s.epsilon_milli for s in self.rounds.values()) / 1000

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
        eps = mechanism_epsilon(mechanism, self.delta, self.accountant)
        spent = SpentRound(round_id, mechanism, self.delta, eps, to_milli(eps))
        self.rounds[round_id] = spent
        self.save()
        return spent

    def summary(self) -> dict[str, Any]:
        """Per-round spend and the composed total (the JSON the CLI and the demo report show)."""
        return {
            "accountant": self.accountant,
            "delta": self.delta,
            "budget": self.budget,
            "rounds": [s.to_dict() for _, s in sorted(self.rounds.items())],
            "composed_epsilon": self.composed(),
            "naive_sum_epsilon": self.naive_sum(),
        }

    def save(self) -> None:
        if self.path is None:
            return
        obj = {"format": HISTORY_FORMAT, "accountant": self.accountant, "delta": self.delta, "budget": self.budget,
               "rounds": [s.to_dict() for _, s in sorted(self.rounds.items())]}  # fmt: skip
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)  # atomic: a crash leaves the old or the new history, never half of one


def mechanism_of(dp: Any) -> Mechanism:
    """The :class:`Mechanism` an update's DP section (``fedledger.updates.DPParams``) declares."""
    return Mechanism(dp.noise_multiplier, dp.sample_rate, dp.steps, dp.clip_norm, dp.level)


def recomputed_milli(dp: Any) -> int:
    """The epsilon_milli an update's DP section implies, by the same accountant the participant used."""
    return to_milli(mechanism_epsilon(mechanism_of(dp), dp.delta, dp.accountant))


# One thousandth of slack: the claim and the recomputation may round differently across float libraries.
CLAIM_TOLERANCE_MILLI = 1


def check_claim(dp: Any, claimed_milli: int) -> str | None:
    """None when ``claimed_milli`` is what the declared mechanism costs; otherwise why not (for the manifest)."""
    if dp is None:
        if claimed_milli == 0:
            return None
        return f"claims epsilon {claimed_milli / 1000:g} but declares no DP mechanism to check it against"
    try:
        expected = recomputed_milli(dp)
    except PrivacyError as exc:
        return f"its DP mechanism cannot be accounted: {exc}"
    if abs(expected - claimed_milli) > CLAIM_TOLERANCE_MILLI:
        return (
            f"claims epsilon {claimed_milli / 1000:g}, but its DP mechanism (noise {dp.noise_multiplier:g}, sample rate "
            f"{dp.sample_rate:g}, {dp.steps} steps, delta {dp.delta:g}, {dp.accountant}) costs {expected / 1000:g}"
        )
    return None


def compose_declared(sections: Iterable[Any]) -> float:
    """Composed epsilon of a member's declared DP sections across rounds (the audit's figure).

    Composed at the largest delta any section used (the composed guarantee holds
    at that delta), with the first section's accountant: a participant keeps
    both fixed across its history.
    """
    secs = list(sections)
    if not secs:
        return 0.0
    return composed_epsilon([mechanism_of(d) for d in secs], max(d.delta for d in secs), secs[0].accountant)
