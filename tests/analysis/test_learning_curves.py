"""Learning curves from the trials' per-epoch histories (result.json), mean ± std over seeds, cap flags."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.curves import curve_summary, curve_table, load_curves, table_epochs, valid_metric
from analysis.store import load_store

XSU = "cfg.semantic.exclude_same_user"
# variant -> seed -> valid/ndcg@20 per epoch (the trial ran as many epochs as listed)
HISTORIES = {
    "no_cl": {1: [0.02, 0.04, 0.035, 0.03], 2: [0.03, 0.05, 0.04]},
    "full": {1: [0.01, 0.02, 0.04, 0.05, 0.06], 2: [0.00, 0.03, 0.05, 0.06, 0.07]},
}
CAP = 5


def write_trial(root: Path, tid: str, variant: str, seed: int, curve: list[float], xsu: bool | None = None,
                with_result: bool = True) -> None:
    tdir = root / "trials" / tid
    tdir.mkdir(parents=True)
    pd.DataFrame({"user": [1, 2], "rank_test": [0, 50], "rank_valid": [1, 40], "train_len": [3, 9],
                  "test_input_len": [4, 10]}).to_parquet(tdir / "ranks.parquet")
    history = [{"epoch": e, "train/loss": 9.0 - e, "valid/ndcg@20": v, "valid/hr@20": 2 * v, "epoch_seconds": 1.0}
               for e, v in enumerate(curve, 1)]
    best = int(np.argmax(curve)) + 1
    if with_result:
        (tdir / "result.json").write_text(json.dumps({"status": "ok", "history": history, "best_epoch": best}))
    row = {"trial_id": tid, "experiment": "e", "dataset": "beauty", "backbone": "sasrec", "variant": variant,
           "seed": seed, "alpha": 0.1, "beta": 0.1, "k": 10, "mask_history": False, "max_len": 20, "status": "ok",
           "best_epoch": best, "epochs_run": len(curve), "hit_epoch_cap": best >= CAP,
           "ranks_path": f"trials/{tid}/ranks.parquet", "test/hr@20": 0.5, "test/ndcg@20": 0.3,
           "test/hr@10": 0.4, "test/ndcg@10": 0.2}
    if xsu is not None:
        row[XSU] = xsu
    (root / "results").mkdir(exist_ok=True)
    pd.DataFrame([row]).to_parquet(root / "results" / f"trial-{tid}.parquet")


def build(root: Path) -> Path:
    for variant, seeds in HISTORIES.items():
        for seed, curve in seeds.items():
            write_trial(root, f"{variant}-{seed}", variant, seed, curve)
    return root


def test_valid_metric():
    assert valid_metric("test/ndcg@20") == "valid/ndcg@20" and valid_metric("hr@10") == "valid/hr@10"


def test_summary_is_mean_and_std_over_the_seeds_still_running(tmp_path: Path):
    df = load_store(build(tmp_path / "s"))
    long = load_curves(df, ["valid/ndcg@20"])
    assert len(long) == sum(len(c) for s in HISTORIES.values() for c in s.values())
    s = curve_summary(long).set_index(["variant", "epoch"])
    no_cl = s.loc["no_cl"]
    assert no_cl.loc[2, "mean"] == pytest.approx(0.045) and no_cl.loc[2, "std"] == pytest.approx(
        np.std([0.04, 0.05], ddof=1))
    assert no_cl.loc[4, "n"] == 1 and no_cl.loc[4, "mean"] == pytest.approx(0.03) and math.isnan(no_cl.loc[4, "std"])
    assert no_cl["n_capped"].iloc[0] == 0 and no_cl["last_epoch"].iloc[0] == 4
    full = s.loc["full"]
    assert full.loc[5, "mean"] == pytest.approx(0.065) and full.loc[1, "n"] == 2
    assert full["n_capped"].iloc[0] == 2 and full["n_trials"].iloc[0] == 2  # both still improving at the cap
    assert set(s["arm"]) == {"SASRec", "SASRec+SRA-CL"}


def test_trials_without_history_add_nothing_and_other_users_arm_is_its_own(tmp_path: Path):
    root = build(tmp_path / "s")
    write_trial(root, "gone", "no_cl", 3, [0.9, 0.9], with_result=False)
    write_trial(root, "x1", "full", 1, [0.5, 0.4], xsu=True)
    df = load_store(root)
    s = curve_summary(load_curves(df, ["valid/ndcg@20", "valid/hr@20"]))
    assert s[s["variant"] == "no_cl"]["n_trials"].max() == 2  # the trial without result.json is absent
    other = s[s["xsu"]]
    assert set(other["arm"]) == {"SASRec+SRA-CL [other users' neighbours]"}
    assert other[(other["metric"] == "valid/hr@20") & (other["epoch"] == 1)]["mean"].iloc[0] == pytest.approx(1.0)


def test_table_epochs_subsamples_long_runs():
    assert table_epochs(7) == [1, 2, 3, 4, 5, 6, 7]
    long = table_epochs(200, max_rows=25)
    assert long[:10] == list(range(1, 11)) and long[-1] == 200 and len(long) <= 26
    assert table_epochs(0) == []


def test_curve_table_cells_and_cap_note(tmp_path: Path):
    df = load_store(build(tmp_path / "s"))
    table = curve_table(curve_summary(load_curves(df, ["valid/ndcg@20"])), "valid/ndcg@20")
    md = table.to_markdown()
    assert table.title == "Learning curves: valid NDCG@20 per epoch"
    assert [c.text for c in table.header] == ["Epoch", "SASRec", "SASRec+SRA-CL"]
    assert f"| 2 | 0.0450 ± {np.std([0.04, 0.05], ddof=1):.4f} (2) |" in md
    assert "| 5 | – | 0.0650 ± 0.0071 (2) |" in md and "| 4 | 0.0300 (1) |" in md
    assert "SASRec+SRA-CL: 2 of 2" in md  # the capped trials


def test_report_draws_curves_and_writes_their_data(tmp_path: Path):
    from analysis.report import write_report

    root = build(tmp_path / "s")
    out = tmp_path / "out"
    md = write_report(root, out)
    html = (out / "index.html").read_text()
    assert "learning_curves.png" in html and (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "Learning curves: valid NDCG@20 per epoch" in md and "Learning curves: valid HR@20 per epoch" in md
    csv = pd.read_csv(out / "learning_curves.csv")
    assert {"arm", "epoch", "mean", "std", "n", "n_capped"} <= set(csv.columns)
    assert csv[(csv["variant"] == "full") & (csv["metric"] == "valid/ndcg@20")]["epoch"].max() == 5
    assert "Epoch cap: 2 trials" in md  # the report-wide note as well
    # a later report of a store without histories removes the stale curve files
    for p in root.rglob("result.json"):
        p.unlink()
    md = write_report(root, out)
    assert not (out / "learning_curves.png").exists() and not (out / "learning_curves.csv").exists()
    assert "Learning curves: no trial" in (out / "index.html").read_text()
