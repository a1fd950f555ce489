"""Fixed point in Z_2^32: a member's update and weight as one vector, and the decoded sum.

A member with update x (its tensors flattened in the spec's order) and quantised weight
q = round(min(samples, W) / W · 2^f) encodes ``[round(q·clip(x)) ..., q]`` modulo 2^32,
d + 1 integers: the weight is masked beside the update (as in SecAgg+), so the sum gives
Σq·x and Σq together and the weighted mean Σq·x / Σq needs no member's plaintext weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from federation.model import ModelSpec
from federation.secagg.params import SecureParams


def vector_length(spec: ModelSpec) -> int:
    return spec.num_parameters() + 1


def quantise_update(delta: Mapping[str, np.ndarray], spec: ModelSpec, num_samples: int, params: SecureParams) -> np.ndarray:
    """The member's d + 1 fixed-point values as uint32 (two's complement of the signed values)."""
    shapes = spec.tensor_shapes()
    if set(delta) != set(shapes):
        raise ValueError(f"update tensors {sorted(delta)} are not the model's {sorted(shapes)}")
    flat = np.concatenate([np.asarray(delta[name], dtype=np.float64).reshape(-1) for name in shapes])
    if flat.size != spec.num_parameters() or not np.all(np.isfinite(flat)):
        raise ValueError("the update is not a finite vector of the model's size")
    wq = params.weight_q(num_samples)
    scaled = np.clip(flat, -params.clip, params.clip) * float(wq)
    out = np.empty(flat.size + 1, dtype=np.int64)
    np.rint(scaled, out=scaled)
    out[:-1] = scaled.astype(np.int64)
    out[-1] = wq
    return out.astype(np.uint32)  # two's complement modulo 2^32


def signed(z: np.ndarray) -> np.ndarray:
    """uint32 values read as signed int32 (the sum of at most n members never wraps, by the choice of f)."""
    return np.asarray(z, dtype=np.uint32).view(np.int32)


def decode_sum(z: np.ndarray, spec: ModelSpec) -> tuple[dict[str, np.ndarray], int]:
    """(Σq·x per tensor in float64, flattened; Σq as an integer) from the unmasked sum ``z``."""
    values = signed(z)
    total: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in spec.tensor_shapes().items():
        size = int(np.prod(shape))
        total[name] = values[offset : offset + size].astype(np.float64)
        offset += size
    return total, int(values[offset])


def clip_box_bound(weight_qs: list[int], params: SecureParams) -> int:
    """The largest |coordinate| an honest sum of members with these quantised weights can have (Σ q·c + 1/2 each)."""
    return int(np.floor(sum(q * params.clip for q in weight_qs) + 0.5 * len(weight_qs)))
