"""`sracl-ray reproduce`: run every experiment file, each into <storage>/<experiment name>.

A storage dir that already holds a sweep is resumed, so an interrupted reproduce picks up where it
stopped.  --smoke shrinks each experiment to two trials of two epochs on the packaged sample.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import sracl_ray
from sracl_ray import storage as S
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner
from sracl_ray.sweeps.trainable import Engine

log = logging.getLogger(__name__)


def experiments_dir(given: str | None = None) -> Path:
    """--experiments, else ./experiments, else the checkout's experiments/ folder."""
    for cand in ([Path(given)] if given else [Path.cwd() / "experiments",
                                               Path(sracl_ray.__file__).resolve().parents[1] / "experiments"]):
        if cand.is_dir():
            return cand
    raise E.ConfigError(f"--experiments: no experiments dir found (looked for {given or './experiments'})")


def is_experiment_file(path: Path) -> bool:
    """Experiment files have `name`/`search`; plain config files (for `sracl-ray train`) do not."""
    try:
        top = E.C.load_yaml(path)
    except E.ConfigError:
        return True  # let load_experiment report the parse error
    return E.C.is_experiment_mapping(top)


def experiment_files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.glob("*.yaml")) if is_experiment_file(f)]


def load_all(folder: Path, only: list[str] | None = None, smoke: bool = False, storage: str | None = None,
             smoke_users: int = 60) -> list[E.Experiment]:
    """Every *.yaml in folder, validated up front (one bad file stops everything before any trial)."""
    files = experiment_files(folder)
    exps = [E.load_experiment(f) for f in files]
    if only:
        unknown = set(only) - {e.name for e in exps}
        if unknown:
            raise E.ConfigError(f"--only: no experiment named {', '.join(sorted(unknown))} in {folder} "
                                f"(have: {', '.join(e.name for e in exps)})")
        exps = [e for e in exps if e.name in only]
    if smoke:
        # the smoke artifacts are built by the driver: next to a local storage dir, else the default cache
        cache = str(Path(storage) / ".semantic_cache") if storage and not S.is_uri(storage) else None
        exps = [E.shrink_for_smoke(e, max_users=smoke_users, cache_dir=cache) for e in exps]
    return exps


def reproduce(storage: str | Path, folder: Path, *, smoke: bool = False, only: list[str] | None = None,
              engine: Engine | None = None, write: Callable[[str], None] | None = None,
              address: str | None = None, num_cpus: int | None = None, mlflow_uri: str | None = None,
              smoke_users: int = 60) -> list[runner.SweepOutcome]:
    storage = S.normalise(storage)
    exps = load_all(folder, only, smoke, storage, smoke_users)
    write = write or log.info
    outcomes = []
    for exp in exps:
        sweep_dir = S.join(storage, exp.name)
        write(f"== {exp.name} ({exp.source}) -> {sweep_dir}")
        if S.exists(S.join(sweep_dir, runner.TUNE_DIRNAME, runner.TUNER_FILENAME)):
            outcome = runner.resume_sweep(sweep_dir, engine=engine, address=address, num_cpus=num_cpus)
        else:
            outcome = runner.run_sweep(exp, sweep_dir, engine=engine, mlflow_uri=mlflow_uri, write=write,
                                       address=address, num_cpus=num_cpus, smoke=smoke)
        outcomes.append(outcome)
    return outcomes
