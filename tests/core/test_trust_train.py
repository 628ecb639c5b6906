"""A run never fakes numbers: divergence stops it, a foreign checkpoint is refused, results say what ran."""
from __future__ import annotations

import json

import pytest
import torch

from sracl_ray.cli import main
from sracl_ray.config import load
from sracl_ray.errors import NonFiniteError
from sracl_ray.training import fit as F
from sracl_ray.training.checkpoint import CheckpointError
from sracl_ray.training.fit import fit
from sracl_ray.training.inputs import prepare_inputs


def cli_train(out, sets, *extra):
    return main(["train", "--out", str(out), *extra] + sum((["--set", s] for s in sets), []))


def test_diverging_loss_stops_with_epoch_and_step_and_writes_no_metrics(small_sample, tmp_path, monkeypatch):
    cfg = load(None, small_sample + ["train.epochs=3", "cl.variant=no_cl"])
    real = F.step_losses
    calls = {"n": 0}

    def nan_in_epoch_two(model, synth, dd, idx, cfg, gen):  # a real loss, poisoned from a known step on
        losses = real(model, synth, dd, idx, cfg, gen)
        calls["n"] += 1
        if calls["n"] > steps_per_epoch + 2:
            losses.total = losses.total * torch.tensor(float("nan"))
        return losses

    prep = prepare_inputs(cfg)
    steps_per_epoch = -(-prep.split.n_samples // cfg.train.batch_size)
    monkeypatch.setattr(F, "step_losses", nan_in_epoch_two)
    reports = []
    with pytest.raises(NonFiniteError, match=rf"epoch 2, step 3 of {steps_per_epoch}"):
        fit(cfg, tmp_path, report=lambda m, c: reports.append(m), prepared=prep)
    assert [m["epoch"] for m in reports] == [1]  # epoch 1 reported, the diverged epoch never
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "ranks.parquet").exists()
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1  # no checkpoint of the diverged epoch


def test_huge_learning_rate_diverges_through_the_cli(small_sample, tmp_path, capsys):
    code = cli_train(tmp_path / "run", small_sample + ["train.epochs=2", "train.lr=1e30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "diverged" in err[0] and "epoch 1" in err[0], err
    assert not (tmp_path / "run" / "result.json").exists()


def test_result_records_what_ran(small_sample, tmp_path):
    r = fit(load(None, small_sample + ["train.epochs=2", "cl.variant=no_cs", "train.patience=5"]), tmp_path)
    assert r["status"] == "ok" and r["alpha_applied"] == 0.0 and r["beta_applied"] == 0.1
    assert r["ties"] == "pessimistic" and r["hit_epoch_cap"] == (r["best_epoch"] == 2)
    assert r["semantic"]["fingerprint"] and r["semantic"]["builder"] == "test"
    assert r["fingerprint"]["cl.alpha"] == 0.1 and r["fingerprint"]["data.fingerprint"] == r["dataset"]["fingerprint"]
    assert r["host"]


def test_reused_out_dir_with_other_settings_is_refused_naming_the_keys(small_sample, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_train(out, small_sample + ["train.epochs=1"]) == 0
    before = (out / "result.json").read_text()
    capsys.readouterr()
    code = cli_train(out, small_sample + ["train.epochs=2", "cl.alpha=0.3", "train.seed=7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "cl.alpha: 0.1 -> 0.3" in err[0] and "train.seed: 42 -> 7" in err[0] and "--overwrite" in err[0]
    assert (out / "result.json").read_text() == before  # nothing touched
    # other data: a clear error naming the fingerprint and the slice, not a size-mismatch traceback
    code = cli_train(out, small_sample + ["train.epochs=2", "data.max_users=100", "cl.variant=no_cl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.fingerprint" in err[0] and "data.max_users" in err[0], err
    # --overwrite starts fresh with the new settings
    assert cli_train(out, small_sample + ["train.epochs=1", "cl.alpha=0.3"], "--overwrite") == 0
    r = json.loads((out / "result.json").read_text())
    assert r["config"]["cl"]["alpha"] == 0.3 and r["epochs_run"] == 1


def test_same_settings_resume_and_may_train_longer(small_sample, tmp_path):
    cfg1 = load(None, small_sample + ["train.epochs=1", "train.patience=10"])
    fit(cfg1, tmp_path)
    epochs = []
    cfg2 = load(None, small_sample + ["train.epochs=2", "train.patience=10", "train.progress=true"])
    r = fit(cfg2, tmp_path, report=lambda m, c: epochs.append(m["epoch"]))
    assert epochs == [2, 2] and r["epochs_run"] == 2  # epoch 1 came from the checkpoint


@pytest.mark.parametrize("victim", ["model.safetensors", "rng.safetensors", "optim.pt", "state.json"])
def test_truncated_checkpoint_file_is_named(small_sample, tmp_path, capsys, victim):
    out = tmp_path / "run"
    assert cli_train(out, small_sample + ["train.epochs=1"]) == 0
    path = out / "checkpoint" / victim
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    capsys.readouterr()
    code = cli_train(out, small_sample + ["train.epochs=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and victim in err[0] and "--overwrite" in err[0], err


def test_checkpoint_errors_are_user_errors(small_sample, tmp_path):
    cfg = load(None, small_sample + ["train.epochs=1"])
    fit(cfg, tmp_path)
    (tmp_path / "checkpoint" / "state.json").write_text('{"epoch": "x"}')
    with pytest.raises(CheckpointError, match="state.json"):
        fit(load(None, small_sample + ["train.epochs=2"]), tmp_path)


def test_experiment_file_as_train_config_uses_its_base(tmp_path, small_sample):
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: t\nbase:\n  cl: {alpha: 0.25}\n  train: {epochs: 1}\nsearch:\n  mode: grid\n"
                   "  grid: {train.seed: [1, 2]}\nmetric: valid/ndcg@20\n")
    cfg = load(exp, small_sample)
    assert cfg.cl.alpha == 0.25 and cfg.train.epochs == 1
