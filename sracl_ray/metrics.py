"""The one description of the ranking metrics: names, cutoffs, per-rank credit, tie policies and
direction.  Evaluation (training/evaluate.py), the config's metric keys, the results store, the
per-user tests (analysis/significance.py), the sparsity figure and the tables all read it from here.

A metric key is ``<split>/<name>@<k>`` (``test/ndcg@20``).  Ranks are 0-based full-ranking ranks,
split into ``greater`` (candidates scored strictly above the target) and ``ties`` (other candidates
scored exactly like it).  Credit of rank r below k: hr 1, ndcg 1/log2(r + 2), mrr 1/(r + 1); 0 from k on.

Tie policies (``eval.ties``):
  pessimistic  every tied candidate ranks above the target: rank = greater + ties (default)
  expected     the exact expectation when ties are broken uniformly at random: the rank is uniform
               on {greater, ..., greater + ties}, computed in closed form.

Adding a metric: a branch in ``credit`` (and its name in NAMES), with a test in tests/core/test_metrics.py;
every reader above picks it up.  Depends on numpy only (config.py imports it).
"""
from __future__ import annotations

import re

import numpy as np

NAMES = ("hr", "ndcg", "mrr")  # every name the engine reports, at every cutoff in KS
KS = (5, 10, 20)
TIE_POLICIES = ("pessimistic", "expected")
SPLITS = ("valid", "test")  # the splits with per-user ranks (ranks.parquet: rank_<split>, ties_<split>)
_KEY = re.compile(r"^(?:(train|valid|test)/)?([a-z_]+)@(\d+)$")


def credit(name: str, k: int) -> np.ndarray:
    """[k] credit of ranks 0..k-1 for metric ``name`` (0 beyond k)."""
    r = np.arange(k, dtype=np.float64)
    if name == "hr":
        return np.ones(k)
    if name == "ndcg":
        return 1.0 / np.log2(r + 2.0)
    if name == "mrr":
        return 1.0 / (r + 1.0)
    raise ValueError(f"unknown metric {name!r} (one of {', '.join(NAMES)})")


def check_policy(ties: str) -> str:
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    return ties


def per_user(greater: np.ndarray, ties: np.ndarray, name: str, k: int, policy: str = "pessimistic") -> np.ndarray:
    """[U] each user's value of name@k from its (greater, ties) counts under a tie policy."""
    check_policy(policy)
    greater = np.asarray(greater, np.int64)
    ties = np.asarray(ties, np.int64)
    w = credit(name, k)
    if policy == "pessimistic":
        r = greater + ties
        return np.where(r < k, w[np.minimum(r, k - 1)], 0.0)
    cum = np.concatenate([[0.0], np.cumsum(w)])  # cum[j] = credit of ranks 0..j-1
    lo = np.minimum(greater, k)
    hi = np.minimum(greater + ties + 1, k)
    return (cum[hi] - cum[lo]) / (ties + 1.0)


def key(split: str, name: str, k: int) -> str:
    return f"{split}/{name}@{k}"


def keys(split: str = "valid") -> list[str]:
    """Every metric key the engine reports for a split, e.g. valid/ndcg@20 (names within cutoffs)."""
    return [key(split, m, k) for m in NAMES for k in KS]


def parse(metric: str) -> tuple[str | None, str, int]:
    """``test/hr@20`` -> ("test", "hr", 20); ``hr@20`` -> (None, "hr", 20); ValueError otherwise."""
    m = _KEY.match(str(metric).strip().lower())
    if not m or m.group(2) not in NAMES:
        raise ValueError(f"unknown rank metric {metric!r} (expected [valid/|test/]<{'|'.join(NAMES)}>@k, "
                         f"e.g. test/ndcg@20)")
    return m.group(1), m.group(2), int(m.group(3))


def higher_is_better(metric: str) -> bool:
    """True for the ranking metrics (and any other score); False for a loss (``train/loss``)."""
    try:
        parse(metric)
        return True
    except ValueError:
        return "loss" not in str(metric).lower()


def from_ranks_table(ranks, split: str, metric: str, policy: str = "pessimistic") -> np.ndarray:
    """[U] per-user values of metric from a ranks.parquet table (rank_<split> is the pessimistic rank,
    ties_<split> the tied count; a table without ties_<split> holds ranks without ties)."""
    _, name, k = parse(metric)
    rank = np.asarray(ranks[f"rank_{split}"], np.int64)
    col = f"ties_{split}"
    tied = np.asarray(ranks[col], np.int64) if col in getattr(ranks, "columns", ()) else np.zeros_like(rank)
    return per_user(rank - tied, tied, name, k, policy)
