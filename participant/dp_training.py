"""Differential privacy in local training: record-level DP-SGD (opacus) and client-level update noising.

Record-level (the default, and the practical form for 5-20 organisations): each
optimiser step clips every sample's gradient to ``clip_norm`` and adds Gaussian
noise (opacus's DPOptimizer over Poisson-sampled batches); the noise multiplier
is calibrated so that the round costs at most the per-round target epsilon.

Client-level (for federations with many members): the finished update is
clipped to ``clip_norm`` in L2 and Gaussian noise of std ``sigma * clip_norm``
is added before encoding; it protects a member's whole data set, at a noise
level only averaging over many members makes bearable.

Every check (settings, budget, model layers) runs before any training, so a
refused round leaves nothing half-trained behind.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from federation.model import ModelSpec
from federation.model.network import get_weights, model_from_weights
from federation.privacy import (
    LEVELS,
    Accountant,
    InvalidPrivacySettings,
    Mechanism,
    PrivacyError,
    calibrate_noise,
    check_accountant,
    check_dp_delta,
    check_epsilon,
    mechanism_epsilon,
    to_milli,
)
from federation.training import LocalResult, TrainingError, single_thread
from participant.budget import PrivacyAccount


class UnsupportedModelForDP(PrivacyError):
    """A model with layers per-sample DP-SGD cannot handle (e.g. BatchNorm mixes samples in a batch)."""


@dataclass(frozen=True)
class DPConfig:
    """A participant's DP settings: the per-round target, delta, the total budget and the mechanism."""

    epsilon: float  # target epsilon per round
    delta: float = 1e-5
    budget: float | None = None  # total composed epsilon this participant may spend; None = no cap
    clip_norm: float = 1.0  # per-sample gradient norm (record) or update norm (client)
    accountant: Accountant = "rdp"
    level: Literal["record", "client"] = "record"
    noise_multiplier: float | None = None  # fixed sigma instead of calibrating to ``epsilon`` (benchmarks)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        check_dp_delta(self.delta)
        check_accountant(self.accountant)
        if self.budget is not None:
            check_epsilon(self.budget, "DP budget")
        if not (isinstance(self.clip_norm, (int, float)) and math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise InvalidPrivacySettings(f"DP clipping norm must be a finite number > 0, got {self.clip_norm!r}")
        if self.level not in LEVELS:
            raise InvalidPrivacySettings(f"DP level must be 'record' or 'client', got {self.level!r}")
        if self.noise_multiplier is not None and not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise InvalidPrivacySettings(f"noise multiplier must be > 0, got {self.noise_multiplier!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon, "delta": self.delta, "budget": self.budget, "clip_norm": self.clip_norm,
            "accountant": self.accountant, "level": self.level, "noise_multiplier": self.noise_multiplier,
        }  # fmt: skip


@dataclass
class DPResult(LocalResult):
    """A DP round's outcome: the (already privatised) update plus what it cost."""

    mechanism: Mechanism | None = None
    epsilon: float = 0.0  # this round's spend on its own
    epsilon_milli: int = 0  # rounded up: the header's and the chain's figure
    composed_epsilon: float = 0.0  # the participant's composed total after this round
    privacy: dict[str, Any] = field(default_factory=dict)


def check_dp_compatible(module: nn.Module) -> None:
    """Raise :class:`UnsupportedModelForDP` naming every layer opacus cannot give per-sample gradients for."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        detail = "; ".join(str(e) for e in errors)
        raise UnsupportedModelForDP(
            f"the model has layers DP-SGD cannot handle: {detail}",
            hint="replace BatchNorm with GroupNorm/LayerNorm (opacus ModuleValidator.fix does this) "
            "or train without --dp-epsilon",
        )


def record_mechanism(dp: DPConfig, n_records: int, batch_size: int, epochs: int) -> Mechanism:
    """The DP-SGD mechanism a round runs: Poisson sampling at 1/ceil(n/B), ``epochs`` passes, sigma calibrated."""
    check_dp_delta(dp.delta, n_records)
    if batch_size < 1 or epochs < 1:
        raise TrainingError(f"need batch_size >= 1 and epochs >= 1, got {batch_size}, {epochs}")
    batches = -(-n_records // batch_size)
    sample_rate, steps = 1.0 / batches, epochs * batches
    sigma = dp.noise_multiplier or calibrate_noise(dp.epsilon, dp.delta, sample_rate, steps, dp.accountant)
    return Mechanism(sigma, sample_rate, steps, float(dp.clip_norm), dp.delta, "record", dp.accountant)


def client_mechanism(dp: DPConfig, n_records: int) -> Mechanism:
    """The client-level Gaussian mechanism: one release of the clipped update, sigma calibrated to the target."""
    check_dp_delta(dp.delta, n_records)
    sigma = dp.noise_multiplier or calibrate_noise(dp.epsilon, dp.delta, 1.0, 1, dp.accountant)
    return Mechanism(sigma, 1.0, 1, float(dp.clip_norm), dp.delta, "client", dp.accountant)


def noise_source(noise_seed: int | None) -> np.random.Generator:
    """Where DP noise comes from: 256 bits from the operating system's CSPRNG, so nothing public regenerates it.

    Only a simulation (where no one's privacy is at stake) passes ``noise_seed`` to make runs repeatable.
    """
    entropy = int.from_bytes(os.urandom(32), "big") if noise_seed is None else noise_seed
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def torch_noise_generator(noise_seed: int | None, salt: int) -> torch.Generator:
    """A torch generator for DP-SGD's noise or Poisson sampling, seeded from os.urandom unless a simulation seeds it."""
    seed = int.from_bytes(os.urandom(8), "big") >> 1 if noise_seed is None else (noise_seed ^ salt)
    return torch.Generator().manual_seed(seed)


def clip_and_noise(
    delta: Mapping[str, np.ndarray], clip_norm: float, noise_multiplier: float, noise_seed: int | None = None
) -> tuple[dict[str, np.ndarray], float]:
    """Scale ``delta`` to L2 norm <= ``clip_norm`` and add N(0, (sigma*clip)^2) to every entry; returns (noised, norm before)."""
    names = sorted(delta)
    norm = math.sqrt(sum(float(np.sum(np.asarray(delta[k], dtype=np.float64) ** 2)) for k in names))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    rng = noise_source(noise_seed)
    std = noise_multiplier * clip_norm
    out = {
        k: (np.asarray(delta[k], dtype=np.float64) * scale + rng.normal(0.0, std, size=np.shape(delta[k]))).astype(np.float32)
        for k in names
    }
    return out, norm




def plan_round(dp: DPConfig, account: PrivacyAccount | None, round_id: int, n_records: int, batch_size: int, epochs: int) -> tuple[Mechanism, float]:
    """The mechanism this round will run and the composed epsilon after it; raises before any training if not allowed."""
    mech = record_mechanism(dp, n_records, batch_size, epochs) if dp.level == "record" else client_mechanism(dp, n_records)
    if account is not None:
        projected = account.check_can_spend(round_id, mech)
    else:
        projected = mechanism_epsilon(mech)
        if dp.budget is not None and projected > dp.budget:
            from participant.budget import PrivacyBudgetExhausted

            raise PrivacyBudgetExhausted(
                f"one round costs epsilon {projected:.3f}, over the budget of {dp.budget:g}; nothing was trained",
                spent=0.0, projected=projected, budget=dp.budget,
            )  # fmt: skip
    return mech, projected


def train_local_dp(
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    data: Any,
    dp: DPConfig,
    *,
    account: PrivacyAccount | None = None,
    round_id: int = 0,
    epochs: int = 1,
    batch_size: int = 256,
    lr: float = 5e-3,
    seed: int = 0,
    class_weight: np.ndarray | None = None,
    optimizer: Literal["adam", "sgd"] = "adam",
    progress: Callable[[int, int], None] | None = None,
    noise_seed: int | None = None,
) -> DPResult:
    """Train one round under DP from ``base_weights``; the returned delta is safe to release.

    ``class_weight`` must come from public information (e.g. the federation's
    validation set), never from the local labels: weights derived from the
    private data would themselves leak outside the DP guarantee. FedProx's
    proximal term and FedRS's restricted softmax are not offered here for the
    same reason (the first bypasses per-sample clipping, the second depends on
    which classes the private data holds).

    With ``account`` given, the budget is checked before training and the round
    is recorded in it after training succeeds. The noise and the Poisson sampling are
    drawn from the operating system's CSPRNG (``noise_seed`` only for simulations), so the
    update is not reproducible from public values: a member keeps its encoded update
    instead of re-deriving it after a crash.
    """
    n = len(data.labels)
    if n == 0:
        raise TrainingError("local data set is empty", hint="a participant needs at least one flow record to train")
    if data.features.shape[1] != spec.input_dim or tuple(data.classes) != tuple(spec.classes):
        raise TrainingError(
            f"data (width {data.features.shape[1]}) does not fit the model spec (width {spec.input_dim})",
            hint="encode the data with the federation's feature schema",
        )
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise TrainingError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if optimizer not in ("adam", "sgd"):
        raise TrainingError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if class_weight is not None and (np.shape(class_weight) != (len(spec.classes),) or not np.all(np.isfinite(class_weight)) or np.any(np.asarray(class_weight) < 0)):
        raise TrainingError(f"class_weight must be {len(spec.classes)} finite non-negative numbers")
    if account is not None and (account.delta != dp.delta or account.accountant != dp.accountant):
        raise InvalidPrivacySettings(
            f"the privacy history was kept at delta {account.delta:g} ({account.accountant}); this round asks for "
            f"delta {dp.delta:g} ({dp.accountant})",
            hint="keep delta and the accountant fixed for a participant's whole history",
        )
    model = model_from_weights(spec, base_weights)
    check_dp_compatible(model)
    mech, projected = plan_round(dp, account, round_id, n, batch_size, epochs)

    if dp.level == "client":
        from federation.training import train_local

        plain = train_local(
            spec, base_weights, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, class_weights=None,
            optimizer=optimizer, progress=progress,
        )  # fmt: skip
        noised, norm = clip_and_noise(plain.delta, dp.clip_norm, mech.noise_multiplier, noise_seed)
        weights = {k: (np.asarray(base_weights[k], dtype=np.float32) + noised[k]).astype(np.float32) for k in noised}
        return _finish(dp, account, round_id, mech, projected, noised, weights, n, {**plain.metrics, "update_norm": norm})

    delta, weights, metrics = _dp_sgd(spec, model, base_weights, data, mech, batch_size, epochs, lr, seed,
                                      class_weight, optimizer, progress, noise_seed)  # fmt: skip
    return _finish(dp, account, round_id, mech, projected, delta, weights, n, metrics)


def _finish(
    dp: DPConfig, account: PrivacyAccount | None, round_id: int, mech: Mechanism, projected: float,
    delta: dict[str, np.ndarray], weights: dict[str, np.ndarray], n: int, metrics: dict[str, Any],
) -> DPResult:
    if account is not None:
        spent = account.record(round_id, mech)
        eps, milli, composed = spent.epsilon, spent.epsilon_milli, account.composed()
    else:
        eps = mechanism_epsilon(mech)
        milli, composed = to_milli(eps), projected
    privacy = {"level": dp.level, "delta": dp.delta, "accountant": dp.accountant, "mechanism": mech.to_dict(),
               "epsilon": eps, "epsilon_milli": milli, "composed_epsilon": composed}  # fmt: skip
    return DPResult(
        delta=delta, num_samples=int(n), metrics={**metrics, "privacy": privacy}, weights=weights,
        mechanism=mech, epsilon=eps, epsilon_milli=milli, composed_epsilon=composed, privacy=privacy,
    )  # fmt: skip


def _dp_sgd(
    spec: ModelSpec, model: nn.Module, base_weights: Mapping[str, np.ndarray], data: Any, mech: Mechanism,
    batch_size: int, epochs: int, lr: float, seed: int, class_weight: np.ndarray | None, optimizer: str,
    progress: Callable[[int, int], None] | None, noise_seed: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    n = len(data.labels)
    x_all = torch.from_numpy(np.ascontiguousarray(data.features, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    # Fixed (public) class weights scale each sample's own loss, so every per-sample gradient is still that
    # sample's alone and opacus's clipping bounds its influence. (Scaling *after* clipping by w_c / max w keeps
    # the weighting exact but shrank the common classes' signal below the noise: 0.40 vs 0.58 macro-F1 at eps 8.)
    weight = None if class_weight is None else torch.as_tensor(np.asarray(class_weight, dtype=np.float32))
    # opacus warns that its RNG is not cryptographic (its own generator is replaced by ones seeded from
    # os.urandom below) and about backward hooks on the input layer; neither is actionable here.
    with single_thread(), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(seed)
        model.train()
        gsm = GradSampleModule(model, loss_reduction="mean")
        params = [p for p in gsm.parameters() if p.requires_grad]
        base_opt: torch.optim.Optimizer = (
            torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
        )  # fmt: skip
        noise_gen = torch_noise_generator(noise_seed, 0x5EED)
        dp_opt = DPOptimizer(
            base_opt, noise_multiplier=mech.noise_multiplier, max_grad_norm=mech.clip_norm,
            expected_batch_size=max(1, round(n * mech.sample_rate)), loss_reduction="mean", generator=noise_gen,
        )  # fmt: skip
        # Poisson sampling (each record joins each batch independently with probability q), which the
        # accountant's subsampled-Gaussian analysis assumes; drawn here on whole tensors because opacus's
        # DPDataLoader fetches and collates one record at a time (~100x slower for a small MLP).
        sample_gen = torch_noise_generator(noise_seed, 0)
        loss_sum, seen = 0.0, 0
        for step in range(1, mech.steps + 1):
            idx = torch.nonzero(torch.rand(n, generator=sample_gen) < mech.sample_rate).squeeze(1)
            if len(idx):  # an empty Poisson batch releases nothing: the step is skipped, still counted
                xb, yb = x_all[idx], y_all[idx]
                dp_opt.zero_grad(set_to_none=True)
                per = nn.functional.cross_entropy(gsm(xb), yb, reduction="none")
                loss = (per * weight[yb]).mean() if weight is not None else per.mean()
                loss.backward()
                dp_opt.step()
                loss_sum += float(loss.detach()) * len(yb)
                seen += len(yb)
            if progress is not None:
                progress(step, mech.steps)
        gsm._close()  # removes opacus's hooks and per-sample buffers from the model
        trained = get_weights(model)
    delta = {k: (trained[k] - np.asarray(base_weights[k], dtype=np.float32)).astype(np.float32) for k in trained}
    return delta, trained, {"loss": loss_sum / max(seen, 1), "epochs": epochs, "steps": mech.steps, "samples": n}


def public_class_weight(labels: np.ndarray, n_classes: int, mode: Literal["balanced", "sqrt"] = "sqrt") -> np.ndarray:
    """Class weights from a *public* label set (e.g. the federation's validation set), for :func:`train_local_dp`.

    "balanced": n / (classes_present * count_c); "sqrt": its square root (gentler on very rare classes).
    Classes absent from the public set get the mean weight of the present ones.
    """
    if mode not in ("balanced", "sqrt"):
        raise TrainingError(f"class weight mode must be 'balanced' or 'sqrt', got {mode!r}")
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    if present.any():
        w[present] = counts.sum() / (present.sum() * counts[present])
        if mode == "sqrt":
            w[present] = np.sqrt(w[present])
        w[~present] = w[present].mean()
    return w.astype(np.float32)


__all__ = [
    "DPConfig", "DPResult", "UnsupportedModelForDP", "check_dp_compatible", "record_mechanism", "client_mechanism",
    "clip_and_noise", "plan_round", "train_local_dp", "public_class_weight", "dp_from_options",
]


def dp_from_options(
    epsilon: float | None,
    delta: float | None = None,
    budget: float | None = None,
    *,
    clip: float | None = None,
    level: str | None = None,
    accountant: str | None = None,
) -> DPConfig | None:
    """The DPConfig the CLI flags (--dp-epsilon, --dp-delta, --dp-budget, ...) describe; None without --dp-epsilon."""
    if epsilon is None:
        given = [n for n, v in (("--dp-delta", delta), ("--dp-budget", budget), ("--dp-clip", clip),
                                ("--dp-level", level), ("--dp-accountant", accountant)) if v is not None]  # fmt: skip
        if given:
            raise InvalidPrivacySettings(
                f"{', '.join(given)} given without --dp-epsilon", hint="DP is switched on by --dp-epsilon (per round)"
            )
        return None
    return DPConfig(
        epsilon=epsilon, delta=1e-5 if delta is None else delta, budget=budget, clip_norm=1.0 if clip is None else clip,
        level=level or "record", accountant=accountant or "rdp",  # type: ignore[arg-type]
    )  # fmt: skip
