"""Aggregation strategies (FedAvg, FedAvgM, FedAdam) as objects, bit-reproducible by construction.

Any auditor re-derives the global model's bytes from the accepted updates, so
every strategy here:

* consumes updates in the caller's fixed order (strictly increasing participant
  address; anything else is an error, never silently re-sorted);
* accumulates in float64 with separate multiply and add (``np.multiply`` then
  ``np.add`` with ``out=``), element-wise only: no BLAS, no threaded or
  pairwise reductions, whose summation order could differ between machines;
* streams (FedAvg, FedAvgM, FedAdam): ``updates`` may be a generator, so only the
  float64 accumulator, one update and the output are alive (3 models' worth of
  float32 in total). The robust rules (median, trimmed mean, Multi-Krum) cannot
  stream: they hold all K updates (see the section on them below);
* optionally clip every update to an L2 bound first (``clip_norm``, any rule),
  with the norm computed by math.fsum so the clipping factor is exact;
* keeps server state (momentum, Adam moments) as float32 tensors with
  canonical bytes (:meth:`Strategy.state_to_bytes`), so it can live in the
  store and be re-derived.

Work is done in cache-sized chunks: the float64 temporaries then never leave
the CPU cache, which roughly halves memory traffic; element-wise results are
identical whatever the chunk size.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedledger.errors import FedLedgerError
from fedledger.tensorfile import InvalidTensorFile, dump_tensors, load_tensors

Weights = dict[str, np.ndarray]
StrategyState = dict[str, np.ndarray]
STATE_FORMAT = "fedledger-strategy-state/1"
_CHUNK = 1 << 15  # float64 elements: 256 KiB per temporary, fits in L2


class AggregationError(FedLedgerError):
    """Aggregation inputs that cannot be combined (wrong order, shapes, counts, state)."""


@dataclass(frozen=True)
class WeightedUpdate:
    """One accepted update: the decoded delta and the sample count it claims."""

    participant: str
    num_samples: int
    delta: Mapping[str, np.ndarray]


def _address_key(address: str) -> bytes:
    text = address.lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise AggregationError(f"participant {address!r} is not a 20-byte hex address")
    return raw


def _check_update(update: WeightedUpdate, last_key: bytes | None, names: Iterable[str]) -> bytes:
    """Refuse an update out of address order, with a bad sample count or the wrong tensors; return its key."""
    key = _address_key(update.participant)
    if last_key is not None and key <= last_key:
        raise AggregationError(
            f"updates must come in strictly increasing participant-address order; {update.participant} is out of order or repeated",
            hint="sort accepted updates by participant address before aggregating",
        )
    if type(update.num_samples) is not int or update.num_samples < 1:
        raise AggregationError(f"update from {update.participant} claims {update.num_samples!r} samples; must be >= 1")
    if set(update.delta) != set(names):
        raise AggregationError(f"update from {update.participant} has tensors {sorted(update.delta)}, expected {sorted(names)}")
    return key


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _chunks(n: int) -> Iterable[slice]:
    for start in range(0, n, _CHUNK):
        yield slice(start, min(start + _CHUNK, n))


@dataclass(frozen=True)
class Flag:
    """Why a strategy clipped or dropped a participant's update (recorded in the round manifest)."""

    reason: str  # a short code: "clipped", "krum-excluded", "median-outlier", "trimmed-outlier"
    detail: str  # human-readable, with numbers formatted deterministically

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Aggregate:
    """The result of one aggregation: new weights, new state and the participants flagged on the way."""

    weights: Weights
    state: StrategyState
    flags: dict[str, Flag]


def _check_clip(clip_norm: float | None) -> float | None:
    if clip_norm is None:
        return None
    if isinstance(clip_norm, bool) or not isinstance(clip_norm, (int, float)) or not (0 < float(clip_norm) < math.inf):
        raise AggregationError(f"clip_norm must be a positive finite number or None, got {clip_norm!r}")
    return float(clip_norm)


def exact_sq_norm(x: np.ndarray) -> float:
    """Σ x² of a float32/float64 array, correctly rounded (math.fsum), hence identical on every machine.

    Hand-written on purpose: ``np.sum``/``np.dot`` use pairwise or BLAS reductions whose
    rounding depends on the build and the CPU, and this number decides the output
    (clipping factors, Krum's selection).
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    sq = np.multiply(v, v)  # element-wise, correctly rounded (exact for float32 inputs)
    return math.fsum(sq.tolist())


def update_norm(delta: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of an update over all its tensors (in name order), computed exactly as above."""
    return math.sqrt(math.fsum(exact_sq_norm(np.asarray(delta[k])) for k in sorted(delta)))


def clip_updates(updates: Iterable[WeightedUpdate], clip_norm: float, flags: dict[str, Flag]) -> Iterable[WeightedUpdate]:
    """Scale every update whose L2 norm exceeds ``clip_norm`` down to it (streams; flags the clipped ones)."""
    for u in updates:
        norm = update_norm(u.delta)
        if norm <= clip_norm:
            yield u
            continue
        factor = np.float64(clip_norm / norm)
        flags[u.participant] = Flag("clipped", f"update norm {norm:.6g} clipped to {clip_norm:.6g}")
        yield WeightedUpdate(
            u.participant, u.num_samples, {k: np.multiply(np.asarray(v, dtype=np.float64), factor) for k, v in u.delta.items()}
        )


class Strategy(ABC):
    """How the coordinator turns a round's accepted updates into the next global model."""

    name: str = ""
    clip_norm: float | None = None  # L2 bound on each update before the rule sees it (None: no clipping)
    last_flags: dict[str, Flag] = {}  # noqa: RUF012 - replaced (never mutated) by each aggregation

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The strategy's parameters, for the round manifest (JSON-serialisable, canonical)."""

    def effective_weight(self, num_samples: int) -> float:
        """Weight of an update claiming ``num_samples`` (sample counts, capped federation-wide)."""
        cap = self.params().get("sample_cap")
        return float(num_samples if cap is None else min(num_samples, cap))

    def initial_state(self, base: Mapping[str, np.ndarray]) -> StrategyState:
        """The state before the first round (empty for stateless strategies)."""
        return {}

    @abstractmethod
    def _apply(
        self, base: Mapping[str, np.ndarray], total: dict[str, np.ndarray], weight: float, state: StrategyState
    ) -> tuple[Weights, StrategyState]:
        """New weights and state from the float64 weighted sum ``total`` (Σ w_i·Δ_i) and ``weight`` (Σ w_i).

        May overwrite ``total``.
        """

    def aggregate(
        self,
        base: Mapping[str, np.ndarray],
        updates: Iterable[WeightedUpdate],
        state: StrategyState | None = None,
    ) -> tuple[Weights, StrategyState]:
        """New float32 weights and strategy state from ``base`` and the round's updates (in address order).

        The flags of this call (clipped or dropped participants) are left in :attr:`last_flags`;
        :meth:`aggregate_with_flags` returns them instead.
        """
        result = self.aggregate_with_flags(base, updates, state)
        return result.weights, result.state

    def aggregate_with_flags(
        self,
        base: Mapping[str, np.ndarray],
        updates: Iterable[WeightedUpdate],
        state: StrategyState | None = None,
    ) -> Aggregate:
        """Like :meth:`aggregate`, also returning which participants were clipped or dropped, and why."""
        if state is None or not state:
            state = self.initial_state(base)
        self._check_state(base, state)
        flags: dict[str, Flag] = {}
        if self.clip_norm is not None:
            updates = clip_updates(updates, self.clip_norm, flags)
        weights, new_state = self._aggregate(base, updates, state, flags)
        self.last_flags = dict(flags)
        return Aggregate(weights, new_state, dict(flags))

    def _aggregate(
        self, base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], state: StrategyState, flags: dict[str, Flag]
    ) -> tuple[Weights, StrategyState]:
        """The rule itself; the default streams a weighted sum into :meth:`_apply`. Robust rules override it."""
        total, weight = weighted_sum(base, updates, self.effective_weight)
        return self._apply(base, total, weight, state)

    def _clip_params(self) -> dict[str, Any]:
        # Only present when set: manifests of federations without clipping keep their bytes.
        return {} if self.clip_norm is None else {"clip_norm": self.clip_norm}

    def _check_state(self, base: Mapping[str, np.ndarray], state: StrategyState) -> None:
        expected = self.initial_state(base)
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
            raise AggregationError(
                f"{self.name} state does not match the model: has {sorted(state)}",
                hint="pass the state the previous round produced (or None for the first round)",
            )

    def state_to_bytes(self, state: StrategyState) -> bytes:
        """Canonical bytes of ``state`` (a tensor file naming the strategy and its parameters)."""
        meta = {"format": STATE_FORMAT, "strategy": self.name, "params": _canonical_json(self.params())}
        return dump_tensors({k: np.asarray(v, dtype=np.float32) for k, v in state.items()}, meta)

    def state_from_bytes(self, data: bytes) -> StrategyState:
        try:
            meta, tensors = load_tensors(data)
        except InvalidTensorFile as exc:
            raise AggregationError(f"strategy state is corrupt: {exc}") from None
        expected = {"format": STATE_FORMAT, "strategy": self.name, "params": _canonical_json(self.params())}
        if meta != expected:
            raise AggregationError(
                f"strategy state was written by {meta.get('strategy')!r} with {meta.get('params')}, "
                f"not {self.name!r} with {expected['params']}"
            )
        if any(t.dtype != np.float32 for t in tensors.values()):
            raise AggregationError("strategy state tensors must be float32")
        return tensors


def _canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def weighted_sum(
    base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], weight_of: Any
) -> tuple[dict[str, np.ndarray], float]:
    """(Σ w_i·Δ_i in float64, Σ w_i), streaming over ``updates`` in their given (address) order."""
    names = sorted(base)
    # np.empty, not zeros: the first update is written, not added (no pass over zeros).
    acc = {k: np.empty(int(np.prod(base[k].shape)), dtype=np.float64) for k in names}
    tmp = np.empty(_CHUNK, dtype=np.float64)
    total = 0.0
    count = 0
    last_key: bytes | None = None
    iterator = iter(updates)
    while True:
        # Explicit next() instead of a for loop: the previous update is released
        # before the next one is produced, so a generator holds one at a time.
        update = next(iterator, None)
        if update is None:
            break
        last_key = _check_update(update, last_key, names)
        w = np.float64(weight_of(update.num_samples))
        for k in names:
            x = np.asarray(update.delta[k])
            if x.shape != tuple(base[k].shape):
                raise AggregationError(
                    f"update from {update.participant}: tensor {k!r} has shape {tuple(x.shape)}, model has {tuple(base[k].shape)}"
                )
            xf, a = _flat(x), acc[k]
            if count == 0:
                np.multiply(xf, w, out=a)
                continue
            for s in _chunks(a.size):
                t = tmp[: s.stop - s.start]
                np.multiply(xf[s], w, out=t)
                np.add(a[s], t, out=a[s])
        total += float(w)  # a sum of integers-as-floats below 2^53: exact in any order
        count += 1
        del update, x, xf
    if count == 0:
        raise AggregationError("no updates to aggregate", hint="a round needs at least one accepted update (check quorum)")
    return {k: acc[k].reshape(base[k].shape) for k in names}, total


def weighted_mean_delta(
    base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], weight_of: Any
) -> dict[str, np.ndarray]:
    """Σ w_i·Δ_i / Σ w_i in float64 (see :func:`weighted_sum`)."""
    return _divide(*weighted_sum(base, updates, weight_of))


def _divide(total: dict[str, np.ndarray], weight: float) -> dict[str, np.ndarray]:
    for k in total:
        np.divide(total[k], np.float64(weight), out=total[k])
    return total


def _base_plus(
    base: Mapping[str, np.ndarray], step: dict[str, np.ndarray], scale: float | None = None, divisor: float | None = None
) -> Weights:
    """float32(base + scale·step) or float32(base + step / divisor), in float64, chunk by chunk."""
    out: Weights = {}
    for k in sorted(base):
        b, st = _flat(base[k]), _flat(step[k])
        o = np.empty(b.size, dtype=np.float32)
        tmp = np.empty(min(_CHUNK, b.size), dtype=np.float64)
        for s in _chunks(b.size):
            t = tmp[: s.stop - s.start]
            if divisor is not None:
                np.divide(st[s], np.float64(divisor), out=t)
                np.add(t, b[s], out=t)
            elif scale is None:
                np.add(st[s], b[s], out=t)
            else:
                np.multiply(st[s], np.float64(scale), out=t)
                np.add(t, b[s], out=t)
            o[s] = t
        out[k] = o.reshape(base[k].shape)
    return out


class FedAvg(Strategy):
    """Weighted FedAvg (McMahan et al. 2017): new = base + Σ w_i Δ_i / Σ w_i, w_i = min(n_i, sample_cap)."""

    name = "fedavg"

    def __init__(self, sample_cap: int | None = 1_000_000, clip_norm: float | None = None) -> None:
        if sample_cap is not None and (type(sample_cap) is not int or sample_cap < 1):
            raise AggregationError(f"sample_cap must be a positive integer or None, got {sample_cap!r}")
        self.sample_cap = sample_cap
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"sample_cap": self.sample_cap, **self._clip_params()}

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        # The division by Σw is folded into the final pass: one pass over the sum instead of two.
        return _base_plus(base, total, divisor=weight), {}


class FedAvgM(Strategy):
    """FedAvg with server momentum (Hsu et al. 2019): v = momentum·v + Δ̄; new = base + server_lr·v."""

    name = "fedavgm"

    def __init__(
        self, server_lr: float = 1.0, momentum: float = 0.9, sample_cap: int | None = 1_000_000, clip_norm: float | None = None
    ) -> None:
        if not (0 < server_lr <= 10 and 0 <= momentum < 1):
            raise AggregationError(f"fedavgm needs 0 < server_lr <= 10 and 0 <= momentum < 1, got {server_lr}, {momentum}")
        FedAvg(sample_cap)  # validates the cap
        self.server_lr, self.momentum, self.sample_cap = float(server_lr), float(momentum), sample_cap
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"server_lr": self.server_lr, "momentum": self.momentum, "sample_cap": self.sample_cap, **self._clip_params()}

    def initial_state(self, base):  # type: ignore[no-untyped-def]
        return {f"momentum/{k}": np.zeros(base[k].shape, dtype=np.float32) for k in sorted(base)}

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        mean = _divide(total, weight)
        new_state: StrategyState = {}
        for k in sorted(base):
            v = _flat(mean[k])  # float64, reused in place as the new momentum
            prev = _flat(state[f"momentum/{k}"])
            tmp = np.empty(min(_CHUNK, v.size), dtype=np.float64)
            for s in _chunks(v.size):
                t = tmp[: s.stop - s.start]
                np.multiply(prev[s], np.float64(self.momentum), out=t)
                np.add(v[s], t, out=v[s])
            # The step uses the float64 momentum; only the stored state is rounded to
            # float32.  A re-derivation starts from that stored state, so it matches.
            new_state[f"momentum/{k}"] = v.astype(np.float32).reshape(base[k].shape)
            mean[k] = v.reshape(base[k].shape)
        return _base_plus(base, mean, self.server_lr), new_state


class FedAdam(Strategy):
    """FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"), without bias correction as in the paper.

    m = β1·m + (1-β1)·Δ̄;  v = β2·v + (1-β2)·Δ̄²;  new = base + η·m / (√v + τ).
    """

    name = "fedadam"

    def __init__(
        self,
        eta: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        sample_cap: int | None = 1_000_000,
        clip_norm: float | None = None,
    ) -> None:
        if not (0 < eta <= 10 and 0 <= beta1 < 1 and 0 <= beta2 < 1 and 0 < tau <= 1):
            raise AggregationError(
                f"fedadam needs 0 < eta <= 10, 0 <= beta1, beta2 < 1, 0 < tau <= 1; got {eta}, {beta1}, {beta2}, {tau}"
            )
        FedAvg(sample_cap)
        self.eta, self.beta1, self.beta2, self.tau = float(eta), float(beta1), float(beta2), float(tau)
        self.sample_cap = sample_cap
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {
            "eta": self.eta, "beta1": self.beta1, "beta2": self.beta2, "tau": self.tau, "sample_cap": self.sample_cap,
            **self._clip_params(),
        }  # fmt: skip

    def initial_state(self, base):  # type: ignore[no-untyped-def]
        state: StrategyState = {}
        for k in sorted(base):
            state[f"m/{k}"] = np.zeros(base[k].shape, dtype=np.float32)
            state[f"v/{k}"] = np.zeros(base[k].shape, dtype=np.float32)
        return state

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        mean = _divide(total, weight)
        new_state: StrategyState = {}
        b1, c1 = np.float64(self.beta1), np.float64(1.0 - self.beta1)
        b2, c2 = np.float64(self.beta2), np.float64(1.0 - self.beta2)
        tau = np.float64(self.tau)
        for k in sorted(base):
            d = _flat(mean[k])
            m_prev, v_prev = _flat(state[f"m/{k}"]), _flat(state[f"v/{k}"])
            m = np.empty(d.size, dtype=np.float64)
            v = np.empty(d.size, dtype=np.float64)
            t = np.empty(d.size, dtype=np.float64)
            np.multiply(m_prev, b1, out=m)
            np.multiply(d, c1, out=t)
            np.add(m, t, out=m)
            np.multiply(d, d, out=t)
            np.multiply(t, c2, out=t)
            np.multiply(v_prev, b2, out=v)
            np.add(v, t, out=v)
            # Stored moments are float32; the step uses the float64 ones (re-derivation
            # starts from the stored state, so it matches).
            new_state[f"m/{k}"] = m.astype(np.float32).reshape(base[k].shape)
            new_state[f"v/{k}"] = v.astype(np.float32).reshape(base[k].shape)
            np.sqrt(v, out=t)  # sqrt, like + - * /, is correctly rounded in IEEE 754: same on every machine
            np.add(t, tau, out=t)
            np.divide(m, t, out=t)
            mean[k] = t.reshape(base[k].shape)
        return _base_plus(base, mean, self.eta), new_state


# --- Robust rules -----------------------------------------------------------------------------------
# Median, trimmed mean and Multi-Krum need every update of the round at once (a coordinate's
# median is not a running quantity; Krum compares all pairs), so unlike the rules above they do
# NOT stream: K updates are held as one (K, n) float64 matrix.  Each is still bit-reproducible:
# sorting is exact, sums run row by row in a fixed order with np.add, and every number that
# decides a selection is computed with math.fsum (correctly rounded, machine independent).


def _stack(base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate]) -> tuple[list[str], list[int], np.ndarray]:
    """(addresses, sample counts, (K, n) float64 matrix of flattened deltas), checked like :func:`weighted_sum`."""
    names = sorted(base)
    rows: list[np.ndarray] = []
    addresses: list[str] = []
    samples: list[int] = []
    last_key: bytes | None = None
    for update in updates:
        last_key = _check_update(update, last_key, names)
        parts = []
        for k in names:
            x = np.asarray(update.delta[k])
            if x.shape != tuple(base[k].shape):
                raise AggregationError(
                    f"update from {update.participant}: tensor {k!r} has shape {tuple(x.shape)}, model has {tuple(base[k].shape)}"
                )
            parts.append(_flat(x).astype(np.float64))
        rows.append(np.concatenate(parts) if parts else np.empty(0))
        addresses.append(update.participant)
        samples.append(update.num_samples)
    if not rows:
        raise AggregationError("no updates to aggregate", hint="a round needs at least one accepted update (check quorum)")
    return addresses, samples, np.stack(rows)


def _unflatten(base: Mapping[str, np.ndarray], flat: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    offset = 0
    for k in sorted(base):
        size = int(np.prod(base[k].shape))
        out[k] = flat[offset : offset + size].reshape(base[k].shape)
        offset += size
    return out


def _tail_counts(matrix: np.ndarray, keep_lo: int, keep_hi: int) -> np.ndarray:
    """Per row: in how many coordinates its value ranks outside [keep_lo, keep_hi) (ties by row order)."""
    k, n = matrix.shape
    counts = np.zeros(k, dtype=np.int64)
    for s in _chunks(n):
        ranks = np.argsort(matrix[:, s], axis=0, kind="stable")  # stable: ties go to the earlier address
        tails = np.concatenate([ranks[:keep_lo].reshape(-1), ranks[keep_hi:].reshape(-1)])
        counts += np.bincount(tails, minlength=k)
    return counts


def _flag_tails(
    flags: dict[str, Flag], addresses: list[str], counts: np.ndarray, n: int, expected: float, reason: str, what: str
) -> None:
    """Flag rows that sit in the tails far more often than chance: halfway between ``expected`` and always."""
    threshold = expected + (1.0 - expected) / 2
    for a, c in zip(addresses, counts.tolist(), strict=True):
        frac = c / n if n else 0.0
        if frac > threshold:
            _add_flag(flags, a, reason, f"{what} in {frac:.1%} of coordinates (threshold {threshold:.1%})")


def _add_flag(flags: dict[str, Flag], address: str, reason: str, detail: str) -> None:
    """The rule's own flag wins the reason; an earlier one (clipping) stays in the detail."""
    prev = flags.get(address)
    flags[address] = Flag(reason, detail if prev is None else f"{detail}; {prev.reason}: {prev.detail}")


class _Robust(Strategy):
    """Shared by the rules that need all K updates in memory."""

    def params(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        return _base_plus(base, total, divisor=weight), {}


class Median(_Robust):
    """Coordinate-wise median of the deltas (Yin et al. 2018), unweighted: a sample count is only a claim.

    Needs all K updates in memory (does not stream). A participant is flagged ``median-outlier``
    when its value lies outside the central half of the sorted values in far more coordinates
    than chance would put it there.
    """

    name = "median"

    def __init__(self, clip_norm: float | None = None) -> None:
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {**self._clip_params()}

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, _, m = _stack(base, updates)
        k, n = m.shape
        med = np.empty(n, dtype=np.float64)
        for s in _chunks(n):
            srt = np.sort(m[:, s], axis=0)
            if k % 2:
                med[s] = srt[k // 2]
            else:
                np.add(srt[k // 2 - 1], srt[k // 2], out=med[s])
                np.multiply(med[s], np.float64(0.5), out=med[s])
        if k >= 4:
            q = k // 4
            counts = _tail_counts(m, q, k - q)
            _flag_tails(flags, addresses, counts, n, 2 * q / k, "median-outlier", "outside the central half")
        return _base_plus(base, _unflatten(base, med)), {}


class TrimmedMean(_Robust):
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the ⌊trim·K⌋ largest and smallest values, average the rest.

    Unweighted, and needs all K updates in memory (does not stream). A participant is flagged
    ``trimmed-outlier`` when it was trimmed in far more coordinates than chance would trim it.
    """

    name = "trimmed-mean"

    def __init__(self, trim: float = 0.2, clip_norm: float | None = None) -> None:
        if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not (0 <= trim < 0.5):
            raise AggregationError(f"trimmed-mean needs 0 <= trim < 0.5, got {trim!r}")
        self.trim = float(trim)
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"trim": self.trim, **self._clip_params()}

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, _, m = _stack(base, updates)
        k, n = m.shape
        b = int(math.floor(self.trim * k))
        kept = k - 2 * b  # >= 1 because trim < 0.5
        out = np.empty(n, dtype=np.float64)
        for s in _chunks(n):
            srt = np.sort(m[:, s], axis=0)
            acc = out[s]
            acc[...] = srt[b]
            for r in range(b + 1, k - b):  # row by row, in sorted order: a fixed summation order
                np.add(acc, srt[r], out=acc)
            np.divide(acc, np.float64(kept), out=acc)
        if b > 0:
            counts = _tail_counts(m, b, k - b)
            _flag_tails(flags, addresses, counts, n, 2 * b / k, "trimmed-outlier", "trimmed")
        return _base_plus(base, _unflatten(base, out)), {}


class MultiKrum(_Robust):
    """Multi-Krum (Blanchard et al. 2017): keep the ``m`` updates closest to their K-f-2 nearest neighbours, FedAvg them.

    ``f`` is the number of Byzantine participants to tolerate; ``m`` defaults to K-f. With
    K <= f+2 Krum's guarantee does not hold; the rule then scores with one neighbour rather
    than refusing the round. Needs all K updates in memory and K(K-1)/2 exact distances.
    The dropped participants are flagged ``krum-excluded``.
    """

    name = "multi-krum"

    def __init__(self, f: int = 1, m: int | None = None, sample_cap: int | None = 1_000_000, clip_norm: float | None = None) -> None:
        if type(f) is not int or f < 0:
            raise AggregationError(f"multi-krum needs an integer f >= 0, got {f!r}")
        if m is not None and (type(m) is not int or m < 1):
            raise AggregationError(f"multi-krum needs m >= 1 (or None for K-f), got {m!r}")
        FedAvg(sample_cap)
        self.f, self.m, self.sample_cap = f, m, sample_cap
        self.clip_norm = _check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"f": self.f, "m": self.m, "sample_cap": self.sample_cap, **self._clip_params()}

    def select(self, matrix: np.ndarray) -> tuple[list[int], list[float]]:
        """Indices (ascending) of the rows kept, and every row's Krum score."""
        k = matrix.shape[0]
        dist = [[0.0] * k for _ in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                dist[i][j] = dist[j][i] = exact_sq_norm(np.subtract(matrix[i], matrix[j]))
        neighbours = max(1, k - self.f - 2)
        scores = [math.fsum(sorted(dist[i][j] for j in range(k) if j != i)[:neighbours]) for i in range(k)]
        keep = min(k, self.m if self.m is not None else max(1, k - self.f))
        chosen = sorted(range(k), key=lambda i: (scores[i], i))[:keep]  # ties: the earlier address
        return sorted(chosen), scores

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, samples, m = _stack(base, updates)
        chosen, scores = self.select(m) if m.shape[0] > 1 else ([0], [0.0])
        threshold = max(scores[i] for i in chosen)
        for i, a in enumerate(addresses):
            if i not in chosen:
                _add_flag(flags, a, "krum-excluded", f"Krum score {scores[i]:.6g} above the kept maximum {threshold:.6g}")
        kept = (WeightedUpdate(addresses[i], samples[i], _unflatten(base, m[i])) for i in chosen)
        total, weight = weighted_sum(base, kept, self.effective_weight)
        return self._apply(base, total, weight, state)


STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "median": Median,
    "trimmed-mean": TrimmedMean,
    "multi-krum": MultiKrum,
}


def strategy_from_name(name: str, **params: Any) -> Strategy:
    """Build a strategy by name (``fedavg``, ``fedavgm``, ``fedadam``, ``median``, ``trimmed-mean``, ``multi-krum``) with keyword parameters."""
    cls = STRATEGIES.get(name.lower())
    if cls is None:
        raise AggregationError(f"unknown aggregation strategy {name!r}", hint=f"use one of {', '.join(STRATEGIES)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise AggregationError(f"strategy {name!r}: {exc}") from None


def strategy_from_manifest(entry: Mapping[str, Any]) -> Strategy:
    """Rebuild a strategy from ``{"name": ..., "params": {...}}`` as recorded in a round manifest."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("params", {}), Mapping):
        raise AggregationError(f"strategy entry {entry!r} must be {{'name': str, 'params': {{...}}}}")
    return strategy_from_name(entry["name"], **dict(entry.get("params", {})))
