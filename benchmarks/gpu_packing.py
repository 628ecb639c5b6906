"""Does packing several trials on one GPU pay?  N processes each running the core engine's
training step for S steps on the same GPU, vs 1 process alone: aggregate samples/s ratio.

This is what `resources.gpus: 0.25` in experiments/ buys: at the packaged sample's size (and at
Beauty's, per shared/ENVIRONMENT.md) a single trial leaves the GPU mostly idle, launch-bound on
Python.  Pure torch + multiprocessing (the GPU machine has no Ray); the semantic artifact is
random 1024-d vectors (SimCSE-large width) so no text model is needed.

    python benchmarks/gpu_packing.py                        # cuda, packaged sample, 4 procs
    python benchmarks/gpu_packing.py --data DIR --users 0   # a full dataset (paper format)
    python benchmarks/gpu_packing.py --device cpu --procs 2 --steps 5     # smoke run without a GPU
Last line: packing_ratio=<aggregate samples/s of N procs / samples/s of 1 proc>   (target >= 1.5)
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path


def build_config(args, artifact: str):
    from sracl_ray.config import load

    sets = [f"semantic.artifact={artifact}", f"train.device={args.device}", "train.progress=false",
            f"train.amp={str(args.amp).lower()}", f"model.backbone={args.backbone}", f"cl.variant={args.variant}"]
    sets += [f"data.path={args.data}", f"data.name={Path(args.data).name}", f"data.format={args.format}"] if args.data else []
    sets += [f"data.max_users={args.users}"] if args.users else []
    sets += [f"train.num_threads={args.threads}"] if args.device == "cpu" else []
    return load(None, sets)


def random_artifact(cfg, out_dir: Path, dim: int) -> None:
    """A real-format semantic artifact from seeded random item vectors."""
    import numpy as np

    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.artifact import SemanticArtifact, save_artifact
    from sracl_ray.semantic.interim import build_from_item_embeddings

    split = leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
    vecs = np.random.default_rng(0).normal(size=(split.n_items, dim)).astype(np.float32)
    settings = {"builder": "benchmark-random", "granularity": cfg.semantic.granularity}
    art = build_from_item_embeddings(split, vecs, cfg.semantic.granularity, 20, settings)
    save_artifact(out_dir, SemanticArtifact(**{**art.__dict__, "manifest": {"stage": "benchmark", "settings": settings}}))


def worker(cfg, steps: int, warmup: int, barrier, queue) -> None:
    """Train `steps` batches after `warmup` ones; report (samples, start, end) of the timed part."""
    import torch

    from sracl_ray.training.fit import build_modules, make_optimizer, resolve_device
    from sracl_ray.training.inputs import DeviceData, prepare_inputs
    from sracl_ray.training.step import step_losses

    device = resolve_device(cfg.train.device)
    torch.manual_seed(0)
    prep = prepare_inputs(cfg)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    amp = cfg.train.amp and device.type == "cuda"

    def batches():
        while True:
            for idx in torch.randperm(dd.n_samples, device=device, generator=gen).split(cfg.train.batch_size):
                if len(idx) == cfg.train.batch_size:
                    yield idx

    it = batches()

    def run(n: int) -> None:
        for _ in range(n):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = step_losses(modules["model"], modules.get("synth"), dd, next(it), cfg, gen).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(warmup)
    barrier.wait()  # every process starts its timed steps together
    t0 = time.perf_counter()
    run(steps)
    queue.put((steps * cfg.train.batch_size, t0, time.perf_counter()))


def measure(cfg, procs: int, steps: int, warmup: int) -> float:
    """Aggregate samples/s of `procs` concurrent training processes."""
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=worker, args=(cfg, steps, warmup, barrier, queue)) for _ in range(procs)]
    for p in ps:
        p.start()
    results = [queue.get(timeout=1800) for _ in ps]
    for p in ps:
        p.join()
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    samples = sum(r[0] for r in results)
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    return samples / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200, help="timed training steps per process")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data", default=None, help="dataset dir (default: the packaged Beauty sample)")
    ap.add_argument("--format", default="auto")
    ap.add_argument("--users", type=int, default=0, help="user slice; 0 = all")
    ap.add_argument("--backbone", default="sasrec")
    ap.add_argument("--variant", default="full")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (cuda)")
    ap.add_argument("--dim", type=int, default=1024, help="semantic embedding width")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process on cpu")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="gpu_packing_") as tmp:
        art = Path(tmp) / "artifact"
        cfg = build_config(args, str(art))
        random_artifact(cfg, art, args.dim)
        import torch

        name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
        print(f"device={name} torch={torch.__version__} data={cfg.data.path or 'packaged sample'} "
              f"users={cfg.data.max_users or 'all'} backbone={args.backbone} variant={args.variant} "
              f"amp={args.amp} batch={cfg.train.batch_size} steps={args.steps}")
        solo = measure(cfg, 1, args.steps, args.warmup)
        print(f"1 process: {solo:.0f} samples/s")
        packed = measure(cfg, args.procs, args.steps, args.warmup)
        print(f"{args.procs} processes: {packed:.0f} samples/s aggregate ({packed / args.procs:.0f} each)")
        print(f"packing_ratio={packed / solo:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
