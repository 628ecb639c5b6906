"""Sparsity groups (Fig. 7): bin edges, rank metrics, per-seed summary from the ranks files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from analysis.sparsity import (
    assign_groups, bin_labels, group_metrics, plot_sparsity, rank_metric, sparsity_summary,
)


def test_paper_edges_put_7_and_10_in_the_middle_group_and_11_above():
    assert assign_groups([1, 6, 7, 8, 10, 11, 50]).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert bin_labels() == ["<7", "7-10", ">10"]
    assert assign_groups([6.99, 10.0, 10.01]).tolist() == [0, 1, 2]


def test_more_edges_follow_the_documented_semantics():
    edges = (5, 10, 20)
    assert assign_groups([4, 5, 10, 11, 20, 21], edges).tolist() == [0, 1, 1, 2, 2, 3]
    assert bin_labels(edges) == ["<5", "5-10", "(10,20]", ">20"]
    assert assign_groups([6, 7], (7,)).tolist() == [0, 1] and bin_labels((7,)) == ["<7", ">=7"]
    with pytest.raises(ValueError, match="increasing"):
        assign_groups([1], (10, 7))


def test_rank_metrics_by_hand():
    ranks = np.array([0, 1, 5, 19, 20, 100])
    assert rank_metric(ranks, "hr@20") == pytest.approx(4 / 6)
    assert rank_metric(ranks, "test/hr@5") == pytest.approx(2 / 6)
    ndcg = (1 + 1 / math.log2(3) + 1 / math.log2(7) + 1 / math.log2(21)) / 6
    assert rank_metric(ranks, "ndcg@20") == pytest.approx(ndcg)
    assert rank_metric(ranks, "mrr@20") == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 20) / 6)
    assert math.isnan(rank_metric(np.array([]), "hr@20"))
    with pytest.raises(ValueError, match="precision@10"):
        rank_metric(ranks, "precision@10")


def test_group_metrics_and_history_column():
    ranks = pd.DataFrame({"user": [1, 2, 3, 4], "rank_valid": [0, 0, 0, 0],
                          "rank_test": [0, 30, 3, 25], "train_len": [6, 7, 10, 11],
                          "test_input_len": [7, 8, 11, 12]})
    g = group_metrics(ranks, ["hr@20"])
    assert g["label"].tolist() == ["<7", "7-10", ">10"] and g["n_users"].tolist() == [1, 2, 1]
    assert g["hr@20"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    g2 = group_metrics(ranks, ["hr@20"], history="test_input_len")
    assert g2["n_users"].tolist() == [0, 2, 2] and math.isnan(g2["hr@20"].iloc[0])
    gv = group_metrics(ranks, ["hr@20"], split="valid")
    assert gv["hr@20"].tolist() == pytest.approx([1.0, 1.0, 1.0])


def _brute_force(loaded, dataset, backbone, variant, metric_k=20):
    """Per-seed HR@20 per group, with explicit comparisons, then mean and sample std."""
    r = loaded[(loaded.dataset == dataset) & (loaded.backbone == backbone)
               & (loaded.variant == variant) & (loaded.ranks_path.notna())]
    assert len(r) == 3
    per_seed = []
    for path in r["ranks_path"]:
        ranks = pd.read_parquet(path)
        hits = {0: [], 1: [], 2: []}
        for length, rank in zip(ranks["train_len"], ranks["rank_test"]):
            g = 0 if length < 7 else (1 if length <= 10 else 2)
            hits[g].append(1.0 if rank < metric_k else 0.0)
        per_seed.append([sum(h) / len(h) for h in hits.values()])
    a = np.array(per_seed)
    return a.mean(axis=0), a.std(axis=0, ddof=1)


def test_summary_matches_brute_force(loaded):
    s = sparsity_summary(loaded, ["hr@20", "ndcg@20"])
    assert set(s["variant"]) == {"full", "no_cl"} and (s["n"] == 3).all()
    for b, v in [("sasrec", "full"), ("gru4rec", "no_cl")]:
        mean, std = _brute_force(loaded, "office", b, v)
        got = s[(s.dataset == "office") & (s.backbone == b) & (s.variant == v)
                & (s.metric == "hr@20")].sort_values("group")
        assert got["mean"].to_numpy() == pytest.approx(mean)
        assert got["std"].to_numpy() == pytest.approx(std)
        assert got["label"].tolist() == ["<7", "7-10", ">10"]


def test_missing_ranks_file_is_named(loaded):
    df = loaded.copy()
    df.loc[df.index[df.ranks_path.notna()][0], "ranks_path"] = "/nonexistent/ranks.parquet"
    tid = df.loc[df.ranks_path == "/nonexistent/ranks.parquet", "trial_id"].iloc[0]
    with pytest.raises(FileNotFoundError, match=f"{tid}.*nonexistent"):
        sparsity_summary(df)


def test_plot_sparsity_bar_heights_and_error_bars(loaded, tmp_path: Path):
    s = sparsity_summary(loaded, ["hr@20", "ndcg@20"])
    fig = plot_sparsity(s, tmp_path / "fig7.png")
    assert (tmp_path / "fig7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = next(a for a in fig.axes if a.get_title() == "beauty" and a.get_ylabel() == "HR@20")
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    assert list(bars) == ["GRU4Rec", "SASRec", "GRU4Rec+SRA-CL", "SASRec+SRA-CL"]
    mean, std = _brute_force(loaded, "beauty", "sasrec", "full")
    c = bars["SASRec+SRA-CL"]
    assert [p.get_height() for p in c.patches] == pytest.approx(mean)
    segs = c.errorbar.lines[2][0].get_segments()
    assert [s[1][1] - s[0][1] for s in segs] == pytest.approx(2 * std)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["<7", "7-10", ">10"]
