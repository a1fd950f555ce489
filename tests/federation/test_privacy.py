"""Privacy accounting: settings checks, rounding, composition, the history on disk, the update's DP section."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.privacy import (
    InvalidPrivacySettings,
    Mechanism,
    calibrate_noise,
    check_claim,
    check_dp_delta,
    compose_declared,
    composed_epsilon,
    mechanism_epsilon,
    recomputed_milli,
    to_milli,
)
from federation.updates import (
    DP_SECTION_SIZE,
    HEADER_SIZE,
    CodecParams,
    InvalidUpdate,
    UpdateHeader,
    decode_update,
    encode_update,
    read_header,
)
from participant.budget import (
    InvalidPrivacyHistory,
    PrivacyAccount,
    PrivacyBudgetExhausted,
)
from participant.dp_training import DPConfig

MECH = Mechanism(noise_multiplier=1.1, sample_rate=0.05, steps=20, clip_norm=1.0, delta=1e-5)


@pytest.mark.parametrize("eps", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_epsilon_at_or_below_zero_is_refused(eps: float) -> None:
    with pytest.raises(InvalidPrivacySettings, match="epsilon must be a finite number > 0") as info:
        DPConfig(epsilon=eps)
    assert isinstance(info.value, FedLedgerError) and info.value.hint


def test_delta_at_or_above_one_over_n_is_refused() -> None:
    check_dp_delta(1e-5, 1000)  # well below 1/n
    for delta, n in ((1e-3, 1000), (2e-3, 1000), (0.5, 10)):
        with pytest.raises(InvalidPrivacySettings, match=r"not below 1/n") as info:
            check_dp_delta(delta, n)
        assert "records" in str(info.value) and "1/n" in info.value.hint
    for delta in (0.0, 1.0, -1e-5, float("nan")):
        with pytest.raises(InvalidPrivacySettings, match=r"delta must be in \(0, 1\)"):
            DPConfig(epsilon=1.0, delta=delta)


def test_bad_budget_clip_and_accountant_are_refused() -> None:
    with pytest.raises(InvalidPrivacySettings, match="budget"):
        DPConfig(epsilon=1.0, budget=0.0)
    with pytest.raises(InvalidPrivacySettings, match="clipping norm"):
        DPConfig(epsilon=1.0, clip_norm=-1.0)
    with pytest.raises(InvalidPrivacySettings, match="accountant"):
        DPConfig(epsilon=1.0, accountant="moments")  # type: ignore[arg-type]
    with pytest.raises(InvalidPrivacySettings, match="sample rate"):
        Mechanism(1.0, 1.5, 10, 1.0, 1e-5)


def test_epsilon_milli_is_rounded_up_never_down() -> None:
    assert to_milli(0.9990662) == 1000
    assert to_milli(1.0) == 1000
    assert to_milli(1.0000001) == 1001
    assert to_milli(2.5) == 2500
    assert to_milli(0.0) == 0


def test_composition_is_the_accountants_and_tighter_than_the_naive_sum() -> None:
    one = mechanism_epsilon(MECH)
    ten = composed_epsilon([MECH] * 10, 1e-5)
    # The same accountant stepped one step at a time gives the same figure.
    acc = RDPAccountant()
    for _ in range(10 * MECH.steps):
        acc.step(noise_multiplier=MECH.noise_multiplier, sample_rate=MECH.sample_rate)
    assert ten == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-9)
    assert one < ten < 10 * one
    assert composed_epsilon([MECH] * 10, 1e-5, "prv") < 10 * one
    assert composed_epsilon([], 1e-5) == 0.0


def test_calibrated_noise_reaches_the_target_without_exceeding_it() -> None:
    for target in (0.5, 1.0, 4.0):
        sigma = calibrate_noise(target, 1e-5, 0.05, 40)
        spent = mechanism_epsilon(Mechanism(sigma, 0.05, 40, 1.0, 1e-5))
        assert target - 0.02 <= spent <= target
    # More budget, less noise.
    assert calibrate_noise(8.0, 1e-5, 0.05, 40) < calibrate_noise(1.0, 1e-5, 0.05, 40)


def test_history_survives_a_restart_and_a_retried_round_replaces_itself(tmp_path) -> None:
    path = tmp_path / "privacy-history.json"
    acc = PrivacyAccount(path, delta=1e-5, budget=10.0)
    acc.record(1, MECH)
    acc.record(2, MECH)
    acc.record(2, MECH)  # a retry after a crash: not counted twice
    again = PrivacyAccount(path, delta=1e-5, budget=10.0)
    assert sorted(again.rounds) == [1, 2]
    assert again.composed() == pytest.approx(composed_epsilon([MECH, MECH], 1e-5))
    summary = again.summary()
    assert summary["naive_sum_epsilon"] == 2 * to_milli(mechanism_epsilon(MECH)) / 1000
    assert summary["composed_epsilon"] < summary["naive_sum_epsilon"]
    assert [r["round"] for r in summary["rounds"]] == [1, 2]


def test_budget_refuses_the_round_that_would_exceed_it_by_composition(tmp_path) -> None:
    one = mechanism_epsilon(MECH)
    two = composed_epsilon([MECH] * 2, 1e-5)
    three = composed_epsilon([MECH] * 3, 1e-5)
    # A budget the naive sum would exhaust after one round but composition allows for two.
    budget = (two + three) / 2
    assert budget < 2 * one
    acc = PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=budget)
    for r in (1, 2):
        acc.check_can_spend(r, MECH)
        acc.record(r, MECH)
    before = (tmp_path / "h.json").read_bytes()
    with pytest.raises(PrivacyBudgetExhausted, match="privacy budget exhausted") as info:
        acc.check_can_spend(3, MECH)
    err = info.value
    assert err.spent == pytest.approx(two) and err.projected == pytest.approx(three) and err.budget == budget
    assert "Nothing was trained" in str(err) and err.hint
    assert (tmp_path / "h.json").read_bytes() == before  # a refusal records nothing


def test_an_unreadable_history_is_a_typed_error_not_a_fresh_start(tmp_path) -> None:
    path = tmp_path / "h.json"
    path.write_text("{not json")
    with pytest.raises(InvalidPrivacyHistory, match="cannot be read") as info:
        PrivacyAccount(path, delta=1e-5, budget=1.0)
    assert "forget privacy already spent" in info.value.hint
    path.write_text(json.dumps({"format": "fedledger-dp-history/1", "rounds": [{"round": 1}]}))
    with pytest.raises(InvalidPrivacyHistory):
        PrivacyAccount(path, delta=1e-5, budget=1.0)


# ------------------------------------------------------------------------ the update's DP section

SPEC = ModelSpec("t/v1", 6, (4,), ("normal", "dos"))
ADDR = "0x" + "ab" * 20
DP = Mechanism(noise_multiplier=1.1, sample_rate=0.05, steps=20, clip_norm=1.0, delta=1e-5)


def _delta() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=s).astype(np.float32) for k, s in SPEC.tensor_shapes().items()}


def _header(dp: Mechanism | None, eps: int) -> UpdateHeader:
    return UpdateHeader(ADDR, 4, "11" * 32, SPEC.digest(), 100, eps, CodecParams(), dp)


def test_a_dp_update_round_trips_its_mechanism_and_a_plain_update_has_no_dp_section() -> None:
    milli = recomputed_milli(DP)
    data = encode_update(_header(DP, milli), _delta(), SPEC)
    header, delta = decode_update(data, SPEC)
    assert header.dp == DP and header.epsilon_milli == milli and data[6] & 0x01  # the DP flag
    assert all(np.array_equal(delta[k], v) for k, v in _delta().items())
    plain = encode_update(_header(None, 0), _delta(), SPEC)
    assert read_header(plain).dp is None and not plain[6] & 0x01
    assert len(data) == len(plain) + DP_SECTION_SIZE


def test_hostile_dp_sections_are_rejected_with_a_reason() -> None:
    data = encode_update(_header(DP, recomputed_milli(DP)), _delta(), SPEC)

    def patched(offset: int, fmt: str, value: object) -> bytes:
        buf = bytearray(data)
        struct.pack_into(fmt, buf, HEADER_SIZE + offset, value)
        return bytes(buf)

    for bad in (patched(0, "<d", -1.0), patched(0, "<d", math.nan), patched(8, "<d", 1.5), patched(16, "<I", 0),
                patched(28, "<d", 1.0), patched(36, "<B", 9), patched(37, "<B", 9)):  # fmt: skip
        with pytest.raises(InvalidUpdate) as info:
            decode_update(bad, SPEC)
        assert info.value.reason == "dp-section", info.value
    with pytest.raises(InvalidUpdate) as info:
        read_header(data[: HEADER_SIZE + 10])
    assert info.value.reason == "truncated"
    with pytest.raises(InvalidUpdate) as info:
        _header(DP, 0)  # a DP section must come with the epsilon it costs
    assert info.value.reason == "dp-section"


def test_a_claim_is_checked_against_the_declared_mechanism() -> None:
    milli = recomputed_milli(DP)
    assert milli == to_milli(mechanism_epsilon(Mechanism(1.1, 0.05, 20, 1.0, 1e-5)))
    assert check_claim(DP, milli) is None
    assert check_claim(DP, milli + 1) is None  # one thousandth of float slack
    under = check_claim(DP, milli // 2)
    assert under is not None and "costs" in under
    assert check_claim(DP, milli * 3) is not None
    assert check_claim(None, 0) is None
    assert "declares no DP mechanism" in (check_claim(None, 1500) or "")
    assert compose_declared([DP, DP]) == pytest.approx(composed_epsilon([Mechanism(1.1, 0.05, 20, 1.0, 1e-5)] * 2, 1e-5))
    assert compose_declared([]) == 0.0
