"""The semantic pipeline as four resumable stages that hand over files, each with a manifest.

    out/prepared/    interactions.parquet, items.parquet, split/*.npy, manifest.json
    out/summaries/   prompts.parquet, summaries.parquet (+ shards/ while running), manifest.json
    out/embeddings/  item_emb.npy, unit_emb.npy, unit_norm.npy (raw-output norms), manifest.json
    out/artifact/    the semantic artifact training reads (sracl_ray/semantic/artifact.py)

A stage whose manifest records the same settings and input fingerprints is skipped; a stage that
did not finish has no manifest (summaries: not until every prompt has a stored answer).  Each
manifest carries a `fingerprint` of its settings + inputs, which the next stage lists as input.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.config import Config, dataset_label
from sracl_ray.data.dataset import ITEM_TEXT_COLUMNS, InteractionData, textless_items
from sracl_ray.data.readers import dataset_path, load_dataset
from sracl_ray.data.split import Split, leave_one_out
from sracl_ray.errors import UserError
from sracl_ray.manifest import atomic_write, fingerprint_files, fingerprint_obj, is_fresh, read_manifest, write_manifest
from sracl_ray.semantic.artifact import SemanticArtifact, check_embeddings, load_npy, save_artifact, textless_entry
from sracl_ray.semantic.neighbours import semantic_neighbours, textless_units, warn_textless
from sracl_ray.semantic.prompts import build_records
from sracl_ray.semantic.settings import PipelineConfig
from sracl_ray.semantic.summaries import SummariesIncomplete, SummaryReport, collect_texts, run_summaries, with_keys
from sracl_ray.semantic.units import build_units, unit_histories

log = logging.getLogger(__name__)
SPLIT_ARRAYS = ("sample_user", "sample_len", "sample_hist", "sample_target", "valid_hist", "valid_target",
                "test_hist", "test_target")


class StageInputError(UserError):
    """A stage's input is not there, not finished, unreadable or does not fit (the message names it)."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    path: Path
    skipped: bool
    detail: str = ""


def stage_dirs(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    return {s: out / s for s in ("prepared", "summaries", "embeddings", "artifact")}


def default_out(cfg: Config) -> Path:
    """.sracl_cache/semantic/<dataset>[-<N>u] (or under semantic.cache_dir)."""
    root = Path(cfg.semantic.cache_dir or ".sracl_cache") / "semantic"
    return root / (dataset_label(cfg.data) + (f"-{cfg.data.max_users}u" if cfg.data.max_users else ""))


def _finish(out: Path, stage: str, settings: dict, inputs: dict, **extra) -> None:
    write_manifest(out, {"stage": stage, "settings": settings, "inputs": inputs,
                         "fingerprint": fingerprint_obj({"settings": settings, "inputs": inputs}), **extra})


def _fingerprint_of(path: Path, what: str) -> str:
    m = read_manifest(path)
    if not m or "fingerprint" not in m:
        raise StageInputError(f"{path}: no finished {what} stage (run `sracl-ray {what}` first)")
    return m["fingerprint"]


# ---------------------------------------------------------------- prepare


def prepare(cfg: Config, out: str | Path) -> StageResult:
    """Dataset -> Parquet interactions/items + the leave-one-out split arrays."""
    out = Path(out)
    settings = {"data": dataclasses.asdict(cfg.data)}
    inputs = {"raw": fingerprint_files(dataset_path(cfg.data))}
    if is_fresh(out, settings, inputs):
        return StageResult("prepare", out, True)
    data = load_dataset(cfg.data)
    split = leave_one_out(data, cfg.data.max_len)
    items = data.items.copy()
    for col in items.columns:
        if col != "item":
            items[col] = items[col].fillna("").astype(str)
    atomic_write(out / "interactions.parquet", lambda p: data.interactions.to_parquet(p, index=False))
    atomic_write(out / "items.parquet", lambda p: items.to_parquet(p, index=False))
    for name in SPLIT_ARRAYS:
        arr = getattr(split, name)
        atomic_write(out / "split" / f"{name}.npy", lambda p, a=arr: np.save(p, a, allow_pickle=False))
    dataset = {"name": data.name, "domain": data.domain, "fingerprint": data.fingerprint, "max_len": split.max_len,
               "n_users": data.n_users, "n_items": data.n_items, "n_train_samples": split.n_samples}
    _finish(out, "prepare", settings, inputs, dataset=dataset)
    return StageResult("prepare", out, False, f"{data.n_users} users, {data.n_items} items, "
                                               f"{split.n_samples} training prefixes")


def load_prepared(path: str | Path) -> tuple[InteractionData, Split]:
    """The dataset and split a prepare stage wrote."""
    path = Path(path)
    m = read_manifest(path)
    if not m or m.get("stage") != "prepare":
        raise StageInputError(f"{path}: no finished prepare stage (run `sracl-ray prepare` first)")
    info = m["dataset"]
    data = InteractionData(info["name"], info["domain"],
                           _read_stage_file(path / "interactions.parquet", pd.read_parquet),
                           _read_stage_file(path / "items.parquet", pd.read_parquet))
    load = lambda f: np.load(f, allow_pickle=False)  # noqa: E731
    arrays = {n: _read_stage_file(path / "split" / f"{n}.npy", load) for n in SPLIT_ARRAYS}
    train_seqs = [np.zeros(0, np.int64)] + [s[:-2] for s in data.sequences[1:]]
    split = Split(max_len=int(info["max_len"]), n_items=data.n_items, n_users=data.n_users,
                  train_seqs=train_seqs, **arrays)
    # the raw data's fingerprint, as prepare recorded it (the stored item text has its missing values
    # written as "", so hashing it again would name the same data differently)
    data.__dict__["fingerprint"] = str(info["fingerprint"])
    return data, split


def fresh_prepared(cfg: Config, artifact: str | Path) -> Path | None:
    """The prepare stage that made a pipeline artifact (``<out>/artifact`` -> ``<out>/prepared``), when it
    is fresh for this data config: the same data settings, the same raw files (fingerprint), and the
    fingerprint the artifact lists as its input; else None (read the raw data instead)."""
    art_dir = Path(artifact)
    prepared = art_dir.parent / "prepared"
    inputs = (read_manifest(art_dir) or {}).get("inputs")
    built_from = inputs.get("prepared") if isinstance(inputs, dict) else None  # a foreign manifest: no link
    m = read_manifest(prepared)
    if not built_from or not m or m.get("stage") != "prepare" or m.get("fingerprint") != built_from:
        return None
    try:
        raw = fingerprint_files(dataset_path(cfg.data))
    except (OSError, UserError):
        return None
    return prepared if is_fresh(prepared, {"data": dataclasses.asdict(cfg.data)}, {"raw": raw}) else None


def _read_stage_file(path: Path, read):
    """read(path), or StageInputError naming the file when it is absent, truncated or corrupt."""
    try:
        return read(path)
    except Exception as e:  # numpy: ValueError/EOFError; pyarrow: ArrowInvalid/OSError
        raise StageInputError(f"{path}: unreadable ({type(e).__name__}: {e}); rerun the stage that writes it") from e


# ---------------------------------------------------------------- summarize


def prompt_records(data: InteractionData, split: Split, granularity: str, pipe: PipelineConfig) -> pd.DataFrame:
    """Every prompt of the dataset with its summary key."""
    units = build_units(split, granularity)
    return with_keys(build_records(split, data.items, units, data.domain, pipe.prompts), pipe.summary)


def summarize(prepared: str | Path, out: str | Path, granularity: str, pipe: PipelineConfig,
              progress: bool = True, limit: int | None = None) -> tuple[StageResult, SummaryReport | None]:
    """Ask the LLM backend for every prompt without a stored answer; manifest once all are done."""
    out = Path(out)
    s = pipe.summary
    settings = {"granularity": granularity, "prompts": dataclasses.asdict(pipe.prompts),
                "summary": {"backend": s.backend, "model": s.model if s.backend != "raw" else "",
                            "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}}
    inputs = {"prepared": _fingerprint_of(Path(prepared), "prepare")}
    if is_fresh(out, settings, inputs):
        return StageResult("summarize", out, True), None
    (out / "manifest.json").unlink(missing_ok=True)  # settings changed: not finished until rerun
    data, split = load_prepared(prepared)
    log.info("summarize: building the prompts of the %s units (%d training prefixes) and %d items",
             granularity, split.n_samples, split.n_items)
    records = prompt_records(data, split, granularity, pipe)
    atomic_write(out / "prompts.parquet", lambda p: records.to_parquet(p, index=False))
    report = run_summaries(records, s, out, progress=progress, limit=limit)
    detail = (f"{report.done}/{report.total} prompts answered, {report.failed} failed, "
              f"{report.asked} asked this run, {report.completion_tokens} tokens in {report.seconds:.1f}s")
    if report.complete:
        _finish(out, "summarize", settings, inputs, counts={"records": len(records), "distinct": report.total})
    return StageResult("summarize", out, False, detail), report


# ---------------------------------------------------------------- embed


# What the embed stage's unit_norm.npy holds; part of its settings, so that an embeddings folder
# written before the norms were recorded is not fresh (it is re-embedded, never mixed with norms).
UNIT_NORM = "L2 norm of the encoder's raw output (unit_emb x unit_norm = that output)"


def embed(summaries: str | Path, out: str | Path, pipe: PipelineConfig, progress: bool = True) -> StageResult:
    """Summaries -> item_emb [n_items + 1, D] (row 0 zeros), unit_emb [n_units, D] and unit_norm [n_units]."""
    from sracl_ray.semantic.embeddings import embed_texts_with_norms

    out, summaries = Path(out), Path(summaries)
    e = pipe.embed
    settings = {"model": e.model or "packaged:all-MiniLM-L6-v2", "pooling": e.pooling,
                "max_seq_length": e.max_seq_length, "unit_norm": UNIT_NORM}
    if not (summaries / "prompts.parquet").exists():
        raise StageInputError(f"{summaries}: no prompts.parquet (run `sracl-ray summarize` first)")
    records = _read_stage_file(summaries / "prompts.parquet", pd.read_parquet)
    texts = collect_texts(records, summaries)  # raises SummariesIncomplete, counting them
    inputs = {"summaries": _fingerprint_of(summaries, "summarize")}
    if is_fresh(out, settings, inputs):
        return StageResult("embed", out, True)
    (out / "manifest.json").unlink(missing_ok=True)  # not finished until every file below is rewritten
    uniq, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    vecs, norms = embed_texts_with_norms(list(uniq), e, progress=progress)
    vecs, norms = vecs[inverse], norms[inverse]  # [R, D], [R]
    kind = records["kind"].to_numpy()
    units, items = records[kind == "unit"], records[kind == "item"]
    unit_emb = np.zeros((len(units), vecs.shape[1]), np.float32)
    unit_emb[units["id"].to_numpy()] = vecs[kind == "unit"]
    unit_norm = np.zeros(len(units), np.float32)
    unit_norm[units["id"].to_numpy()] = norms[kind == "unit"]
    item_emb = np.zeros((int(items["id"].max()) + 1 if len(items) else 1, vecs.shape[1]), np.float32)
    item_emb[items["id"].to_numpy()] = vecs[kind == "item"]
    for name, arr in (("item_emb", item_emb), ("unit_emb", unit_emb), ("unit_norm", unit_norm)):
        atomic_write(out / f"{name}.npy", lambda p, a=arr: np.save(p, a, allow_pickle=False))
    provenance = {"summarize": (read_manifest(summaries) or {}).get("settings", {})}
    _finish(out, "embed", settings, inputs, provenance=provenance,
            shape={"items": list(item_emb.shape), "units": list(unit_emb.shape)})
    return StageResult("embed", out, False, f"{len(uniq)} distinct texts -> {vecs.shape[1]}-d")


# ---------------------------------------------------------------- neighbours


def neighbours(prepared: str | Path, embeddings: str | Path, out: str | Path, granularity: str,
               pipe: PipelineConfig, progress: bool = True) -> StageResult:
    """Top-K cosine neighbours of items and units -> the semantic artifact.

    Items without text (title, brand, categories and description all empty: their prompt had no
    attributes) and units none of whose items has text are left out of every neighbour list and
    point to themselves (see semantic_neighbours); the manifest counts them.
    """
    out, embeddings = Path(out), Path(embeddings)
    n = pipe.neighbours
    emb_m = read_manifest(embeddings) or {}
    settings = {"granularity": granularity, "max_k": n.max_k, "builder": "sracl-semantic-pipeline",
                "embed": emb_m.get("settings", {}), "textless": "excluded"}
    inputs = {"prepared": _fingerprint_of(Path(prepared), "prepare"), "embeddings": _fingerprint_of(embeddings, "embed")}
    if is_fresh(out, settings, inputs):
        return StageResult("neighbours", out, True)
    data, split = load_prepared(prepared)
    units = build_units(split, granularity)
    item_emb = load_npy(embeddings / "item_emb.npy", "emb")
    unit_emb = load_npy(embeddings / "unit_emb.npy", "emb")
    if len(unit_emb) != len(units) or len(item_emb) != split.n_items + 1:
        raise StageInputError(f"{embeddings}: embeddings do not fit the prepared data ({len(unit_emb)} units, "
                              f"{len(item_emb) - 1} items vs {len(units)}, {split.n_items}); rerun summarize/embed")
    check_embeddings(embeddings / "item_emb.npy", item_emb, padding_row=True)
    check_embeddings(embeddings / "unit_emb.npy", unit_emb, padding_row=False)
    unit_norm = _unit_norms(embeddings, emb_m, len(unit_emb))
    t_items = textless_items(data.items, ITEM_TEXT_COLUMNS)
    t_items = t_items[(t_items >= 1) & (t_items <= split.n_items)]
    warn_textless(t_items, split.n_items, f"{prepared}/items.parquet")
    t_units = textless_units(unit_histories(split, units), t_items, split.n_items)
    item_nbrs, unit_nbrs = semantic_neighbours(item_emb, unit_emb, t_items, t_units, n.max_k, chunk=n.chunk,
                                               device=n.device, method=n.method, progress=progress)
    art = SemanticArtifact(item_emb.astype(np.float32), unit_emb.astype(np.float32), item_nbrs, unit_nbrs, units,
                           {"stage": "semantic", "settings": settings, "inputs": inputs,
                            "fingerprint": fingerprint_obj({"settings": settings, "inputs": inputs}),
                            "textless_items": textless_entry(t_items), "textless_units": textless_entry(t_units),
                            "provenance": {**emb_m.get("provenance", {}), "embed": emb_m.get("settings", {})}},
                           unit_norm)
    from sracl_ray.semantic.composition import composition_of  # who the neighbours are (same user?)

    art.manifest["composition"] = composition_of(unit_nbrs, units)
    save_artifact(out, art)
    detail = f"K={item_nbrs.shape[1]} items, K={unit_nbrs.shape[1]} units"
    return StageResult("neighbours", out, False,
                       detail + (f", {len(t_items)} items without text excluded" if len(t_items) else ""))


def _unit_norms(embeddings: Path, emb_m: dict, n_units: int) -> np.ndarray | None:
    """The embed stage's [n_units] raw-output norms; None (warned) when that stage predates them."""
    if "unit_norm" not in emb_m.get("settings", {}):
        log.warning("%s predates raw-output norms (no unit_norm in its manifest): the artifact gets none, and "
                    "semantic.normalize=false will read unit vectors; rerun `sracl-ray embed` to record them",
                    embeddings)
        return None
    path = embeddings / "unit_norm.npy"
    norm = _read_stage_file(path, lambda f: np.load(f, allow_pickle=False))
    if not np.issubdtype(norm.dtype, np.floating) or norm.shape != (n_units,) or \
            not (np.isfinite(norm) & (norm > 0)).all():
        raise StageInputError(f"{path}: expected {n_units} finite norms > 0 (one per unit), found {norm.dtype} "
                              f"{norm.shape}; rerun `sracl-ray embed`")
    return norm.astype(np.float32, copy=False)


def run_all(cfg: Config, pipe: PipelineConfig, out: str | Path, progress: bool = True) -> list[StageResult]:
    """prepare -> summarize -> embed -> neighbours; stops with SummariesIncomplete if answers are missing."""
    d = stage_dirs(out)
    g = cfg.semantic.granularity
    results = [prepare(cfg, d["prepared"])]
    res, report = summarize(d["prepared"], d["summaries"], g, pipe, progress)
    results.append(res)
    if report is not None and not report.complete:
        raise SummariesIncomplete(f"{report.total - report.done} of {report.total} prompts have no summary yet "
                                  f"({report.failed} failed); rerun to retry them before embedding")
    results.append(embed(d["summaries"], d["embeddings"], pipe, progress))
    results.append(neighbours(d["prepared"], d["embeddings"], d["artifact"], g, pipe, progress))
    return results
