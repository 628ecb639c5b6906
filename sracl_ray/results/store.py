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
from sracl_ray import storage as S
from sracl_ray.results import layout as L
from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write

log = logging.getLogger(__name__)

RESULTS_DIRNAME, TRIAL_GLOB = L.RESULTS_DIRNAME, L.TRIAL_GLOB
FACT_COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(), "experiment": pa.string(), "dataset": pa.string(), "backbone": pa.string(),
    "variant": pa.string(), "seed": pa.int64(), "alpha": pa.float64(), "beta": pa.float64(), "k": pa.int64(),
    "mask_history": pa.bool_(), "max_len": pa.int64(), "best_epoch": pa.int64(), "epochs_run": pa.int64(),
    "wall_time_s": pa.float64(), "code_version": pa.string(), "ranks_path": pa.string(),
    # what ran: ok | diverged (non-finite loss: no metrics) | errored (`error`: why) | pruned (a scheduler
    # stopped it early: no test metrics); analysis reads only ok rows and counts the others
    "status": pa.string(), "error": pa.string(),
    "alpha_applied": pa.float64(), "beta_applied": pa.float64(),  # the weights the variant really used
    "ties": pa.string(), "hit_epoch_cap": pa.bool_(),  # best epoch = last allowed: still improving
    "data_fingerprint": pa.string(), "semantic_source": pa.string(), "semantic_builder": pa.string(),
    "semantic_fingerprint": pa.string(), "host": pa.string(), "node_id": pa.string(),
}
STATUSES = ("ok", "diverged", "errored", "pruned")
STATUS_OK = STATUSES[0]
# Columns added after stores were first written, with the value every earlier row means: read back
# by every reader (read_files for pandas, connect for SQL), so an old row counts as one ok trial.
BACKFILL: dict[str, tuple[Any, str]] = {"status": (STATUS_OK, "VARCHAR"), "hit_epoch_cap": (False, "BOOLEAN")}


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
              ranks_path: str | None, node_id: str | None = None) -> dict[str, Any]:
    """One store row from fit()'s result dict (or a failed trial's {status, error}) and its config."""
    status = str(result.get("status", "ok"))
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    metrics = {k: float(v) for k, v in result.get("metrics", {}).items()} if status == "ok" else {}
    dataset = result.get("dataset") or {}
    semantic = result.get("semantic") or {}
    alpha, beta = C.loss_weights(cfg.cl)
    row = {
        "trial_id": trial_id, "experiment": experiment,
        "dataset": dataset.get("name") or C.dataset_label(cfg.data),
        "backbone": cfg.model.backbone, "variant": cfg.cl.variant, "seed": cfg.train.seed,
        "alpha": cfg.cl.alpha, "beta": cfg.cl.beta, "k": cfg.cl.k,
        "mask_history": bool(result.get("mask_history", cfg.eval.mask_history)),
        "max_len": int(result.get("max_len", cfg.data.max_len)),
        "best_epoch": int(result.get("best_epoch", 0)), "epochs_run": int(result.get("epochs_run", 0)),
        "wall_time_s": float(result.get("wall_time_s", 0.0)), "code_version": str(result.get("code_version", "")),
        "ranks_path": ranks_path if status == "ok" else None,
        "status": status, "error": str(result.get("error", "")),
        "alpha_applied": alpha, "beta_applied": beta, "ties": str(result.get("ties", cfg.eval.ties)),
        "hit_epoch_cap": bool(result.get("hit_epoch_cap", False)),
        "data_fingerprint": dataset.get("fingerprint"), "semantic_source": semantic.get("source"),
        "semantic_builder": semantic.get("builder"), "semantic_fingerprint": semantic.get("fingerprint"),
        "host": result.get("host"), "node_id": node_id,
        **metrics,
    }
    row.update({f"cfg.{k}": v for k, v in C.flatten(C.to_dict(cfg)).items()})
    return row


def failure_result(exc: BaseException, on_this_host: bool = True) -> dict[str, Any]:
    """A failed trial's result for trial_row: diverged (a non-finite loss) or errored (any other
    failure: its one line, scrubbed of secrets, and, when it failed in this process, this host)."""
    import socket

    from sracl_ray.errors import NonFiniteError, cause_of, error_line
    from sracl_ray.secrets import scrub

    if isinstance(cause_of(exc), NonFiniteError):
        return {"status": "diverged", "error": scrub(str(cause_of(exc)))}
    return {"status": "errored", "error": scrub(error_line(exc))} | (
        {"host": socket.gethostname()} if on_this_host else {})


def record_trial(storage: str | Path, trial_id: str, experiment: str, cfg: C.Config, result: Mapping[str, Any],
                 out_dir: Path, node_id: str | None = None) -> str:
    """A trial's one row from its result (fit()'s, or failure_result's): the ranks path stored relative
    to the storage (so a copied or synced sweep stays readable).  Every trial runner ends here: the
    Tune trainable (sweeps/trainable.py) and the GPU study without Ray (benchmarks/reproduce_gpu.py)."""
    if S.is_uri(storage):
        ranks = L.ranks_relpath(trial_id)  # where the trainable's sync put the file
    else:
        ranks = result.get("ranks_path") or str(Path(out_dir) / L.RANKS_FILENAME)
        try:
            ranks = str(Path(ranks).resolve().relative_to(Path(storage).resolve()))
        except ValueError:
            pass
    return write_row(storage, trial_row(result, cfg, trial_id, experiment, ranks, node_id))


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
    return Path(L.row_path(str(storage), trial_id))


def write_row(storage: str | Path, row: Mapping[str, Any]) -> str:
    """Write (or overwrite) this trial's one-row file atomically (one PUT on object storage)."""
    table = row_table(row)
    if S.is_uri(storage):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = L.row_path(str(storage), str(row["trial_id"]))
        S.write_bytes(path, sink.getvalue().to_pybytes())
    else:
        path = str(trial_path(storage, str(row["trial_id"])))
        atomic_write(path, lambda p: pq.write_table(table, p))
    log.info("results row written: %s", path)
    return path


def row_status(storage: str | Path, trial_id: str) -> str | None:
    """The status of a trial's row, None when it has none (or it cannot be read)."""
    path = L.row_path(str(storage), trial_id)
    try:
        if S.is_uri(storage):
            table = pq.read_table(pa.BufferReader(S.read_bytes(path)), columns=None)
        else:
            table = pq.read_table(path)
    except Exception:  # noqa: BLE001 - absent, truncated or foreign: no usable row
        return None
    return str(table.column("status")[0]) if "status" in table.column_names else "ok"


def finished_rows(storage: str | Path) -> int:
    """How many trial rows a sweep's storage holds (0 when it holds none or does not exist)."""
    if S.is_uri(storage):
        return sum(1 for rel in S.list_files(L.results_dir(str(storage))) if L.is_row_name(rel))
    return len(list((Path(storage) / RESULTS_DIRNAME).glob(TRIAL_GLOB)))


def local_view(location: str | Path, cache: str | Path | None = None) -> Path:
    """A local dir holding what `results` and `report` read from `location`.

    A path (or file: URI) is returned as a path.  A URI is mirrored (results rows, ranks,
    result.json, sweep.json; never Tune state or checkpoints: layout.in_results_view) into a
    cache dir keyed by the URI, fetching only files whose size or mtime changed.
    """
    if (local := S.local_path(location)) is not None:
        return Path(local).expanduser()
    uri = S.normalise(location)
    root = Path(cache) if cache else S.cache_root("storage") / S.cache_key(uri)
    fetched, total = S.mirror(uri, root, L.in_results_view)
    if not total:
        raise S.StorageError(f"results store is empty: no {RESULTS_DIRNAME}/{TRIAL_GLOB} under {uri} (no trial of "
                             f"the sweep has finished yet?)")
    log.info("%s: %d file(s) fetched into %s (%d unchanged)", uri, fetched, root, total - fetched)
    return root


def store_files(path: str | Path) -> list[Path]:
    """Every trial file under path: a sweep dir, its results/ dir, or a parent of several sweeps
    (a storage URI is read through its local view, local_view)."""
    p = local_view(path)
    if not p.exists():
        raise UserError(f"results store not found: {p} does not exist (give a sweep storage dir, its "
                        f"{RESULTS_DIRNAME}/ dir, or a dir holding several sweeps)")
    if not p.is_dir():
        raise UserError(f"results store not found: {p} is a file, not a directory (give a sweep storage dir)")
    return regular_files(f for f in p.rglob(TRIAL_GLOB) if f.parent.name == RESULTS_DIRNAME or f.parent == p)


def regular_files(paths) -> list[Path]:
    """The regular files among paths, sorted; anything else named like a row (a FIFO, a socket, a dir, a
    dangling link) is skipped with a warning: opening a FIFO would block the reader forever."""
    import stat

    keep = []
    for f in paths:
        try:
            mode = f.stat().st_mode
        except OSError as e:
            log.warning("skipping %s in the results store: %s", f, e.strerror or e)
            continue
        if stat.S_ISREG(mode):
            keep.append(f)
        else:
            log.warning("skipping %s in the results store: not a regular file", f)
    return sorted(keep)


def _nonempty_store_files(path: str | Path) -> list[Path]:
    files = store_files(path)
    if not files:
        raise UserError(f"results store is empty: no {TRIAL_GLOB} files under {Path(path).expanduser()} "
                        f"(no trial of the sweep has finished yet?)")
    return files


def _unreadable(f: Path, exc: Exception) -> UserError:
    first = " ".join(str(exc).split("\n\nLINE")[0].split())
    return UserError(f"cannot read results file {f}: {first} (a truncated or foreign file; move it away and "
                     f"rerun, or resume the sweep to rewrite it)")


def read_files(files: list[Path]):
    """The rows of these trial files as one pandas DataFrame (columns unioned by name, BACKFILL
    applied); an unreadable file is named in the error.  The one pandas reader of the store."""
    import pandas as pd

    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a truncated file
            raise _unreadable(f, e) from e
    df = pd.concat(frames, ignore_index=True)
    for col, (value, _) in BACKFILL.items():
        if col not in df.columns:
            df[col] = value
        elif df[col].isna().any():
            df[col] = df[col].astype(object).where(df[col].notna(), value).astype(type(value))
    return df


def read_store(path: str | Path):
    """All rows of a store (a sweep dir, its results/ dir, a parent of several sweeps, or a storage URI)
    as a pandas DataFrame (read_files)."""
    return read_files(_nonempty_store_files(path))


def _sandbox(con) -> None:
    """From here on no statement can touch a file, load an extension or change a setting."""
    con.execute("SET temp_directory = ''")  # never spill to disk (an in-memory db would use ./.tmp)
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect(path: str | Path):
    """An in-memory DuckDB connection holding the store as the table `results`, sandboxed.

    The rows are loaded first, then external access is disabled and the configuration locked, so
    whatever the user's query says it can read only this table: no file read or written
    (read_csv, COPY, ATTACH, EXPORT), no extension installed or loaded, no setting changed.
    Rows from files that predate `status`/`hit_epoch_cap` read as 'ok'/false.
    """
    import duckdb

    files = _nonempty_store_files(path)
    con = duckdb.connect(":memory:")
    listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    try:
        con.execute(f"CREATE TABLE results AS SELECT * FROM read_parquet([{listing}], union_by_name = true)")
    except duckdb.Error as e:
        for f in files:  # name the file that cannot be read
            try:
                pq.read_table(f)
            except Exception as fe:  # noqa: BLE001
                raise _unreadable(f, fe) from e
        raise UserError(f"results store {path}: cannot load its {len(files)} files together: "
                        f"{' '.join(str(e).split())}") from e
    cols = {r[0] for r in con.execute("DESCRIBE results").fetchall()}
    for col, (value, sql_type) in BACKFILL.items():  # the same backfill as read_files, in SQL
        literal = {True: "true", False: "false"}.get(value, f"'{value}'") if isinstance(value, (bool, str)) else value
        if col in cols:
            con.execute(f"UPDATE results SET {col} = {literal} WHERE {col} IS NULL")
        else:
            con.execute(f"ALTER TABLE results ADD COLUMN {col} {sql_type} DEFAULT {literal}")
    _sandbox(con)
    return con
