"""The interim semantic artifact with the real packaged MiniLM (no download), and its format."""
import numpy as np
import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.artifact import ArtifactError, load_artifact
from sracl_ray.semantic.interim import build_interim, item_texts
from sracl_ray.semantic.units import build_units


def test_interim_artifact_with_real_minilm(tmp_path):
    data = load_dataset(DataConfig(max_users=25))
    split = leave_one_out(data, 20)
    art = build_interim(data, split, tmp_path, granularity="prefix", max_k=10)
    n_units = len(build_units(split, "prefix"))
    assert art.item_emb.shape == (data.n_items + 1, 384) and art.unit_emb.shape == (n_units, 384)
    assert np.allclose(np.linalg.norm(art.item_emb[1:], axis=1), 1, atol=1e-4)
    assert not art.item_emb[0].any()
    # self is never its own neighbour; item neighbours are real ids
    assert (art.item_nbrs[1:] != np.arange(1, data.n_items + 1)[:, None]).all()
    assert (art.unit_nbrs != np.arange(n_units)[:, None]).all()
    assert art.item_nbrs[1:].min() >= 1
    # top-1 item neighbour is the brute-force most similar other item
    sim = art.item_emb[1:] @ art.item_emb[1:].T
    np.fill_diagonal(sim, -np.inf)
    best = sim.argmax(1) + 1
    assert (sim.max(1) == sim[np.arange(len(sim)), art.item_nbrs[1:, 0] - 1]).all() or (best == art.item_nbrs[1:, 0]).mean() > 0.99
    loaded = load_artifact(tmp_path)
    assert np.array_equal(loaded.unit_nbrs, art.unit_nbrs)
    loaded.check(data.n_items, n_units, 10)
    with pytest.raises(ArtifactError, match="cl.k=11"):
        loaded.check(data.n_items, n_units, 11)


def test_item_texts_use_title_brand_categories():
    data = load_dataset(DataConfig(max_users=2))
    text = item_texts(data.items)[0]
    assert data.items.iloc[0]["title"] in text and "Beauty" in text


def test_half_written_artifact_is_not_loaded(tmp_path):
    (tmp_path / "item_emb.npy").write_bytes(b"partial")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path)
