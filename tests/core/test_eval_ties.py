"""Evaluation that cannot be gamed: ties, NaN/inf scores, constant models, empty input."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sracl_ray.errors import UserError
from sracl_ray.training.evaluate import KS, Ranks, metrics_from_ranks, per_user, rank_targets
from test_metrics import FixedScores  # the same fixed-score model as the hand-computed rank tests


def ranks_of(table, targets, seen=None) -> Ranks:
    model = FixedScores(np.asarray(table, dtype=np.float64))
    hist = torch.arange(len(targets))[:, None]
    return rank_targets(model, hist, torch.tensor(targets), None if seen is None else torch.tensor(seen))


def test_ties_are_counted_apart_from_strictly_greater():
    # target item 3 scores 5; item 2 scores 7 (above), items 1 and 4 score 5 (tied), item 5 below.
    r = ranks_of([[0, 5, 7, 5, 5, 1]], [3])
    assert (r.greater.tolist(), r.ties.tolist(), r.pessimistic.tolist()) == ([1], [2], [3])
    hr2 = metrics_from_ranks(r, "test", ks=(2,), ties="expected")["test/hr@2"]
    assert hr2 == pytest.approx(1 / 3)  # the rank is uniform on {1, 2, 3}: only rank 1 is < 2
    assert metrics_from_ranks(r, "test", ks=(2,))["test/hr@2"] == 0.0  # pessimistic: rank 3


@pytest.mark.parametrize("n_items", [5, 50, 1000])
def test_constant_model_scores_zero_pessimistic_and_k_over_items_expected(n_items):
    table = np.full((4, n_items + 1), 0.25)
    targets = [1, n_items // 2, n_items, 2]
    r = ranks_of(table, targets)
    assert (r.greater == 0).all() and (r.ties == n_items - 1).all()
    pess = metrics_from_ranks(r, "test")
    exp = metrics_from_ranks(r, "test", ties="expected")
    for k in KS:
        assert pess[f"test/hr@{k}"] == (1.0 if n_items <= k else 0.0)
        assert exp[f"test/hr@{k}"] == pytest.approx(min(k, n_items) / n_items, abs=1e-12)
        ndcg = sum(1 / math.log2(r + 2) for r in range(min(k, n_items))) / n_items
        assert exp[f"test/ndcg@{k}"] == pytest.approx(ndcg, abs=1e-12)
        mrr = sum(1 / (r + 1) for r in range(min(k, n_items))) / n_items
        assert exp[f"test/mrr@{k}"] == pytest.approx(mrr, abs=1e-12)
    assert exp["test/hr@10"] == pytest.approx(10 / n_items) if n_items >= 10 else True


def test_nan_model_is_never_perfect():
    table = np.full((3, 31), np.nan)
    r = ranks_of(table, [1, 7, 30])
    m = metrics_from_ranks(r, "test")
    assert all(v == 0.0 for v in m.values())
    assert r.pessimistic.tolist() == [29, 29, 29]


def test_nan_target_ranks_below_every_finite_item():
    r = ranks_of([[0, np.nan, 1, 2, 3, 4]], [1])
    assert (r.greater.tolist(), r.ties.tolist()) == ([4], [0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_other_items_rank_last(bad):
    # target 2 scores 1; items 3, 4 are non-finite and must not outrank it; item 1 scores 2
    r = ranks_of([[0, 2, 1, bad, bad, 0]], [2])
    assert (r.greater.tolist(), r.ties.tolist()) == ([1], [0])


def test_inf_target_ties_only_with_other_non_finite():
    r = ranks_of([[0, np.inf, 1, np.nan, 3]], [1])
    assert (r.greater.tolist(), r.ties.tolist()) == ([2], [1])


def test_masked_items_are_neither_above_nor_tied():
    # target 4 scores 5; items 2 (9) and 3 (5, a tie) were seen: masked, they vanish
    r = ranks_of([[0, 1, 9, 5, 5, 7]], [4], seen=[[2, 3, 4, 0]])
    assert (r.greater.tolist(), r.ties.tolist()) == ([1], [0])


def brute_force_expected(greater: int, ties: int, metric: str, k: int) -> float:
    """Average the metric over every position the target can take among its ties."""
    values = []
    for pos in range(ties + 1):
        r = greater + pos
        credit = {"hr": 1.0, "ndcg": 1 / math.log2(r + 2), "mrr": 1 / (r + 1)}[metric]
        values.append(credit if r < k else 0.0)
    return sum(values) / len(values)


def test_expected_policy_equals_enumeration_of_tie_orders():
    cases = list(itertools.product(range(0, 25, 3), range(0, 30, 4)))
    g = np.array([c[0] for c in cases])
    e = np.array([c[1] for c in cases])
    for metric, k in itertools.product(("hr", "ndcg", "mrr"), KS):
        got = per_user(Ranks(g, e), metric, k, "expected")
        want = [brute_force_expected(a, b, metric, k) for a, b in cases]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_without_ties_both_policies_agree_with_plain_ranks():
    ranks = np.array([0, 1, 4, 9, 10, 25])
    r = Ranks(ranks, np.zeros_like(ranks))
    plain = metrics_from_ranks(ranks, "t")
    assert metrics_from_ranks(r, "t") == plain
    assert metrics_from_ranks(r, "t", ties="expected") == pytest.approx(plain, abs=1e-12)


def test_empty_input_is_an_error_not_nan():
    with pytest.raises(UserError, match="no users"):
        metrics_from_ranks(np.zeros(0, np.int64), "valid")
