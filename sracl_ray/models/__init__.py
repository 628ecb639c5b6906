"""Backbones, registered explicitly by name."""
from __future__ import annotations

from sracl_ray.config import ModelConfig
from sracl_ray.models.base import SeqRecModel
from sracl_ray.models.duorec import DuoRec
from sracl_ray.models.gru4rec import GRU4Rec
from sracl_ray.models.sasrec import SASRec

REGISTRY: dict[str, type[SeqRecModel]] = {"sasrec": SASRec, "gru4rec": GRU4Rec, "duorec": DuoRec}


def build_model(cfg: ModelConfig, n_items: int, max_len: int) -> SeqRecModel:
    """Instantiate the configured backbone."""
    kw = dict(hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
              attn_dropout=cfg.attn_dropout, ln_eps=cfg.ln_eps, init_std=cfg.init_std)
    if cfg.backbone == "duorec":
        kw.update(duorec_lambda=cfg.duorec_lambda, duorec_tau=cfg.duorec_tau)
    if cfg.backbone == "gru4rec":
        kw["layers"] = 1
    return REGISTRY[cfg.backbone](n_items, max_len, **kw)
