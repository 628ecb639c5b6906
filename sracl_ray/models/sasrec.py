"""SASRec (Kang & McAuley 2018) with the SRA-CL paper's settings: post-LN Transformer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sracl_ray.models.base import SeqRecModel


class Block(nn.Module):
    """Self-attention + feed-forward, each followed by dropout, residual and LayerNorm."""

    def __init__(self, hidden: int, heads: int, ff: int, dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.fc1 = nn.Linear(hidden, ff)
        self.fc2 = nn.Linear(ff, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x [B, l, H], mask [B, 1, l, l] -> [B, l, H], or [B, 1, H] for the last position only.

        With last_only, keys and values still come from every position but queries, the output
        projection and the feed-forward run for the last position alone: the same numbers for
        that position at a fraction of the cost (only h_u = H[:, -1] is used downstream).
        """
        b, l, h = x.shape
        d = h // self.heads
        if last_only:
            q = F.linear(x[:, -1:], self.qkv.weight[:h], self.qkv.bias[:h]).view(b, 1, 1, self.heads, d)
            kv = F.linear(x, self.qkv.weight[h:], self.qkv.bias[h:]).view(b, l, 2, self.heads, d)
            q, (k, v) = q.permute(2, 0, 3, 1, 4)[0], kv.permute(2, 0, 3, 1, 4)
            mask, x, l = mask[:, :, -1:], x[:, -1:], 1
        else:
            q, k, v = self.qkv(x).view(b, l, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = self.ln1(x + self.drop(self.proj(a.transpose(1, 2).reshape(b, l, h))))
        return self.ln2(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))


class SASRec(SeqRecModel):
    def __init__(self, n_items: int, max_len: int, hidden: int = 64, layers: int = 2, heads: int = 2,
                 ff: int = 256, dropout: float = 0.5, attn_dropout: float = 0.5, ln_eps: float = 1e-12,
                 init_std: float = 0.02, **_: object):
        super().__init__(n_items, max_len, hidden, init_std)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=ln_eps)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, ff, dropout, attn_dropout, ln_eps) for _ in range(layers))
        self.init_weights()

    def encode(self, item_seq: torch.Tensor) -> torch.Tensor:  # [B, l] -> [B, H]
        l = item_seq.shape[1]
        pos = torch.arange(self.max_len - l, self.max_len, device=item_seq.device)
        x = self.drop(self.ln(self.item_emb(item_seq) + self.pos_emb(pos)))  # [B, l, H]
        real = item_seq > 0
        causal = torch.ones(l, l, dtype=torch.bool, device=item_seq.device).tril()
        # Keys must be real items; a padding query may see itself so no row is all-masked (no NaN).
        mask = (causal & real[:, None, :]) | torch.eye(l, dtype=torch.bool, device=item_seq.device)
        mask = mask[:, None]  # [B, 1, l, l]
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=i == len(self.blocks) - 1)
        return x[:, -1]
