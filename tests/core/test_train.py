"""End-to-end training on the packaged sample: every backbone x variant, determinism, resume."""
import json

import numpy as np
import pytest

from sracl_ray.cli import main
from sracl_ray.config import VARIANTS, load
from sracl_ray.semantic.artifact import ArtifactError
from sracl_ray.training.fit import fit
from sracl_ray.training.inputs import prepare_inputs


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "duorec"])
def test_two_epochs_every_backbone_and_variant(small_sample, tmp_path, backbone, variant):
    cfg = load(None, small_sample + [f"model.backbone={backbone}", f"cl.variant={variant}", "train.epochs=2"])
    seen = []
    result = fit(cfg, tmp_path, report=lambda m, ckpt: seen.append(dict(m)))
    assert [m["epoch"] for m in seen] == [1, 2, 2] and seen[-1]["final"] is True
    assert all(not any(k.startswith("test/") for k in m) for m in seen[:-1])  # test only once, at the end
    assert np.isfinite([m["train/loss"] for m in seen[:-1]]).all()
    m = result["metrics"]
    assert {"valid/hr@10", "valid/ndcg@20", "test/hr@10", "test/ndcg@20", "test/mrr@10"} <= set(m)
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "ranks.parquet").exists()


def test_same_seed_same_result_and_resume_matches_uninterrupted(small_sample, tmp_path):
    sets = small_sample + ["train.epochs=3", "train.patience=10"]
    cfg = load(None, sets)
    prep = prepare_inputs(cfg)
    a = fit(cfg, tmp_path / "a", prepared=prep)
    b = fit(cfg, tmp_path / "b", prepared=prep)
    assert a["metrics"] == b["metrics"]
    assert [h["train/loss"] for h in a["history"]] == [h["train/loss"] for h in b["history"]]

    class Killed(Exception):
        pass

    def die_after_first(metrics, ckpt):
        if metrics["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        fit(cfg, tmp_path / "c", report=die_after_first, prepared=prep)
    epochs = []
    c = fit(cfg, tmp_path / "c", report=lambda m, ck: epochs.append(m["epoch"]), prepared=prep)
    assert epochs == [2, 3, 3]  # epoch 1 was not redone
    assert [h["train/loss"] for h in c["history"]] == pytest.approx([h["train/loss"] for h in a["history"]])
    assert c["metrics"] == pytest.approx(a["metrics"])


@pytest.mark.parametrize("rule", ["strict", "release"])
def test_early_stopping_uses_validation_and_tests_best_epoch(small_sample, tmp_path, rule):
    cfg = load(None, small_sample + ["train.epochs=6", "train.patience=1", "cl.variant=no_cl",
                                     f"train.stop_rule={rule}"])
    r = fit(cfg, tmp_path)
    vals = [h["valid/mrr@10"] for h in r["history"]]
    if rule == "strict":  # the first epoch with the best value; stop after `patience` epochs without one
        best = int(np.argmax(vals)) + 1
        assert r["epochs_run"] == min(6, best + 1)
    else:  # rounded to 4 decimals, a tie moves the best later; stop after more than `patience`
        rounded = [round(v, 4) for v in vals]
        best = max(e for e in range(1, len(vals) + 1) if rounded[e - 1] == max(rounded[:e]) == max(rounded))
        assert r["epochs_run"] == min(6, best + 2)
    assert r["best_epoch"] == best
    assert r["metrics"]["valid/mrr@10"] == pytest.approx(vals[best - 1])


def test_k_larger_than_stored_neighbours_is_a_clear_error(small_sample):
    with pytest.raises(ArtifactError, match="cl.k=50 is larger than the 20 neighbours"):
        prepare_inputs(load(None, small_sample + ["cl.k=50"]))


def test_artifact_from_other_data_is_rejected(small_sample):
    with pytest.raises(ArtifactError):
        prepare_inputs(load(None, small_sample + ["data.max_users=100"]))


def test_cli_train_writes_result_with_every_setting(small_sample, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--out", str(out)] + sum((["--set", s] for s in small_sample + ["train.epochs=1"]), [])
    assert main(args) == 0
    r = json.loads((out / "result.json").read_text())
    assert r["config"]["cl"]["alpha"] == 0.1 and r["config"]["train"]["epochs"] == 1
    assert r["seed"] == 42 and len(r["dataset"]["fingerprint"]) == 16 and r["code_version"]
    assert "test/hr@10" in r["metrics"] and r["mask_history"] is False and r["max_len"] == 20
    assert "test/hr@10=" in capsys.readouterr().out


def test_cli_rejects_typo_with_suggestion(capsys):
    assert main(["train", "--out", "/tmp/never", "--set", "cl.alhpa=0.3"]) == 2
    assert "did you mean 'alpha'" in capsys.readouterr().err
