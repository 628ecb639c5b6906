"""One-shot GPU check for the core engine (torch only: the lent GPU machines have no Ray).

Measures on full Beauty: SRA-CL epoch time (several trimming / precision settings), evaluation
time over all users, peak GPU memory, a reference per-sample-batching trainer's epoch time on the
same card (its per-sample dataset is built before the clock starts; its steady-state steps are
timed and extrapolated to one epoch), 4-process packing, and a SASRec (no CL) run to early
stopping for test HR@10.

    python benchmarks/gpu_check.py --data DIR --item-vectors FILE.npy [--out FILE.json] [--budget-s 420]
    python benchmarks/gpu_check.py --smoke        # seconds on a CPU: 60 users, tiny steps, no packing
DIR holds Beauty.txt + items.tsv; FILE.npy is the items' MiniLM vectors (row i = item i+1), built
on a CPU machine (the GPU machine has no model weights); without it, seeded random vectors.
The JSON (benchmarks/_record.py) is rewritten after every figure, so a run cut short keeps what
it measured.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from _record import Record, add_args, ratio
from _smoke import SMOKE_USERS
from sracl_ray.config import load
from sracl_ray.data.dataset import slice_users
from sracl_ray.data.readers import SAMPLE_DIR, read_paper
from sracl_ray.data.split import leave_one_out
from sracl_ray.semantic.interim import build_from_item_embeddings
from sracl_ray.training.evaluate import rank_targets
from sracl_ray.training.fit import build_modules, evaluate_split, make_optimizer, make_stepper, train_epoch
from sracl_ray.training.inputs import DeviceData, Prepared
from sracl_ray.training.reference import ReferenceDataset, reference_steps

BEAUTY = Path(__file__).resolve().parents[2] / "shared" / "data" / "beauty"
REC: list[Record] = []


def log(key: str, value) -> None:
    """Print and persist at once, so a timed-out run still returns what it measured."""
    REC[0].log(key, value, save=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def setup(cfg, prep, device):
    torch.manual_seed(0)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    return dd, modules, opt, torch.Generator(device=device).manual_seed(0)


def time_epoch(prep, sets, device, label, warmup=20):
    cfg = load(None, sets)
    dd, modules, opt, gen = setup(cfg, prep, device)
    stepper = make_stepper(modules, dd, cfg, opt)
    for idx in torch.randint(0, dd.n_samples, (warmup, cfg.train.batch_size), device=device):
        stepper(idx, gen)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    loss = train_epoch(modules, dd, cfg, opt, gen, 1, stepper)
    sync()
    log(f"loss[{label}]", round(loss, 4))
    log(f"epoch_s[{label}]", round(time.perf_counter() - t, 3))
    if device.type == "cuda":
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


def time_reference(prep, sets, device, steps=40, warmup=3):
    """Reference trainer: steady-state steps timed, extrapolated to one epoch; set-up untimed."""
    cfg = load(None, sets)
    dd, modules, opt, _ = setup(cfg, prep, device)
    t = time.perf_counter()
    ds = ReferenceDataset(prep, cfg.cl.k, cfg.cl.substitute_prob, cfg.train.seed)
    log("reference_dataset_build_s", round(time.perf_counter() - t, 2))  # once per run, not per step
    list(reference_steps(modules, prep, cfg, opt, warmup, device, dataset=ds))
    it = reference_steps(modules, prep, cfg, opt, steps + 1, device, dataset=ds)
    next(it)  # DataLoader start-up and unit vectors to the device, outside the timing
    sync()
    t = time.perf_counter()
    n = sum(it)
    sync()
    seconds = time.perf_counter() - t
    log("reference_timed_samples", n)
    log("reference_timed_s", round(seconds, 3))
    log("reference_samples_per_s", round(n / seconds, 1))
    epoch_s = seconds / n * prep.split.n_samples
    log("reference_epoch_s_extrapolated", round(epoch_s, 2))
    for key in [k for k in REC[0].results if k.startswith("epoch_s[")]:
        log(f"speedup_vs_reference[{key[8:-1]}]", ratio(epoch_s, REC[0].results[key]))


def sasrec_to_convergence(prep, device, budget_s, variant="no_cl", extra=(), tag="sasrec"):
    """Train to early stopping (or the time budget); log test metrics of the best epoch."""
    cfg = load(None, [f"cl.variant={variant}", "train.progress=false", "train.length_buckets=1",
                      f"train.device={device}", f"train.batch_size={REC[0].data['settings']['batch_size']}", *extra])
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
        else:
            bad += 1
        if epoch % 10 == 0:
            log(f"{tag}_valid_curve@{epoch}", round(valid["valid/ndcg@10"], 4))
    modules["model"].load_state_dict(best_state)
    test, _ = evaluate_split(modules["model"], dd, cfg, "test")
    log(f"{tag}_epochs_run", epoch)
    log(f"{tag}_best_epoch", best_epoch)
    log(f"{tag}_stopped_by", "patience" if bad >= cfg.train.patience else
        "epoch cap" if epoch >= cfg.train.epochs else "time budget")
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


def smoke(args) -> None:
    """CPU, the packaged sample's first 60 users, random vectors, a few steps of everything but
    packing (the same `gpu_packing.packing`, which `gpu_packing.py --smoke` runs: its worker
    processes are the slowest part of a smoke run)."""
    args.data, args.item_vectors, args.device, args.max_users = str(SAMPLE_DIR), None, "cpu", SMOKE_USERS
    args.pack_users, args.pack_steps, args.pack_procs, args.ref_steps = SMOKE_USERS, 1, 1, 1
    args.skip = ",".join(filter(None, [args.skip, "packing"]))
    args.configs = args.configs or "trim,fp32|untrimmed,fp32"
    args.budget_s, args.sasrec_epochs, args.sracl_budget_s, args.warmup, args.batch_size = 30, 1, 0, 1, 32
    torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(BEAUTY))
    ap.add_argument("--item-vectors", default=None, help="items' vectors .npy (default: seeded random)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-users", type=int, default=0, help="slice (dry runs on CPU)")
    ap.add_argument("--pack-users", type=int, default=5000)
    ap.add_argument("--pack-steps", type=int, default=150)
    ap.add_argument("--pack-procs", type=int, default=4)
    ap.add_argument("--ref-steps", type=int, default=40, help="timed reference steps (after warm-up)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed engine steps before each epoch timing")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--configs", default="", help="|-separated epoch-timing labels to run (default all)")
    ap.add_argument("--skip", default="", help="comma list: epochs,reference,sasrec,packing")
    ap.add_argument("--sracl-budget-s", type=float, default=0, help="also train full SRA-CL (graph, bf16)")
    ap.add_argument("--budget-s", type=float, default=240, help="time cap for the SASRec convergence run")
    ap.add_argument("--sasrec-epochs", type=int, default=0, help="epoch cap for SASRec (0 = train.epochs)")
    add_args(ap)
    args = ap.parse_args()
    if args.smoke:
        smoke(args)
    device = torch.device(args.device)
    REC.append(Record("gpu_check", args))
    REC[0].gpu(torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    log("device", REC[0].data["machine"]["gpu"] or "cpu")
    data = slice_users(read_paper(Path(args.data), "beauty"), args.max_users or None)
    split = leave_one_out(data, 20)
    if args.item_vectors:
        vecs = np.load(args.item_vectors).astype(np.float32)[:split.n_items]  # a slice's ids are re-densified
    else:
        vecs = np.random.default_rng(0).normal(size=(split.n_items, 384)).astype(np.float32)
    log("item_vectors", args.item_vectors or "seeded random (384-d)")
    t = time.perf_counter()
    art = build_from_item_embeddings(split, vecs, "prefix", 20, {"granularity": "prefix"}, device=args.device)
    sync()
    log("artifact_build_s", round(time.perf_counter() - t, 2))
    prep = Prepared(data, split, art, "interim-minilm (gpu_check)")
    log("n_train_samples", split.n_samples)
    base = ["train.progress=false", f"train.device={args.device}", f"train.batch_size={args.batch_size}"]
    skip = set(args.skip.split(","))
    if "epochs" not in skip:
        wanted = set(args.configs.split("|")) if args.configs else None
        if not wanted or "trim,fp32" in wanted:
            cfg, dd, modules = time_epoch(prep, base + ["train.length_buckets=1"], device, "trim,fp32", args.warmup)
            time_eval(cfg, dd, modules)
        for label, extra in (("graph,fp32", ["train.cuda_graph=true"]),
                             ("graph,bf16", ["train.cuda_graph=true", "train.amp=true"]),
                             ("trim,bf16", ["train.length_buckets=1", "train.amp=true"]),
                             ("4 buckets,fp32", ["train.length_buckets=4"]),
                             ("untrimmed,fp32", ["train.length_buckets=0"])):
            if not wanted or label in wanted:
                try_(time_epoch, prep, base + extra, device, label, args.warmup, label=label)
    if "reference" not in skip:
        try_(time_reference, prep, base + ["train.length_buckets=0"], device, args.ref_steps, label="reference")
    if "packing" not in skip:
        from gpu_packing import packing  # benchmarks/ is on sys.path when this runs as a script

        pack_args = argparse.Namespace(procs=args.pack_procs, steps=args.pack_steps, users=args.pack_users,
                                       data=args.data, item_vectors=args.item_vectors, device=args.device,
                                       batch_size=args.batch_size, warmup=min(5, args.warmup))
        try_(packing, pack_args, log, label="packing")
    extra = [f"train.epochs={args.sasrec_epochs}"] if args.sasrec_epochs else []
    if "sasrec" not in skip:
        try_(sasrec_to_convergence, prep, device, args.budget_s, "no_cl", extra, label="sasrec")
    if args.sracl_budget_s > 0:
        try_(sasrec_to_convergence, prep, device, args.sracl_budget_s, "full",
             ["train.cuda_graph=true", "train.amp=true"], "sracl_graph_bf16", label="sracl")
    errors = [k for k in REC[0].results if k.startswith("error[")]
    log("done", True)
    REC[0].write(complete=not errors)
    if errors:
        raise SystemExit(f"gpu_check: {len(errors)} measurement(s) failed: {', '.join(errors)}")


if __name__ == "__main__":
    main()
