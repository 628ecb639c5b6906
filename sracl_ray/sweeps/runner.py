"""Run and resume a sweep: an experiment file -> a Ray Tune run under one storage dir.

Storage layout (a local path or a filesystem shared by every node):
    <storage>/sweep.json         the validated experiment (what `sweep resume` rebuilds from)
    <storage>/tune/              Ray Tune's experiment dir: tuner.pkl, experiment state, the
                                 searcher state (searcher-state-*.pkl), per-trial dirs with
                                 TensorBoard events, progress.csv and reported checkpoints
    <storage>/trials/<trial_id>/ fit() outputs: result.json, ranks.parquet, best.safetensors
    <storage>/results/           the results store, one trial-<trial_id>.parquet per finished trial

Resume and the Optuna searcher (ray issue #30861): Tune pickles the searcher into tuner.pkl at
the start and saves its state (the Optuna study with every told trial) to
tune/searcher-state-*.pkl with each experiment checkpoint; Tuner.restore reloads that state into
the restored searcher.  `resume_sweep` therefore never builds a new searcher (that would forget
the study and draw num_samples fresh trials); tests/sweeps/test_resume.py checks that a resumed
Optuna sweep ends with exactly num_samples trials and a study that holds all of them.
"""
from __future__ import annotations

import json
import logging
import shutil
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sracl_ray.config import ConfigError
from sracl_ray.manifest import atomic_write_text, code_version
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps.trainable import Engine, TrialSpec, default_engine, sweep_trial

log = logging.getLogger(__name__)

TUNE_DIRNAME = "tune"
SPEC_FILENAME = "sweep.json"


@dataclass
class SweepOutcome:
    storage: Path
    n_trials: int
    n_finished: int
    n_errored: int
    best: dict[str, Any] | None  # {trial_id, metric value, config sample}

    @property
    def ok(self) -> bool:
        return self.n_errored == 0


def trial_dirname(trial) -> str:
    """Short trial dir names (the default embeds every sampled value and can exceed path limits)."""
    return f"trial_{trial.trial_id}"


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to a cluster (address / RAY_ADDRESS) or start a local one; no-op when connected."""
    from sracl_ray.raytools import ensure_ray

    ensure_ray(num_cpus, address=address, num_gpus=num_gpus)


def effective_gpus(requested: float) -> float:
    """Requested GPUs per trial, or 0 (CPU-only) when the cluster has no GPU at all."""
    import ray

    if requested > 0 and ray.cluster_resources().get("GPU", 0) == 0:
        log.warning("resources.gpus=%s but the Ray cluster has no GPU: running trials CPU-only "
                    "(on an autoscaling cluster give the GPU worker type min_workers >= 1)", requested)
        return 0.0
    return requested


def param_space(exp: E.Experiment) -> dict[str, Any]:
    """Tune's search space, keyed by dotted config keys."""
    from ray import tune

    if exp.search.mode == "grid":
        return {k: tune.grid_search(list(v)) for k, v in exp.search.grid.items()}
    space = {}
    for key, s in exp.search.space.items():
        t = s["type"]
        space[key] = (tune.choice(list(s["values"])) if t == "choice" else
                      tune.uniform(s["low"], s["high"]) if t == "uniform" else
                      tune.loguniform(s["low"], s["high"]) if t == "loguniform" else
                      tune.quniform(s["low"], s["high"], s["q"]) if t == "quniform" else
                      tune.randint(int(s["low"]), int(s["high"])))
    return space


def search_and_scheduler(exp: E.Experiment) -> tuple[Any, Any]:
    """grid: Tune's variant generator, FIFO.  optuna: TPE (OptunaSearch) + ASHA on the valid metric."""
    if exp.search.mode == "grid":
        return None, None
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    epochs = exp.base_config().train.epochs
    # max_t counts fit()'s final report (test metrics) as one more iteration, so ASHA never stops
    # a trial at its last epoch before that report is made and the results row written.
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1,
                              grace_period=min(exp.search.grace_period, epochs + 1),
                              reduction_factor=exp.search.reduction_factor)
    return OptunaSearch(seed=exp.search.seed), scheduler


def prepare_shared(exp: E.Experiment, engine: Engine) -> dict[str, Any]:
    """One Prepared per distinct (data, semantic) section, each put in the object store once."""
    import ray

    refs = {}
    for key, cfg in E.prepare_groups(exp).items():
        log.info("preparing inputs for %s", cfg.data.name)
        refs[key] = ray.put(engine.prepare(cfg))
    return refs


def build_trainable(exp: E.Experiment, storage: Path, engine: Engine, refs: dict[str, Any]):
    from ray import tune

    spec = TrialSpec(experiment=exp.name, base=E.C.to_dict(exp.base_config()), storage=str(storage))
    trainable = tune.with_parameters(sweep_trial, prepared=refs, spec=spec, engine=engine)
    return tune.with_resources(trainable, {"cpu": exp.resources.cpus, "gpu": effective_gpus(exp.resources.gpus)})


def write_spec(storage: Path, exp: E.Experiment, smoke: bool) -> None:
    spec = {"experiment": exp.to_dict(), "source": exp.source, "smoke": smoke, "code_version": code_version()}
    atomic_write_text(storage / SPEC_FILENAME, json.dumps(spec, indent=2, default=str))


def read_spec(storage: Path) -> E.Experiment:
    path = storage / SPEC_FILENAME
    if not path.exists():
        raise ConfigError(f"{storage}: not a sweep storage dir (no {SPEC_FILENAME}); start one with `sweep run`")
    raw = json.loads(path.read_text())
    return E.from_dict(raw["experiment"], source=raw.get("source") or str(path))


def summarize(results, exp: E.Experiment, storage: Path) -> SweepOutcome:
    finished = [r for r in results if r.error is None]
    errored = [r for r in results if r.error is not None]
    best = None
    scored = [r for r in finished if r.metrics and exp.metric in r.metrics]
    if scored:
        pick = max if exp.mode == "max" else min
        r = pick(scored, key=lambda r: r.metrics[exp.metric])
        best = {"trial_id": r.metrics.get("trial_id"), exp.metric: r.metrics[exp.metric],
                "config": {k: v for k, v in (r.config or {}).items()}}
    return SweepOutcome(storage, len(results), len(finished), len(errored), best)


def _run_config(exp: E.Experiment, storage: Path, callbacks: list):
    from ray import tune

    return tune.RunConfig(
        name=TUNE_DIRNAME, storage_path=str(storage), verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=exp.max_failures),
        # Keep every Tune checkpoint: they are tiny epoch markers (trainable.install_checkpoint),
        # and deleting old ones let a killed driver's last state name a checkpoint that was gone.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
    )


def _quiet_tune() -> None:
    # Frequent experiment snapshots make a killed driver resumable: every second (Tune's "auto"
    # waits 10 s or more, so a kill could lose every trial finished since). With short epochs
    # Tune warns about their cost on every epoch.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def run_sweep(exp: E.Experiment, storage: str | Path, *, engine: Engine | None = None,
              mlflow_uri: str | None = None, write: Callable[[str], None] | None = None,
              address: str | None = None, num_cpus: int | None = None, smoke: bool = False,
              progress_every_s: float = 30.0) -> SweepOutcome:
    """Start a new sweep in `storage` (refuses a dir that already holds one: use resume_sweep)."""
    from ray import tune

    from sracl_ray.sweeps.tracking import Progress, tracking_callbacks

    _quiet_tune()
    storage = Path(storage).expanduser().resolve()
    if (storage / TUNE_DIRNAME / "tuner.pkl").exists():
        raise ConfigError(f"{storage} already holds a sweep; continue it with `sracl-ray sweep resume {storage}`")
    storage.mkdir(parents=True, exist_ok=True)
    engine = engine or default_engine()
    write_spec(storage, exp, smoke)
    init_ray(address, num_cpus)
    refs = prepare_shared(exp, engine)
    search_alg, scheduler = search_and_scheduler(exp)
    callbacks = [*tracking_callbacks(exp.name, mlflow_uri), Progress(exp.metric, exp.mode, progress_every_s, write)]
    tuner = tune.Tuner(
        build_trainable(exp, storage, engine, refs),
        param_space=param_space(exp),
        tune_config=tune.TuneConfig(metric=exp.metric, mode=exp.mode, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=exp.search.num_samples,
                                    max_concurrent_trials=exp.max_concurrent_trials,
                                    trial_dirname_creator=trial_dirname),
        run_config=_run_config(exp, storage, callbacks),
    )
    return summarize(tuner.fit(), exp, storage)


STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")


def repair_state_files(tune_dir: Path, staging_root: Path | None = None) -> list[Path]:
    """Replace state files that a killed driver left truncated with Ray's complete staged copies.

    Ray writes its experiment/searcher state atomically in a local staging dir, then copies it to
    the storage dir non-atomically; a SIGKILL during that copy leaves an empty or cut file (seen:
    a 0-byte search_gen_state, after which Tune restores an Optuna searcher without its space).
    The staged copy of the same file (its name carries the run's start time) is still complete.
    """
    staging_root = staging_root or Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    repaired = []
    for pattern in STATE_FILES:
        for stored in tune_dir.glob(pattern):
            staged = [p for p in staging_root.glob(f"session_*/artifacts/*/{tune_dir.name}/driver_artifacts/{stored.name}")
                      if p.stat().st_size > stored.stat().st_size]
            if staged:
                best = max(staged, key=lambda p: p.stat().st_mtime)
                shutil.copyfile(best, stored)
                repaired.append(stored)
            elif stored.stat().st_size == 0:
                raise ConfigError(f"{stored} is empty (the driver was killed while writing it) and no staged "
                                  f"copy was found under {staging_root}; this sweep cannot be resumed exactly")
    return repaired


def resume_sweep(storage: str | Path, *, engine: Engine | None = None, restart_errored: bool = False,
                 address: str | None = None, num_cpus: int | None = None) -> SweepOutcome:
    """Continue a killed or partly failed sweep: finished trials stay, unfinished ones continue
    from their last checkpoint, errored ones resume (or restart from scratch with restart_errored),
    and the searcher continues from its saved state."""
    from ray import tune

    _quiet_tune()
    storage = Path(storage).expanduser().resolve()
    exp = read_spec(storage)
    tune_dir = storage / TUNE_DIRNAME
    if not tune.Tuner.can_restore(str(tune_dir)):
        raise ConfigError(f"{tune_dir}: no restorable Tune state (the sweep never started?); "
                          f"start it again with `sracl-ray sweep run ... --storage {storage}`")
    for path in repair_state_files(tune_dir):
        log.warning("restored %s from Ray's staged copy (the killed driver left it truncated)", path)
    engine = engine or default_engine()
    init_ray(address, num_cpus)
    refs = prepare_shared(exp, engine)  # object refs do not survive the old driver: put them again
    trainable = build_trainable(exp, storage, engine, refs)
    results = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_unfinished=True,
                                 resume_errored=not restart_errored, restart_errored=restart_errored).fit()
    return summarize(results, exp, storage)
