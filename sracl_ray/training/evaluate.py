"""Full-ranking leave-one-out evaluation: HR, NDCG and MRR at 5/10/20."""
from __future__ import annotations

import numpy as np
import torch

from sracl_ray.models.base import SeqRecModel

KS = (5, 10, 20)


@torch.no_grad()
def rank_targets(model: SeqRecModel, hist: torch.Tensor, target: torch.Tensor, seen: torch.Tensor | None = None,
                 batch_size: int = 1024) -> np.ndarray:
    """0-based rank of each target among all items (ties counted in the target's favour).

    With `seen` ([U, S] item ids, 0-padded) those items are excluded from the ranking, except the
    target itself (history masking, off by default as in the paper's release).
    """
    was_training = model.training
    model.eval()
    ranks = []
    for s in range(0, len(hist), batch_size):
        scores = model.full_sort_predict(hist[s:s + batch_size])  # [B, I+1]
        tgt = target[s:s + batch_size]
        tgt_score = scores.gather(1, tgt[:, None])  # [B, 1]
        if seen is not None:
            scores = scores.scatter(1, seen[s:s + batch_size], -torch.inf)
        ranks.append((scores > tgt_score).sum(1))
    model.train(was_training)
    return torch.cat(ranks).cpu().numpy().astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, prefix: str, ks=KS) -> dict[str, float]:
    """{prefix/hr@k, prefix/ndcg@k, prefix/mrr@k} averaged over users."""
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"{prefix}/hr@{k}"] = float(hit.mean())
        out[f"{prefix}/ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"{prefix}/mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out
