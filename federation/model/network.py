"""The torch MLP a model spec describes, and moving weights in and out of it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from federation.model.files import check_weights
from federation.model.spec import ModelSpec


class FlowMLP(nn.Module):
    """A plain MLP over encoded flow features; logits over the spec's classes."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        sizes = spec.layer_sizes()
        # Zero-padded indices keep parameter names in the same order as sorted() does.
        self.layers = nn.ModuleDict(
            {f"{i:02d}": nn.Linear(a, b) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
        )
        self._act = nn.ReLU() if spec.activation == "relu" else nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self.layers.values())
        for layer in layers[:-1]:
            x = self._act(layer(x))
        return layers[-1](x)


def build_model(spec: ModelSpec) -> FlowMLP:
    """A fresh (randomly initialised from torch's global RNG) model for ``spec``."""
    return FlowMLP(spec)


def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters as float32 numpy arrays, in sorted-name order."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in sorted(model.state_dict().items())}


def set_weights(model: FlowMLP, weights: Mapping[str, np.ndarray]) -> FlowMLP:
    """Load ``weights`` into ``model`` after checking names and shapes against its spec."""
    check_weights(model.spec, weights)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy()) for k, v in weights.items()})
    return model


def model_from_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> FlowMLP:
    return set_weights(build_model(spec), weights)


def init_model(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Deterministic initial weights for ``spec`` (torch's default Linear init under ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_weights(build_model(spec))
