"""GRU4Rec (Hidasi et al.) for next-item prediction with full softmax.

Only the real items are fed to the GRU (packed sequences), so the result does not depend on how
much left padding a batch carries.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from sracl_ray.models.base import SeqRecModel


class GRU4Rec(SeqRecModel):
    def __init__(self, n_items: int, max_len: int, hidden: int = 64, layers: int = 1, dropout: float = 0.5,
                 init_std: float = 0.02, **_: object):
        super().__init__(n_items, max_len, hidden, init_std)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=1, batch_first=True)
        self.dense = nn.Linear(hidden, hidden)
        self.init_weights()

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:  # [B, l] -> [B, H]
        b, l = item_seq.shape
        n = (item_seq > 0).sum(1).clamp(min=1)  # [B]
        # Right-align: row r's real items item_seq[r, l-n:] move to positions 0..n-1.
        idx = (torch.arange(l, device=item_seq.device)[None, :] + (l - n)[:, None]).clamp(max=l - 1)
        right = torch.gather(item_seq, 1, idx)
        x = self.drop(self.item_emb(right))
        packed = pack_padded_sequence(x, n.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)
        return self.dense(h_n[-1])
