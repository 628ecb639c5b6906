"""End to end: `semantic` with the raw backend on a slice -> an artifact training accepts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sracl_ray.config import ConfigError
from sracl_ray import cli
from sracl_ray.manifest import read_manifest
from sracl_ray.semantic.artifact import load_artifact
from sracl_ray.semantic.pipeline import StageInputError, embed, load_prepared, neighbours, run_all, stage_dirs
from sracl_ray.config import load_all
from sracl_ray.semantic.summaries import SummariesIncomplete
from sracl_ray.semantic.units import build_units

SETS = ["data.max_users=15", "summary.backend=raw", "neighbours.max_k=30", "embed.batch_size=32"]


@pytest.fixture(scope="module")
def raw_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("semantic")
    args = ["semantic", "--no-progress", "--out", str(out)]
    for s in SETS:
        args += ["--set", s]
    assert cli.main(args) == 0
    return out


def test_raw_pipeline_builds_a_valid_artifact(raw_run):
    d = stage_dirs(raw_run)
    data, split = load_prepared(d["prepared"])
    art = load_artifact(d["artifact"])
    n_units = len(build_units(split, "prefix"))
    art.check(data.n_items, n_units, k=10)
    assert art.granularity == "prefix" and art.max_k == 30
    assert art.item_emb.shape == (data.n_items + 1, 384) and not art.item_emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(art.unit_emb, axis=1), 1, atol=1e-5)
    assert not (art.unit_nbrs == np.arange(n_units)[:, None]).any()
    # the unit table is the one training derives from the same data
    pd.testing.assert_frame_equal(art.units, build_units(split, "prefix"))
    # raw texts: an item's nearest neighbours are mostly in its own category path
    items = data.items.set_index("item")["categories"]
    same = np.mean([items[i] == items[art.item_nbrs[i, 0]] for i in range(1, data.n_items + 1)])
    assert same > 0.25, same


def test_rerun_skips_finished_stages(raw_run):
    cfg, pipe = load_all(None, SETS)
    assert all(r.skipped for r in run_all(cfg, pipe, raw_run, progress=False))
    cfg, pipe = load_all(None, SETS[:-2] + ["neighbours.max_k=12"])  # only the last stage changes
    res = run_all(cfg, pipe, raw_run, progress=False)
    assert [r.skipped for r in res] == [True, True, True, False]
    assert load_artifact(stage_dirs(raw_run)["artifact"]).max_k == 12


def test_embed_stage_stores_raw_output_norms(raw_run):
    """unit_norm.npy = the norms of the encoder's raw outputs for the unit texts; the artifact carries them."""
    from sracl_ray.semantic.embeddings import TextEncoder
    from sracl_ray.semantic.summaries import collect_texts

    d = stage_dirs(raw_run)
    records = pd.read_parquet(d["summaries"] / "prompts.parquet")
    texts = np.asarray(collect_texts(records, d["summaries"]), dtype=object)
    unit = (records["kind"] == "unit").to_numpy()
    order = np.argsort(records.loc[unit, "id"].to_numpy())
    raw = TextEncoder("", "mean", "cpu").encode_raw(list(texts[unit][order]))  # [U, D], unit id order
    stored = np.load(d["embeddings"] / "unit_norm.npy")
    np.testing.assert_allclose(stored, np.linalg.norm(raw, axis=1), rtol=1e-4)
    assert (np.abs(stored - 1) > 0.1).all()  # raw MiniLM means are not unit vectors: the norms matter
    art = load_artifact(d["artifact"])
    np.testing.assert_allclose(art.unit_norm, stored)
    np.testing.assert_allclose(art.unit_emb * art.unit_norm[:, None], raw, atol=1e-4)
    assert "unit_norm" in art.manifest["settings"]["embed"]


def test_pipeline_artifact_trains_on_raw_outputs(raw_run, tmp_path, caplog):
    """semantic.normalize=false (the default) feeds the head unit_emb x unit_norm, without the fallback warning."""
    import logging

    import torch

    from sracl_ray.config import load
    from sracl_ray.training.fit import fit
    from sracl_ray.training.inputs import DeviceData, prepare_inputs

    art_dir = stage_dirs(raw_run)["artifact"]
    art = load_artifact(art_dir)
    cfg = load(None, ["data.max_users=15", f"semantic.artifact={art_dir}", "semantic.normalize=false",
                      "train.progress=false", "train.num_threads=1", "train.epochs=1", "train.device=cpu"])
    with caplog.at_level(logging.WARNING):
        dd = DeviceData(prepare_inputs(cfg), cfg, torch.device("cpu"))
        result = fit(cfg, tmp_path / "run")
    np.testing.assert_allclose(dd.unit_emb.numpy(), art.unit_emb * art.unit_norm[:, None], rtol=1e-6)
    assert result["status"] == "ok"
    assert not [r for r in caplog.records if "unit_norm" in r.getMessage()]


def embeddings_without_norms(raw_run, dst):
    """A copy of the embed stage as written before it kept norms: no unit_norm.npy, nor in its settings."""
    import json
    import shutil

    shutil.copytree(stage_dirs(raw_run)["embeddings"], dst)
    (dst / "unit_norm.npy").unlink()
    m = json.loads((dst / "manifest.json").read_text())
    del m["settings"]["unit_norm"]
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_neighbours_flag_embeddings_without_norms(raw_run, tmp_path, caplog):
    """`neighbours` on an embed stage that predates norms warns and writes an artifact without norms
    (never norms of another run); a bad unit_norm.npy is refused."""
    import logging
    import shutil

    d = stage_dirs(raw_run)
    _, pipe = load_all(None, SETS)
    old = embeddings_without_norms(raw_run, tmp_path / "embeddings")
    with caplog.at_level(logging.WARNING):
        neighbours(d["prepared"], old, tmp_path / "art", "prefix", pipe, progress=False)
    assert not (tmp_path / "art" / "unit_norm.npy").exists() and load_artifact(tmp_path / "art").unit_norm is None
    assert any("predates raw-output norms" in r.getMessage() for r in caplog.records)
    bad = tmp_path / "bad"
    shutil.copytree(d["embeddings"], bad)
    np.save(bad / "unit_norm.npy", np.zeros(3, np.float32))
    with pytest.raises(StageInputError, match="unit_norm.npy"):
        neighbours(d["prepared"], bad, tmp_path / "art2", "prefix", pipe, progress=False)


@pytest.mark.slow  # ~1 min: a second embed actor pool
def test_embed_redoes_a_stage_without_norms(raw_run, tmp_path):
    _, pipe = load_all(None, SETS)
    old = embeddings_without_norms(raw_run, tmp_path / "embeddings")
    assert not embed(stage_dirs(raw_run)["summaries"], old, pipe, progress=False).skipped
    np.testing.assert_allclose(np.load(old / "unit_norm.npy"),
                               np.load(stage_dirs(raw_run)["embeddings"] / "unit_norm.npy"), rtol=1e-5)
    assert "unit_norm" in read_manifest(old)["settings"]


def test_embed_refuses_missing_summaries(raw_run, tmp_path):
    import shutil

    src = stage_dirs(raw_run)["summaries"]
    dst = tmp_path / "summaries"
    shutil.copytree(src, dst)
    df = pd.read_parquet(dst / "summaries.parquet")
    failed = df.iloc[:3].assign(text="", error="HTTP 500: boom")
    pd.concat([failed, df.iloc[5:]]).to_parquet(dst / "summaries.parquet", index=False)  # 2 gone, 3 failed
    _, pipe = load_all(None, SETS)
    with pytest.raises(SummariesIncomplete, match=r"5 of \d+ summaries are not usable: 2 missing, 3 failed "
                                                  r"\(3 x HTTP 500: boom\)"):
        embed(dst, tmp_path / "emb", pipe, progress=False)
    assert not (tmp_path / "emb").exists()


def test_settings_reject_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'backend'"):
        load_all(None, ["summary.backnd=raw"])
    with pytest.raises(ConfigError, match="summary.backend: must be one of"):
        load_all(None, ["summary.backend=gpt"])
    cfg_file = tmp_path / "exp.yaml"
    cfg_file.write_text("data:\n  max_users: 10\nembed:\n  pooling: cls\n")
    with pytest.raises(ConfigError, match="embed.pooling"):
        load_all(cfg_file, [])
    cfg_file.write_text("data:\n  max_users: 10\nembed:\n  pooling: cls_pooler\n")
    cfg, pipe = load_all(cfg_file, ["summary.max_tokens=50"])
    assert cfg.data.max_users == 10 and pipe.embed.pooling == "cls_pooler" and pipe.summary.max_tokens == 50
    assert cli.main(["prepare", "--set", "data.nope=1", "--out", str(tmp_path)]) == 2


def test_training_reads_the_prepare_stage_the_artifact_was_built_from(raw_run, monkeypatch, tmp_path):
    """semantic.artifact = <out>/artifact: training takes data and split from <out>/prepared (no raw
    parse) when that stage is fresh for cfg.data and is the one the artifact lists; the same split,
    the same data fingerprint as the raw path; other data settings, a changed raw file or a foreign
    prepared/ read the raw data."""
    import shutil

    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.training import prepare as P

    art_dir = stage_dirs(raw_run)["artifact"]
    sets = ["data.max_users=15", f"semantic.artifact={art_dir}", "train.progress=false"]
    cfg = load(None, sets)
    raw = load_dataset(cfg.data)
    raw_split = leave_one_out(raw, cfg.data.max_len)
    calls = []
    monkeypatch.setattr(P, "load_dataset", lambda *a, **k: calls.append(a) or load_dataset(*a, **k))
    prep = P.prepare_inputs(cfg)
    assert calls == []  # nothing parsed the raw files
    assert prep.data.fingerprint == raw.fingerprint
    for name in ("sample_user", "sample_hist", "sample_target", "valid_target", "test_hist", "test_target"):
        np.testing.assert_array_equal(getattr(prep.split, name), getattr(raw_split, name))
    assert all(np.array_equal(a, b) for a, b in zip(prep.split.train_seqs, raw_split.train_seqs))
    # a data setting the stage was not run with: the raw files (and then the artifact does not fit)
    from sracl_ray.semantic.artifact import ArtifactError

    with pytest.raises(ArtifactError):
        P.prepare_inputs(load(None, sets[1:] + ["data.max_users=14"]))
    assert len(calls) == 1
    # an artifact copied away from its prepared/: the raw files
    lone = tmp_path / "lone" / "artifact"
    shutil.copytree(art_dir, lone)
    P.prepare_inputs(load(None, ["data.max_users=15", f"semantic.artifact={lone}", "train.progress=false"]))
    assert len(calls) == 2
    # a prepared/ that is not the one the artifact was built from: the raw files
    other = tmp_path / "other"
    shutil.copytree(art_dir.parent, other)
    m = read_manifest(other / "prepared")
    m["fingerprint"] = "0" * 16
    (other / "prepared" / "manifest.json").write_text(__import__("json").dumps(m))
    P.prepare_inputs(load(None, ["data.max_users=15", f"semantic.artifact={other / 'artifact'}", "train.progress=false"]))
    assert len(calls) == 3
    # an artifact manifest whose inputs are not a mapping (hand-edited, foreign): no link, the raw files
    odd = tmp_path / "odd"
    shutil.copytree(art_dir.parent, odd)
    am = read_manifest(odd / "artifact")
    am["inputs"] = ["prepared"]
    (odd / "artifact" / "manifest.json").write_text(__import__("json").dumps(am))
    P.prepare_inputs(load(None, ["data.max_users=15", f"semantic.artifact={odd / 'artifact'}", "train.progress=false"]))
    assert len(calls) == 4
