"""What `sweep run/resume` and `train` may do to the dirs they are given (issue 15, builds 4, 9, 10).

A sweep never deletes what it did not write; one output has one writer at a time; a file: URI is
the local filesystem (pickle boundary included); corrupt state names its file; a FIFO in the
store does not hang `results`; a grid never runs one configuration twice; previews write nothing.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sweep_fakes

from sracl_ray import cli
from sracl_ray.config import ConfigError
from sracl_ray.locks import LOCK_FILENAME, InUseError, hold
from sracl_ray.results import store
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def one_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("sracl-ray: ")]
    assert len(err) == 1, err
    return err[0]


TINY = {"name": "tiny", "base": {"train": {"epochs": 1}}, "max_failures": 0,
        "search": {"mode": "grid", "grid": {"train.seed": [1, 2]}}}


# ------------------------------------------------------------------ never delete what it did not write


def test_storage_with_users_files_but_no_sweep_is_refused_and_kept(tmp_path):
    storage = tmp_path / "mine"
    (storage / "results").mkdir(parents=True)
    (storage / "results" / "thesis-table.csv").write_text("my numbers")
    (storage / "notes.txt").write_text("keep me")
    before = snapshot(storage)
    with pytest.raises(ConfigError, match=r"holds files but no sweep \(no sweep.json\): notes.txt, results"):
        runner.run_sweep(E.from_dict(TINY), storage, engine=sweep_fakes.fake_engine())
    assert snapshot(storage) == before
    # --overwrite removes only this tool's own entries; the user's other files stay
    assert [Path(p).name for p in runner.claim_storage(str(storage), overwrite=True)] == ["results"]
    assert (storage / "notes.txt").exists()


def test_an_earlier_sweep_that_never_finished_a_trial_is_replaced(tmp_path):
    storage = tmp_path / "s"
    (storage / "tune").mkdir(parents=True)
    runner.write_spec(str(storage), E.from_dict(TINY), False)
    (storage / "mine.txt").write_text("x")
    doomed = runner.claim_storage(str(storage))
    assert sorted(Path(p).name for p in doomed) == ["sweep.json", "tune"]


@pytest.mark.parametrize("given", ["", "   "])
def test_empty_storage_is_an_error_not_the_current_dir(given, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "e.yaml"
    exp.write_text(json.dumps(TINY))
    before = snapshot(tmp_path)
    assert cli.main(["sweep", "run", str(exp), "--storage", given]) == 2
    assert "empty storage location" in one_error(capsys)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args, word", [(["--num-cpus", "-3"], "--num-cpus"), (["--num-cpus", "0"], "--num-cpus"),
                                        (["--progress-every", "nan"], "--progress-every"),
                                        (["--progress-every", "inf"], "--progress-every")])
def test_numeric_sweep_options_are_checked_before_anything(args, word, tmp_path, capsys):
    exp = tmp_path / "e.yaml"
    exp.write_text(json.dumps(TINY))
    with pytest.raises(SystemExit) as e:
        cli.main(["sweep", "run", str(exp), "--storage", str(tmp_path / "s"), *args])
    assert e.value.code == 2 and word in one_error(capsys)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ one writer per output


def test_lock_is_exclusive_names_the_holder_and_leaves_nothing(tmp_path):
    d = tmp_path / "out"
    with hold(str(d), "--out"):
        assert (d / LOCK_FILENAME).exists()
        with pytest.raises(InUseError, match=rf"in use by another sracl-ray \(host .*, pid {os.getpid()}, since "):
            with hold(str(d), "--out"):
                pass
    assert not (d / LOCK_FILENAME).exists()
    with hold(str(d), "--out"):  # released: free again
        pass


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path):
    d = tmp_path / "out"
    code = (f"import time; from sracl_ray.locks import hold\n"
            f"with hold({str(d)!r}, '--out'):\n    print('held', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(InUseError, match=f"pid {p.pid}"):
            with hold(str(d), "--out"):
                pass
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with hold(str(d), "--out"):  # the kernel released the dead holder's lock
        pass


def test_second_train_into_the_same_out_is_refused(tmp_path, capsys, small_sample):
    out = tmp_path / "run"
    with hold(str(out), "--out"):
        rc = cli.main(["train", *sum((["--set", s] for s in small_sample), []), "--set", "train.epochs=1",
                       "--set", "cl.variant=no_cl", "--out", str(out)])
        line = one_error(capsys)
    assert rc == 2 and "is in use by another sracl-ray" in line and str(out) in line
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written by the refused run


def test_second_sweep_driver_on_one_storage_is_refused(tmp_path):
    storage = tmp_path / "s"
    with hold(str(storage), "--storage"):
        with pytest.raises(InUseError, match="in use"):
            runner.run_sweep(E.from_dict(TINY), storage, engine=sweep_fakes.fake_engine())
    assert not (storage / "sweep.json").exists()


# ------------------------------------------------------------------ file: URIs are local paths


def test_file_uri_sweep_runs_end_to_end_and_reads_back(local_ray, tmp_path, capsys):
    storage = tmp_path / "s"
    out = runner.run_sweep(E.from_dict(TINY), f"file://{storage}", engine=sweep_fakes.fake_engine())
    assert (out.n_finished, out.n_errored) == (2, 0) and out.storage == storage
    assert len(store.read_store(storage)) == 2 and not (tmp_path / "file:").exists()
    assert not list(storage.glob(".sracl-nodes*")) and not (storage / LOCK_FILENAME).exists()
    assert cli.main(["results", f"file://{storage}", "--group-by", "variant"]) == 0
    assert "n" in capsys.readouterr().out


def test_file_uri_resume_gets_the_pickle_boundary(tmp_path, capsys):
    storage = tmp_path / "sweep"
    tune = storage / "tune"
    tune.mkdir(parents=True)
    runner.write_spec(str(storage), E.from_dict(TINY), False)
    marker = tmp_path / "pwned"
    (tune / "tuner.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    os.chmod(storage, 0o755)
    os.chmod(tune, 0o755)
    os.chmod(tune / "tuner.pkl", 0o666)
    for uri in (f"file://{storage}", f"file:{storage}", f"file://localhost{storage}"):
        assert cli.main(["sweep", "resume", uri]) == 2
        line = one_error(capsys)
        assert line.startswith("sracl-ray: error: refusing to resume") and "mode 0666" in line, line
    assert not marker.exists()


class _Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_file_uri_on_another_host_is_refused(tmp_path, capsys):
    assert cli.main(["results", "file://fileserver/srv/sweeps/x"]) == 2
    assert "names a file on another host" in one_error(capsys)


# ------------------------------------------------------------------ corrupt state names its file


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_corrupt_sweep_json_names_the_file(tmp_path, capsys, content):
    storage = tmp_path / "s"
    (storage / "tune").mkdir(parents=True)
    (storage / "sweep.json").write_text(content)
    assert cli.main(["sweep", "resume", str(storage)]) == 2
    line = one_error(capsys)
    assert str(storage / "sweep.json") in line and "not a sweep spec" in line, line


def test_truncated_tuner_pkl_names_the_file(tmp_path, capsys, monkeypatch):
    storage = tmp_path / "s"
    tune = storage / "tune"
    tune.mkdir(parents=True)
    runner.write_spec(str(storage), E.from_dict(TINY), False)
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"a": list(range(100))})[:20])
    for p in (storage, tune, tune / "tuner.pkl"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    monkeypatch.setattr(runner, "init_ray", lambda *a, **k: None)  # the state is read before any trial
    monkeypatch.setattr(runner, "check_shared_storage", lambda *a, **k: None)
    monkeypatch.setattr(runner, "prepare_shared", lambda *a, **k: {})
    monkeypatch.setattr(runner, "build_trainable", lambda *a, **k: sweep_fakes.fake_engine())
    assert cli.main(["sweep", "resume", str(storage)]) == 2
    line = one_error(capsys)
    assert str(tune / "tuner.pkl") in line and "cannot restore" in line, line


def test_a_fifo_in_the_store_is_skipped_not_read(tmp_path, caplog):
    from test_results import fake_result  # one real row beside the FIFO

    from sracl_ray import config as C

    cfg = C.from_dict({})
    store.write_row(tmp_path, store.trial_row(fake_result(0.05, 0.1), cfg, "t0", "x", None))
    os.mkfifo(tmp_path / "results" / "trial-evil.parquet")
    t0 = time.monotonic()
    assert len(store.read_store(tmp_path)) == 1
    from analysis.store import load_store

    assert len(load_store(tmp_path)) == 1
    assert time.monotonic() - t0 < 30 and "not a regular file" in caplog.text


# ------------------------------------------------------------------ identical trials and huge grids


def test_grid_repeats_are_refused():
    with pytest.raises(ConfigError, match=r"num_samples: 1000000000 on a grid .*identical trials.*train.seed"):
        E.from_dict({**TINY, "search": {"mode": "grid", "grid": {"train.seed": [1]}, "num_samples": 10 ** 9}})
    with pytest.raises(ConfigError, match=r"search.grid.train.seed: value 2 is listed twice"):
        E.from_dict({**TINY, "search": {"mode": "grid", "grid": {"train.seed": [1, 2, 2]}}})


def test_a_huge_grid_is_refused_with_its_count_before_any_work():
    grid = {k: list(range(1, 11)) for k in ("train.seed", "cl.k", "data.max_len", "train.batch_size",
                                            "train.epochs", "train.patience")}
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"1,000,000 trials \(10 x 10 x 10 x 10 x 10 x 10\) is more than "
                                          r"search.max_trials=1,000"):
        E.from_dict({**TINY, "search": {"mode": "grid", "grid": grid}})
    assert time.monotonic() - t0 < 5  # refused from the sizes, never expanded
    ok = E.from_dict({**TINY, "search": {"mode": "grid", "grid": {"train.seed": list(range(1, 1201))},
                                         "max_trials": 1200}})
    assert E.trial_count(ok.search) == 1200


def test_results_count_identical_runs_once(tmp_path, capsys):
    from test_results import fake_result

    from sracl_ray import config as C

    cfg = C.from_dict({"train": {"seed": 1}})
    for i, ndcg in enumerate((0.05, 0.05, 0.05)):  # three copies of one run (same settings and seed)
        store.write_row(tmp_path, store.trial_row(fake_result(ndcg, 0.1), cfg, f"t{i}", "x", None))
    store.write_row(tmp_path, store.trial_row(fake_result(0.07, 0.1), C.from_dict({"train": {"seed": 2}}), "t9",
                                              "x", None))
    assert cli.main(["results", str(tmp_path), "--group-by", "variant", "--metric", "test/ndcg@20"]) == 0
    out = capsys.readouterr()
    assert "2 rows repeat another row's run exactly" in out.err
    row = [ln for ln in out.out.splitlines() if ln.startswith("full")][0].split()
    assert row[1] == "2" and row[2] == "0.0600", row  # n=2 runs: mean of 0.05 and 0.07, not n=4


# ------------------------------------------------------------------ previews


def test_sweep_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import ray

    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "e.yaml"
    exp.write_text(json.dumps({**TINY, "search": {"mode": "grid", "grid": {"cl.variant": ["full", "no_cl"],
                                                                           "train.seed": list(range(1, 7))}}}))
    before = snapshot(tmp_path)
    was_up = ray.is_initialized()
    assert cli.main(["sweep", "run", str(exp), "--storage", str(tmp_path / "s"), "--dry-run",
                     "--set", "cl.alpha=0.3"]) == 0
    out = capsys.readouterr().out
    assert "12 trials, grid over cl.variant (2) x train.seed (6)" in out
    assert "alpha: 0.3" in out and "trials (first 10 of 12):" in out and "no Ray started" in out
    assert out.count("\n  ") >= 10
    assert snapshot(tmp_path) == before and ray.is_initialized() == was_up


def test_train_print_config_prints_the_resolved_config_and_reads_nothing(tmp_path, capsys):
    import yaml

    assert cli.main(["train", "--set", "cl.alpha=0.25", "--set", "data.path=/nonexistent", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["cl"]["alpha"] == 0.25 and cfg["data"]["path"] == "/nonexistent" and cfg["model"]["hidden"] == 64


# ------------------------------------------------------------------ mlflow


@pytest.mark.parametrize("argv", [["train", "--out", "{tmp}/o"], ["sweep", "run", "{exp}", "--storage", "{tmp}/s"],
                                  ["reproduce", "--storage", "{tmp}/r"]])
def test_missing_mlflow_is_one_line_before_any_data(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as on a machine without mlflow
    exp = tmp_path / "e.yaml"
    exp.write_text(json.dumps({**TINY, "base": {"data": {"path": "/nonexistent"}}}))
    args = [a.replace("{tmp}", str(tmp_path)).replace("{exp}", str(exp)) for a in argv]
    before = snapshot(tmp_path)
    assert cli.main([*args, "--mlflow-uri", f"file://{tmp_path}/mlruns", "--set", "data.path=/nonexistent"]
                    if argv[0] == "train" else [*args, "--mlflow-uri", f"file://{tmp_path}/mlruns"]) == 2
    assert "needs the mlflow package" in one_error(capsys)
    assert snapshot(tmp_path) == before


def test_train_logs_to_mlflow_one_step_per_epoch(tmp_path, capsys, small_sample, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file://{tmp_path}/mlruns"
    rc = cli.main(["train", *sum((["--set", s] for s in small_sample), []), "--set", "train.epochs=2",
                   "--set", "train.patience=5", "--set", "cl.variant=no_cl", "--out", str(tmp_path / "o"),
                   "--mlflow-uri", uri])
    assert rc == 0, capsys.readouterr().err
    client = mlflow.tracking.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("train-beauty_sample").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["cl.variant"] == "no_cl"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid/ndcg_at_20")]
    assert steps == [1, 2]
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    test = client.get_metric_history(run.info.run_id, "test/ndcg_at_20")
    assert [m.value for m in test] == [pytest.approx(result["metrics"]["test/ndcg@20"])]


def test_no_cl_rows_do_not_claim_the_shared_artifact(tmp_path, small_sample):
    """A sweep prepares one input (with the artifact) for all its trials; a no_cl trial never reads it."""
    import dataclasses

    from sracl_ray.config import load
    from sracl_ray.training.fit import fit
    from sracl_ray.training.prepare import prepare_inputs

    cfg = load(None, [*small_sample, "train.epochs=1"])
    prep = prepare_inputs(cfg)
    assert prep.semantic is not None
    no_cl = dataclasses.replace(cfg, cl=dataclasses.replace(cfg.cl, variant="no_cl"))
    result = fit(no_cl, tmp_path / "o", prepared=prep, resume=False)
    assert result["semantic"] == {"source": "none", "builder": "none", "fingerprint": None, "manifest": None}
    row = store.trial_row(result, no_cl, "t", "x", None)
    assert (row["semantic_builder"], row["semantic_source"], row["semantic_fingerprint"]) == ("none", "none", None)


def test_errored_and_pruned_trials_get_rows_from_the_driver(tmp_path):
    """A trial whose worker died (no row of its own) and one a scheduler stopped early both end as rows."""
    from types import SimpleNamespace

    exp = E.from_dict(TINY)
    path = lambda t: str(tmp_path / "tune" / f"trial_{t}")  # noqa: E731
    results = [
        SimpleNamespace(trial_id="a", error=RuntimeError("The actor died unexpectedly: its node was terminated"),
                        metrics={}, config={"train.seed": 1}, path=path("a")),
        SimpleNamespace(error=None, metrics={"trial_id": "b", "epoch": 3, "final": False}, config={"train.seed": 2},
                        path=path("b")),
        SimpleNamespace(error=None, metrics={"trial_id": "c", "epoch": 3, "final": True}, config={"train.seed": 2},
                        path=path("c")),
    ]
    assert runner.reconcile_rows(results, exp, str(tmp_path)) == 2
    df = store.read_store(tmp_path).set_index("trial_id")
    assert df.loc["a", "status"] == "errored" and "node was terminated" in df.loc["a", "error"]
    assert df.loc["b", "status"] == "pruned" and df.loc["b", "epochs_run"] == 3 and df.loc["b", "seed"] == 2
    assert "c" not in df.index  # finished trials write their own ok row
    assert runner.reconcile_rows(results, exp, str(tmp_path)) == 1  # the errored row stays; pruned is rewritten


def test_switches_that_do_nothing_are_said_once(tmp_path, caplog, capsys, small_sample):
    import logging

    caplog.set_level(logging.WARNING)
    assert cli.main(["train", "--set", "cl.variant=no_cl", "--set", "semantic.exclude_same_user=true",
                     "--set", "data.path=/nonexistent", "--out", str(tmp_path / "o")]) == 2  # the note comes first
    assert "semantic.exclude_same_user=true has no effect" in caplog.text
    exp = E.from_dict({**TINY, "base": {"cl": {"alpha": 0.3}},
                       "search": {"mode": "grid", "grid": {"cl.variant": ["full", "no_cl", "no_cs"],
                                                           "train.seed": [1, 2]}}})
    notes = E.inert_notes(exp)
    assert len(notes) == 2 and all("cl.alpha=0.3" in n for n in notes), notes  # one per variant, not per seed
