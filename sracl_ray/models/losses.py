"""Contrastive losses shared by DuoRec and SRA-CL (dot-product similarity / temperature)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Row i's positive is positive[i]; the other rows' positives are its negatives. [B, H] x2."""
    logits = anchor @ positive.T / tau  # [B, B]
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """SimCLR NT-Xent over 2N views: each view's partner is positive, the other 2N-2 negatives."""
    n = len(z1)
    z = torch.cat([z1, z2])  # [2N, H]
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -torch.inf)
    labels = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(n, device=z.device)])
    return F.cross_entropy(sim, labels)
