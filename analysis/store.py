"""Load a sweep's results store (one-row ``results/trial-*.parquet`` files) into a DataFrame."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

RESULTS_DIRNAME = "results"
TRIAL_GLOB = "trial-*.parquet"
# Metric columns look like `valid/hr@10`, `test/ndcg@20`, `train/loss` (docs/CONTRACTS.md).
_METRIC_RE = re.compile(r"^(train|valid|test)/")
_SORT_KEYS = ("dataset", "backbone", "variant", "seed", "trial_id")


def results_dir(path: str | Path) -> Path:
    """The ``results/`` dir of a storage dir, or ``path`` itself when it already holds trial files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"results store not found: {p} does not exist (give a sweep storage dir that contains "
            f"{RESULTS_DIRNAME}/, or that {RESULTS_DIRNAME}/ dir itself)"
        )
    if (p / RESULTS_DIRNAME).is_dir():
        return p / RESULTS_DIRNAME
    if p.is_dir():
        return p
    raise FileNotFoundError(f"results store not found: {p} is not a directory")


def trial_files(path: str | Path) -> list[Path]:
    """Sorted ``trial-*.parquet`` files of a store; raises naming the dir when there are none."""
    rdir = results_dir(path)
    files = sorted(rdir.glob(TRIAL_GLOB))
    if not files:
        raise FileNotFoundError(f"results store is empty: no {TRIAL_GLOB} files in {rdir}")
    return files


def _read_one(f: Path) -> pd.DataFrame:
    """One trial row; a file that cannot be read is named in the error."""
    try:
        return pd.read_parquet(f)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise ValueError(f"cannot read results file {f}: {e}") from e


def _resolve(ranks_path: object, storage_dir: Path) -> str | None:
    """Absolute ranks path: absolute as stored, or relative to the storage dir; None when unset."""
    if ranks_path is None or (isinstance(ranks_path, float) and pd.isna(ranks_path)):
        return None
    s = str(ranks_path)
    if not s:
        return None
    p = Path(s).expanduser()
    return str(p if p.is_absolute() else (storage_dir / p).resolve())


def load_store(path: str | Path) -> pd.DataFrame:
    """All trial rows, sorted; ``ranks_path`` made absolute; ``attrs['storage_dir']`` set."""
    files = trial_files(path)
    rdir = files[0].parent
    storage_dir = rdir.parent
    df = pd.concat([_read_one(f) for f in files], ignore_index=True)
    if "ranks_path" in df.columns:
        df["ranks_path"] = [_resolve(v, storage_dir) for v in df["ranks_path"]]
    keys = [k for k in _SORT_KEYS if k in df.columns]
    df = df.sort_values(keys, kind="stable", ignore_index=True) if keys else df
    df.attrs["storage_dir"] = str(storage_dir)
    df.attrs["results_dir"] = str(rdir)
    log.info("loaded %d trials from %s", len(df), rdir)
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Names of the metric columns (``valid/...``, ``test/...``, ``train/...``)."""
    return [c for c in df.columns if _METRIC_RE.match(str(c))]


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> None:
    """Raise a KeyError naming the missing columns and the metrics the store does have."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"results store has no column(s) {missing}; metrics present: {metric_columns(df)}"
        )
