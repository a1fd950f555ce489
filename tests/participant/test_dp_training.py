"""DP training with opacus: the spend it reports, the budget it enforces, the inputs it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from federation.model import ModelSpec
from federation.model.network import build_model, init_model
from federation.privacy import (
    InvalidPrivacySettings,
    Mechanism,
    composed_epsilon,
    mechanism_epsilon,
    to_milli,
)
from federation.training import train_local
from flows.synthetic import generate
from participant.budget import PrivacyAccount, PrivacyBudgetExhausted
from participant.dp_training import (
    DPConfig,
    UnsupportedModelForDP,
    check_dp_compatible,
    clip_and_noise,
    public_class_weight,
    record_mechanism,
    train_local_dp,
)

DATA = generate(600, 3)
SPEC = ModelSpec.for_dataset(DATA, hidden=(8,))
BASE = init_model(SPEC, 0)


def _steps_recorder() -> tuple[list[int], object]:
    seen: list[int] = []
    return seen, lambda step, total: seen.append(step)


def test_a_dp_round_spends_at_most_its_target_and_reports_it_rounded_up(tmp_path) -> None:
    account = PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=10.0)
    res = train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=2.0, delta=1e-5), account=account, round_id=1, batch_size=100)
    mech = res.mechanism
    assert mech is not None and mech.sample_rate == pytest.approx(1 / 6) and mech.steps == 6
    assert res.epsilon == pytest.approx(mechanism_epsilon(mech)) and 1.95 <= res.epsilon <= 2.0
    assert res.epsilon_milli == to_milli(res.epsilon) >= res.epsilon * 1000
    assert res.metrics["privacy"]["epsilon_milli"] == res.epsilon_milli and res.metrics["steps"] == 6
    assert sorted(account.rounds) == [1] and res.composed_epsilon == pytest.approx(res.epsilon)
    assert set(res.delta) == set(BASE) and all(np.all(np.isfinite(v)) for v in res.delta.values())
    assert any(np.any(v != 0) for v in res.delta.values())


def test_dp_noise_is_fresh_each_time_unless_a_simulation_fixes_it_and_noisier_than_plain_training() -> None:
    """Before: the noise came from a seed of public values (federation seed, round, address); regenerating
    and subtracting it recovered the clipped update to about 1e-7, so the stated epsilon did not hold."""
    dp = DPConfig(epsilon=1.0, delta=1e-5)
    a = train_local_dp(SPEC, BASE, DATA, dp, seed=7, batch_size=100)
    b = train_local_dp(SPEC, BASE, DATA, dp, seed=7, batch_size=100)
    assert all(not np.array_equal(a.delta[k], b.delta[k]) for k in a.delta)  # same public seed, different noise
    fixed = [train_local_dp(SPEC, BASE, DATA, dp, seed=7, batch_size=100, noise_seed=3) for _ in range(2)]
    assert all(np.array_equal(fixed[0].delta[k], fixed[1].delta[k]) for k in a.delta)  # only a simulation repeats
    plain = train_local(SPEC, BASE, DATA, batch_size=100, seed=7, class_weights=None)
    assert any(not np.allclose(a.delta[k], plain.delta[k]) for k in a.delta)


def test_per_sample_clipping_bounds_each_step() -> None:
    # Plain SGD, lr 1, a tiny clip and (almost) no noise: each step moves the weights by at most
    # the clipping norm (the mean of per-sample gradients each clipped to C, plus noise ~1e-6 C).
    clip = 1e-3
    dp = DPConfig(epsilon=1.0, delta=1e-5, clip_norm=clip, noise_multiplier=1e-6)
    res = train_local_dp(SPEC, BASE, DATA, dp, batch_size=600, lr=1.0, optimizer="sgd", epochs=1)
    norm = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in res.delta.values()))
    # One step (sample rate 1), but Poisson sampling may draw up to ~n(1+eps) samples: allow 20 %.
    assert 0 < norm <= clip * 1.2
    unclipped = train_local(SPEC, BASE, DATA, batch_size=600, lr=1.0, optimizer="sgd", class_weights=None)
    assert np.sqrt(sum(float(np.sum(v**2)) for v in unclipped.delta.values())) > 10 * clip


def test_the_budget_is_enforced_before_training_and_nothing_is_recorded(tmp_path) -> None:
    mech = record_mechanism(DPConfig(epsilon=1.0, delta=1e-5), len(DATA), 100, 1)
    one, two = mechanism_epsilon(mech), composed_epsilon([mech] * 2, 1e-5)
    budget = (one + two) / 2  # room for one round, not for two
    dp = DPConfig(epsilon=1.0, delta=1e-5, budget=budget)
    account = PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=budget)
    train_local_dp(SPEC, BASE, DATA, dp, account=account, round_id=1, batch_size=100)
    assert account.composed() == pytest.approx(one)
    seen, progress = _steps_recorder()
    with pytest.raises(PrivacyBudgetExhausted, match="round 2 would take it to") as info:
        train_local_dp(SPEC, BASE, DATA, dp, account=account, round_id=2, batch_size=100, progress=progress)  # type: ignore[arg-type]
    assert seen == []  # refused before the first step
    assert sorted(account.rounds) == [1]
    assert info.value.projected == pytest.approx(composed_epsilon([account.rounds[1].mechanism] * 2, 1e-5))
    assert info.value.projected < 2 * account.rounds[1].epsilon  # composition, not the naive sum
    # The refusal survives a restart: the history on disk still holds round 1.
    again = PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=budget)
    with pytest.raises(PrivacyBudgetExhausted):
        train_local_dp(SPEC, BASE, DATA, dp, account=again, round_id=2, batch_size=100)
    # Without a history, a single round that alone exceeds the budget is refused too.
    with pytest.raises(PrivacyBudgetExhausted):
        train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=4.0, delta=1e-5, budget=2.0), batch_size=100)


def test_bad_inputs_are_refused_before_any_training(tmp_path) -> None:
    seen, progress = _steps_recorder()
    with pytest.raises(InvalidPrivacySettings, match="not below 1/n"):
        train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=1.0, delta=1 / 600), progress=progress)  # type: ignore[arg-type]
    with pytest.raises(InvalidPrivacySettings, match="delta"):
        # The history was kept at another delta: mixing them would misstate the composed total.
        train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=1.0, delta=1e-6),
                       account=PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=5.0), progress=progress)  # type: ignore[arg-type]
    with pytest.raises(InvalidPrivacySettings, match="epsilon"):
        train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=-1.0))
    assert seen == []


def test_layers_opacus_cannot_handle_are_named() -> None:
    check_dp_compatible(build_model(SPEC))  # the federation's MLP is fine
    with pytest.raises(UnsupportedModelForDP, match="BatchNorm") as info:
        check_dp_compatible(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)))
    assert "GroupNorm" in info.value.hint


def test_client_level_dp_clips_the_update_and_accounts_one_gaussian_release(tmp_path) -> None:
    dp = DPConfig(epsilon=2.0, delta=1e-5, level="client", clip_norm=0.5)
    account = PrivacyAccount(tmp_path / "h.json", delta=1e-5, budget=10.0)
    res = train_local_dp(SPEC, BASE, DATA, dp, account=account, round_id=1, batch_size=100)
    assert res.mechanism is not None and res.mechanism.level == "client"
    assert (res.mechanism.sample_rate, res.mechanism.steps) == (1.0, 1)
    assert res.epsilon <= 2.0 and res.epsilon_milli == to_milli(res.epsilon)
    # Clipping alone (noise ~0) bounds the norm; the noise is Gaussian of std sigma * clip.
    delta = {k: np.full(s, 3.0, np.float32) for k, s in SPEC.tensor_shapes().items()}
    clipped, norm = clip_and_noise(delta, 0.5, 1e-9, noise_seed=1)
    assert norm > 0.5 and np.sqrt(sum(float(np.sum(v**2)) for v in clipped.values())) == pytest.approx(0.5, rel=1e-5)
    noised, _ = clip_and_noise({k: np.zeros(s, np.float32) for k, s in SPEC.tensor_shapes().items()}, 0.5, 2.0, noise_seed=1)
    flat = np.concatenate([v.ravel() for v in noised.values()])
    assert flat.std() == pytest.approx(1.0, rel=0.15)
    assert Mechanism(res.mechanism.noise_multiplier, 1.0, 1, 0.5, 1e-5, "client") == res.mechanism


def test_public_class_weights() -> None:
    w = public_class_weight(np.array([0, 0, 0, 1]), 3, "balanced")
    assert w[0] == pytest.approx(4 / 6) and w[1] == pytest.approx(2.0) and w[2] == pytest.approx((4 / 6 + 2) / 2)
    assert np.allclose(public_class_weight(np.array([0, 0, 0, 1]), 3, "sqrt")[:2], np.sqrt([4 / 6, 2.0]))
    from federation.training import TrainingError

    with pytest.raises(TrainingError):
        train_local_dp(SPEC, BASE, DATA, DPConfig(epsilon=1.0), class_weight=np.ones(99))
