"""Full-ranking leave-one-out evaluation: HR, NDCG and MRR at 5/10/20, honest about ties.

For each user the target is compared with every candidate item (all items but padding, and with
history masking all but the user's seen items; the target always stays):
  greater = candidates scored strictly above the target
  ties    = other candidates scored exactly equal to the target
A non-finite score (NaN, +inf, -inf) ranks last: such candidates never beat a finite target, and
a target whose own score is not finite ranks below every finite candidate, tied with the other
non-finite ones.  So a model that outputs NaN or a constant cannot score well by accident.

Two tie policies (`eval.ties`):
  pessimistic  every tied candidate ranks above the target: rank = greater + ties (default)
  expected     the exact expectation of each metric when ties are broken uniformly at random:
               the rank is uniform on {greater, ..., greater + ties}, computed in closed form.
A constant-score model over I items thus gets HR@10 = 0 (pessimistic) or exactly 10 / I (expected).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sracl_ray.errors import UserError
from sracl_ray.models.base import SeqRecModel

KS = (5, 10, 20)
TIE_POLICIES = ("pessimistic", "expected")


@dataclass(frozen=True)
class Ranks:
    greater: np.ndarray  # [U] int64: candidates scored strictly above the target
    ties: np.ndarray  # [U] int64: other candidates scored exactly like the target

    @property
    def pessimistic(self) -> np.ndarray:
        """[U] 0-based rank when every tie goes against the target."""
        return self.greater + self.ties

    def __len__(self) -> int:
        return len(self.greater)


def compare_to_target(scores: torch.Tensor, target: torch.Tensor, exclude: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(greater, ties) per row. scores [B, C], target [B], exclude [B, C] bool (True = not a candidate)."""
    rows = torch.arange(len(target), device=scores.device)
    finite = torch.isfinite(scores)
    cand = ~exclude
    cand[rows, target] = False  # the target is not its own competitor
    t = scores[rows, target][:, None]  # [B, 1]
    t_finite = torch.isfinite(t)  # [B, 1]
    # finite target: count finite candidates above / equal; non-finite candidates rank last
    above = cand & finite & (scores > t)
    equal = cand & finite & (scores == t)
    # non-finite target: every finite candidate is above it, the other non-finite ones tie with it
    greater = torch.where(t_finite[:, 0], above.sum(1), (cand & finite).sum(1))
    ties = torch.where(t_finite[:, 0], equal.sum(1), (cand & ~finite).sum(1))
    return greater, ties


@torch.no_grad()
def rank_targets(model: SeqRecModel, hist: torch.Tensor, target: torch.Tensor, seen: torch.Tensor | None = None,
                 batch_size: int = 1024) -> Ranks:
    """Rank each target among all items (see the module docstring for ties and non-finite scores).

    With `seen` ([U, S] item ids, 0-padded) those items are excluded from the ranking, except the
    target itself (history masking, off by default as in the paper's release).
    """
    was_training = model.training
    model.eval()
    greater, ties = [], []
    for s in range(0, len(hist), batch_size):
        scores = model.full_sort_predict(hist[s:s + batch_size]).float()  # [B, I+1]
        tgt = target[s:s + batch_size]
        exclude = torch.zeros_like(scores, dtype=torch.bool)
        exclude[:, 0] = True  # padding is never a candidate
        if seen is not None:
            exclude.scatter_(1, seen[s:s + batch_size], True)
            exclude[torch.arange(len(tgt), device=tgt.device), tgt] = False
        g, e = compare_to_target(scores, tgt, exclude)
        greater.append(g)
        ties.append(e)
    model.train(was_training)
    as_np = lambda parts: torch.cat(parts).cpu().numpy().astype(np.int64) if parts else np.zeros(0, np.int64)
    return Ranks(as_np(greater), as_np(ties))


def _weights(metric: str, k: int) -> np.ndarray:
    """Per-rank credit at ranks 0..k-1 (0 beyond): hr 1, ndcg 1/log2(r+2), mrr 1/(r+1)."""
    r = np.arange(k, dtype=np.float64)
    if metric == "hr":
        return np.ones(k)
    if metric == "ndcg":
        return 1.0 / np.log2(r + 2.0)
    if metric == "mrr":
        return 1.0 / (r + 1.0)
    raise ValueError(f"unknown metric {metric!r}")


def per_user(ranks: Ranks | np.ndarray, metric: str, k: int, ties: str = "pessimistic") -> np.ndarray:
    """[U] each user's value of metric@k (a plain array of ranks means ranks without ties)."""
    if not isinstance(ranks, Ranks):
        ranks = Ranks(np.asarray(ranks, np.int64), np.zeros(len(ranks), np.int64))
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    w = _weights(metric, k)
    cum = np.concatenate([[0.0], np.cumsum(w)])  # cum[j] = credit of ranks 0..j-1
    if ties == "pessimistic":
        r = ranks.pessimistic
        return np.where(r < k, w[np.minimum(r, k - 1)], 0.0)
    lo = np.minimum(ranks.greater, k)  # the rank is uniform on [greater, greater + ties]
    hi = np.minimum(ranks.greater + ranks.ties + 1, k)
    return (cum[hi] - cum[lo]) / (ranks.ties + 1.0)


def metrics_from_ranks(ranks: Ranks | np.ndarray, prefix: str, ks=KS, ties: str = "pessimistic") -> dict[str, float]:
    """{prefix/hr@k, prefix/ndcg@k, prefix/mrr@k} averaged over users."""
    if len(ranks) == 0:
        raise UserError(f"no users to evaluate on the {prefix} split (empty input)")
    return {f"{prefix}/{m}@{k}": float(per_user(ranks, m, k, ties).mean()) for k in ks for m in ("hr", "ndcg", "mrr")}
