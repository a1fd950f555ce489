"""Personalisation by local fine-tuning: each member adapts every global model to its own traffic, and keeps it.

FedAvg with local fine-tuning (Wang, Mathews, Kiddon, Eichner, Beaufays and Ramage,
"Federated Evaluation of On-Device Personalization", arXiv:1910.10252, 2019; Yu,
Bagdasaryan and Shmatikov, "Salvaging Federated Learning by Local Adaptation",
arXiv:2002.04758, 2020): the federation trains one shared model as usual; a member
that wants a model for its own distribution trains a copy of the global model a few
more epochs on its local data. The personal model is the member's alone: it is never
encoded, submitted or stored, so the ledger and the audit cover exactly the shared
model, and the member's next update is computed from the global model, not from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from federation.model import ModelSpec
from federation.training import train_local

Weights = dict[str, np.ndarray]


def fine_tune(spec: ModelSpec, global_weights: Weights, data: Any, *, epochs: int, seed: int, **recipe: Any) -> Weights:
    """``global_weights`` trained ``epochs`` more epochs on ``data`` (``recipe``:
    :func:`federation.training.train_local`'s keyword options). ``global_weights`` is not modified."""
    return train_local(spec, global_weights, data, epochs=epochs, seed=seed, **recipe).weights


def personalise(
    spec: ModelSpec, global_weights: Weights, data: Any, *, epochs: int, seed: int, validation: float = 0.2, **recipe: Any
) -> tuple[Weights, dict[str, Any]]:
    """The member's personal model and how it was chosen.

    The global model is fine-tuned on all but a stratified ``validation`` share of ``data``;
    the personal model is the fine-tuned one only if its macro-F1 on that share is at least
    the global model's, else the global model itself, so on the member's own distribution
    it is not worse than the global model as far as the member can measure.
    """
    from federation.metrics import evaluate
    from flows.partition import stratified_holdout

    if not 0 < validation < 1:
        raise ValueError(f"validation share must be in (0, 1), got {validation}")
    keep, held = stratified_holdout(data.labels, validation, seed)
    tuned = fine_tune(spec, global_weights, data.subset(keep), epochs=epochs, seed=seed, **recipe)
    val = data.subset(held)
    g, p = evaluate(global_weights, spec, val)["macro_f1"], evaluate(tuned, spec, val)["macro_f1"]
    chosen = "fine-tuned" if p >= g else "global"
    return (tuned if chosen == "fine-tuned" else global_weights), {"chosen": chosen, "validation_rows": len(held),
                                                                    "validation_macro_f1": {"global": g, "fine-tuned": p}}


def own_distribution(test: Any, data: Any) -> Any:
    """The rows of ``test`` whose class the member holds (``data``): its own distribution, as far as a shared test set has it."""
    held = np.flatnonzero(np.bincount(data.labels, minlength=len(data.classes)))
    return test.subset(np.flatnonzero(np.isin(test.labels, held)))
