"""Run and resume a sweep: an experiment file -> a Ray Tune run under one storage dir.

Storage layout (a path on a filesystem shared by every node, or a storage URI such as
s3://bucket/prefix that every node can reach; sracl_ray/storage.py):
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sracl_ray import storage as S
from sracl_ray.config import ConfigError
from sracl_ray.manifest import code_version
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps.shared_storage import check_shared_storage
from sracl_ray.sweeps.state_guard import check_private, check_private_file
from sracl_ray.sweeps.trainable import Engine, TrialSpec, default_engine, sweep_trial

log = logging.getLogger(__name__)

from sracl_ray.results.layout import OUR_ENTRIES, SPEC_FILENAME, TUNE_DIRNAME, TUNER_FILENAME  # noqa: E402


@dataclass
class SweepOutcome:
    storage: Path | str
    n_trials: int
    n_finished: int
    n_errored: int
    best: dict[str, Any] | None  # {trial_id, metric value, config sample}
    errors: dict[str, str] = field(default_factory=dict)  # errored trial id -> its error, one line

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


GPU_WAIT_POLL_S = 1.0  # how often the cluster is asked whether a GPU node has joined
GPU_WAIT_LINE_S = 30.0  # a progress line while waiting, this often


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def ask_autoscaler_for(bundles: list[dict[str, float]]) -> None:
    """Tell Ray's autoscaler to fit `bundles` now ([] withdraws the request); a no-op without one.

    A cluster whose GPU worker type has min_workers 0 (cluster.yaml) starts a GPU node only for
    demand it sees, and while the driver waits for a GPU no trial is pending yet."""
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=bundles)
    except Exception as e:  # noqa: BLE001 - a hint only: the wait and its fallback still apply
        log.debug("could not ask the autoscaler for %s: %s", bundles, e)


def effective_gpus(requested: float, wait_s: float = 0.0, require: bool = False,
                   line_every_s: float = GPU_WAIT_LINE_S) -> float:
    """GPUs per trial: `requested` once the cluster shows a GPU, else 0 (CPU-only, with a warning).

    Right after `ray up` the cluster has no GPU node yet (cluster.yaml starts them on demand), so a
    cluster without a GPU is watched for up to `wait_s` seconds (a log line every `line_every_s`)
    while the autoscaler is asked for one GPU node, before falling back.  With `require` there is
    no fallback: a ConfigError once the wait is over.
    """
    if requested <= 0:
        return 0.0
    start = last = time.monotonic()
    if cluster_gpus() == 0 and wait_s > 0:
        log.warning("resources.gpus=%g but the Ray cluster shows no GPU yet: waiting up to %g s "
                    "(resources.gpu_wait_s) for a GPU node to join (asked the autoscaler for one)", requested, wait_s)
        ask_autoscaler_for([{"GPU": requested}])  # one trial's worth: a node of a GPU type
        try:
            while cluster_gpus() == 0 and (left := wait_s - (time.monotonic() - start)) > 0:
                time.sleep(min(GPU_WAIT_POLL_S, left))
                if time.monotonic() - last >= line_every_s:
                    last = time.monotonic()
                    log.warning("still no GPU in the Ray cluster after %.0f s of %g s", last - start, wait_s)
        finally:
            ask_autoscaler_for([])  # from here on the trials' own demand drives the autoscaler
    waited = time.monotonic() - start
    if cluster_gpus() > 0:
        if waited >= GPU_WAIT_POLL_S:
            log.warning("a GPU node joined after %.0f s: trials get %g GPU each", waited, requested)
        return requested
    if require:
        raise ConfigError(f"resources.require_gpu: the Ray cluster shows no GPU after {waited:.0f} s "
                          f"(resources.gpu_wait_s={wait_s:g}); check that GPU workers can start (cluster.yaml: "
                          f"worker.gpu; `ray exec cluster.yaml 'ray status'`), wait longer, or set "
                          f"resources.require_gpu=false to allow CPU-only trials")
    log.warning("resources.gpus=%g but the Ray cluster has no GPU%s: running trials CPU-only "
                "(on an autoscaling cluster check that GPU workers can start, or raise resources.gpu_wait_s)",
                requested, f" after {waited:.0f} s" if wait_s > 0 else "")
    return 0.0


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
        log.info("preparing inputs for %s", E.C.dataset_label(cfg.data))
        refs[key] = ray.put(engine.prepare(cfg))
    return refs


def build_trainable(exp: E.Experiment, storage: str, engine: Engine, refs: dict[str, Any]):
    from ray import tune

    spec = TrialSpec(experiment=exp.name, base=E.C.to_dict(exp.base_config()), storage=str(storage))
    trainable = tune.with_parameters(sweep_trial, prepared=refs, spec=spec, engine=engine)
    r = exp.resources
    return tune.with_resources(trainable, {"cpu": r.cpus, "gpu": effective_gpus(r.gpus, r.gpu_wait_s, r.require_gpu)})


def check_inputs_exist(exp: E.Experiment) -> None:
    """Every data.path the sweep can visit exists here, before Ray starts.

    The driver reads the data once and ships the prepared inputs to the trials through Ray's object
    store, so the path must exist on the machine running the driver (the head node on a cluster).
    Storage URIs (scheme://...) are left to the reader.
    """
    for cfg in E.prepare_groups(exp).values():
        path = cfg.data.path
        if path and "://" not in str(path) and not Path(path).expanduser().exists():
            where = E.where(exp.source, "base.data.path") if exp.source else "data.path"
            raise ConfigError(f"{where}: {path} does not exist on this machine (the driver reads the data); "
                              f"point it at the dataset with --set data.path=DIR")


def write_spec(storage: str, exp: E.Experiment, smoke: bool) -> None:
    spec = {"experiment": exp.to_dict(), "source": exp.source, "smoke": smoke, "code_version": code_version()}
    S.write_text(S.join(storage, SPEC_FILENAME), json.dumps(spec, indent=2, default=str))


def read_spec(storage: str) -> E.Experiment:
    """The experiment a sweep was started with (sweep.json); one line naming the file when it is unusable."""
    path = S.join(storage, SPEC_FILENAME)
    try:
        raw = json.loads(S.read_text(path))
    except FileNotFoundError:
        raise ConfigError(f"{storage}: not a sweep storage dir (no {SPEC_FILENAME}); start one with `sweep run`") \
            from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{path}: not a sweep spec (truncated or corrupt JSON: {e}); restore it from a copy or "
                          f"start the sweep again with `sweep run --overwrite`") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("experiment"), dict):
        raise ConfigError(f"{path}: not a sweep spec (no `experiment` object); restore it from a copy or start the "
                          f"sweep again with `sweep run --overwrite`")
    source = raw.get("source") if isinstance(raw.get("source"), str) and raw.get("source") else str(path)
    return E.from_dict(raw["experiment"], source=source)


def result_trial_id(r) -> str:
    return (r.metrics or {}).get("trial_id") or Path(str(r.path)).name.removeprefix("trial_")


def reconcile_rows(results, exp: E.Experiment, storage: str) -> int:
    """Every trial ends as a row: write the rows a trial could not write itself.

    An errored trial writes its own row (trainable.record_error), unless its worker died (a lost
    node) or it failed before its config was built; a trial a scheduler stopped early (ASHA) is
    killed without a word.  So after Tune is done: a trial with an error and no row gets an
    `errored` row with Tune's one-line error; a trial that ended without its final report gets a
    `pruned` row.  Returns how many rows were written.
    """
    from sracl_ray.results import store
    from sracl_ray.sweeps.trainable import TrialSpec, write_store_row

    spec = TrialSpec(experiment=exp.name, base=E.C.to_dict(exp.base_config()), storage=str(storage))
    written = 0
    for r in results:
        trial_id = result_trial_id(r)
        status = store.row_status(storage, trial_id)
        if r.error is not None:
            if status is not None:
                continue  # the trial's own row (errored, diverged, or ok before a late failure)
            row = store.failure_result(r.error, on_this_host=False)  # it failed on a worker, not here
        elif not (r.metrics or {}).get("final"):
            row = {"status": "pruned", "error": f"stopped by the scheduler after {r.metrics.get('epoch', 0)} epoch(s)",
                   "epochs_run": int((r.metrics or {}).get("epoch", 0))}
        else:
            continue
        try:
            cfg = E.trial_config(spec.base, r.config or {})
        except ConfigError:
            log.warning("trial %s: its config cannot be rebuilt; no row written", trial_id)
            continue
        write_store_row(spec, trial_id, cfg, row, Path(str(storage)))
        written += 1
    if written:
        log.info("wrote %d results row(s) for trials that ended without writing their own", written)
    return written


def summarize(results, exp: E.Experiment, storage: str) -> SweepOutcome:
    finished = [r for r in results if r.error is None]
    errored = [r for r in results if r.error is not None]
    best = None
    # the final report of each trial (best epoch's validation metrics + test): what the progress lines and
    # the results store rank by; a trial a scheduler stopped early has none and is never best
    scored = [r for r in finished if r.metrics and exp.metric in r.metrics and r.metrics.get("final")]
    if scored:
        pick = max if exp.mode == "max" else min
        r = pick(scored, key=lambda r: r.metrics[exp.metric])
        best = {"trial_id": r.metrics.get("trial_id"), exp.metric: r.metrics[exp.metric],
                "config": {k: v for k, v in (r.config or {}).items()}}
    from sracl_ray.errors import error_line

    errors = {result_trial_id(r): error_line(r.error) for r in errored}
    return SweepOutcome(storage if S.is_uri(storage) else Path(storage), len(results), len(finished), len(errored), best, errors)


def _run_config(exp: E.Experiment, storage: str, callbacks: list):
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


def claim_storage(storage: str, overwrite: bool = False) -> list[str]:
    """Check that `storage` may take a new sweep; returns this tool's entries there to remove first.

    Nothing is removed here (the caller does it once it holds the storage's lock).  A dir holding a
    sweep with finished trials (rows in its results store) is refused: resume it, or pass
    overwrite to replace it.  A sweep that ended before any trial finished (a crash at start, a bad
    input) leaves nothing worth keeping, so its files are replaced.  A dir that holds files but no
    sweep (no sweep.json) is refused unless overwrite: it may be the user's own.  Only this tool's
    own entries (sweep.json, tune/, trials/, results/) are ever removed; other files stay.
    """
    from sracl_ray.locks import LOCK_FILENAME
    from sracl_ray.results.store import finished_rows

    if S.exists(storage) and not S.is_dir(storage) and not S.is_uri(storage):
        raise ConfigError(f"--storage {storage}: exists and is not a directory")
    if S.is_uri(storage):  # object storage: a "dir" exists when a key lies under it
        top = {rel.split("/", 1)[0] for rel in S.list_files(storage)}
    else:
        top = {p.name for p in Path(storage).iterdir()} if Path(storage).is_dir() else set()
    top.discard(LOCK_FILENAME)
    ours = [S.join(storage, n) for n in OUR_ENTRIES if n in top]
    if not top:
        return []
    if SPEC_FILENAME not in top and not overwrite:
        shown = ", ".join(sorted(top)[:5]) + (", ..." if len(top) > 5 else "")
        raise ConfigError(f"--storage {storage}: holds files but no sweep (no {SPEC_FILENAME}): {shown}; give a new "
                          f"or empty dir, or pass --overwrite to let the sweep replace its own entries there "
                          f"({', '.join(OUR_ENTRIES[:4])}; other files stay)")
    finished = finished_rows(storage)
    if finished and not overwrite:
        raise ConfigError(f"--storage {storage} already holds a sweep with {finished} finished trial(s); continue "
                          f"it with `sracl-ray sweep resume {storage}`, or replace it with --overwrite")
    if ours:
        log.warning("%s: replacing %s (%s)", storage, ", ".join(Path(p).name for p in ours),
                    "--overwrite" if finished or SPEC_FILENAME not in top else "an earlier sweep none of whose trials "
                    "had finished")
    return ours


def run_sweep(exp: E.Experiment, storage: str | Path, *, engine: Engine | None = None,
              mlflow_uri: str | None = None, write: Callable[[str], None] | None = None,
              address: str | None = None, num_cpus: int | None = None, smoke: bool = False,
              progress_every_s: float = 30.0, overwrite: bool = False) -> SweepOutcome:
    """Start a new sweep in `storage` (see claim_storage for a dir that already holds one)."""
    from sracl_ray.locks import hold

    storage = S.normalise(storage)
    S.filesystem(storage)  # an unusable URI: one line now
    check_inputs_exist(exp)  # a one-line error now, not after Ray has started
    for note in E.inert_notes(exp):
        log.warning("some trials: %s", note)
    if mlflow_uri:
        from sracl_ray.mlflow_log import require_mlflow

        require_mlflow()
    _quiet_tune()
    doomed = claim_storage(storage, overwrite)
    engine = engine or default_engine()
    with hold(storage, "--storage"):  # one driver per sweep; creates a local storage dir
        for p in doomed:
            S.delete(p)
        write_spec(storage, exp, smoke)
        init_ray(address, num_cpus)
        check_shared_storage(storage)
        return _fit_new(exp, storage, engine, mlflow_uri, write, progress_every_s)


def _fit_new(exp: E.Experiment, storage: str, engine: Engine, mlflow_uri: str | None,
             write: Callable[[str], None] | None, progress_every_s: float) -> SweepOutcome:
    from ray import tune

    from sracl_ray.sweeps.tracking import Progress, tracking_callbacks

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
    results = tuner.fit()
    reconcile_rows(results, exp, storage)
    return summarize(results, exp, storage)


# Tune's saved state: the trials, the search algorithm (the variant generator for grids; the
# searcher wrapper and the pickled searcher, e.g. the Optuna study) and nothing else.
STATE_FILES = ("experiment_state-*.json", "basic-variant-state-*.json", "search_gen_state-*.json",
               "searcher-state-*.pkl")


def _stamp(name: str) -> str:
    """The run's start time in a state file name: experiment_state-2026-11-30_17-45-01.json -> 2026-11-30_17-45-01."""
    return name.rsplit(".", 1)[0][-19:]


def repair_state_files(tune_dir: Path, staging_root: Path | None = None) -> list[Path]:
    """Replace state files that a killed driver left truncated with Ray's staged copies.

    Ray writes its experiment/searcher state in a local staging dir, then copies it to the storage
    dir; a SIGKILL during that copy leaves an empty or cut file (seen: a 0-byte search_gen_state,
    after which Tune restores an Optuna searcher without its space).  The staged copy of the same
    file (its name carries the run's start time) is complete.  The staged copies of the run's
    other state files are restored with it: state files of different moments disagree (seen: an
    older variant-generator state beside a newer experiment state made a grid trial run twice).
    """
    roots = [staging_root] if staging_root else staging_roots()
    sources: dict[str, Path] = {}  # run start time -> the staged dir to restore that run's state from
    for pattern in STATE_FILES:
        for stored in tune_dir.glob(pattern):
            staged = [p for root in roots
                      for p in root.glob(f"session_*/artifacts/*/{tune_dir.name}/driver_artifacts/{stored.name}")
                      if p.stat().st_size > stored.stat().st_size]
            if staged:
                best = max(staged, key=lambda p: p.stat().st_mtime)
                sources.setdefault(_stamp(stored.name), best.parent)
            elif stored.stat().st_size == 0:
                raise ConfigError(f"{stored} is empty (the driver was killed while writing it) and no staged "
                                  f"copy was found under {', '.join(map(str, roots))}; this sweep cannot be "
                                  f"resumed exactly")
    repaired = []
    for stamp, src in sources.items():
        for pattern in STATE_FILES:
            for staged in sorted(src.glob(pattern)):
                if _stamp(staged.name) == stamp and staged.stat().st_size > 0:
                    check_private_file(staged)  # a staged copy in a shared temp dir is as untrusted as the state
                    shutil.copyfile(staged, tune_dir / staged.name)
                    repaired.append(tune_dir / staged.name)
    return repaired


def staging_roots() -> list[Path]:
    """Every dir where Ray may have staged a driver's files (its temp dir, holding session_*/).

    The connected Ray's own temp dir first (a cluster started with `ray start --temp-dir` or
    `ray.init(_temp_dir=...)`), then Ray's defaults: $RAY_TMPDIR/ray, $TMPDIR/ray, /tmp/ray.
    """
    roots: list[Path] = []
    try:
        import ray

        node = ray._private.worker._global_node if ray.is_initialized() else None
        if node is not None:
            roots.append(Path(node.get_session_dir_path()).parent)
    except Exception:  # noqa: BLE001 - a private Ray API: the defaults below still apply
        log.debug("no session dir from the connected Ray", exc_info=True)
    roots += [Path(os.environ[v]) / "ray" for v in ("RAY_TMPDIR", "TMPDIR") if os.environ.get(v)]
    roots.append(Path("/tmp/ray"))
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def resume_sweep(storage: str | Path, *, engine: Engine | None = None, restart_errored: bool = False,
                 address: str | None = None, num_cpus: int | None = None) -> SweepOutcome:
    """Continue a killed or partly failed sweep: finished trials stay, unfinished ones continue
    from their last checkpoint, errored ones resume (or restart from scratch with restart_errored),
    and the searcher continues from its saved state."""
    from ray import tune

    from sracl_ray.locks import hold

    _quiet_tune()
    storage = S.normalise(storage)  # a file: URI becomes its path, so it gets the owner/mode check too
    exp = read_spec(storage)
    tune_dir = S.join(storage, TUNE_DIRNAME)
    remote = S.is_uri(storage)
    if not remote:  # object storage: the bucket's access policy is the boundary (README, Security)
        check_private(Path(tune_dir))  # Tune unpickles this state: refuse files someone else could have written
    if not tune.Tuner.can_restore(tune_dir):
        raise ConfigError(f"{tune_dir}: no restorable Tune state (the sweep never started?); "
                          f"start it again with `sracl-ray sweep run ... --storage {storage}`")
    with hold(storage, "--storage"):
        init_ray(address, num_cpus)  # before the repair: the connected Ray's temp dir holds the staged copies
        check_shared_storage(storage)
        if not remote:  # an object is written whole: a killed driver cannot leave one truncated
            for path in repair_state_files(Path(tune_dir)):
                log.warning("restored %s from Ray's staged copy (the killed driver left it truncated)", path)
        engine = engine or default_engine()
        refs = prepare_shared(exp, engine)  # object refs do not survive the old driver: put them again
        trainable = build_trainable(exp, storage, engine, refs)
        tuner = restore_tuner(tune_dir, trainable, restart_errored)
        results = tuner.fit()
        reconcile_rows(results, exp, storage)
        if not remote:
            drop_orphan_trial_dirs(Path(tune_dir), results)
        return summarize(results, exp, storage)


def restore_tuner(tune_dir: str, trainable, restart_errored: bool):
    """Tuner.restore, with unreadable Tune state (a truncated or foreign tuner.pkl or experiment state)
    as one line naming the dir's file instead of an unpickling traceback."""
    import pickle

    from ray import tune

    try:
        return tune.Tuner.restore(tune_dir, trainable=trainable, resume_unfinished=True,
                                  resume_errored=not restart_errored, restart_errored=restart_errored)
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, KeyError, ImportError) as e:
        raise ConfigError(f"{S.join(tune_dir, TUNER_FILENAME)}: cannot restore the sweep's Tune state "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); the file is truncated or was "
                          f"not written by this sweep: restore the storage from a copy, or start again with "
                          f"`sweep run --overwrite`") from e


def drop_orphan_trial_dirs(tune_dir: Path, results) -> list[Path]:
    """Remove the empty trial dirs that no trial of the finished run uses.

    A trial the killed driver had just started, before its dir name reached the saved state, is
    restored under a new name when the new driver runs on the same cluster (Tune finds the old
    name in the Ray session's staging dir and appends a suffix), leaving the old dir empty.
    """
    used = {Path(str(r.path)).name for r in results if r.path}
    dropped = []
    for d in sorted(tune_dir.glob("trial_*")):
        if d.is_dir() and d.name not in used and not any(d.iterdir()):
            d.rmdir()
            dropped.append(d)
    if dropped:
        log.info("removed %d empty trial dir(s) left by the killed driver: %s", len(dropped),
                 ", ".join(d.name for d in dropped))
    return dropped
