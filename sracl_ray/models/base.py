"""The contract every backbone honours (RecBole vocabulary).

- `encode(item_seq) -> [B, H]`: item_seq [B, l] int64, left-padded with 0, is the rightmost `l`
  positions of a `max_len` window (so a trimmed batch keeps every token's position id).
- `full_sort_predict(item_seq) -> [B, n_items + 1]`: scores over all items; column 0 (padding) -inf.
- `calculate_loss(item_seq, target) -> scalar`: the backbone's own next-item loss (full softmax CE;
  `exclude_padding` drops column 0 from the softmax, as the authors' release does).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeqRecModel(nn.Module):
    def __init__(self, n_items: int, max_len: int, hidden: int, init_std: float = 0.02):
        super().__init__()
        self.n_items, self.max_len, self.hidden, self.init_std = n_items, max_len, hidden, init_std
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)

    def init_weights(self) -> None:
        """Linear/Embedding N(0, init_std), biases 0, LayerNorm (1, 0): the authors' init."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.init_std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:  # [B, l] -> [B, H]
        raise NotImplementedError

    def scores(self, h: torch.Tensor) -> torch.Tensor:  # [B, H] -> [B, I+1]
        return h @ self.item_emb.weight.T

    def rec_loss(self, h: torch.Tensor, target: torch.Tensor, exclude_padding: bool = False) -> torch.Tensor:
        """Cross-entropy of h M^T over all items (no negative sampling).

        exclude_padding: the softmax runs over items 1..n only (train.ce_padding=exclude, the
        release's `TransRec.calculate_loss`); otherwise over 0..n, padding being one more negative.
        """
        if exclude_padding:
            return F.cross_entropy(h @ self.item_emb.weight[1:].T, target - 1)  # [B, I]
        return F.cross_entropy(self.scores(h), target)

    def calculate_loss(self, item_seq: torch.Tensor, target: torch.Tensor, exclude_padding: bool = False
                       ) -> torch.Tensor:
        return self.rec_loss(self.encode(item_seq), target, exclude_padding)

    def full_sort_predict(self, item_seq: torch.Tensor) -> torch.Tensor:
        s = self.scores(self.encode(item_seq))
        s[:, 0] = -torch.inf
        return s
