"""The Tune trainable: a plain function around fit() (the same call `sracl-ray train` makes).

Per trial it builds the config (defaults < experiment base < the trial's sample), reports the
validation metrics of every epoch with the epoch's checkpoint, reports test metrics only in the
final report, and appends the trial's row to the results store.  On a retry or a resumed sweep
Tune hands back the last reported checkpoint; it is copied into the trial's output dir so that
fit(resume=True) continues from that epoch.  A trial whose result.json already matches its config
(its driver died after it finished) is not trained again: its final metrics are re-reported.

Tune's record of a retried trial stays continuous: fit() saves its checkpoint before it reports
the epoch, so a node lost between the two leaves fit() one epoch ahead of Tune's last marker.
Before fit() continues, the epochs Tune never saw are reported from fit()'s stored history
(`replay_missed`): no gap and no repeat in the trial's epochs and training iterations.

Storage may be a URI (s3://...).  fit() then works in a node-local scratch dir and `TrialFiles`
keeps the storage copy current: fit()'s checkpoint after every epoch (uploaded as
`checkpoint-<epoch>/`, then the one-object pointer `checkpoint.json` names it, then the older one
goes), result.json, ranks and best weights at the end.  A retry on any node pulls them back first.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from sracl_ray import config as C
from sracl_ray import storage as S
from sracl_ray.errors import NonFiniteError
from sracl_ray.manifest import atomic_write_text
from sracl_ray.results import store
from sracl_ray.sweeps.experiment import prepare_key, trial_config

log = logging.getLogger(__name__)

from sracl_ray.results.layout import (CHECKPOINT_DIRNAME, DIVERGED_FILENAME, MARKER_FILENAME,  # noqa: E402
                                     POINTER_FILENAME, RESULT_FILENAME, SYNCED_OUTPUTS, TRIALS_DIRNAME,
                                     trial_outputs)


@dataclass(frozen=True)
class Engine:
    """What a trial runs: prepare(cfg) -> Prepared, fit(cfg, out_dir, report, prepared, resume) -> result."""

    prepare: Callable[[C.Config], Any]
    fit: Callable[..., dict]


def default_engine() -> Engine:
    """The real training engine (imported lazily: torch is heavy and the driver may not need it)."""
    from sracl_ray.training.fit import fit
    from sracl_ray.training.inputs import prepare_inputs

    return Engine(prepare_inputs, fit)


@dataclass(frozen=True)
class TrialSpec:
    experiment: str
    base: dict[str, Any]  # the experiment's nested base config
    storage: str  # the sweep's storage dir (shared by all nodes)


def trial_dir(storage: str | Path, trial_id: str) -> Path:
    """Where fit() writes this trial's outputs: in the storage dir, or node-local scratch for a URI."""
    if S.is_uri(storage):
        return S.node_scratch(str(storage), TRIALS_DIRNAME, trial_id)
    return Path(storage) / TRIALS_DIRNAME / trial_id




@dataclass(frozen=True)
class TrialFiles:
    """A trial's outputs: `local` is fit()'s dir; `remote` is their storage URI (None: local is storage)."""

    local: Path
    remote: str | None

    @classmethod
    def of(cls, storage: str | Path, trial_id: str) -> "TrialFiles":
        remote = trial_outputs(str(storage), trial_id) if S.is_uri(storage) else None
        return cls(trial_dir(storage, trial_id), remote)

    def pull(self, fresh: bool) -> None:
        """Bring the storage copy to this node: outputs and markers always, the checkpoint unless
        Tune starts the trial afresh (then the stored checkpoint and markers are dropped)."""
        if self.remote is None:
            return
        self.local.mkdir(parents=True, exist_ok=True)
        names = S.list_files(self.remote)
        for name in (*SYNCED_OUTPUTS, DIVERGED_FILENAME):
            if name in names and not (fresh and name == DIVERGED_FILENAME):
                S.download(S.join(self.remote, name), self.local / name)
        if fresh:
            S.delete(S.join(self.remote, POINTER_FILENAME))
            S.delete(S.join(self.remote, DIVERGED_FILENAME))
            return
        if POINTER_FILENAME not in names:
            return
        src = json.loads(S.read_text(S.join(self.remote, POINTER_FILENAME)))["dir"]
        target = self.local / CHECKPOINT_DIRNAME
        shutil.rmtree(target, ignore_errors=True)
        staged = self.local / "checkpoint.pull"
        shutil.rmtree(staged, ignore_errors=True)
        S.download_dir(S.join(self.remote, src), staged)
        staged.rename(target)

    def push_checkpoint(self, ckpt_dir: Path, epoch: int) -> None:
        """Upload fit()'s checkpoint of `epoch`, then point at it, then drop the previous one."""
        if self.remote is None:
            return
        name = f"checkpoint-{int(epoch)}"
        S.upload_dir(ckpt_dir, S.join(self.remote, name))
        pointer = S.join(self.remote, POINTER_FILENAME)
        previous = json.loads(S.read_text(pointer))["dir"] if S.exists(pointer) else None
        S.write_text(pointer, json.dumps({"dir": name, "epoch": int(epoch)}))
        if previous and previous != name:
            S.delete(S.join(self.remote, previous))

    def push(self, *names: str) -> None:
        """Upload finished outputs (those that exist locally)."""
        if self.remote is None:
            return
        for name in names:
            if (self.local / name).exists():
                S.upload_file(self.local / name, S.join(self.remote, name))


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def finished_result(out_dir: Path, cfg: C.Config) -> dict | None:
    """fit()'s result.json when it exists and was produced by exactly this config."""
    path = out_dir / RESULT_FILENAME
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ok = result.get("config") == _plain(C.to_dict(cfg)) and result.get("status", "ok") == "ok"
    return result if ok else None


def diverged_before(out_dir: Path, cfg: C.Config) -> str | None:
    """The error of an earlier attempt of this trial (same config) that diverged, else None.

    Divergence is deterministic (same seed, same checkpoint), so a retry would only burn the
    epoch again: Tune's retry ends at once with the same error.
    """
    path = out_dir / DIVERGED_FILENAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record.get("error") if record.get("config") == _plain(C.to_dict(cfg)) else None


def install_checkpoint(checkpoint, target: Path) -> None:
    """Keep fit()'s own checkpoint when Tune resumes the trial; drop it when Tune starts afresh.

    Tune's checkpoints are only markers ({"epoch": N}); the real resumable state is fit()'s own
    `trials/<id>/checkpoint/`, written atomically every epoch on the sweep's shared storage.
    Tune copies checkpoints to storage non-atomically and may delete ones its last saved state
    still names, so a SIGKILLed driver could leave a state pointing at a checkpoint that is gone;
    markers are tiny, all of them are kept, and the weights never go through that path.
    """
    if checkpoint is None:  # a fresh start, or Tune restarting an errored trial from scratch
        for stale in (target, target.with_name(target.name + ".old"), target.with_name(target.name + ".new")):
            shutil.rmtree(stale, ignore_errors=True)
        (target.parent / DIVERGED_FILENAME).unlink(missing_ok=True)


def report_with_marker(metrics: Mapping[str, Any]) -> None:
    """tune.report with a Tune checkpoint holding only the epoch number (see install_checkpoint)."""
    from ray import tune

    marker = Path(tempfile.mkdtemp(prefix="sracl-epoch-"))
    try:
        (marker / MARKER_FILENAME).write_text(json.dumps({"epoch": int(metrics.get("epoch", 0)),
                                                          "final": bool(metrics.get("final"))}))
        tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(str(marker)))
    finally:  # Tune has persisted its copy by now (unless a scheduler stopped the trial here)
        shutil.rmtree(marker, ignore_errors=True)


def marker_of(checkpoint) -> dict | None:
    """Tune's last checkpoint marker {"epoch": N, "final": bool}; {"epoch": 0} for a fresh start,
    None when the marker cannot be read (then nothing is replayed)."""
    if checkpoint is None:
        return {"epoch": 0, "final": False}
    try:
        with checkpoint.as_directory() as d:
            marker = json.loads((Path(d) / MARKER_FILENAME).read_text())
        return {"epoch": int(marker["epoch"]), "final": bool(marker.get("final"))}
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("unreadable Tune checkpoint marker (%s): %s", type(e).__name__, e)
        return None


def checkpoint_history(ckpt_dir: Path) -> list[dict]:
    """The per-epoch history in fit()'s own checkpoint (state.json), [] when there is none.

    Looks where training.checkpoint.find_checkpoint does (the dir, then a half-swapped `.old`),
    without importing torch."""
    for cand in (ckpt_dir, ckpt_dir.with_name(ckpt_dir.name + ".old")):
        try:
            state = json.loads((cand / "state.json").read_text())
        except (OSError, ValueError):
            continue
        return list(state.get("history") or []) if isinstance(state, dict) else []
    return []


def missed_epochs(marker: Mapping[str, Any] | None, history: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The epochs of `history` after Tune's marker: fit() checkpointed them, Tune never saw them."""
    if marker is None or marker.get("final"):
        return []
    return [h for h in history if int(h.get("epoch", 0)) > int(marker["epoch"])]


def replay_missed(marker: Mapping[str, Any] | None, history: list[Mapping[str, Any]],
                  report: Callable[[Mapping[str, Any]], None] | None = None) -> int:
    """Report the missed epochs (validation metrics only, each with its marker); returns how many."""
    report = report or report_with_marker
    missed = missed_epochs(marker, history)
    for epoch_metrics in missed:
        report({**valid_only(epoch_metrics), "final": False})
    if missed:
        log.info("replayed epoch(s) %s to Tune: the trial's checkpoint was ahead of Tune's record",
                 ", ".join(str(h.get("epoch")) for h in missed))
    return len(missed)


def valid_only(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Per-epoch metrics without any test/ key (test is reported once, at the end)."""
    return {k: v for k, v in metrics.items() if not k.startswith("test/")}


def final_report(result: Mapping[str, Any]) -> dict[str, Any]:
    return {**result.get("metrics", {}), "epoch": result.get("epochs_run", 0),
            "best_epoch": result.get("best_epoch", 0), "final": True}


def result_from_report(metrics: Mapping[str, Any], cfg: C.Config) -> dict[str, Any]:
    """A result dict from the final report alone (when result.json is not written yet)."""
    from sracl_ray.manifest import code_version

    return {"metrics": {k: v for k, v in metrics.items() if k.startswith(("valid/", "test/"))},
            "best_epoch": metrics.get("best_epoch", 0), "epochs_run": metrics.get("epoch", 0),
            "code_version": code_version(), "dataset": {"name": C.dataset_label(cfg.data)}}


def node_id() -> str | None:
    """The Ray node this trial runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - a missing node id must never fail a trial
        return None


def write_store_row(spec: TrialSpec, trial_id: str, cfg: C.Config, result: Mapping[str, Any], out_dir: Path) -> None:
    store.record_trial(spec.storage, trial_id, spec.experiment, cfg, result, out_dir, node_id())


def record_divergence(spec: TrialSpec, trial_id: str, cfg: C.Config, files: TrialFiles, exc: NonFiniteError) -> None:
    """A diverged trial: its store row (status diverged, no metrics) and the fast-fail marker."""
    out_dir = files.local
    atomic_write_text(out_dir / DIVERGED_FILENAME, json.dumps({"config": _plain(C.to_dict(cfg)), "error": str(exc)}))
    files.push(DIVERGED_FILENAME)
    write_store_row(spec, trial_id, cfg, store.failure_result(exc), out_dir)


def sweep_trial(config: dict[str, Any], *, prepared: Mapping[str, Any], spec: TrialSpec, engine: Engine) -> None:
    """Tune function trainable: one configuration, trained by fit()."""
    from ray import tune

    # One INFO line per epoch per trial ("Checkpoint successfully created") drowns the driver's
    # progress lines; the checkpoints are tiny epoch markers anyway.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    cfg = trial_config(spec.base, config)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))  # no bars in worker logs
    files = TrialFiles.of(spec.storage, trial_id)
    files.local.mkdir(parents=True, exist_ok=True)
    try:
        _run_trial(cfg, trial_id, files, prepared, spec, engine)
    except NonFiniteError:  # its row (status diverged) is written where it was detected
        raise
    except Exception as e:  # noqa: BLE001 - any other failure: the row says errored, why and where, then Tune retries
        record_error(spec, trial_id, cfg, files.local, e)
        raise


def record_error(spec: TrialSpec, trial_id: str, cfg: C.Config, out_dir: Path, exc: BaseException) -> None:
    """An errored attempt's store row (status errored, the error's one line, this node); a retry that
    succeeds overwrites it with its ok row.  Writing the row must never hide the error itself."""
    try:
        write_store_row(spec, trial_id, cfg, store.failure_result(exc), out_dir)
    except Exception:  # noqa: BLE001
        log.warning("trial %s: could not write its errored row", trial_id, exc_info=True)


def _run_trial(cfg: C.Config, trial_id: str, files: TrialFiles, prepared: Mapping[str, Any], spec: TrialSpec,
               engine: Engine) -> None:
    import ray
    from ray import tune

    out_dir = files.local
    checkpoint = tune.get_checkpoint()
    marker = marker_of(checkpoint)
    files.pull(fresh=checkpoint is None)
    done = finished_result(out_dir, cfg)
    if done is not None:  # finished before a killed driver could record it: report, do not retrain
        log.info("trial %s already finished (%s); re-reporting its result", trial_id, out_dir)
        files.push(*SYNCED_OUTPUTS)
        write_store_row(spec, trial_id, cfg, done, out_dir)
        # Every epoch Tune has not seen (all of them on a fresh start), so that a scheduler compares
        # like with like; then the final report, unless Tune already holds it.
        replay_missed(marker, done.get("history", []))
        if not (marker or {}).get("final"):
            tune.report(final_report(done))
        return

    install_checkpoint(checkpoint, out_dir / CHECKPOINT_DIRNAME)
    earlier = diverged_before(out_dir, cfg)
    if earlier:
        raise NonFiniteError(earlier)
    replay_missed(marker, checkpoint_history(out_dir / CHECKPOINT_DIRNAME))
    ref = prepared[prepare_key(cfg)]
    prep = ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref

    def report(metrics: dict, checkpoint_dir: Path) -> None:
        metrics = dict(metrics)
        if metrics.get("final"):
            files.push(*SYNCED_OUTPUTS)
            # The row goes in before Tune sees the final result: a scheduler may stop the trial on
            # that result (ASHA at max_t), and a stopped trial never runs the code after fit().
            write_store_row(spec, trial_id, cfg, finished_result(out_dir, cfg) or result_from_report(metrics, cfg),
                            out_dir)
        else:  # test metrics exist only in the final report
            files.push_checkpoint(checkpoint_dir, int(metrics.get("epoch", 0)))
            metrics = {**valid_only(metrics), "final": False}
        report_with_marker(metrics)

    try:
        result = engine.fit(cfg, out_dir, report=report, prepared=prep, resume=True)
    except NonFiniteError as e:  # the trial ends as errored in Tune, never best; the store says why
        record_divergence(spec, trial_id, cfg, files, e)
        raise
    write_store_row(spec, trial_id, cfg, result, out_dir)  # the complete result.json (same row, rewritten)
