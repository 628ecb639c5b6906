"""The one description of a sweep's storage layout; every reader and writer of a sweep uses it.

    <storage>/sweep.json                   the validated experiment (what `sweep resume` rebuilds from)
    <storage>/tune/                        Ray Tune's experiment dir: tuner.pkl, experiment and searcher
                                           state, per-trial dirs (TensorBoard events, progress.csv,
                                           epoch-marker checkpoints)
    <storage>/trials/<trial_id>/           fit() outputs: result.json, ranks.parquet, best.safetensors,
                                           checkpoint/ (object storage: checkpoint-<epoch>/ + checkpoint.json)
    <storage>/results/trial-<id>.parquet   the results store: one row per trial (ok | diverged | errored)
    <storage>/baselines.json               rankings that learn nothing (popularity, random) on the
                                           sweep's data, when the command wrote them (quickstart)
    <storage>/.sracl-nodes/                shared-storage probe markers (only while a sweep starts)
    <storage>/.sracl.lock                  held by the one driver writing the sweep (sracl_ray/locks.py)

`storage` is a path or a storage URI (sracl_ray/storage.py); these helpers join either.
"""
from __future__ import annotations

import re

SPEC_FILENAME = "sweep.json"
BASELINES_FILENAME = "baselines.json"
TUNE_DIRNAME = "tune"
TUNER_FILENAME = "tuner.pkl"
TRIALS_DIRNAME = "trials"
RESULTS_DIRNAME = "results"
NODES_DIRNAME = ".sracl-nodes"
TRIAL_GLOB = "trial-*.parquet"
RESULT_FILENAME = "result.json"
RANKS_FILENAME = "ranks.parquet"
WEIGHTS_FILENAME = "best.safetensors"
CHECKPOINT_DIRNAME = "checkpoint"
POINTER_FILENAME = "checkpoint.json"  # object storage: {"dir": "checkpoint-<epoch>", "epoch": N}, one PUT
MARKER_FILENAME = "epoch.json"  # a Tune checkpoint: {"epoch": N, "final": bool}
DIVERGED_FILENAME = "diverged.json"  # a trial whose loss went non-finite: retries fail fast
SYNCED_OUTPUTS = (RESULT_FILENAME, RANKS_FILENAME, WEIGHTS_FILENAME)  # uploaded when a trial ends

# What a sweep writes at the top of its storage (the only entries `sweep run --overwrite` removes).
OUR_ENTRIES = (SPEC_FILENAME, TUNE_DIRNAME, TRIALS_DIRNAME, RESULTS_DIRNAME, NODES_DIRNAME, BASELINES_FILENAME)


def _join(storage: str, *parts: str) -> str:
    from sracl_ray import storage as S

    return S.join(str(storage), *parts)


def spec_path(storage: str) -> str:
    return _join(storage, SPEC_FILENAME)


def tune_dir(storage: str) -> str:
    return _join(storage, TUNE_DIRNAME)


def trial_outputs(storage: str, trial_id: str) -> str:
    return _join(storage, TRIALS_DIRNAME, trial_id)


def results_dir(storage: str) -> str:
    return _join(storage, RESULTS_DIRNAME)


def row_name(trial_id: str) -> str:
    return f"trial-{trial_id}.parquet"


def row_path(storage: str, trial_id: str) -> str:
    return _join(storage, RESULTS_DIRNAME, row_name(trial_id))


def ranks_relpath(trial_id: str) -> str:
    """A trial's ranks file relative to the storage (what a results row stores)."""
    return f"{TRIALS_DIRNAME}/{trial_id}/{RANKS_FILENAME}"


def is_row_name(rel: str) -> bool:
    """`rel` (relative to the results dir) names a results row."""
    return "/" not in rel and rel.startswith("trial-") and rel.endswith(".parquet")


# What `results` and `report` read of a sweep at a URI: the rows, per-trial ranks and results
# (significance, curves), the sweep spec.  Tune's state and fit()'s checkpoints stay remote.
_VIEW_RE = re.compile(rf"(^|/)({RESULTS_DIRNAME}/trial-[^/]+\.parquet|{TRIALS_DIRNAME}/[^/]+/"
                      rf"({re.escape(RANKS_FILENAME)}|{re.escape(RESULT_FILENAME)})|{re.escape(SPEC_FILENAME)})$")


def in_results_view(rel: str) -> bool:
    """A file (relative to a storage, or to a parent of several) that results/report read."""
    return bool(_VIEW_RE.search(rel))
