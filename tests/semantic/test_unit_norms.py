"""The interim artifact's unit_norm.npy: the norm of each unit's raw mean of unit-length item vectors.

semantic.normalize=false feeds the L_CS head unit_emb x unit_norm (docs/FIDELITY.md); for the
interim artifact that product is the plain mean of the unit's items with text (all its items when
none has), before the renormalisation that unit_emb holds.  Checked against a per-unit loop, with
a fake encoder whose outputs are not unit length and a slice in which some items have no text.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import InteractionData, textless_items
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.artifact import load_artifact
from sracl_ray.semantic.interim import TEXT_COLUMNS, build_interim, full_items, item_texts
from sracl_ray.semantic.units import build_units, unit_histories


def fake_encoder(texts):
    """Deterministic 16-d vectors of varied norms (not unit length, as raw encoder outputs)."""
    return np.asarray([np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) * (1 + len(t) % 5)
                       for t in texts], np.float32)


@pytest.fixture(scope="module")
def interim(tmp_path_factory):
    data = load_dataset(DataConfig(max_users=25))
    items = data.items.copy()
    items.loc[items["item"] % 7 == 0, [c for c in TEXT_COLUMNS if c in items.columns]] = ""  # some text-less
    data = InteractionData(data.name, data.domain, data.interactions, items)
    split = leave_one_out(data, 20)
    out = tmp_path_factory.mktemp("interim")
    art = build_interim(data, split, out, max_k=10, encoder=fake_encoder, progress=False)
    return data, split, out, art


def test_interim_unit_norm_is_the_norm_of_the_raw_item_mean(interim):
    data, split, out, art = interim
    items = full_items(data.items, split.n_items)
    vecs = fake_encoder(item_texts(items))
    unit_vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)  # [n_items, D], row i-1 = item i
    textless = set(textless_items(items, TEXT_COLUMNS).tolist())
    assert textless  # the slice exercises the with-text mean
    hist = unit_histories(split, build_units(split, "prefix"))
    raw = []
    for row in hist:
        ids = [int(i) for i in row if i > 0]
        with_text = [i for i in ids if i not in textless] or ids
        raw.append(np.mean([unit_vecs[i - 1] for i in with_text], axis=0))
    raw = np.asarray(raw)  # [U, D]
    want = np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(art.unit_norm, want, rtol=1e-5)
    loaded = load_artifact(out)
    np.testing.assert_allclose(loaded.unit_norm, want, rtol=1e-5)
    np.testing.assert_allclose(loaded.unit_emb * loaded.unit_norm[:, None], raw, atol=1e-5)
    counts = np.array([len({int(i) for i in row if i > 0 and i not in textless}) for row in hist])  # distinct
    np.testing.assert_allclose(loaded.unit_norm[counts == 1], 1, rtol=1e-5)  # one item: its unit vector
    assert (loaded.unit_norm[counts > 1] < 1 - 1e-3).all()  # several different items: a shorter mean
