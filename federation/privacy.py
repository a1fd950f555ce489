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
import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from faults import FedLedgerError

ACCOUNTANTS = ("rdp", "prv")
LEVELS = ("record", "client")
Accountant = Literal["rdp", "prv"]


class PrivacyError(FedLedgerError):
    """Differential-privacy settings or accounting that cannot be used."""


class InvalidPrivacySettings(PrivacyError):
    """An epsilon, delta, budget or mechanism parameter outside what DP allows."""


# What an untrusted header may declare before the accountant is even asked. RDP's cost does
# not grow with the number of steps; PRV's does, in time and memory (measured here: 10,000
# steps 0.5 s and ~130 MB, 100,000 steps 7 s and 1.3 GB, 1,000,000 steps 3 min and 7.5 GB).
# One round of honest local training is epochs x ceil(records / batch): 40,000 steps is ten
# epochs over a million records in batches of 256.
MAX_ACCOUNTED_STEPS = 10_000_000
MAX_DECLARED_STEPS = {"rdp": 1_000_000, "prv": 20_000}
# Composition across rounds under PRV beyond this many steps in all falls back to RDP (an upper
# bound on the same guarantee), so an auditor's work stays bounded whatever members declared.
MAX_PRV_COMPOSED_STEPS = 100_000
NOISE_RANGE = (0.01, 1000.0)  # no honest mechanism leaves this range
MIN_SAMPLE_RATE = 1e-7


@dataclass(frozen=True)
class Mechanism:
    """One round's DP mechanism, everything needed to recompute its epsilon with the same accountant.

    ``steps`` Gaussian steps at ``noise_multiplier`` with Poisson subsampling at
    ``sample_rate``; ``level`` "record" is DP-SGD (per-sample clipping at ``clip_norm``),
    "client" the whole update clipped to ``clip_norm`` and noised once (sample rate 1,
    one step). ``delta`` and ``accountant`` are the ones the epsilon is stated at. This is
    the one DP vocabulary: the participant trains with it, the update header carries it,
    the coordinator and the audit recompute its cost.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    clip_norm: float
    delta: float
    level: str = "record"
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        def finite_pos(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0

        bad = []
        if not finite_pos(self.noise_multiplier):
            bad.append(f"noise multiplier {self.noise_multiplier!r} is not a finite number > 0")
        if not (finite_pos(self.sample_rate) and self.sample_rate <= 1):
            bad.append(f"sample rate {self.sample_rate!r} is not in (0, 1]")
        if type(self.steps) is not int or not 1 <= self.steps < 2**32:
            bad.append(f"steps {self.steps!r} is not an integer in 1..2^32-1")
        if not finite_pos(self.clip_norm):
            bad.append(f"clipping norm {self.clip_norm!r} is not a finite number > 0")
        if not (finite_pos(self.delta) and self.delta < 1):
            bad.append(f"delta {self.delta!r} is not in (0, 1)")
        if self.level not in LEVELS:
            bad.append(f"level {self.level!r} is not one of {LEVELS}")
        if self.accountant not in ACCOUNTANTS:
            bad.append(f"accountant {self.accountant!r} is not one of {ACCOUNTANTS}")
        if bad:
            raise InvalidPrivacySettings("DP mechanism: " + "; ".join(bad))

    def as_tuple(self) -> tuple[float, float, int]:
        """The (noise multiplier, sample rate, steps) triple opacus accountants keep in ``history``."""
        return (float(self.noise_multiplier), float(self.sample_rate), int(self.steps))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Any) -> Mechanism:
        fields = {"noise_multiplier", "sample_rate", "steps", "clip_norm", "delta", "level", "accountant"}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise InvalidPrivacySettings(f"DP mechanism record {obj!r} does not have the expected fields")
        return cls(**obj)


def check_dp_delta(delta: float, n_records: int | None = None) -> None:
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
    check_dp_delta(delta)
    # Composition is commutative, so runs of the same (sigma, q) merge into one entry with their steps
    # summed: the same figure, and one accountant evaluation per distinct mechanism instead of per round.
    steps: dict[tuple[float, float], int] = {}
    for m in mechanisms:
        sigma, q, k = m.as_tuple()
        steps[(sigma, q)] = steps.get((sigma, q), 0) + k
        if steps[(sigma, q)] > MAX_ACCOUNTED_STEPS:
            raise InvalidPrivacySettings(
                f"DP mechanism: {steps[(sigma, q)]:,} steps is more than the {MAX_ACCOUNTED_STEPS:,} this accountant accepts"
            )
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


def mechanism_epsilon(mechanism: Mechanism) -> float:
    """epsilon of one mechanism on its own (a round's spend), at its own delta and with its own accountant."""
    return composed_epsilon([mechanism], mechanism.delta, mechanism.accountant)  # type: ignore[arg-type]


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
    check_dp_delta(delta)
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


def recomputed_milli(mechanism: Mechanism) -> int:
    """The epsilon_milli a declared mechanism implies, by the same accountant the participant used."""
    return to_milli(mechanism_epsilon(mechanism))


# One thousandth of slack: the claim and the recomputation may round differently across float libraries.
CLAIM_TOLERANCE_MILLI = 1


def declared_mechanism_problem(m: Mechanism, num_samples: int) -> str | None:
    """Why a mechanism an untrusted update declares cannot be accounted within bounds, or None."""
    if m.steps > MAX_DECLARED_STEPS[m.accountant]:
        return f"{m.steps:,} steps is more than the {MAX_DECLARED_STEPS[m.accountant]:,} a {m.accountant.upper()} claim may declare"
    if not NOISE_RANGE[0] <= m.noise_multiplier <= NOISE_RANGE[1]:
        return f"noise multiplier {m.noise_multiplier:g} is outside {NOISE_RANGE[0]:g}..{NOISE_RANGE[1]:g}"
    if m.sample_rate < MIN_SAMPLE_RATE:
        return f"sample rate {m.sample_rate:g} is below {MIN_SAMPLE_RATE:g}"
    if m.level == "record" and m.delta >= 1.0 / num_samples:
        return f"delta {m.delta:g} is not below 1/n = {1.0 / num_samples:g} for the {num_samples} samples it claims"
    return None


def check_claim(dp: Mechanism | None, claimed_milli: int) -> str | None:
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


def compose_declared(sections: Iterable[Mechanism]) -> float:
    """Composed epsilon of a member's declared DP sections across rounds (the audit's figure).

    Composed at the largest delta any section used (the composed guarantee holds
    at that delta), with the first section's accountant: a participant keeps
    both fixed across its history.
    """
    secs = list(sections)
    if not secs:
        return 0.0
    accountant = secs[0].accountant
    if accountant == "prv" and sum(d.steps for d in secs) > MAX_PRV_COMPOSED_STEPS:
        accountant = "rdp"  # an upper bound on the PRV figure, computed in bounded time and memory
    return composed_epsilon(secs, max(d.delta for d in secs), accountant)  # type: ignore[arg-type]
