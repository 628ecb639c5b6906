"""Load a sweep's results store (one-row ``results/trial-*.parquet`` files) into a DataFrame."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from sracl_ray.errors import UserError
from sracl_ray.results.layout import RESULTS_DIRNAME, TRIAL_GLOB
from sracl_ray.results.store import STATUS_OK, read_files, regular_files

log = logging.getLogger(__name__)

# Metric columns look like `valid/hr@10`, `test/ndcg@20`, `train/loss` (docs/CONTRACTS.md).
_METRIC_RE = re.compile(r"^(train|valid|test)/")
_SORT_KEYS = ("dataset", "backbone", "variant", "seed", "trial_id")
# A trial's outcome: ok, or diverged / errored / pruned (no test metrics).  Analysis reads ok rows
# only; rows written before the column existed are ok (sracl_ray/results/store.py BACKFILL).


class StoreNotFoundError(UserError, FileNotFoundError):
    """The store dir does not exist, is a file, or holds no trial files (a FileNotFoundError too)."""


class MissingColumnError(UserError, KeyError):
    """A column (metric, setting) the store does not have (a KeyError too, for older callers)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def results_dir(path: str | Path) -> Path:
    """The ``results/`` dir of a storage dir, or ``path`` itself when it already holds trial files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise StoreNotFoundError(
            f"results store not found: {p} does not exist (give a sweep storage dir that contains "
            f"{RESULTS_DIRNAME}/, or that {RESULTS_DIRNAME}/ dir itself)"
        )
    if (p / RESULTS_DIRNAME).is_dir():
        return p / RESULTS_DIRNAME
    if p.is_dir():
        return p
    raise StoreNotFoundError(f"results store not found: {p} is a file, not a directory (give a sweep "
                             f"storage dir or its {RESULTS_DIRNAME}/ dir)")


def trial_files(path: str | Path) -> list[Path]:
    """Sorted ``trial-*.parquet`` files of a store; raises naming the dir when there are none."""
    rdir = results_dir(path)
    files = regular_files(rdir.glob(TRIAL_GLOB))
    if not files:
        raise StoreNotFoundError(f"results store is empty: no {TRIAL_GLOB} files in {rdir}")
    return files


def _resolve(ranks_path: object, storage_dir: Path) -> str | None:
    """Absolute ranks path: absolute as stored, or relative to the storage dir; None when unset."""
    if ranks_path is None or (isinstance(ranks_path, float) and pd.isna(ranks_path)):
        return None
    s = str(ranks_path)
    if not s:
        return None
    p = Path(s).expanduser()
    return str(p if p.is_absolute() else (storage_dir / p).resolve())


# Settings added after stores were first written, with the value every earlier trial ran with.
SETTING_DEFAULTS = {"cfg.semantic.exclude_same_user": False, "cfg.semantic.neighbours": "semantic",
                    "cfg.semantic.exclude": "none", "cfg.semantic.item_neighbours": "semantic",
                    "cfg.semantic.unit_pool": "train",
                    "cfg.train.stop_rule": "strict"}  # the only rule before train.stop_rule existed


def with_setting_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the SETTING_DEFAULTS filled in where a row (an older trial file) lacks them."""
    todo = {c: v for c, v in SETTING_DEFAULTS.items() if c in df.columns and df[c].isna().any()}
    if todo:
        df = df.copy()
        for col, value in todo.items():
            df[col] = df[col].astype(object).where(df[col].notna(), value).astype(type(value))
    return canonical_settings(df)


def canonical_settings(df: pd.DataFrame) -> pd.DataFrame:
    """One spelling per setting: semantic.exclude=same_user is read as the (older) exclude_same_user=true,
    so the tables find "other users only" runs in one column whichever key a run was given."""
    xsu, excl = "cfg.semantic.exclude_same_user", "cfg.semantic.exclude"
    if excl not in df.columns or not (df[excl] == "same_user").any():
        return df
    df = df.copy()
    same = df[excl] == "same_user"
    if xsu not in df.columns:
        df[xsu] = False
    df[xsu] = df[xsu].astype(object).where(~same, True).fillna(False).astype(bool)
    df.loc[same, excl] = "none"
    return df


def only_ok(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose trial finished ok (every row of a store without a ``status`` column)."""
    if "status" not in df.columns:
        return df
    return df[df["status"].fillna(STATUS_OK) == STATUS_OK]


def left_out(df: pd.DataFrame) -> dict[str, int]:
    """{status: count} of the rows that are not ok (diverged, errored)."""
    if "status" not in df.columns:
        return {}
    s = df["status"].fillna(STATUS_OK)
    return {str(k): int(v) for k, v in s[s != STATUS_OK].value_counts().sort_index().items()}


def left_out_note(df: pd.DataFrame) -> str:
    """'Left out 1 trial whose status is not ok (1 diverged); ...', or '' when every row is ok."""
    counts = left_out(df)
    total = sum(counts.values())
    if not total:
        return ""
    n_ok = len(only_ok(df))
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"Left out {total} trial{'s' if total != 1 else ''} whose status is not ok ({detail}); "
            f"tables and figures use the {n_ok} ok trial{'s' if n_ok != 1 else ''}.")


def load_store(path: str | Path) -> pd.DataFrame:
    """All trial rows (every status), sorted, read by results/store.read_files (``status`` and
    ``hit_epoch_cap`` filled in for old stores); ``ranks_path`` made absolute; ``attrs['storage_dir']`` set.  Use ``only_ok`` for
    the rows analysis may use."""
    files = trial_files(path)
    rdir = files[0].parent
    storage_dir = rdir.parent
    df = with_setting_defaults(read_files(files))  # the store's one reader (results/store.py)
    if "ranks_path" in df.columns:
        df["ranks_path"] = [_resolve(v, storage_dir) for v in df["ranks_path"]]
    keys = [k for k in _SORT_KEYS if k in df.columns]
    df = df.sort_values(keys, kind="stable", ignore_index=True) if keys else df
    df.attrs["storage_dir"] = str(storage_dir)
    df.attrs["results_dir"] = str(rdir)
    log.info("loaded %d trials from %s", len(df), rdir)
    return df


def sweep_dirs(path: str | Path) -> list[Path]:
    """The sweep dirs under a ``sracl-ray reproduce`` root (each holding ``results/trial-*.parquet``).

    ``[]`` when ``path`` is itself a sweep dir or a results dir (a store of its own), or holds none.
    """
    p = Path(path).expanduser()
    if not p.is_dir() or (p / RESULTS_DIRNAME).is_dir() or any(p.glob(TRIAL_GLOB)):
        return []
    return sorted({f.parent.parent for f in p.rglob(f"{RESULTS_DIRNAME}/{TRIAL_GLOB}")})


def load_root(path: str | Path, sweeps: list[Path] | None = None) -> pd.DataFrame:
    """Every sweep under a reproduce root in one frame, like ``load_store`` per sweep.

    Adds ``sweep_dir`` (each row's own storage dir); ``experiment`` missing in a row is taken from
    its sweep dir's path under the root.  ``attrs['storage_dir']`` is the root.
    """
    root = Path(path).expanduser()
    sweeps = sweep_dirs(root) if sweeps is None else sweeps
    if not sweeps:
        raise StoreNotFoundError(f"results store is empty: no {RESULTS_DIRNAME}/{TRIAL_GLOB} files under {root}")
    frames = []
    for sweep in sweeps:
        df = load_store(sweep)
        df["sweep_dir"] = str(sweep)
        name = sweep.relative_to(root).as_posix() if sweep != root else sweep.name
        exp = df["experiment"] if "experiment" in df.columns else pd.Series(None, index=df.index, dtype=object)
        df["experiment"] = exp.where(exp.notna() & (exp.astype(str) != ""), name)
        frames.append(df)
    df = with_setting_defaults(pd.concat(frames, ignore_index=True))
    df.attrs["storage_dir"] = str(root)
    df.attrs["results_dir"] = str(root)
    df.attrs["sweeps"] = [str(s) for s in sweeps]
    log.info("loaded %d trials from %d sweeps under %s", len(df), len(sweeps), root)
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Names of the metric columns (``valid/...``, ``test/...``, ``train/...``)."""
    return [c for c in df.columns if _METRIC_RE.match(str(c))]


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> None:
    """Raise MissingColumnError (a KeyError) naming the missing columns and the metrics present."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(
            f"results store has no column(s) {', '.join(missing)}; metrics present: "
            f"{', '.join(metric_columns(df)) or 'none'}"
        )
