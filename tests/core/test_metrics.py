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
