"""benchmarks/reproduce_gpu.py: the GPU study's code path, on a CPU in seconds and without Ray.

The lent GPU machines have no Ray and no duckdb, so the smoke run happens with both made
unimportable; its store must be one `sracl-ray report` reads (tables, per-user tests, curves).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"


def _blocked_env(tmp_path: Path) -> dict:
    """PYTHONPATH with packages named ray and duckdb that refuse to import (as on the GPU machine)."""
    block = tmp_path / "no_ray"
    for name in ("ray", "duckdb"):
        (block / name).mkdir(parents=True, exist_ok=True)
        (block / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on the GPU machine')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(block), str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH / "reproduce_gpu.py"), "--smoke", "--storage", str(tmp_path / "st"),
           "--out", str(tmp_path / "raw.json"), *extra]
    return subprocess.run(cmd, cwd=tmp_path, env=_blocked_env(tmp_path), capture_output=True, text=True, timeout=300)


def test_smoke_study_writes_a_store_the_report_reads(tmp_path: Path):
    from tests.benchmarks.test_benchmark_smoke import check_record, results_listing

    before = results_listing()
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = json.loads((tmp_path / "raw.json").read_text())
    check_record(raw, "reproduce_gpu")  # the benchmark-smoke check, so test_smoke need not run it again
    assert results_listing() == before, "a smoke run wrote into benchmarks/results"
    assert raw["complete"] and raw["smoke"] and raw["results"]["n_ok"] == 2
    trials = raw["results"]["trials"]
    assert set(trials) == {"full-s1", "no_cl-s1"}
    for t in trials.values():
        assert t["status"] == "ok" and t["epochs_run"] == 1 and len(t["curve"]) == 1
        assert {"test/hr@20", "valid/ndcg@20"} <= set(t["metrics"]) and "valid/ndcg@20" in t["curve"][0]
    sweep = tmp_path / "st" / "ablation"
    rows = pd.concat([pd.read_parquet(f) for f in sorted((sweep / "results").glob("trial-*.parquet"))])
    assert sorted(rows["variant"]) == ["full", "no_cl"] and set(rows["experiment"]) == {"ablation"}
    assert set(rows["status"]) == {"ok"} and rows["hit_epoch_cap"].all()
    assert all((sweep / p).is_file() for p in rows["ranks_path"])  # relative to the sweep dir, as sweeps write

    from analysis.report import write_report

    md = write_report(sweep, tmp_path / "report")
    assert "Table 2" in md and "Significance per user" in md and "Learning curves: valid NDCG@20" in md
    assert (tmp_path / "report" / "learning_curves.png").is_file()

    again = _run(tmp_path)  # a rerun into the same storage trains nothing again
    assert again.returncode == 0 and "trials_planned=[]" in again.stdout


@pytest.fixture()
def driver(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import reproduce_gpu

    return reproduce_gpu


def _task(driver, tmp_path: Path, deadline: float, extra: tuple[str, ...] = ()) -> dict:
    args = driver.parse_args(["--smoke", "--storage", str(tmp_path / "st"), "--out", str(tmp_path / "r.json")])
    args.epochs, args.patience = 3, 3
    artifact, _ = driver.build_artifact(args, tmp_path / "st")
    sweep = tmp_path / "st" / "ablation"
    (sweep / "results").mkdir(parents=True)
    sets = driver.base_sets(args, artifact) + ["cl.variant=full", "train.seed=1", *extra]
    return {"trial_id": "full-s1", "variant": "full", "arm_sets": [], "seed": 1, "sets": sets, "sweep": str(sweep),
            "experiment": "ablation", "t_start": 0.0, "deadline": deadline}


class _Clock:
    """time.time() for the driver: 0 for the first two calls (start, queue check), then past the budget."""

    def __init__(self):
        self.calls = 0

    def time(self) -> float:
        self.calls += 1
        return 0.0 if self.calls <= 2 else 1e9


def test_a_trial_running_at_the_budget_stops_after_its_epoch(driver, tmp_path: Path, monkeypatch):
    task = _task(driver, tmp_path, deadline=100.0)
    monkeypatch.setattr(driver, "time", _Clock())
    s = driver.run_trial(task)
    assert s["status"] == "stopped_at_budget" and [c["epoch"] for c in s["curve"]] == [1]
    sweep = Path(task["sweep"])
    assert not list((sweep / "results").glob("trial-*.parquet"))  # unfinished: no results row
    assert (sweep / "trials" / "full-s1" / "checkpoint").is_dir()  # a rerun resumes from epoch 1


def test_queued_past_the_budget_and_bad_settings(driver, tmp_path: Path):
    s = driver.run_trial(_task(driver, tmp_path / "a", deadline=-1.0))
    assert s["status"] == "not_started" and s["curve"] == []
    s = driver.run_trial(_task(driver, tmp_path / "b", deadline=1e18, extra=("train.epochz=3",)))
    assert s["status"] == "errored" and "epochz" in s["error"]


def test_errored_trial_row_is_the_trainables_row(driver, tmp_path: Path, monkeypatch):
    """The GPU study records a failed trial as the Tune trainable does (results/store.failure_result and
    record_trial): status errored, the error's one line scrubbed of the API key, the host."""
    import socket

    from sracl_ray.results import store
    from sracl_ray.training import fit as fit_mod

    key = "sk-study-secret-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    def boom(*a, **k):
        raise RuntimeError(f"endpoint refused key {key}")

    monkeypatch.setattr(fit_mod, "fit", boom)
    task = _task(driver, tmp_path, deadline=1e18)
    s = driver.run_trial(task)
    assert s["status"] == "errored" and key not in s["error"] and key not in s.get("traceback", "")
    row = store.read_store(Path(task["sweep"])).iloc[0]
    assert row["status"] == "errored" and row["host"] == socket.gethostname()
    assert "RuntimeError: endpoint refused key" in row["error"] and key not in row["error"]


def test_grid_runs_the_arms_of_attribution_yaml(driver, tmp_path: Path):
    """--grid experiments/attribution.yaml: one arm per grid point (seeds from --seeds), each with the
    file's base settings (its data section left to --data) and the point's values; every planned
    trial's settings load, and the trial ids name the point."""
    from sracl_ray import config as C

    args = driver.parse_args(["--smoke", "--grid", str(REPO / "experiments" / "attribution.yaml"), "--seeds", "1,2",
                              "--storage", str(tmp_path / "st"), "--out", str(tmp_path / "r.json")])
    args.seeds = [1, 2]  # --smoke keeps one seed; the plan of two is what is checked here
    arms = driver.arms(args)
    assert len(arms) == 9 and {a[0] for a in arms} >= {"full-none", "full-longer_same_user", "self_view-same_user"}
    todo, done = driver.tasks(args, tmp_path / "artifact", tmp_path / "st" / "attribution", 0.0)
    assert done == [] and len(todo) == 18 and todo[0]["trial_id"] == "full-none-s1"
    for t in todo:
        cfg = C.load(None, t["sets"])
        assert cfg.cl.variant == t["variant"] and cfg.train.seed == t["seed"] and cfg.train.metric == "valid/mrr@10"
        assert C.exclusion(cfg.semantic) == t["trial_id"].split("-")[1]
        assert cfg.data.max_users == driver.SMOKE_USERS  # the file's data section is not used
