"""Items without text never pose as semantic neighbours and are never substituted.

A 60-user slice of the packaged sample whose items.tsv has title, brand and categories blanked for
every 10th item id (about 10% of the slice's items): the interim builder and the pipeline's
neighbours stage both leave those items (and units made only of them) out of every neighbour list,
point their own rows at themselves, warn with the count, and record the count in the manifest.
"""
from __future__ import annotations

import gzip
import logging
import zlib

import numpy as np
import pandas as pd
import pytest
import torch

from sracl_ray.config import load
from sracl_ray.data.dataset import textless_items
from sracl_ray.data.readers import SAMPLE_DIR, load_dataset
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.artifact import load_artifact
from sracl_ray.semantic.neighbours import textless_units
from sracl_ray.semantic.units import build_units, unit_histories

BLANK = ["title", "brand", "categories"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("textless_data")
    (d / "Beauty.txt").write_bytes((SAMPLE_DIR / "Beauty.txt").read_bytes())
    with gzip.open(SAMPLE_DIR / "items.tsv.gz", "rt") as f:
        items = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
    items.loc[items["item_id"].astype(int) % 10 == 0, BLANK] = ""
    items.to_csv(d / "items.tsv", sep="\t", index=False)
    return d


@pytest.fixture(scope="module")
def sliced(data_dir):
    cfg = load(None, [f"data.path={data_dir}", "data.format=paper", "data.max_users=60"])
    data = load_dataset(cfg.data)
    split = leave_one_out(data, cfg.data.max_len)
    return cfg, data, split


def _crc_encoder(texts):
    """Deterministic 24-d vectors per text.  Placeholders 'item N' are made near-identical, the
    worst case for the old behaviour (text-less items would all be each other's neighbours)."""
    out = []
    for t in texts:
        if t.startswith("item ") and t[5:].isdigit():
            v = np.ones(24) + 1e-3 * np.random.default_rng(int(t[5:])).normal(size=24)
        else:
            v = np.random.default_rng(zlib.crc32(t.encode())).normal(size=24)
        out.append(v)
    return np.asarray(out, np.float32)


def _assert_excluded(art, t_items, t_units, n_items):
    in_pool = np.ones(n_items + 1, bool)
    in_pool[[0, *t_items]] = False
    text_rows = np.flatnonzero(in_pool[1:]) + 1
    # no item with text has a text-less item (or the padding id) among its neighbours
    assert in_pool[art.item_nbrs[text_rows]].all()
    assert (art.item_nbrs[text_rows] != text_rows[:, None]).all()
    # a text-less item's own row is itself in every column, so substitution keeps it
    assert (art.item_nbrs[t_items] == t_items[:, None]).all()
    assert not art.item_nbrs[0].any()
    unit_ok = np.ones(len(art.unit_emb), bool)
    unit_ok[t_units] = False
    text_units = np.flatnonzero(unit_ok)
    assert unit_ok[art.unit_nbrs[text_units]].all()
    assert (art.unit_nbrs[t_units] == t_units[:, None]).all()
    # substitution with p = 1 replaces every item with text and keeps every text-less one
    from sracl_ray.models.sracl import substitute

    seq = torch.as_tensor(np.concatenate([t_items, text_rows[:20]]))[None]
    out = substitute(seq, torch.as_tensor(art.item_nbrs), 1.0, torch.Generator().manual_seed(0))[0].numpy()
    assert (out[:len(t_items)] == t_items).all()
    assert (out[len(t_items):] != text_rows[:20]).all() and in_pool[out[len(t_items):]].all()


def test_interim_excludes_textless_items(sliced, tmp_path, caplog):
    from sracl_ray.semantic.interim import build_interim

    _, data, split = sliced
    t_items = textless_items(data.items)
    assert 0.05 < len(t_items) / data.n_items < 0.2, len(t_items)
    with caplog.at_level(logging.WARNING):
        art = build_interim(data, split, tmp_path, max_k=10, encoder=_crc_encoder, progress=False)
    units = build_units(split, "prefix")
    t_units = textless_units(unit_histories(split, units), t_items, split.n_items)
    assert len(t_units) > 0  # some one-item prefixes start with a text-less item
    _assert_excluded(art, t_items, t_units, data.n_items)
    warning = [r.getMessage() for r in caplog.records if "have no text" in r.getMessage()]
    assert any(f"{len(t_items)} of {data.n_items} items have no text" in m and "excluded" in m for m in warning)
    m = load_artifact(tmp_path).manifest
    assert m["textless_items"] == {"count": len(t_items), "ids": t_items.tolist()}
    assert m["textless_units"]["count"] == len(t_units)


def test_interim_unit_means_ignore_textless_items(sliced):
    from sracl_ray.semantic.interim import unit_means

    _, data, split = sliced
    t_items = textless_items(data.items)
    rng = np.random.default_rng(0)
    emb = np.vstack([np.zeros((1, 8)), rng.normal(size=(data.n_items, 8))]).astype(np.float32)
    has_text = np.ones(data.n_items + 1, bool)
    has_text[[0, *t_items]] = False
    hist = np.array([[0, 0, t_items[0], 5 if has_text[5] else 1, 7 if has_text[7] else 2],
                     [0, 0, 0, t_items[0], t_items[1]]])
    got = unit_means(emb, hist, has_text)
    want0 = emb[hist[0, 3:]].mean(0)
    want1 = emb[[t_items[0], t_items[1]]].mean(0)
    np.testing.assert_allclose(got[0], want0 / np.linalg.norm(want0), rtol=1e-5)
    np.testing.assert_allclose(got[1], want1 / np.linalg.norm(want1), rtol=1e-5)


def test_pipeline_neighbours_stage_excludes_textless_items(sliced, tmp_path, caplog):
    """prepare -> (embeddings written by hand, as the embed stage would) -> neighbours."""
    from sracl_ray.config import load_all
    from sracl_ray.semantic.pipeline import _finish, load_prepared, neighbours, prepare

    cfg, data, split = sliced
    prepare(cfg, tmp_path / "prepared")
    pdata, psplit = load_prepared(tmp_path / "prepared")
    units = build_units(psplit, "prefix")
    rng = np.random.default_rng(1)
    item_emb = np.vstack([np.zeros((1, 16)), rng.normal(size=(psplit.n_items, 16))]).astype(np.float32)
    unit_emb = rng.normal(size=(len(units), 16)).astype(np.float32)
    emb_dir = tmp_path / "embeddings"
    emb_dir.mkdir()
    np.save(emb_dir / "item_emb.npy", item_emb)
    np.save(emb_dir / "unit_emb.npy", unit_emb)
    _finish(emb_dir, "embed", {"model": "test"}, {"summaries": "x"})
    _, pipe = load_all(None, ["neighbours.max_k=10"])
    with caplog.at_level(logging.WARNING):
        res = neighbours(tmp_path / "prepared", emb_dir, tmp_path / "artifact", "prefix", pipe, progress=False)
    t_items = textless_items(pdata.items)
    assert len(t_items) and f"{len(t_items)} items without text excluded" in res.detail
    assert any("have no text" in r.getMessage() for r in caplog.records)
    art = load_artifact(tmp_path / "artifact")
    t_units = textless_units(unit_histories(psplit, units), t_items, psplit.n_items)
    _assert_excluded(art, t_items, t_units, psplit.n_items)
    assert art.manifest["textless_items"]["count"] == len(t_items)


def test_pipeline_neighbours_stage_refuses_nan_embeddings(sliced, tmp_path):
    from sracl_ray.config import load_all
    from sracl_ray.semantic.artifact import ArtifactError
    from sracl_ray.semantic.pipeline import _finish, load_prepared, neighbours, prepare

    cfg, _, _ = sliced
    prepare(cfg, tmp_path / "prepared")
    _, psplit = load_prepared(tmp_path / "prepared")
    n_units = len(build_units(psplit, "prefix"))
    emb_dir = tmp_path / "embeddings"
    emb_dir.mkdir()
    item_emb = np.vstack([np.zeros((1, 4)), np.ones((psplit.n_items, 4))]).astype(np.float32)
    unit_emb = np.ones((n_units, 4), np.float32)
    unit_emb[3, 2] = np.nan
    np.save(emb_dir / "item_emb.npy", item_emb)
    np.save(emb_dir / "unit_emb.npy", unit_emb)
    _finish(emb_dir, "embed", {"model": "test"}, {"summaries": "x"})
    _, pipe = load_all(None, [])
    with pytest.raises(ArtifactError, match=r"unit_emb\.npy: 1 of \d+ rows hold NaN or inf"):
        neighbours(tmp_path / "prepared", emb_dir, tmp_path / "artifact", "prefix", pipe, progress=False)
    assert not (tmp_path / "artifact").exists()


def test_too_little_text_is_an_error():
    from sracl_ray.semantic.artifact import ArtifactError
    from sracl_ray.semantic.neighbours import semantic_neighbours

    emb = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    with pytest.raises(ArtifactError, match="too little text"):
        semantic_neighbours(emb, emb, np.array([1, 2, 3, 4]), np.zeros(0, np.int64), 5)
