"""One report for a whole `sracl-ray reproduce` root: each table and figure from its own experiment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.paper import one_run_per_config, one_source_per_method
from analysis.report import write_report
from analysis.store import load_root, sweep_dirs

XSU = "cfg.semantic.exclude_same_user"
N_USERS = 50
SEEDS = (1, 2, 3)
VARIANT_GAIN = {"no_cl": 0.0, "no_cs": 0.004, "no_is": 0.005, "unlearnable": 0.006, "full": 0.01}
# each experiment's runs of the same setting differ a little, so a cell tells where it came from
EXPERIMENT_OFFSET = {"main": 0.0, "ablation": 0.0005, "model_agnostic": 0.001, "alpha_grid": 0.0015,
                     "beta_grid": 0.002, "k_grid": 0.0025, "strong_baseline": 0.02, "tune_alpha_beta": 0.0}


def value(exp: str, backbone: str, variant: str, seed: int, alpha: float = 0.1, beta: float = 0.1,
          k: int = 10, xsu: bool = False) -> float:
    v = 0.12 + VARIANT_GAIN[variant] + EXPERIMENT_OFFSET[exp] + 0.001 * seed - abs(alpha - 0.1) * 0.02
    v -= abs(beta - 0.1) * 0.01 + abs(k - 10) * 0.0002 + (0.004 if xsu else 0.0)
    v += np.random.default_rng([seed, int(xsu), sum(map(ord, variant + backbone + exp))]).normal(0, 0.0005)
    return v - (0.03 if backbone == "gru4rec" else 0.0)


def write_trial(sweep: Path, exp: str, n: int, backbone: str, variant: str, seed: int, history: bool = False,
                max_len: int = 20, mask_history: bool = False, **kw) -> dict:
    tid = f"{exp}-{n:03d}"
    alpha, beta, k, xsu = kw.get("alpha", 0.1), kw.get("beta", 0.1), kw.get("k", 10), kw.get("xsu", False)
    v = value(exp, backbone, variant, seed, alpha, beta, k, xsu)
    tdir = sweep / "trials" / tid
    tdir.mkdir(parents=True)
    users = np.arange(1, N_USERS + 1)
    hit_users = int(round(v * 4 * N_USERS))  # the first users hit within 20, with a variant-specific layout
    rank = np.where(users <= hit_users, (users * 3 + seed) % 20, 20 + (users * 7 + seed) % 100)
    pd.DataFrame({"user": users, "rank_valid": rank, "ties_valid": 0, "rank_test": rank, "ties_test": 0,
                  "train_len": 3 + users % 13, "test_input_len": 4 + users % 13}).to_parquet(tdir / "ranks.parquet")
    if history:
        curve = [v * e / 4 for e in range(1, 5)]
        (tdir / "result.json").write_text(json.dumps({"history": [
            {"epoch": e, "train/loss": 1.0, "valid/ndcg@20": c, "valid/hr@20": 2 * c} for e, c in enumerate(curve, 1)]}))
    row = {"trial_id": tid, "experiment": exp, "dataset": "beauty", "backbone": backbone, "variant": variant,
           "seed": seed, "alpha": alpha, "beta": beta, "k": k, "mask_history": mask_history, "max_len": max_len,
           "status": "ok", "hit_epoch_cap": False, "ranks_path": f"trials/{tid}/ranks.parquet",
           "data_fingerprint": f"fp-L{max_len}", XSU: xsu, "ties": "pessimistic",
           "test/hr@10": v * 0.7, "test/hr@20": v, "test/ndcg@10": v * 0.35, "test/ndcg@20": v * 0.43}
    (sweep / "results").mkdir(exist_ok=True)
    pd.DataFrame([row]).to_parquet(sweep / "results" / f"trial-{tid}.parquet")
    return row


def build_root(root: Path, experiments: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A hand-made reproduce root: one sweep dir per experiment, as `sracl-ray reproduce` writes them."""
    specs: dict[str, list[tuple[str, str, dict]]] = {
        "main": [("sasrec", v, {}) for v in ("full", "no_cl")],
        "ablation": [("sasrec", v, {"xsu": x}) for v in VARIANT_GAIN for x in (False, True)],
        "model_agnostic": [(b, v, {}) for b in ("gru4rec", "sasrec") for v in ("full", "no_cl")],
        "alpha_grid": [("sasrec", "full", {"alpha": a}) for a in (0.05, 0.1, 0.2)],
        "beta_grid": [("sasrec", "full", {"beta": b}) for b in (0.05, 0.1, 0.2)],
        "k_grid": [("sasrec", "full", {"k": k}) for k in (5, 10, 20)],
        "strong_baseline": [("sasrec", v, {"max_len": 50, "mask_history": True}) for v in ("full", "no_cl")],
        "tune_alpha_beta": [("sasrec", "full", {"alpha": a, "beta": 0.3}) for a in (0.013, 0.41)],
    }
    rows = []
    for exp, runs in specs.items():
        if experiments and exp not in experiments:
            continue
        n = 0
        for backbone, variant, kw in runs:
            for seed in SEEDS:
                n += 1
                rows.append(write_trial(root / exp, exp, n, backbone, variant, seed,
                                        history=exp in ("main", "ablation"), **kw))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("reproduce") / "runs"
    return root, build_root(root)


@pytest.fixture(scope="module")
def report(root, tmp_path_factory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("report") / "paper"
    md = write_report(root[0], out)
    return out, md, (out / "index.html").read_text()


def _table(md: str, title_start: str) -> str:
    start = md.index(title_start)
    end = md.find("\n**", start + 1)
    return md[start:end if end > 0 else None]


def _cells(table: str, first: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith("| ") and first in ln)
    return [c.strip().replace("**", "").replace("<u>", "").replace("</u>", "") for c in line.strip("|").split("|")]


def test_root_is_found_and_loaded_per_sweep(root):
    path, rows = root
    assert [p.name for p in sweep_dirs(path)] == sorted(rows["experiment"].unique())
    assert sweep_dirs(path / "main") == [] and sweep_dirs(path / "main" / "results") == []
    df = load_root(path)
    assert len(df) == len(rows) and set(df["experiment"]) == set(rows["experiment"])
    assert all(Path(p).is_file() for p in df["ranks_path"])  # resolved against each row's own sweep dir
    assert (df["sweep_dir"] == [str(path / e) for e in df["experiment"]]).all()


def test_table2_comes_from_main_only(report):
    _, md, _ = report
    t2 = _table(md, "**Table 2")
    assert "— experiment main" in t2.splitlines()[0]
    cells = _cells(t2, "HR@20")
    want_full = np.mean([value("main", "sasrec", "full", s) for s in SEEDS])
    want_base = np.mean([value("main", "sasrec", "no_cl", s) for s in SEEDS])
    assert cells[2:4] == [f"{want_base:.4f}", f"{want_full:.4f}"]  # not mixed with ablation's or the grids'


def test_table3_comes_from_ablation_at_exclude_same_user_false(report):
    _, md, _ = report
    t3 = _table(md, "**Table 3")
    assert "— experiment ablation" in t3.splitlines()[0]
    cells = _cells(t3, "HR@20")
    want = [np.mean([value("ablation", "sasrec", v, s) for s in SEEDS]) for v in VARIANT_GAIN]
    assert cells[2:] == [f"{w:.4f}" for w in want]


def test_per_user_tests_per_experiment_and_the_other_users_arm(report):
    _, md, _ = report
    per_user = [ln for ln in md.splitlines() if ln.startswith("**Significance per user")]
    assert [ln.rsplit("experiment ", 1)[1].strip("*") for ln in per_user] == [
        "main", "ablation", "model_agnostic", "strong_baseline"]
    abl = _table(md, next(ln for ln in per_user if ln.endswith("ablation**")))
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [other users' neighbours] | HR@20 |" in abl
    assert "| SASRec+SRA-CL | SASRec+SRA-CL (w/o L_IS) |" in abl
    assert "cannot pair" not in md and "several runs on one side" not in md  # no pooled duplicates


def test_figures_each_from_their_experiments(report):
    out, _, html = report
    imgs = [name for name in ("fig4_model_agnostic.png", "fig5_alpha_beta.png", "fig6_k.png", "fig7_sparsity.png",
                              "learning_curves.png") if f"src='{name}'" in html]
    assert len(imgs) == 5
    for name in imgs:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "metric vs alpha and beta" in html and "metric vs k" in html
    assert "Runs per method from: main: beauty SASRec+SRA-CL, beauty SASRec; ablation: beauty SASRec+SRA-CL [" in html
    assert "; model_agnostic: beauty GRU4Rec+SRA-CL, beauty GRU4Rec." in html
    assert "beauty SASRec [other" not in html  # no_cl with exclude_same_user repeats no_cl: not an arm
    curves = pd.read_csv(out / "learning_curves.csv")
    other = " [other users' neighbours]"
    assert set(curves["arm"]) == {"SASRec", "SASRec+SRA-CL", "SASRec+SRA-CL (w/o L_CS)", "SASRec+SRA-CL (w/o L_IS)",
                                  "SASRec+SRA-CL (Unlearnable)", "SASRec+SRA-CL" + other,
                                  "SASRec+SRA-CL (w/o L_IS)" + other, "SASRec+SRA-CL (Unlearnable)" + other}
    assert curves["n"].max() == len(SEEDS)  # main's and ablation's identical settings are not pooled


def test_other_experiments_are_listed_or_tabled(report):
    _, md, html = report
    assert "Table 2: performance comparison (mean over seeds) — experiment strong_baseline" in md
    assert "tune_alpha_beta: 6 trials, no full vs no_cl comparison" in html
    assert "Reproduce root with 8 experiment(s): ablation (30 trials)" in md
    assert "<title>SRA-CL reproduction report</title>" in html


def test_fig5_counts_a_setting_both_grids_ran_once(root):
    df = load_root(root[0])
    grids = df[df["experiment"].isin(["alpha_grid", "beta_grid"])]
    kept = one_run_per_config(grids, ("alpha_grid", "beta_grid"))
    at_ref = kept[(kept["alpha"] == 0.1) & (kept["beta"] == 0.1)]
    assert len(grids) == 18 and len(kept) == 15 and set(at_ref["experiment"]) == {"alpha_grid"}
    pooled, sources = one_source_per_method(df[(df["alpha"] == 0.1) & (df["beta"] == 0.1) & (df["k"] == 10)
                                               & (df["max_len"] == 20)])
    assert sources["beauty SASRec+SRA-CL"] == "main" and sources["beauty GRU4Rec"] == "model_agnostic"
    assert sources["beauty SASRec+SRA-CL [other users' neighbours]"] == "ablation"


def test_missing_experiments_are_named(tmp_path: Path):
    build_root(tmp_path / "runs", ("main", "ablation"))
    out = tmp_path / "out"
    md = write_report(tmp_path / "runs", out)
    html = (out / "index.html").read_text()
    assert "Table 2" in md and "Table 3" in md
    assert "Fig. 4: no experiment model_agnostic under this root (have: ablation, main)" in html
    assert "Fig. 5: no experiment alpha_grid or beta_grid" in html and "Fig. 6: no experiment k_grid" in html
    assert not (out / "fig4_model_agnostic.png").exists() and (out / "fig7_sparsity.png").exists()


def test_a_single_sweep_dir_reports_as_before(root, tmp_path: Path):
    md = write_report(root[0] / "main", tmp_path / "single")
    assert "**Table 2: performance comparison (mean over seeds)**" in md and "experiment main" not in md
    html = (tmp_path / "single" / "index.html").read_text()
    assert "<title>SRA-CL sweep report</title>" in html and "Reproduce root" not in html


def test_cli_reports_a_reproduce_root(root, tmp_path: Path):
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "sracl_ray.cli", "report", str(root[0]), "--out", str(out),
                           "--metric", "test/hr@20"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "results store is empty" not in proc.stderr and "Table 3" in proc.stdout
    assert (out / "index.html").is_file()
