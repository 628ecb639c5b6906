"""`reproduce --smoke`: every experiment file shrunk to 2 trials x 2 epochs; rerunning resumes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sweep_fakes

from sracl_ray.results import store as S
from sracl_ray.sweeps import reproduce as R

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def test_reproduce_smoke_plumbing(local_ray, tmp_path):
    folder = R.experiments_dir(str(REPO / "experiments"))
    outcomes = R.reproduce(tmp_path, folder, smoke=True, only=["smoke", "tune_alpha_beta"],
                           engine=sweep_fakes.fake_engine())
    assert [(o.storage.name, o.n_finished, o.n_errored) for o in outcomes] == [("smoke", 2, 0), ("tune_alpha_beta", 2, 0)]
    df = S.read_store(tmp_path)  # a parent of several sweeps reads as one store
    assert sorted(df["experiment"]) == ["smoke", "smoke", "tune_alpha_beta", "tune_alpha_beta"]
    assert (df["cfg.train.epochs"] == 2).all() and (df["cfg.data.max_users"] == 60).all()
    # A second reproduce resumes the finished sweeps: nothing is trained again.
    R.reproduce(tmp_path, folder, smoke=True, only=["smoke"], engine=sweep_fakes.fake_engine())
    for trial in (tmp_path / "smoke" / "trials").iterdir():
        assert sweep_fakes.fit_calls(trial) == [0]
    with pytest.raises(R.E.ConfigError, match="no experiment named nope"):
        R.reproduce(tmp_path, folder, smoke=True, only=["nope"], engine=sweep_fakes.fake_engine())


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "sracl_ray.cli", *args], cwd=REPO, env=env,
                            start_new_session=True, **kw)


@pytest.mark.slow
def test_reproduce_smoke_cli_real_engine(tmp_path):
    """The CI command: every experiment file, real fit(), packaged sample (several minutes on 2 CPUs)."""
    with open(tmp_path / "log", "w") as log:
        proc = _cli("reproduce", "--smoke", "--smoke-users", "40", "--storage", str(tmp_path / "r"),
                    "--num-cpus", "2", stdout=log, stderr=subprocess.STDOUT)
        rc = proc.wait(3000)
    assert rc == 0, (tmp_path / "log").read_text()[-5000:]
    df = S.read_store(tmp_path / "r")
    names = [f.stem for f in R.experiment_files(REPO / "experiments")]
    assert sorted(df["experiment"].unique()) == sorted(R.E.load_experiment(REPO / "experiments" / f"{n}.yaml").name
                                                       for n in names)
    assert (df.groupby("experiment").size() == 2).all()


@pytest.mark.slow
def test_cli_kill_and_resume_real_engine(tmp_path):
    """`sracl-ray sweep run` SIGKILLed after a finished trial, then `sweep resume`: 4 rows, none twice."""
    storage = tmp_path / "s"
    with open(tmp_path / "run.log", "w") as log:
        proc = _cli("sweep", "run", str(REPO / "experiments" / "smoke.yaml"), "--storage", str(storage),
                    "--num-cpus", "2", "--set", f"semantic.cache_dir={tmp_path / 'cache'}", stdout=log,
                    stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 900
        while not (storage / "results").exists() or not list((storage / "results").glob("trial-*.parquet")):
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        time.sleep(1)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    finished = {p.stem.removeprefix("trial-") for p in (storage / "results").glob("trial-*.parquet")}
    with open(tmp_path / "resume.log", "w") as log:
        proc = _cli("sweep", "resume", str(storage), "--num-cpus", "2", stdout=log, stderr=subprocess.STDOUT)
        rc = proc.wait(1200)
    assert rc == 0, (tmp_path / "resume.log").read_text()[-5000:]
    df = S.read_store(storage)
    assert len(df) == 4 and df["trial_id"].is_unique
    assert sorted(zip(df["variant"], df["seed"])) == [("full", 1), ("full", 2), ("no_cl", 1), ("no_cl", 2)]
    for tid in finished:  # finished before the kill: result.json untouched since (not retrained)
        assert (storage / "trials" / tid / "result.json").stat().st_mtime < (tmp_path / "resume.log").stat().st_ctime
