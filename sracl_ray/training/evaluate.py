"""Full-ranking leave-one-out evaluation: HR, NDCG and MRR at 5/10/20, honest about ties.

For each user the target is compared with every candidate item (all items but padding, and with
history masking all but the user's seen items; the target always stays):
  greater = candidates scored strictly above the target
  ties    = other candidates scored exactly equal to the target
A non-finite score (NaN, +inf, -inf) ranks last: such candidates never beat a finite target, and
a target whose own score is not finite ranks below every finite candidate, tied with the other
non-finite ones.  So a model that outputs NaN or a constant cannot score well by accident.

The metrics' credit and the two tie policies (`eval.ties`: pessimistic, the default, counts every
tie against the target; expected is the exact mean under uniform tie-breaking) are sracl_ray/metrics.py's.
A constant-score model over I items thus gets HR@10 = 0 (pessimistic) or exactly 10 / I (expected).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sracl_ray import metrics as M
from sracl_ray.errors import UserError
from sracl_ray.models.base import SeqRecModel

KS = M.KS
TIE_POLICIES = M.TIE_POLICIES


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


def per_user(ranks: Ranks | np.ndarray, metric: str, k: int, ties: str = "pessimistic") -> np.ndarray:
    """[U] each user's value of metric@k (a plain array of ranks means ranks without ties); the credit
    and the tie policies are sracl_ray/metrics.py's."""
    if not isinstance(ranks, Ranks):
        ranks = Ranks(np.asarray(ranks, np.int64), np.zeros(len(ranks), np.int64))
    return M.per_user(ranks.greater, ranks.ties, metric, k, ties)


def metrics_from_ranks(ranks: Ranks | np.ndarray, prefix: str, ks=KS, ties: str = "pessimistic") -> dict[str, float]:
    """{prefix/hr@k, prefix/ndcg@k, prefix/mrr@k} averaged over users."""
    if len(ranks) == 0:
        raise UserError(f"no users to evaluate on the {prefix} split (empty input)")
    return {f"{prefix}/{m}@{k}": float(per_user(ranks, m, k, ties).mean()) for k in ks for m in M.NAMES}
