"""Evaluation of a detection model on a flow data set.

Numpy only (scikit-learn is not a dependency); definitions follow scikit-learn's
so figures are comparable with published ones: macro-F1 averages the per-class
F1 over every class that occurs in the labels or the predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.model.network import model_from_weights

_EVAL_BATCH = 16384


class EvaluationError(FedLedgerError):
    """Labels, predictions or data that cannot be scored together."""


def predict(model: nn.Module, features: np.ndarray, *, batch_size: int = _EVAL_BATCH) -> np.ndarray:
    """Predicted class indices (argmax of the logits) for float32 ``features``."""
    model.eval()
    out = np.empty(len(features), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size], dtype=np.float32))
            out[start : start + len(x)] = model(x).argmax(dim=1).numpy()
    return out


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, binary (normal vs attack) accuracy, false-positive rate on normal,
    per-class recall and F1 for the attack classes present, and the confusion matrix.

    Class 0 is "normal"; every other class is an attack family.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    c = len(classes)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise EvaluationError(f"labels {y_true.shape} and predictions {y_pred.shape} must be equal-length vectors")
    n = y_true.size
    conf = np.bincount(y_true * c + y_pred, minlength=c * c).reshape(c, c) if n else np.zeros((c, c), dtype=np.int64)
    tp = np.diag(conf).astype(np.float64)
    support = conf.sum(axis=1).astype(np.float64)
    predicted = conf.sum(axis=0).astype(np.float64)
    recall = _safe_div(tp, support)
    precision = _safe_div(tp, predicted)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    seen = (support > 0) | (predicted > 0)
    normal = y_true == 0
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "binary_accuracy": float(np.mean((y_true != 0) == (y_pred != 0))) if n else 0.0,
        "fpr": float(np.mean(y_pred[normal] != 0)) if normal.any() else 0.0,
        "recall": {classes[i]: float(recall[i]) for i in range(1, c) if support[i] > 0},
        "f1": {classes[i]: float(f1[i]) for i in range(c) if seen[i]},
        "support": {classes[i]: int(support[i]) for i in range(c) if support[i] > 0},
        "confusion": conf.tolist(),
    }


def evaluate(model_or_weights: nn.Module | Mapping[str, np.ndarray], spec: ModelSpec, data: Any) -> dict[str, Any]:
    """Scores of a model (or its weights) on a ``FlowDataset``; deterministic."""
    if tuple(data.classes) != tuple(spec.classes):
        raise EvaluationError(
            f"data classes {tuple(data.classes)} differ from the model's {spec.classes}",
            hint="evaluate on data encoded with the federation's feature schema",
        )
    model = model_or_weights if isinstance(model_or_weights, nn.Module) else model_from_weights(spec, model_or_weights)
    return scores(data.labels, predict(model, data.features), spec.classes)
