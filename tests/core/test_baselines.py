"""Rankings that learn nothing (training/baselines.py): popularity from training counts only,
ranked and tie-broken exactly like a model; random = the exact expectation of a random ranking."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sracl_ray.config import EvalConfig
from sracl_ray.data.dataset import InteractionData
from sracl_ray.data.split import leave_one_out
from sracl_ray.errors import UserError
from sracl_ray.training.baselines import baseline_metrics, read_baselines, training_counts, write_baselines


def toy_split():
    seqs = {1: [1, 2, 3, 4], 2: [1, 2, 5, 1], 3: [2, 1, 4, 2], 4: list(range(6, 31))}
    rows = [(u, i, n) for u, s in seqs.items() for n, i in enumerate(s)]
    inter = pd.DataFrame(rows, columns=["user", "item", "order"]).astype("int64")
    items = pd.DataFrame({"item": np.arange(1, 31, dtype=np.int64), "title": [f"t{i}" for i in range(1, 31)]})
    return leave_one_out(InteractionData("toy", "beauty", inter, items), 20)


def expected_by_hand(split, ties: str, k: int = 5) -> tuple[float, float]:
    """(HR@k, MRR@k) of the popularity ranking on the test split, computed independently."""
    counts = np.zeros(31)
    for s in split.train_seqs[1:]:
        for i in s:
            counts[i] += 1
    hr, mrr = [], []
    for t in split.test_target:
        others = np.delete(np.arange(1, 31), t - 1)
        greater, tied = int((counts[others] > counts[t]).sum()), int((counts[others] == counts[t]).sum())
        ranks = [greater + tied] if ties == "pessimistic" else list(range(greater, greater + tied + 1))
        hr.append(np.mean([r < k for r in ranks]))
        mrr.append(np.mean([1 / (r + 1) if r < k else 0 for r in ranks]))
    return float(np.mean(hr)), float(np.mean(mrr))


def test_popularity_counts_training_items_only():
    split = toy_split()
    counts = training_counts(split)
    assert counts[1] == 3 and counts[2] == 3  # u1, u2, u3 each trained on 1 and 2
    assert counts[3] == 0 and counts[5] == 0  # u1's valid item 3 and u2's valid item 5 never count
    assert counts[29] == 0 and counts[30] == 0  # u4's valid and test items
    assert counts[0] == 0 and counts.sum() == sum(len(s) for s in split.train_seqs)


@pytest.mark.parametrize("ties", ["pessimistic", "expected"])
def test_popularity_ranks_and_ties_like_a_model(ties):
    split = toy_split()
    got = baseline_metrics(split, EvalConfig(ties=ties))
    hr, mrr = expected_by_hand(split, ties)
    assert got["popularity"]["test/hr@5"] == pytest.approx(hr)
    assert got["popularity"]["test/mrr@5"] == pytest.approx(mrr)


def test_random_is_the_exact_expectation():
    split = toy_split()
    got = baseline_metrics(split, EvalConfig())["random"]
    n = split.n_items  # every item is a candidate (no history masking)
    assert got["test/hr@10"] == pytest.approx(10 / n)
    assert got["test/mrr@5"] == pytest.approx(sum(1 / (r + 1) for r in range(5)) / n)
    assert got["test/ndcg@20"] == pytest.approx(sum(1 / np.log2(r + 2) for r in range(20)) / n)


def test_history_masking_applies_to_the_baselines_too():
    split = toy_split()
    masked = baseline_metrics(split, EvalConfig(mask_history=True))["random"]["test/hr@5"]
    assert masked > baseline_metrics(split, EvalConfig())["random"]["test/hr@5"]  # fewer candidates


def test_baselines_file_round_trip_and_untrusted_content(tmp_path):
    rows = [{"baseline": "popularity", "dataset": "toy", "test/hr@10": 0.25},
            {"baseline": "random", "dataset": "toy", "test/hr@10": 0.1}]
    write_baselines(tmp_path, rows)
    assert read_baselines(tmp_path) == rows
    assert read_baselines(tmp_path / "nothing") == []
    for bad in ('[{"baseline": "oracle", "test/hr@10": 1}]', '[{"baseline": "random", "test/hr@10": 7}]',
                '{"baseline": "random"}', "not json", '[{"baseline": "random", "test/hr@10": NaN}]'):
        (tmp_path / "baselines.json").write_text(bad)
        with pytest.raises(UserError, match="baselines.json"):
            read_baselines(tmp_path)
    json.loads(json.dumps(rows))
