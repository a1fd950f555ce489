"""Scoring encoded flows with a global model: the predicted class and its probability.

The model is the MLP ``federation.model.network.FlowMLP`` builds from the spec; here its
forward pass runs in numpy over the same weights, because scoring a large file is a
handful of float32 matrix products per chunk and numpy's BLAS does those about twice as
fast as torch's per-call overhead allows at these layer sizes (and needs no torch).
``tests/fedledger/test_detect.py`` checks that both give the same classes and
probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from federation.model import ModelSpec, check_weights


class Scorer:
    """``scorer(features) -> (class index, softmax probability of that class)`` for one model."""

    def __init__(self, spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> None:
        check_weights(spec, weights)
        self.spec = spec
        n_layers = len(spec.layer_sizes()) - 1
        # Transposed once so each layer is x @ W (x is column-major when it comes from a schema).
        self._layers = [
            (np.ascontiguousarray(np.asarray(weights[f"layers.{i:02d}.weight"], dtype=np.float32).T),
             np.asarray(weights[f"layers.{i:02d}.bias"], dtype=np.float32))
            for i in range(n_layers)
        ]  # fmt: skip
        self._relu = spec.activation == "relu"

    def logits(self, features: np.ndarray) -> np.ndarray:
        h = np.asarray(features, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.spec.input_dim:
            raise ValueError(f"features must be (n, {self.spec.input_dim}), got {h.shape}")
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            h = h @ w
            h += b
            if i < last:
                if self._relu:
                    np.maximum(h, 0.0, out=h)
                else:
                    np.tanh(h, out=h)
        return h

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.logits(features)
        pred = z.argmax(axis=1)
        top = z[np.arange(z.shape[0]), pred]
        # softmax probability of the top class: 1 / sum(exp(z - z_top)), never overflows
        z -= top[:, None]
        np.exp(z, out=z)
        return pred.astype(np.int64), (1.0 / z.sum(axis=1)).astype(np.float32)
