"""DuoRec (Qiu et al. 2022): SASRec plus contrastive regularisation.

Its positive pair is an unsupervised dropout view of the sequence (a second forward pass) and a
supervised view: another training sequence with the same target item, drawn uniformly among the
others (the sequence itself only when it is the target's only one), as DuoRec's own
`SequentialDataLoader.duorec_aug` does (training/step.py same_target_partner).  NT-Xent over the
2N views with in-batch negatives, weighted by `duorec_lambda` (DuoRec's `us_x` setting).
"""
from __future__ import annotations

import torch

from sracl_ray.models.losses import nt_xent
from sracl_ray.models.sasrec import SASRec


class DuoRec(SASRec):
    needs_same_target = True

    def __init__(self, *args, duorec_lambda: float = 0.1, duorec_tau: float = 1.0, **kw):
        super().__init__(*args, **kw)
        self.duorec_lambda, self.duorec_tau = duorec_lambda, duorec_tau

    def aux_loss(self, h_dropout: torch.Tensor, h_same_target: torch.Tensor) -> torch.Tensor:
        """lambda * NT-Xent(unsupervised dropout view, supervised same-target view)."""
        return self.duorec_lambda * nt_xent(h_dropout, h_same_target, self.duorec_tau)
