"""One-shot GPU check for the core engine (torch only: the lent GPU machines have no Ray).

Measures on full Beauty: SRA-CL epoch time (several trimming / precision settings), evaluation
time over all users, peak GPU memory, a reference per-sample-batching trainer's steps/s on the
same card, and a SASRec (no CL) run to convergence for test HR@10.

    python benchmarks/gpu_check.py --data DIR --item-vectors FILE.npy --out OUTDIR [--budget-s 420]
DIR holds Beauty.txt + items.tsv; FILE.npy is the items' MiniLM vectors (row i = item i+1),
built on a CPU machine by benchmarks/embed_items.py (the GPU machine has no model weights).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sracl_ray.config import load
from sracl_ray.data.dataset import slice_users
from sracl_ray.data.readers import read_paper
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.interim import build_from_item_embeddings
from sracl_ray.training.evaluate import rank_targets
from sracl_ray.training.fit import build_modules, evaluate_split, make_optimizer, make_stepper, train_epoch
from sracl_ray.training.inputs import DeviceData, Prepared
from sracl_ray.training.reference import reference_steps

RESULTS: dict = {}
OUT: list[Path] = []


def log(key: str, value) -> None:
    """Print and persist at once, so a timed-out run still returns what it measured."""
    RESULTS[key] = value
    print(f"{key}={value}", flush=True)
    if OUT:
        (OUT[0] / "gpu_results.json").write_text(json.dumps(RESULTS, indent=1))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def setup(cfg, prep, device):
    torch.manual_seed(0)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    return dd, modules, opt, torch.Generator(device=device).manual_seed(0)


def time_epoch(prep, sets, device, label):
    cfg = load(None, sets)
    dd, modules, opt, gen = setup(cfg, prep, device)
    stepper = make_stepper(modules, dd, cfg, opt)
    for idx in torch.randint(0, dd.n_samples, (20, cfg.train.batch_size), device=device):  # warm-up
        stepper(idx, gen)
    sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    loss = train_epoch(modules, dd, cfg, opt, gen, 1, stepper)
    sync()
    log(f"loss[{label}]", round(loss, 4))
    log(f"epoch_s[{label}]", round(time.perf_counter() - t, 3))
    if torch.cuda.is_available():
        log(f"peak_mem_gb[{label}]", round(torch.cuda.max_memory_allocated() / 2**30, 3))
    return cfg, dd, modules


def time_eval(cfg, dd, modules):
    model = modules["model"]
    rank_targets(model, dd.test_hist, dd.test_target, None, 4096)
    sync()
    t = time.perf_counter()
    rank_targets(model, dd.test_hist, dd.test_target, None, 4096)
    sync()
    log("eval_all_users_s", round(time.perf_counter() - t, 4))


def time_reference(prep, sets, device, steps=40):
    cfg = load(None, sets)
    dd, modules, opt, _ = setup(cfg, prep, device)
    list(reference_steps(modules, prep, cfg, opt, 3, device))
    sync()
    t = time.perf_counter()
    n = sum(reference_steps(modules, prep, cfg, opt, steps, device))
    sync()
    per_sample = (time.perf_counter() - t) / n
    log("reference_epoch_s_extrapolated", round(per_sample * prep.split.n_samples, 2))


def sasrec_to_convergence(prep, device, budget_s, variant="no_cl", extra=(), tag="sasrec"):
    """Train to early stopping (or the time budget); log test metrics of the best epoch."""
    cfg = load(None, [f"cl.variant={variant}", "train.progress=false", "train.length_buckets=1",
                      f"train.device={device}", *extra])
    dd, modules, opt, gen = setup(cfg, prep, device)
    stepper = make_stepper(modules, dd, cfg, opt)
    best, best_epoch, bad, t0, epoch = -1.0, 0, 0, time.time(), 0
    best_state = None
    while bad < cfg.train.patience and time.time() - t0 < budget_s and epoch < cfg.train.epochs:
        epoch += 1
        train_epoch(modules, dd, cfg, opt, gen, epoch, stepper)
        valid, _ = evaluate_split(modules["model"], dd, cfg, "valid")
        if valid[cfg.train.metric] > best:
            best, best_epoch, bad = valid[cfg.train.metric], epoch, 0
            best_state = {k: v.clone() for k, v in modules["model"].state_dict().items()}
        if epoch % 10 == 0:
            log(f"{tag}_valid_curve@{epoch}", round(valid["valid/ndcg@10"], 4))
        else:
            bad += 1
    modules["model"].load_state_dict(best_state)
    test, _ = evaluate_split(modules["model"], dd, cfg, "test")
    log(f"{tag}_epochs_run", epoch)
    log(f"{tag}_best_epoch", best_epoch)
    log(f"{tag}_stopped_by", "patience" if bad >= cfg.train.patience else "time budget")
    log(f"{tag}_train_s", round(time.time() - t0, 1))
    for k in ("test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20"):
        log(f"{tag}_{k}", round(test[k], 4))


def try_(fn, *a, label: str = "") -> None:
    """Run one measurement; a failure is recorded, not fatal to the others."""
    try:
        fn(*a)
    except Exception as e:  # noqa: BLE001 - report and go on: device time is scarce
        import traceback
        traceback.print_exc()
        log(f"error[{label or fn.__name__}]", f"{type(e).__name__}: {e}"[:300])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--item-vectors", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-users", type=int, default=0, help="slice (dry runs on CPU)")
    ap.add_argument("--pack-users", type=int, default=5000)
    ap.add_argument("--pack-steps", type=int, default=150)
    ap.add_argument("--configs", default="", help="|-separated epoch-timing labels to run (default all)")
    ap.add_argument("--skip", default="", help="comma list: epochs,reference,sasrec,packing")
    ap.add_argument("--sracl-budget-s", type=float, default=0, help="also train full SRA-CL (graph, bf16)")
    ap.add_argument("--budget-s", type=float, default=240, help="time cap for the SASRec convergence run")
    args = ap.parse_args()
    OUT.append(Path(args.out))
    OUT[0].mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    log("device", torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu")
    log("torch", torch.__version__)
    data = slice_users(read_paper(Path(args.data), "beauty"), args.max_users or None)
    split = leave_one_out(data, 20)
    vecs = np.load(args.item_vectors).astype(np.float32)[:split.n_items]  # a slice's ids are re-densified
    t = time.perf_counter()
    art = build_from_item_embeddings(split, vecs, "prefix", 20, {"granularity": "prefix"}, device=args.device)
    log("artifact_build_s", round(time.perf_counter() - t, 2))
    prep = Prepared(data, split, art, "interim-minilm (gpu_check)")
    log("n_train_samples", split.n_samples)
    base = ["train.progress=false", f"train.device={args.device}"]
    skip = set(args.skip.split(","))
    if "epochs" not in skip:
        wanted = set(args.configs.split("|")) if args.configs else None
        if not wanted or "trim,fp32" in wanted:
            cfg, dd, modules = time_epoch(prep, base + ["train.length_buckets=1"], device, "trim,fp32")
            time_eval(cfg, dd, modules)
        for label, extra in (("graph,fp32", ["train.cuda_graph=true"]),
                             ("graph,bf16", ["train.cuda_graph=true", "train.amp=true"]),
                             ("trim,bf16", ["train.length_buckets=1", "train.amp=true"]),
                             ("4 buckets,fp32", ["train.length_buckets=4"]),
                             ("untrimmed,fp32", ["train.length_buckets=0"])):
            if not wanted or label in wanted:
                try_(time_epoch, prep, base + extra, device, label, label=label)
    if "reference" not in skip:
        try_(time_reference, prep, base + ["train.length_buckets=0"], device)
    if "packing" not in skip:
        from gpu_packing import packing  # benchmarks/ is on sys.path when this runs as a script

        pack_args = argparse.Namespace(procs=4, steps=args.pack_steps, users=args.pack_users, data=args.data,
                                       item_vectors=args.item_vectors, device=args.device)
        try_(packing, pack_args, lambda line: log(*line.split("=", 1)), label="packing")
    if "sasrec" not in skip:
        try_(sasrec_to_convergence, prep, device, args.budget_s)
    if args.sracl_budget_s > 0:
        try_(sasrec_to_convergence, prep, device, args.sracl_budget_s, "full",
             ["train.cuda_graph=true", "train.amp=true"], "sracl_graph_bf16", label="sracl")
    log("done", True)


if __name__ == "__main__":
    main()
