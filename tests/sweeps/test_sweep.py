"""A real local Ray sweep around the real fit(): rows, per-epoch validation reports, retries."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sweep_fakes

from sracl_ray import config as C
from sracl_ray.results import store as S
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner


def tune_results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def test_real_sweep_four_trials(local_ray, real_base, tmp_path):
    exp = E.from_dict({
        "name": "real", "base": real_base, "metric": "valid/ndcg@20", "max_failures": 0,
        "search": {"mode": "grid", "grid": {"cl.variant": ["full", "no_cl"], "train.seed": [1, 2]}},
        # no GPU here: falls back to CPU-only trials (at once: the GPU wait is covered in test_multinode)
        "resources": {"cpus": 1, "gpus": 0.5, "gpu_wait_s": 0},
    })
    lines: list[str] = []
    out = runner.run_sweep(exp, tmp_path / "s", engine=sweep_fakes.real_counting_engine(), write=lines.append)
    assert (out.n_trials, out.n_finished, out.n_errored) == (4, 4, 0)
    assert out.best is not None and out.best["valid/ndcg@20"] >= 0

    df = S.read_store(tmp_path / "s")
    assert sorted(zip(df["variant"], df["seed"])) == [("full", 1), ("full", 2), ("no_cl", 1), ("no_cl", 2)]
    assert (df["experiment"] == "real").all() and (df["cfg.data.max_users"] == 40).all()
    for _, row in df.iterrows():
        trial = tmp_path / "s" / "trials" / row["trial_id"]
        result = json.loads((trial / "result.json").read_text())
        assert row["test/ndcg@20"] == pytest.approx(result["metrics"]["test/ndcg@20"])
        assert row["best_epoch"] == result["best_epoch"] and (tmp_path / "s" / row["ranks_path"]).exists()
        assert sweep_fakes.fit_calls(trial) == [0]
        # Tune saw validation metrics every epoch and test metrics only in the final report.
        tdir = tmp_path / "s" / "tune" / f"trial_{row['trial_id']}"
        reports = tune_results(tdir)
        assert [r["final"] for r in reports] == [False] * (len(reports) - 1) + [True]
        assert all(not any(k.startswith("test/") for k in r) for r in reports[:-1])
        assert "test/ndcg@20" in reports[-1] and "valid/ndcg@20" in reports[0]
        assert list(tdir.glob("events.out.tfevents.*")), "no TensorBoard log"
    assert any(line.startswith("[end] trials: 0 running, 4 finished, 0 errored") for line in lines), lines

    # `sracl-ray train` and a sweep trial are the same code path: fit() on the same config gives
    # the same numbers.
    from sracl_ray.training.fit import fit

    row = df[(df["variant"] == "full") & (df["seed"] == 1)].iloc[0]
    cfg = E.trial_config(E.C.to_dict(exp.base_config()), {"cl.variant": "full", "train.seed": 1})
    alone = fit(cfg, tmp_path / "alone", resume=False)
    assert alone["metrics"]["test/ndcg@20"] == pytest.approx(row["test/ndcg@20"], abs=1e-9)
    assert alone["metrics"]["valid/mrr@10"] == pytest.approx(row["valid/mrr@10"], abs=1e-9)


def test_failing_trial_is_retried_from_its_last_epoch(local_ray, real_base, tmp_path):
    storage = tmp_path / "s"
    storage.mkdir()
    (storage / "FAIL_ONCE").write_text("every trial raises once, right after reporting epoch 1")
    base = C.merge(real_base, {"train": {"epochs": 2, "patience": 5}})
    exp = E.from_dict({"name": "retry", "base": base, "max_failures": 2,
                       "search": {"mode": "grid", "grid": {"train.seed": [1, 2]}}})
    # the storage holds a file that is not a sweep's (the failure switch): --overwrite lets it in, keeping it
    out = runner.run_sweep(exp, storage, engine=sweep_fakes.real_counting_engine(), overwrite=True)
    assert (out.n_finished, out.n_errored) == (2, 0)
    df = S.read_store(storage)
    assert len(df) == 2 and df["trial_id"].is_unique and (df["epochs_run"] == 2).all()
    for trial in (storage / "trials").iterdir():
        assert (trial / "failed_once").exists()
        assert sweep_fakes.fit_calls(trial) == [0, 1]  # the retry resumed after epoch 1


def test_trial_beyond_max_failures_errored_row_then_resume_retries(local_ray, tmp_path):
    storage = tmp_path / "s"
    storage.mkdir()
    (storage / "FAIL_ONCE").write_text("x")
    exp = E.from_dict({"name": "err", "base": {"train": {"epochs": 2}}, "max_failures": 0,
                       "search": {"mode": "grid", "grid": {"train.seed": [1, 2]}}})
    out = runner.run_sweep(exp, storage, engine=sweep_fakes.fake_engine(), overwrite=True)
    assert (out.n_finished, out.n_errored, out.ok) == (0, 2, False)
    # every errored trial ends as a row: status, the error's one line, the node it ran on
    df = S.read_store(storage)
    assert sorted(df["status"]) == ["errored", "errored"] and df["node_id"].notna().all()
    assert all("injected failure (FAIL_ONCE)" in e for e in df["error"]), df["error"].tolist()
    assert df["test/ndcg@20"].isna().all() if "test/ndcg@20" in df.columns else True
    out = runner.resume_sweep(storage, engine=sweep_fakes.fake_engine())  # errored trials resume
    assert (out.n_finished, out.n_errored) == (2, 0)
    df = S.read_store(storage)
    assert len(df) == 2 and (df["status"] == "ok").all()  # the retry's ok row replaced the errored one
    for trial in (storage / "trials").iterdir():
        assert sweep_fakes.fit_calls(trial) == [0, 1]
    with pytest.raises(E.ConfigError, match="already holds a sweep"):
        runner.run_sweep(exp, storage, engine=sweep_fakes.fake_engine())


def test_data_grid_prepares_once_per_data_section(local_ray, tmp_path):
    exp = E.from_dict({"name": "grid2", "base": {"train": {"epochs": 1}},
                       "search": {"mode": "grid", "grid": {"data.max_users": [20, 30], "train.seed": [1, 2]}}})
    out = runner.run_sweep(exp, tmp_path / "s", engine=sweep_fakes.fake_engine())
    assert out.n_finished == 4  # fake_fit asserts that each trial got the Prepared of its own data section
    df = S.read_store(tmp_path / "s")
    assert sorted(df["cfg.data.max_users"]) == [20, 20, 30, 30]
