"""Kill the sweep driver with SIGKILL mid-sweep, resume it: every trial once, finished ones not rerun,
and the Optuna searcher continues from its saved state (ray issue #30861)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from sracl_ray.results import store as S

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "sweep_driver.py"
N_TRIALS = 6


def _env() -> dict:
    return {**os.environ, "SWEEP_FAKE_EPOCH_S": "1.0", "RAY_AUTH_MODE": "disabled",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def _rows(storage: Path) -> list[Path]:
    return sorted((storage / "results").glob("trial-*.parquet")) if (storage / "results").exists() else []


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver's own session: its local Ray processes
    except ProcessLookupError:
        pass


def run_until_killed(storage: Path, mode: str, log: Path, min_rows: int = 2, timeout: float = 150) -> list[str]:
    """Start a driver, SIGKILL it once min_rows trials are finished; return the finished trial ids."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(DRIVER), "run", str(storage), mode], env=_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + timeout
        while len(_rows(storage)) < min_rows:
            assert proc.poll() is None, f"driver exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, f"no {min_rows} finished trials in {timeout}s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        finished = [p.stem.removeprefix("trial-") for p in _rows(storage)]
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies without any chance to clean up
        proc.wait(30)
    finally:
        time.sleep(1)
        _kill_group(proc)
    assert len(finished) < N_TRIALS, "the sweep finished before it could be killed; slow the epochs down"
    return finished


def resume(storage: Path) -> None:
    """`sweep resume` as a new driver does it, in this process on the session's Ray (the killed driver
    and its own Ray are gone; what resume needs is on disk, which is what this checks)."""
    import sweep_fakes

    from sracl_ray.sweeps import runner

    out = runner.resume_sweep(storage, engine=sweep_fakes.fake_engine(), num_cpus=2)
    assert out.ok and out.n_finished == N_TRIALS, out


def check_store(storage: Path, finished_before_kill: list[str]) -> None:
    import sweep_fakes

    df = S.read_store(storage)
    assert len(df) == N_TRIALS and df["trial_id"].is_unique, df["trial_id"].tolist()
    trial_dirs = sorted((storage / "trials").iterdir())
    assert len(trial_dirs) == N_TRIALS
    for d in trial_dirs:
        calls = sweep_fakes.fit_calls(d)
        if d.name in finished_before_kill:
            assert calls == [0], f"{d.name} finished before the kill but fit() ran again: {calls}"
        else:  # resumed from its last reported epoch, or (killed before any report) started once more
            assert 1 <= len(calls) <= 2 and calls[0] == 0, (d.name, calls)
    # Tune's own record agrees: exactly N_TRIALS trials in the experiment.
    assert len(list((storage / "tune").glob("trial_*"))) == N_TRIALS


def test_kill_and_resume_grid(local_ray, tmp_path):
    storage = tmp_path / "sweep"
    finished = run_until_killed(storage, "grid", tmp_path / "run.log")
    resume(storage)
    check_store(storage, finished)
    df = S.read_store(storage)
    assert sorted(zip(df["alpha"], df["seed"])) == sorted((a, s) for a in (0.1, 0.2, 0.3) for s in (1, 2))


def test_kill_and_resume_optuna_keeps_searcher_state(local_ray, tmp_path):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = tmp_path / "sweep"
    finished = run_until_killed(storage, "optuna", tmp_path / "run.log")
    resume(storage)
    check_store(storage, finished)
    # The study saved at the end holds every trial, those told before the kill included: a searcher
    # rebuilt from scratch on resume would know only the post-resume trials and would have drawn
    # num_samples new ones (more than N_TRIALS trial dirs).
    searcher = OptunaSearch()
    searcher.restore_from_dir(str(storage / "tune"))
    complete = [t for t in searcher._ot_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == N_TRIALS
    df = S.read_store(storage)
    sampled = sorted(round(b, 9) for b in df["beta"])
    assert sampled == sorted(round(t.params["cl.beta"], 9) for t in complete)


def test_truncated_state_file_is_restored_from_rays_staged_copy(tmp_path):
    """A driver killed mid-copy leaves an empty state file; resume takes Ray's staged copy."""
    import pytest

    from sracl_ray.config import ConfigError
    from sracl_ray.sweeps.runner import repair_state_files

    tune_dir = tmp_path / "sweep" / "tune"
    tune_dir.mkdir(parents=True)
    name = "search_gen_state-2026-11-27_19-20-18.json"
    (tune_dir / name).write_bytes(b"")
    (tune_dir / "experiment_state-2026-11-27_19-20-18.json").write_text('{"complete": true}')
    staged = tmp_path / "ray" / "session_1" / "artifacts" / "t1" / "tune" / "driver_artifacts"
    staged.mkdir(parents=True)
    (staged / name).write_bytes(b"complete state")
    assert repair_state_files(tune_dir, tmp_path / "ray") == [tune_dir / name]
    assert (tune_dir / name).read_bytes() == b"complete state"
    assert (tune_dir / "experiment_state-2026-11-27_19-20-18.json").read_text() == '{"complete": true}'
    (tune_dir / name).write_bytes(b"")
    with pytest.raises(ConfigError, match="is empty"):
        repair_state_files(tune_dir, tmp_path / "elsewhere")
