"""SRA-CL as a plug-in on any backbone: L_CS (learnable synthesis) and L_IS (semantic substitution).

L_CS: the k semantic neighbour units of a sample are encoded by the same backbone (gradients
flow); p = softmax_k(LeakyReLU_0.2(a^T [W h~_u || W h~_u'])), W: D -> H (xavier-uniform, gain
1.414), dropout on p in training; h+ = sum_k p h_u'.  Two forms (cl.cs_form, docs/FIDELITY.md):
"release" = 2N NT-Xent over the pairs (h_u, h+), as the authors' code computes it; "paper" =
Eq. 10, InfoNCE of h_u against h+ with the other rows' h+ as negatives.  "unlearnable" replaces p
with a uniformly random one-hot pick.
L_IS: two views of the sequence, each non-padding item replaced with probability `substitute_prob`
by a uniformly drawn one of its k item neighbours; NT-Xent over the 2N views.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sracl_ray.config import CLConfig, loss_weights  # noqa: F401 (re-exported)
from sracl_ray.models.losses import info_nce, nt_xent


class SemanticSynthesis(nn.Module):
    """Attention over semantic neighbours: the adapter is sized from the artifact's width D."""

    def __init__(self, sem_dim: int, hidden: int, p_dropout: float = 0.5):
        super().__init__()
        self.W = nn.Linear(sem_dim, hidden, bias=False)
        self.a = nn.Parameter(torch.empty(2 * hidden, 1))
        self.drop = nn.Dropout(p_dropout)
        nn.init.xavier_uniform_(self.W.weight, gain=1.414)
        nn.init.xavier_uniform_(self.a, gain=1.414)

    def weights(self, sem_u: torch.Tensor, sem_nb: torch.Tensor) -> torch.Tensor:
        """sem_u [B, D], sem_nb [B, k, D] -> p [B, k] (softmax over k, then dropout in training)."""
        hidden = self.W.out_features
        wu = self.W(sem_u) @ self.a[:hidden]  # [B, 1]
        wn = (self.W(sem_nb) @ self.a[hidden:]).squeeze(-1)  # [B, k]
        p = torch.softmax(F.leaky_relu(wu + wn, 0.2), dim=-1)
        return self.drop(p)


CS_FORMS = ("release", "paper")


def cs_loss(h: torch.Tensor, h_nb: torch.Tensor, p: torch.Tensor, tau: float, form: str = "release") -> torch.Tensor:
    """L_CS: h [B, H] anchors, h_nb [B, k, H], p [B, k].

    form "release": NT-Xent over the 2N rows [h; h+] (each row's partner positive, the other 2N-2
    negatives: the release's `TransRec.calculate_user_cl_loss` with `utils.info_nce`);
    form "paper": Eq. 10 (row i's positive h+_i, the other rows' h+ its negatives).
    """
    h_pos = (p.unsqueeze(-1) * h_nb).sum(1)  # [B, H]
    if form == "release":
        return nt_xent(h, h_pos, tau)
    if form == "paper":
        return info_nce(h, h_pos, tau)
    raise ValueError(f"cl.cs_form must be one of {CS_FORMS}, got {form!r}")


def is_loss(h1: torch.Tensor, h2: torch.Tensor, tau: float) -> torch.Tensor:
    """L_IS: NT-Xent between the two substituted views."""
    return nt_xent(h1, h2, tau)


def substitute(seq: torch.Tensor, item_nbrs: torch.Tensor, prob: float, gen: torch.Generator | None = None
               ) -> torch.Tensor:
    """Replace each non-padding item w.p. `prob` by a uniform pick of its k neighbours. [B, L]."""
    k = item_nbrs.shape[1]
    hit = (torch.rand(seq.shape, device=seq.device, generator=gen) < prob) & (seq > 0)
    pick = torch.randint(0, k, seq.shape, device=seq.device, generator=gen)
    return torch.where(hit, item_nbrs[seq, pick], seq)
