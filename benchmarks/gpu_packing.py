"""Does packing several trials on one GPU pay?  N processes each running the engine's SRA-CL
training step on the same GPU (what `resources.gpus: 0.25` gives a sweep) vs 1 process alone.

Pure torch + multiprocessing: the lent GPU machines have no Ray.  Each process reads a slice of a
paper-format dataset and builds its semantic artifact on the device from item vectors (or seeded
random ones), so no text model and no Parquet are needed there.

    python benchmarks/gpu_packing.py --data DIR --item-vectors ITEMS.npy      # cuda, 4 procs
    python benchmarks/gpu_packing.py --device cpu --procs 2 --steps 5 --users 100   # CPU dry run
    python benchmarks/gpu_packing.py --smoke        # seconds: CPU, 2 procs, 1 step, 60 users
DIR defaults to the packaged sample. Writes a JSON (benchmarks/_record.py) whose packing_ratio =
aggregate samples/s of N procs / samples/s of 1 proc (target >= 1.5; on a CPU it means nothing).
benchmarks/gpu_check.py runs the same measurement.
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
from sracl_ray.training.fit import build_modules, make_optimizer, make_stepper
from sracl_ray.training.inputs import DeviceData, Prepared


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def packing_worker(rank: int, args, barrier, queue) -> None:
    """One 'trial': SRA-CL steps on a dataset slice; reports (start, end, samples) of timed steps."""
    device = torch.device(args.device)
    data = slice_users(read_paper(Path(args.data), "beauty"), args.users or None)
    split = leave_one_out(data, 20)
    if args.item_vectors:
        vecs = np.load(args.item_vectors).astype(np.float32)[:split.n_items]
    else:
        vecs = np.random.default_rng(0).normal(size=(split.n_items, 384)).astype(np.float32)
    art = build_from_item_embeddings(split, vecs, "prefix", 20, {"granularity": "prefix"}, device=args.device)
    prep = Prepared(data, split, art, "packing benchmark")
    cfg = load(None, ["train.progress=false", f"train.device={args.device}", f"train.seed={rank}",
                      f"train.batch_size={getattr(args, 'batch_size', 256)}"])
    if device.type == "cpu":  # one core per 'trial', as a sweep's 1-CPU trials would get
        torch.set_num_threads(1)
    torch.manual_seed(rank)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    gen = torch.Generator(device=device).manual_seed(rank)
    step = make_stepper(modules, dd, cfg, opt)
    warmup = getattr(args, "warmup", 5)
    batches = torch.randint(0, dd.n_samples, (args.steps + warmup, cfg.train.batch_size), device=device,
                            generator=gen)
    for idx in batches[:warmup]:
        step(idx, gen)
    sync(device)
    barrier.wait()  # every process starts its timed steps together
    t = time.time()
    for idx in batches[warmup:]:
        step(idx, gen)
    sync(device)
    queue.put((t, time.time(), args.steps * cfg.train.batch_size))


def packed_throughput(args, n_procs: int) -> float:
    """Aggregate samples/s of n_procs concurrent training processes."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    barrier, queue = ctx.Barrier(n_procs), ctx.Queue()
    procs = [ctx.Process(target=packing_worker, args=(r, args, barrier, queue)) for r in range(n_procs)]
    for p in procs:
        p.start()
    rows = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[2] for r in rows) / (max(r[1] for r in rows) - min(r[0] for r in rows))


def packing(args, log=lambda key, value: print(f"{key}={value}")) -> float:
    """args.procs processes on one device vs 1 process alone; log(key, value) each figure; the ratio."""
    one = packed_throughput(args, 1)
    many = packed_throughput(args, args.procs)
    log("packing_samples_per_s[1 proc]", round(one, 1))
    log(f"packing_samples_per_s[{args.procs} procs]", round(many, 1))
    log("packing_ratio", ratio(many, one))
    return many / one


def add_packing_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=150, help="timed steps per process (after --warmup steps)")
    ap.add_argument("--users", type=int, default=5000, help="user slice of the dataset; 0 = all")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per process")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_packing_args(ap)
    ap.add_argument("--data", default=str(SAMPLE_DIR))
    ap.add_argument("--item-vectors", default=None, help="item vectors .npy (default: seeded random)")
    ap.add_argument("--device", default="cuda")
    add_args(ap)
    args = ap.parse_args()
    if args.smoke:
        args.device, args.procs, args.steps, args.users, args.data = "cpu", 2, 1, SMOKE_USERS, str(SAMPLE_DIR)
        args.batch_size, args.warmup = 32, 1
    rec = Record("gpu_packing", args)
    rec.gpu(torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else None)
    rec.log("device", rec.data["machine"]["gpu"] or "cpu")
    rec.log("item_vectors", args.item_vectors or "seeded random (384-d)")
    packing(args, rec.log)
    rec.write()


if __name__ == "__main__":
    main()
