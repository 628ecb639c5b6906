"""The Tune trainable: a plain function around fit() (the same call `sracl-ray train` makes).

Per trial it builds the config (defaults < experiment base < the trial's sample), reports the
validation metrics of every epoch with the epoch's checkpoint, reports test metrics only in the
final report, and appends the trial's row to the results store.  On a retry or a resumed sweep
Tune hands back the last reported checkpoint; it is copied into the trial's output dir so that
fit(resume=True) continues from that epoch.  A trial whose result.json already matches its config
(its driver died after it finished) is not trained again: its final metrics are re-reported.
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
from sracl_ray.results import store
from sracl_ray.sweeps.experiment import prepare_key, trial_config

log = logging.getLogger(__name__)

TRIALS_DIRNAME = "trials"


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
    return Path(storage) / TRIALS_DIRNAME / trial_id


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def finished_result(out_dir: Path, cfg: C.Config) -> dict | None:
    """fit()'s result.json when it exists and was produced by exactly this config."""
    path = out_dir / "result.json"
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if result.get("config") == _plain(C.to_dict(cfg)) else None


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


def report_with_marker(metrics: Mapping[str, Any]) -> None:
    """tune.report with a Tune checkpoint holding only the epoch number (see install_checkpoint)."""
    from ray import tune

    marker = Path(tempfile.mkdtemp(prefix="sracl-epoch-"))
    try:
        (marker / "epoch.json").write_text(json.dumps({"epoch": int(metrics.get("epoch", 0))}))
        tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(str(marker)))
    finally:  # Tune has persisted its copy by now (unless a scheduler stopped the trial here)
        shutil.rmtree(marker, ignore_errors=True)


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
            "code_version": code_version(), "dataset": {"name": cfg.data.name}}


def write_store_row(spec: TrialSpec, trial_id: str, cfg: C.Config, result: Mapping[str, Any], out_dir: Path) -> None:
    ranks = result.get("ranks_path") or str(out_dir / "ranks.parquet")
    try:  # relative to the storage dir, so a copied or synced sweep dir stays readable
        ranks = str(Path(ranks).resolve().relative_to(Path(spec.storage).resolve()))
    except ValueError:
        pass
    store.write_row(spec.storage, store.trial_row(result, cfg, trial_id, spec.experiment, ranks))


def sweep_trial(config: dict[str, Any], *, prepared: Mapping[str, Any], spec: TrialSpec, engine: Engine) -> None:
    """Tune function trainable: one configuration, trained by fit()."""
    import ray
    from ray import tune

    # One INFO line per epoch per trial ("Checkpoint successfully created") drowns the driver's
    # progress lines; the checkpoints are tiny epoch markers anyway.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    cfg = trial_config(spec.base, config)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))  # no bars in worker logs
    out_dir = trial_dir(spec.storage, trial_id)
    out_dir.mkdir(parents=True, exist_ok=True)

    done = finished_result(out_dir, cfg)
    if done is not None:  # finished before a killed driver could record it: report, do not retrain
        log.info("trial %s already finished (%s); re-reporting its result", trial_id, out_dir)
        write_store_row(spec, trial_id, cfg, done, out_dir)
        for epoch_metrics in done.get("history", []):  # replay every epoch so that a scheduler
            report_with_marker({**valid_only(epoch_metrics), "final": False})  # compares like with like
        tune.report(final_report(done))
        return

    install_checkpoint(tune.get_checkpoint(), out_dir / "checkpoint")
    ref = prepared[prepare_key(cfg)]
    prep = ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref

    def report(metrics: dict, checkpoint_dir: Path) -> None:
        metrics = dict(metrics)
        if metrics.get("final"):
            # The row goes in before Tune sees the final result: a scheduler may stop the trial on
            # that result (ASHA at max_t), and a stopped trial never runs the code after fit().
            write_store_row(spec, trial_id, cfg, finished_result(out_dir, cfg) or result_from_report(metrics, cfg),
                            out_dir)
        else:  # test metrics exist only in the final report
            metrics = {**valid_only(metrics), "final": False}
        report_with_marker(metrics)

    result = engine.fit(cfg, out_dir, report=report, prepared=prep, resume=True)
    write_store_row(spec, trial_id, cfg, result, out_dir)  # the complete result.json (same row, rewritten)
