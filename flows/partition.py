"""Split one data set among N organisations, the ways federated research does.

* ``iid`` — every party gets a stratified, equal share of every class.
* ``dirichlet:ALPHA`` — per class, the shares of the parties are drawn from
  Dirichlet(ALPHA); small ALPHA gives strongly skewed (non-IID) parties
  (Hsu, Qi and Brown, 2019). Draws are repeated until every party has a few rows.
* ``families`` — the threat-intelligence case: every party sees normal traffic
  (an IID share) plus only some attack families; every family present in the
  data is held by at least one party. With at least as many families as
  parties each family is held by exactly one party; with fewer, a family's rows
  are shared among the parties assigned to it.

Indices are returned sorted, one int64 array per party; together they use every
index exactly once. The same ``(labels, n_parties, split, seed)`` give the same
split on any machine (numpy's PCG64 stream).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from flows.errors import PartitionError

SPLITS_HELP = "split must be 'iid', 'dirichlet:ALPHA' (ALPHA > 0, e.g. dirichlet:0.5) or 'families'"
_DIRICHLET_TRIES = 1000


def parse_split(split: str) -> tuple[str, float | None]:
    """``("iid"|"dirichlet"|"families", alpha or None)``; raises PartitionError if malformed."""
    s = split.strip().lower()
    if s in ("iid", "families"):
        return s, None
    if s.startswith("dirichlet:"):
        try:
            alpha = float(s.split(":", 1)[1])
        except ValueError:
            raise PartitionError(f"bad Dirichlet alpha in {split!r}", hint=SPLITS_HELP) from None
        if not math.isfinite(alpha) or alpha <= 0:
            raise PartitionError(f"Dirichlet alpha must be finite and > 0, got {split!r}",
                                 hint=SPLITS_HELP)
        return "dirichlet", alpha
    raise PartitionError(f"unknown split {split!r}", hint=SPLITS_HELP)


def partition(
    labels: np.ndarray,
    n_parties: int,
    split: str,
    seed: int,
    classes: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Split row indices ``0..len(labels)-1`` among ``n_parties``; see the module doc.

    ``labels`` are class indices with 0 = normal. ``classes`` (optional) only
    names classes in error messages and checks the labels fit it.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise PartitionError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if y.size and y.min() < 0:
        raise PartitionError("labels must be non-negative class indices")
    if classes is not None and y.size and y.max() >= len(classes):
        raise PartitionError(f"label {int(y.max())} has no class in {tuple(classes)!r}")
    if not isinstance(n_parties, (int, np.integer)) or n_parties < 1:
        raise PartitionError(f"n_parties must be a positive integer, got {n_parties!r}")
    if n_parties > y.size:
        raise PartitionError(
            f"cannot split {y.size} rows among {n_parties} parties",
            hint="use fewer parties or more data",
        )
    kind, alpha = parse_split(split)
    rng = np.random.default_rng(seed)
    y = y.astype(np.int64)
    if kind == "iid":
        parts = _iid(y, n_parties, rng)
    elif kind == "dirichlet":
        assert alpha is not None
        parts = _dirichlet(y, n_parties, alpha, rng)
    else:
        parts = _families(y, n_parties, rng, classes)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _class_rows(y: np.ndarray, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """(class, shuffled row indices) for every class present, in class order."""
    return [(int(c), rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)]


def _even_split(rows: np.ndarray, holders: Sequence[int], offset: int,
                out: list[list[np.ndarray]]) -> None:
    # Rotating which holder gets the remainder keeps totals balanced across classes.
    chunks = np.array_split(rows, len(holders))
    for i, chunk in enumerate(chunks):
        out[holders[(i + offset) % len(holders)]].append(chunk)


def _iid(y: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out: list[list[np.ndarray]] = [[] for _ in range(n)]
    offset = 0
    for _, rows in _class_rows(y, rng):
        _even_split(rows, list(range(n)), offset, out)
        offset += rows.size % n
    return [np.concatenate(p) if p else np.empty(0, np.int64) for p in out]


def _dirichlet(y: np.ndarray, n: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    # A party with almost no rows cannot train; demand a few, as the usual recipe does.
    min_rows = max(1, min(10, y.size // (2 * n)))
    per_class = _class_rows(y, rng)
    for _ in range(_DIRICHLET_TRIES):
        out: list[list[np.ndarray]] = [[] for _ in range(n)]
        for _, rows in per_class:
            shares = rng.dirichlet(np.full(n, alpha))
            cuts = (np.cumsum(shares)[:-1] * rows.size).astype(np.int64)
            for p, chunk in enumerate(np.split(rows, cuts)):
                out[p].append(chunk)
        parts = [np.concatenate(p) for p in out]
        if min(p.size for p in parts) >= min_rows:
            return parts
    raise PartitionError(
        f"dirichlet:{alpha} left some of {n} parties with fewer than {min_rows} rows "
        f"in {_DIRICHLET_TRIES} draws",
        hint="use a larger alpha, fewer parties or more data",
    )


def _families(y: np.ndarray, n: int, rng: np.random.Generator,
              classes: Sequence[str] | None) -> list[np.ndarray]:
    families = [int(c) for c in np.unique(y) if c != 0]
    if not families:
        name = "attack families"
        raise PartitionError(f"the 'families' split needs {name}, but every row is normal",
                             hint="use iid or dirichlet for normal-only data")
    order = [families[i] for i in rng.permutation(len(families))]
    holders: dict[int, list[int]] = {f: [] for f in families}
    if len(order) >= n:
        for i, f in enumerate(order):
            holders[f].append(i % n)
    else:
        for p in range(n):
            holders[order[p % len(order)]].append(p)
    out: list[list[np.ndarray]] = [[] for _ in range(n)]
    offset = 0
    for c, rows in _class_rows(y, rng):
        who = list(range(n)) if c == 0 else holders[c]
        _even_split(rows, who, offset, out)
        offset += 1
    return [np.concatenate(p) if p else np.empty(0, np.int64) for p in out]


def party_class_counts(labels: np.ndarray, parts: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """``(n_parties, n_classes)`` row counts: who holds what, for reports and checks."""
    y = np.asarray(labels, dtype=np.int64)
    return np.stack([np.bincount(y[p], minlength=n_classes) for p in parts]).astype(np.int64)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(keep, held_out)`` indices: ``fraction`` of every class held out
    (rounded; at least one row of a class with two or more, so rare families are
    tested too)."""
    y = np.asarray(labels, dtype=np.int64)
    if not 0.0 < fraction < 1.0:
        raise PartitionError(f"hold-out fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for _, rows in _class_rows(y, rng):
        k = int(round(fraction * rows.size))
        if rows.size >= 2:
            k = min(max(k, 1), rows.size - 1)
        else:
            k = 0
        held.append(rows[:k])
        keep.append(rows[k:])
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)  # noqa: E731
    return cat(keep), cat(held)


def novel_attack_holdout(
    strata: np.ndarray, novel: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(keep, held_out)`` indices for the novel-attack hold-out.

    Every row flagged ``novel`` (an attack name kept out of training) is held out, and
    so is a stratified ``fraction`` of the other rows, stratum by stratum (``strata``:
    an integer per row, one per attack name, so every known name is tested in
    proportion too). The test set is thus what an official test file is: known attacks
    in their usual mix, plus attacks of known families under names never trained on.
    """
    codes = np.asarray(strata, dtype=np.int64)
    mask = np.asarray(novel, dtype=bool)
    if codes.shape != mask.shape or codes.ndim != 1:
        raise PartitionError(f"strata {codes.shape} and novel mask {mask.shape} must be equal-length vectors")
    known = np.flatnonzero(~mask)
    keep, held = stratified_holdout(codes[known], fraction, seed)
    return known[keep], np.sort(np.concatenate([known[held], np.flatnonzero(mask)]))
