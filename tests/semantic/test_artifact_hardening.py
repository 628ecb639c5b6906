"""Loading a semantic artifact rejects every corruption a bad copy can hide, naming the file; long
phases show progress (rows/s, ETA) and say what they do."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from sracl_ray.data.dataset import from_sequences
from sracl_ray.data.split import leave_one_out
from sracl_ray.errors import UserError
from sracl_ray.manifest import read_manifest
from sracl_ray.semantic.artifact import ArtifactError, load_artifact
from sracl_ray.semantic.units import build_units


def _data():
    rng = np.random.default_rng(3)
    seqs = [list(rng.choice(np.arange(1, 41), size=rng.integers(4, 9), replace=False)) for _ in range(30)]
    data = from_sequences("tiny", "beauty", seqs)
    return data, leave_one_out(data, 8)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(artifact dir, data, split) of a small valid artifact."""
    from tests.conftest import fake_artifact

    data, split = _data()
    out = tmp_path_factory.mktemp("art")
    fake_artifact(data, split, out)
    return out, data, split


@pytest.fixture
def art(good, tmp_path):
    """A fresh copy of the good artifact to corrupt."""
    dst = tmp_path / "art"
    shutil.copytree(good[0], dst)
    return dst


def test_good_artifact_loads_and_fits(good):
    path, data, split = good
    a = load_artifact(path)
    a.check(data.n_items, len(build_units(split, "prefix")), 20, where=str(path))
    assert a.item_emb.dtype == np.float32 and a.item_nbrs.dtype == np.int64


def _truncate(path, keep=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


@pytest.mark.parametrize("name", ["item_emb", "unit_emb", "item_nbrs", "unit_nbrs"])
@pytest.mark.parametrize("keep", [0.02, 0.6])  # inside the header; inside the data
def test_truncated_npy_names_the_file(art, name, keep):
    _truncate(art / f"{name}.npy", keep)
    with pytest.raises(ArtifactError, match=rf"{name}\.npy: not a readable \.npy file"):
        load_artifact(art)


def test_pickled_npy_is_refused(art):
    np.save(art / "unit_nbrs.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match=r"unit_nbrs\.npy: not a readable"):
        load_artifact(art)


@pytest.mark.parametrize("name,arr,what", [
    ("item_nbrs", lambda a: a.astype(np.float32), "integers"),
    ("unit_emb", lambda a: (a * 100).astype(np.int64), "floats"),
    ("item_emb", lambda a: a.reshape(-1), "floats"),
])
def test_wrong_dtype_or_ndim(art, name, arr, what):
    np.save(art / f"{name}.npy", arr(np.load(art / f"{name}.npy")))
    with pytest.raises(ArtifactError, match=rf"{name}\.npy: expected a 2-d array of {what}"):
        load_artifact(art)


@pytest.mark.parametrize("name,value", [("unit_emb", np.nan), ("item_emb", np.inf), ("item_emb", -np.inf)])
def test_non_finite_embeddings_name_file_and_count(art, name, value):
    a = np.load(art / f"{name}.npy")
    a[[2, 5], 1] = value
    a[7, :] = value
    np.save(art / f"{name}.npy", a)
    with pytest.raises(ArtifactError, match=rf"{name}\.npy: 3 of {len(a)} rows hold NaN or inf \(first: row 2\)"):
        load_artifact(art)


def test_zero_rows_are_refused_but_the_padding_row(art):
    item = np.load(art / "item_emb.npy")
    assert not item[0].any()  # padding row 0 is zero and fine
    unit = np.load(art / "unit_emb.npy")
    unit[4] = 0
    np.save(art / "unit_emb.npy", unit)
    with pytest.raises(ArtifactError, match=r"unit_emb\.npy: 1 of \d+ rows are all zeros \(first: row 4\)"):
        load_artifact(art)
    unit[4] = 1
    np.save(art / "unit_emb.npy", unit)
    item[3] = 0
    np.save(art / "item_emb.npy", item)
    with pytest.raises(ArtifactError, match=r"item_emb\.npy: 1 of \d+ rows are all zeros \(first: row 3\)"):
        load_artifact(art)


def test_truncated_or_foreign_manifest(art):
    _truncate(art / "manifest.json")
    with pytest.raises(ArtifactError, match=r"manifest\.json: not a valid manifest \(truncated or corrupt JSON"):
        load_artifact(art)
    (art / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match=r"manifest\.json: not a valid manifest \(expected a JSON object"):
        load_artifact(art)
    (art / "manifest.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ArtifactError, match=r"manifest\.json"):
        load_artifact(art)
    (art / "manifest.json").write_text(json.dumps({"settings": {"granularity": "session"}}))
    with pytest.raises(ArtifactError, match=r"settings\.granularity must be prefix or user"):
        load_artifact(art)


def test_read_manifest_raises_a_user_error_naming_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text('{"stage": "prep')
    with pytest.raises(UserError, match=str(tmp_path / "manifest.json")):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path / "absent") is None


def test_truncated_units_parquet(art):
    _truncate(art / "units.parquet")
    with pytest.raises(ArtifactError, match=r"units\.parquet: not a readable Parquet file"):
        load_artifact(art)


def test_units_parquet_without_its_columns_or_rows(art):
    units = pd.read_parquet(art / "units.parquet")
    units.drop(columns=["key"]).to_parquet(art / "units.parquet")
    with pytest.raises(ArtifactError, match=r"units\.parquet: lacks the column\(s\) key"):
        load_artifact(art)
    units.iloc[:-1].to_parquet(art / "units.parquet")
    with pytest.raises(ArtifactError, match=r"units\.parquet: \d+ units, but unit_emb\.npy has"):
        load_artifact(art)


def test_neighbour_indices_out_of_range(art, good):
    nb = np.load(art / "unit_nbrs.npy")
    nb[3, 0] = len(nb)
    np.save(art / "unit_nbrs.npy", nb)
    with pytest.raises(ArtifactError, match=r"unit_nbrs\.npy: holds indices outside"):
        load_artifact(art)
    shutil.copy(good[0] / "unit_nbrs.npy", art / "unit_nbrs.npy")
    nb = np.load(art / "item_nbrs.npy")
    nb[3, 0] = 0  # padding id as a neighbour: in range of the file, not of the dataset
    np.save(art / "item_nbrs.npy", nb)
    _, data, split = good
    with pytest.raises(ArtifactError, match=r"item_nbrs\.npy: holds item ids outside \[1, "):
        load_artifact(art).check(data.n_items, len(build_units(split, "prefix")), 5)


def test_mismatched_rows_and_widths(art):
    np.save(art / "item_nbrs.npy", np.load(art / "item_nbrs.npy")[:-1])
    with pytest.raises(ArtifactError, match=r"item_nbrs\.npy: \d+ rows, but item_emb\.npy has"):
        load_artifact(art)


def test_path_missing_or_a_file(tmp_path):
    with pytest.raises(ArtifactError, match="no such semantic artifact directory"):
        load_artifact(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArtifactError, match="is a file, expected a semantic artifact directory"):
        load_artifact(tmp_path / "f")
    (tmp_path / "d").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path / "d")


def test_k_larger_than_stored(good):
    path, data, split = good
    with pytest.raises(ArtifactError, match="cl.k=21 is larger than the 20 neighbours stored"):
        load_artifact(path).check(data.n_items, len(build_units(split, "prefix")), 21, where=str(path))


# ---------------------------------------------------------------- progress and phase logs


def _hash_encoder(texts):
    """Deterministic 16-d vectors from the text (stands in for MiniLM)."""
    return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]).astype(np.float32)


def test_interim_build_shows_progress_and_logs_each_phase(tmp_path, capsys, caplog):
    from sracl_ray.semantic.interim import build_interim

    data, split = _data()
    with caplog.at_level(logging.INFO, logger="sracl_ray"):
        build_interim(data, split, tmp_path, max_k=5, encoder=_hash_encoder, progress=True)
    err = capsys.readouterr().err
    assert "embed items" in err and "item/s" in err  # tqdm: rate (and ETA) per item
    assert "top-5 (exact)" in err and "row/s" in err
    msgs = caplog.text
    assert f"embedding {data.n_items} item texts" in msgs
    assert "item neighbours: top-5 of 40 items" in msgs and "unit neighbours: top-5 of" in msgs


def test_progress_off_prints_nothing(tmp_path, capsys):
    from sracl_ray.semantic.interim import build_interim

    data, split = _data()
    build_interim(data, split, tmp_path, max_k=5, encoder=_hash_encoder, progress=False)
    err = capsys.readouterr().err
    assert "embed items" not in err and "top-5" not in err


def test_summaries_bar_counts_this_runs_rate(capsys):
    from sracl_ray.semantic.summaries import _progress

    bar = _progress(10, 4, True)
    bar.update(2)
    bar.close()
    err = capsys.readouterr().err
    assert "6/10" in err and "row/s" in err


def test_corrupt_cached_interim_artifact_is_rebuilt(tmp_path, caplog, monkeypatch):
    from sracl_ray.semantic import interim

    data, split = _data()
    interim.build_interim(data, split, tmp_path, max_k=5, encoder=_hash_encoder, progress=False)
    _truncate(tmp_path / "unit_emb.npy")
    monkeypatch.setattr(interim, "minilm_encoder", lambda: _hash_encoder)
    with caplog.at_level(logging.WARNING):
        art = interim.build_interim(data, split, tmp_path, max_k=5, progress=False)
    assert "rebuilding the cached semantic artifact" in caplog.text and "unit_emb.npy" in caplog.text
    assert np.array_equal(load_artifact(tmp_path).unit_nbrs, art.unit_nbrs)
