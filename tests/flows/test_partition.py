"""The partitioner: reproducible, complete, and each split keeps its promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import PartitionError
from flows.partition import parse_split, partition, party_class_counts
from flows.synthetic import generate

LABELS = generate(6000, seed=5).labels  # 6 classes, imbalanced


def _assert_exact_cover(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert allidx.dtype == np.int64
    assert np.array_equal(np.sort(allidx), np.arange(n))  # every index exactly once


@pytest.mark.parametrize("split", ["iid", "dirichlet:0.5", "dirichlet:0.05", "families"])
def test_reproducible_and_exact_cover(split: str) -> None:
    a = partition(LABELS, 5, split, seed=1)
    b = partition(LABELS, 5, split, seed=1)
    c = partition(LABELS, 5, split, seed=2)
    assert len(a) == 5
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    _assert_exact_cover(a, LABELS.size)
    assert all(np.all(np.diff(p) > 0) for p in a)  # sorted, no duplicates


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=12, max_size=300),
    n=st.integers(1, 6),
    split=st.sampled_from(["iid", "dirichlet:1.0", "families"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_exact_cover_property(labels: list[int], n: int, split: str, seed: int) -> None:
    y = np.array(labels, dtype=np.int64)
    if split == "families" and not (y != 0).any():
        with pytest.raises(PartitionError, match="every row is normal"):
            partition(y, n, split, seed)
        return
    _assert_exact_cover(partition(y, n, split, seed), y.size)


def test_iid_is_balanced_per_class() -> None:
    counts = party_class_counts(LABELS, partition(LABELS, 4, "iid", seed=0), 6)
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()
    assert counts.sum(axis=1).max() - counts.sum(axis=1).min() <= 1


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    def skew(alpha: str) -> float:
        counts = party_class_counts(LABELS, partition(LABELS, 5, alpha, seed=3), 6)
        share = counts / counts.sum(axis=0, keepdims=True)  # party share of each class
        return float(np.abs(share - 0.2).mean())

    small, large = skew("dirichlet:0.05"), skew("dirichlet:1000")
    assert large < 0.03  # near IID
    assert small > 0.15  # most classes concentrated on few parties


def test_dirichlet_gives_every_party_some_rows() -> None:
    for seed in range(5):
        parts = partition(LABELS, 8, "dirichlet:0.05", seed=seed)
        assert min(p.size for p in parts) >= 10


@pytest.mark.parametrize("n", [2, 3, 5, 7])
def test_families_split_guarantees(n: int) -> None:
    counts = party_class_counts(LABELS, partition(LABELS, n, "families", seed=4), 6)
    assert (counts[:, 0] > 0).all()  # everyone sees normal traffic
    assert ((counts[:, 1:] > 0).sum(axis=0) >= 1).all()  # every family somewhere
    seen = (counts[:, 1:] > 0).sum(axis=1)
    assert (seen >= 1).all() and (seen < 5).all()  # each party: some, never all
    if n <= 5:  # with at least as many families as parties, no family is shared
        assert ((counts[:, 1:] > 0).sum(axis=0) == 1).all()


def test_families_only_uses_present_families() -> None:
    y = np.array([0] * 20 + [3] * 6 + [1] * 4, dtype=np.int64)
    counts = party_class_counts(y, partition(y, 2, "families", seed=0), 4)
    assert counts[:, 2].sum() == 0
    assert sorted((counts[:, [1, 3]] > 0).sum(axis=1).tolist()) == [1, 1]


@pytest.mark.parametrize(
    "split, match",
    [("random", "unknown split"), ("dirichlet:", "bad Dirichlet"), ("dirichlet:abc", "bad Dirichlet"),
     ("dirichlet:0", "> 0"), ("dirichlet:-1", "> 0"), ("dirichlet:nan", "> 0"),
     ("dirichlet:inf", "> 0")],
)
def test_bad_split_strings(split: str, match: str) -> None:
    with pytest.raises(PartitionError, match=match):
        partition(LABELS, 3, split, seed=0)
    with pytest.raises(PartitionError):
        parse_split(split)


def test_parse_split() -> None:
    assert parse_split("iid") == ("iid", None)
    assert parse_split("Dirichlet:0.5") == ("dirichlet", 0.5)
    assert parse_split("families") == ("families", None)


@pytest.mark.parametrize(
    "labels, n, classes, match",
    [
        (np.zeros((3, 3), dtype=np.int64), 2, None, "1-D integer"),
        (np.array([0.5, 1.0]), 1, None, "1-D integer"),
        (np.array([0, -1, 1]), 1, None, "non-negative"),
        (np.array([0, 1, 2]), 1, ("normal", "dos"), "no class"),
        (np.array([0, 1, 2]), 0, None, "positive integer"),
        (np.array([0, 1, 2]), 4, None, "cannot split 3 rows among 4"),
    ],
)
def test_bad_inputs(labels: np.ndarray, n: int, classes, match: str) -> None:
    with pytest.raises(PartitionError, match=match):
        partition(labels, n, "iid", seed=0, classes=classes)


def test_dirichlet_impossible_request_is_a_typed_error() -> None:
    y = np.array([0] * 12 + [1] * 12, dtype=np.int64)
    with pytest.raises(PartitionError, match="fewer than"):
        partition(y, 12, "dirichlet:0.001", seed=0)


def test_novel_attack_holdout_tests_every_novel_row_and_a_share_of_the_rest() -> None:
    from flows.partition import novel_attack_holdout

    strata = np.repeat(np.arange(4), [500, 100, 30, 20])  # four attack names
    novel = strata == 2  # one name kept out of training
    keep, held = novel_attack_holdout(strata, novel, 0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(650))
    assert not novel[keep].any() and novel[held].sum() == 30
    assert np.bincount(strata[held], minlength=4).tolist() == [100, 20, 30, 4]
    again = novel_attack_holdout(strata, novel, 0.2, seed=0)
    assert np.array_equal(again[1], held)
    with pytest.raises(PartitionError):
        novel_attack_holdout(strata, novel[:-1], 0.2, seed=0)
