"""Full-ranking metrics against hand-computed ranks."""
import math

import numpy as np
import pytest
import torch

from sracl_ray.models.base import SeqRecModel
from sracl_ray.training.evaluate import metrics_from_ranks, rank_targets


class FixedScores(SeqRecModel):
    """Scores = a fixed row per user (the row index is the single history item)."""

    def __init__(self, table):
        super().__init__(n_items=table.shape[1] - 1, max_len=1, hidden=1)
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def full_sort_predict(self, item_seq):
        s = self.table[item_seq[:, -1]].clone()
        s[:, 0] = -torch.inf
        return s


def test_ranks_match_hand_computation():
    # Items 1..5 (column 0 is padding). By hand:
    # row 0: target 1 scores 5, nothing higher -> rank 0
    # row 1: item1 1, item2 5, item3 4 (the target) -> only item 2 is higher -> rank 1
    # row 2: target 1 scores 1, items 2..5 are higher -> rank 4
    table = np.array([
        [9, 5, 4, 3, 2, 1],
        [9, 1, 5, 4, 3, 2],
        [9, 1, 2, 3, 4, 5],
    ])
    model = FixedScores(table)
    ranks = rank_targets(model, torch.tensor([[0], [1], [2]]), torch.tensor([1, 3, 1]))
    assert ranks.pessimistic.tolist() == [0, 1, 4] and ranks.ties.tolist() == [0, 0, 0]


def test_metric_values():
    ranks = np.array([0, 1, 4, 9, 10, 25])
    m = metrics_from_ranks(ranks, "test")
    assert m["test/hr@5"] == pytest.approx(3 / 6)
    assert m["test/hr@10"] == pytest.approx(4 / 6)
    assert m["test/hr@20"] == pytest.approx(5 / 6)
    ndcg10 = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 6
    assert m["test/ndcg@10"] == pytest.approx(ndcg10)
    assert m["test/mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 6)


def test_mask_history_excludes_seen_items_but_never_the_target():
    table = np.array([[0, 1, 9, 8, 5, 7]])
    model = FixedScores(table)
    hist, target = torch.tensor([[0]]), torch.tensor([4])  # target score 5, items 2,3,5 above it
    assert rank_targets(model, hist, target).pessimistic.tolist() == [3]
    seen = torch.tensor([[2, 3, 4, 0]])  # items 2 and 3 were seen; the target 4 too
    assert rank_targets(model, hist, target, seen).pessimistic.tolist() == [1]


# --- sracl_ray/metrics.py: the one place of each metric --------------------------------------------

def test_metrics_module_credit_matches_an_independent_formula():
    from sracl_ray import metrics as M

    ranks = np.array([0, 1, 4, 9, 10, 25])
    for k in M.KS:
        hr = (ranks < k).astype(float)
        ndcg = np.where(ranks < k, 1 / np.log2(ranks + 2.0), 0.0)
        mrr = np.where(ranks < k, 1 / (ranks + 1.0), 0.0)
        for name, want in (("hr", hr), ("ndcg", ndcg), ("mrr", mrr)):
            got = M.per_user(ranks, np.zeros_like(ranks), name, k)
            np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="unknown metric"):
        M.credit("precision", 10)


def test_metric_keys_parse_and_direction_come_from_one_place():
    from sracl_ray import config as C, metrics as M

    assert C.metric_names("test") == M.keys("test") == [f"test/{n}@{k}" for n in M.NAMES for k in M.KS]
    assert C.TIES == M.TIE_POLICIES
    assert M.parse("test/ndcg@20") == ("test", "ndcg", 20) and M.parse("HR@5") == (None, "hr", 5)
    for bad in ("test/precision@10", "ndcg", "test/ndcg@x", "test/ndcg@"):
        with pytest.raises(ValueError):
            M.parse(bad)
    assert M.higher_is_better("valid/mrr@10") and not M.higher_is_better("train/loss")


def test_sparsity_groups_use_the_trials_tie_policy_and_agree_with_the_engine():
    """Fig. 7 used its own formula on pessimistic ranks: under eval.ties=expected it disagreed with the
    tables.  Now every group of one bin equals the engine's metric over the same users."""
    import pandas as pd

    from analysis.sparsity import group_metrics
    from sracl_ray.training.evaluate import Ranks, metrics_from_ranks

    greater = np.array([0, 3, 8, 0, 15])
    ties = np.array([5, 0, 4, 0, 10])
    table = pd.DataFrame({"train_len": [3] * 5, "rank_test": greater + ties, "ties_test": ties})
    for policy in ("pessimistic", "expected"):
        want = metrics_from_ranks(Ranks(greater, ties), "test", ties=policy)
        g = group_metrics(table, ["test/hr@10", "test/ndcg@20"], edges=(7, 10), ties=policy)
        assert g.loc[0, "test/hr@10"] == pytest.approx(want["test/hr@10"])
        assert g.loc[0, "test/ndcg@20"] == pytest.approx(want["test/ndcg@20"])
    exp = group_metrics(table, ["hr@10"], edges=(7, 10), ties="expected").loc[0, "hr@10"]
    pes = group_metrics(table, ["hr@10"], edges=(7, 10), ties="pessimistic").loc[0, "hr@10"]
    assert exp > pes  # the ties count for something under expected
