"""Training: what each organisation runs on its own flows in a round, and a pretrained genesis.

Class-weighted cross-entropy because attack families are rare next to normal
traffic; FedProx's proximal term (Li et al. 2020) keeps a party with a skewed
local view from drifting far from the global model.  Seeded and single-threaded
so the same inputs give the same delta: the audit relies on that when it re-runs the
pretraining a federation's genesis model was made by (:mod:`federation.genesis`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.model.network import get_weights, model_from_weights


class TrainingError(FedLedgerError):
    """Local training cannot run with the given data or settings."""


@dataclass
class LocalResult:
    """A round's local training outcome: the update to send and what stays local."""

    delta: dict[str, np.ndarray]  # trained - base, float32
    num_samples: int
    metrics: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # the trained weights (kept local)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    # Multi-threaded CPU kernels may split reductions differently run to run.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def class_weight_vector(labels: np.ndarray, n_classes: int, mode: str | np.ndarray | None = "balanced") -> torch.Tensor | None:
    """Per-class loss weights: ``n / (classes_present * count_c)`` for present classes ("balanced").

    An explicit vector (e.g. weights from a public label set, as DP training needs) is used as given.
    """
    if mode is None:
        return None
    if isinstance(mode, np.ndarray):
        if mode.shape != (n_classes,) or not np.all(np.isfinite(mode)) or np.any(mode < 0):
            raise TrainingError(f"class weights must be {n_classes} finite non-negative numbers, got shape {mode.shape}")
        return torch.from_numpy(mode.astype(np.float32))
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes, dtype=np.float64)
    if mode == "balanced":
        w[present] = counts.sum() / (present.sum() * counts[present])
    elif mode == "sqrt":  # a gentler re-weighting for very rare classes
        w[present] = np.sqrt(counts.sum() / (present.sum() * counts[present]))
    else:
        raise TrainingError(f"class_weights must be 'balanced', 'sqrt' or None, got {mode!r}")
    return torch.from_numpy(w.astype(np.float32))


def train_local(
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    data: Any,
    *,
    epochs: int = 1,
    batch_size: int = 256,
    lr: float = 5e-3,
    mu: float = 0.0,
    seed: int = 0,
    class_weights: Literal["balanced", "sqrt"] | np.ndarray | None = "balanced",
    optimizer: Literal["adam", "sgd"] = "adam",
    absent_class_scale: float = 1.0,
    logit_calibration: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> LocalResult:
    """Train from ``base_weights`` on ``data`` (a ``FlowDataset``); return the delta and local metrics.

    ``mu`` is FedProx's proximal coefficient (0 = plain FedAvg local training).
    ``absent_class_scale`` < 1 is FedRS's restricted softmax (Li & Zhan, KDD 2021):
    the logits of classes this party has no examples of are scaled by it during
    local training, so a party that never sees an attack family does not teach
    the shared model to rule that family out (1 = ordinary softmax).
    ``logit_calibration`` > 0 is FedLC's logit calibration (Zhang, Li, Li, Zhao, Zhuang
    and Yan, "Federated Learning with Label Distribution Skew via Logits Calibration",
    ICML 2022): during local training the logit of every class the party holds is lowered
    by ``tau · n_c^(-1/4)`` (``n_c`` its local count), a margin that is larger the rarer the
    class, so the model must score rare classes higher to fit them; the model itself is
    unchanged (0 = off).
    ``progress(step, total_steps)`` is called after each optimiser step.
    """
    n = len(data.labels)
    if n == 0:
        raise TrainingError("local data set is empty", hint="a participant needs at least one flow record to train")
    if data.features.shape[1] != spec.input_dim or tuple(data.classes) != tuple(spec.classes):
        raise TrainingError(
            f"data (width {data.features.shape[1]}, classes {tuple(data.classes)}) does not fit the model spec "
            f"(width {spec.input_dim}, classes {spec.classes})",
            hint="encode the data with the federation's feature schema",
        )
    if epochs < 1 or batch_size < 1 or not lr > 0 or mu < 0 or not 0 <= absent_class_scale <= 1 or not 0 <= logit_calibration <= 100:
        raise TrainingError(
            "need epochs >= 1, batch_size >= 1, lr > 0, mu >= 0, 0 <= absent_class_scale <= 1, 0 <= logit_calibration <= 100; "
            f"got {epochs}, {batch_size}, {lr}, {mu}, {absent_class_scale}, {logit_calibration}"
        )
    x_all = torch.from_numpy(np.ascontiguousarray(data.features, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_from_weights(spec, base_weights)
        model.train()
        anchors = [p.detach().clone() for p in model.parameters()]
        loss_fn = nn.CrossEntropyLoss(weight=class_weight_vector(data.labels, len(spec.classes), class_weights))
        opt: torch.optim.Optimizer
        if optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr)
        elif optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        else:
            raise TrainingError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        counts = np.bincount(data.labels, minlength=len(spec.classes))
        present = counts > 0
        logit_scale = torch.from_numpy(np.where(present, 1.0, absent_class_scale).astype(np.float32))
        restrict = absent_class_scale != 1.0 and not present.all()
        margin = np.zeros(len(spec.classes), dtype=np.float64)
        margin[present] = logit_calibration * counts[present].astype(np.float64) ** -0.25
        calibration = torch.from_numpy((-margin).astype(np.float32)) if logit_calibration > 0 else None
        gen = torch.Generator().manual_seed(seed)
        steps_per_epoch = -(-n // batch_size)
        total, step = epochs * steps_per_epoch, 0
        epoch_loss = 0.0
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            epoch_loss, seen = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x_all[idx], y_all[idx]
                opt.zero_grad(set_to_none=True)
                logits = model(xb)
                if restrict:
                    logits = logits * logit_scale
                if calibration is not None:
                    logits = logits + calibration
                loss = loss_fn(logits, yb)
                if mu > 0:
                    prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchors))
                    loss = loss + (mu / 2.0) * prox
                loss.backward()
                opt.step()
                epoch_loss += float(loss.detach()) * len(idx)
                seen += len(idx)
                step += 1
                if progress is not None:
                    progress(step, total)
            epoch_loss /= max(seen, 1)
        trained = get_weights(model)
    delta = {k: (trained[k] - np.asarray(base_weights[k], dtype=np.float32)).astype(np.float32) for k in trained}
    return LocalResult(
        delta=delta,
        num_samples=int(n),
        metrics={"loss": epoch_loss, "epochs": epochs, "steps": total, "samples": int(n)},
        weights=trained,
    )
