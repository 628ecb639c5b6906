"""The results store: one Parquet row per finished trial under `<storage>/results/`.

Each trial writes `trial-<trial_id>.parquet` itself, atomically (temp file renamed into place),
so a retried or resumed trial overwrites its own row and never duplicates it, and a reader never
sees half a file.  Columns follow docs/CONTRACTS.md: identity (trial_id, experiment), the paper's
axes (dataset, backbone, variant, seed, alpha, beta, k), run facts, every metric and every
setting flattened as `cfg.<section>.<key>`.  Column types come from the config dataclasses, so a
setting that is None in one trial and a string in another still reads as one string column.
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from sracl_ray import config as C
from sracl_ray.manifest import atomic_write

log = logging.getLogger(__name__)

RESULTS_DIRNAME = "results"
TRIAL_GLOB = "trial-*.parquet"
FACT_COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(), "experiment": pa.string(), "dataset": pa.string(), "backbone": pa.string(),
    "variant": pa.string(), "seed": pa.int64(), "alpha": pa.float64(), "beta": pa.float64(), "k": pa.int64(),
    "mask_history": pa.bool_(), "max_len": pa.int64(), "best_epoch": pa.int64(), "epochs_run": pa.int64(),
    "wall_time_s": pa.float64(), "code_version": pa.string(), "ranks_path": pa.string(),
}


def _arrow_type(annotation: Any) -> pa.DataType:
    ann = str(annotation).replace(" ", "").split("|")[0]
    return {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}.get(ann, pa.string())


def config_schema() -> dict[str, pa.DataType]:
    """`cfg.<section>.<key>` -> Arrow type, from the config dataclasses' annotations."""
    out: dict[str, pa.DataType] = {}
    hints = typing.get_type_hints(C.Config)
    for section in dataclasses.fields(C.Config):
        for f in dataclasses.fields(hints[section.name]):
            out[f"cfg.{section.name}.{f.name}"] = _arrow_type(f.type)
    return out


def trial_row(result: Mapping[str, Any], cfg: C.Config, trial_id: str, experiment: str,
              ranks_path: str | None) -> dict[str, Any]:
    """One store row from fit()'s result dict and the trial's config."""
    metrics = {k: float(v) for k, v in result.get("metrics", {}).items()}
    row = {
        "trial_id": trial_id, "experiment": experiment,
        "dataset": (result.get("dataset") or {}).get("name", cfg.data.name),
        "backbone": cfg.model.backbone, "variant": cfg.cl.variant, "seed": cfg.train.seed,
        "alpha": cfg.cl.alpha, "beta": cfg.cl.beta, "k": cfg.cl.k,
        "mask_history": bool(result.get("mask_history", cfg.eval.mask_history)),
        "max_len": int(result.get("max_len", cfg.data.max_len)),
        "best_epoch": int(result.get("best_epoch", 0)), "epochs_run": int(result.get("epochs_run", 0)),
        "wall_time_s": float(result.get("wall_time_s", 0.0)), "code_version": str(result.get("code_version", "")),
        "ranks_path": ranks_path,
        **metrics,
    }
    row.update({f"cfg.{k}": v for k, v in C.flatten(C.to_dict(cfg)).items()})
    return row


def row_table(row: Mapping[str, Any]) -> pa.Table:
    types = {**FACT_COLUMNS, **config_schema()}
    cols, fields = {}, []
    for key, value in row.items():
        t = types.get(key, pa.float64() if "/" in key else None)
        arr = pa.array([value], type=t) if t is not None else pa.array([value])
        cols[key] = arr
        fields.append(pa.field(key, arr.type))
    return pa.Table.from_arrays(list(cols.values()), schema=pa.schema(fields))


def trial_path(storage: str | Path, trial_id: str) -> Path:
    return Path(storage) / RESULTS_DIRNAME / f"trial-{trial_id}.parquet"


def write_row(storage: str | Path, row: Mapping[str, Any]) -> Path:
    """Write (or overwrite) this trial's one-row file atomically; returns its path."""
    path = trial_path(storage, str(row["trial_id"]))
    table = row_table(row)
    atomic_write(path, lambda p: pq.write_table(table, p))
    log.info("results row written: %s", path)
    return path


def store_files(path: str | Path) -> list[Path]:
    """Every trial file under path: a sweep dir, its results/ dir, or a parent of several sweeps."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"results store not found: {p} is not a directory")
    return sorted(f for f in p.rglob(TRIAL_GLOB) if f.parent.name == RESULTS_DIRNAME or f.parent == p)


def read_store(path: str | Path):
    """All rows as a pandas DataFrame (columns unioned by name)."""
    import pandas as pd

    files = store_files(path)
    if not files:
        raise FileNotFoundError(f"results store is empty: no {TRIAL_GLOB} under {path}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def connect(path: str | Path):
    """A DuckDB connection with the store exposed as the view `results`."""
    import duckdb

    files = store_files(path)
    if not files:
        raise FileNotFoundError(f"results store is empty: no {TRIAL_GLOB} under {path}")
    con = duckdb.connect()
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet([{listing}], union_by_name = true)")
    return con
