"""Samples/s of SRA-CL training: the device-resident engine vs a per-sample reference trainer.

Both run in this process on the same data, model sizes and losses (full SRA-CL, alpha=beta=0.1,
k=10); the reference builds batches per sample in Python like the authors' release
(sracl_ray/training/reference.py).  Neither timing includes building inputs: the engine's device
tensors and the reference's per-sample dataset are built before the clock starts, and each side's
first steps (warm-up) are not timed.

    python benchmarks/epoch_speed.py --steps 15             # CPU: 1,500-user Beauty slice
    python benchmarks/epoch_speed.py --users 0 --device cuda --full-epoch   # GPU: full Beauty
    python benchmarks/epoch_speed.py --smoke                # seconds: 60 users, random vectors
Writes a JSON (see benchmarks/_record.py); last line printed: speedup_vs_reference=<float>
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _record import Record, add_args, ratio
from _smoke import SMOKE_USERS, random_artifact
from sracl_ray.config import load
from sracl_ray.data.readers import SAMPLE_DIR
from sracl_ray.training.fit import build_modules, make_optimizer, resolve_device, train_epoch
from sracl_ray.training.inputs import DeviceData, Prepared, prepare_inputs
from sracl_ray.training.reference import ReferenceDataset, reference_steps
from sracl_ray.training.step import step_losses

BEAUTY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beauty"
WARMUP = 2


def timed_fast(prep: Prepared, cfg, device, steps: int) -> tuple[float, int]:
    """(samples/s, samples) of the engine's training step over `steps` batches after WARMUP steps."""
    torch.manual_seed(0)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    perm = torch.randperm(dd.n_samples, device=device, generator=gen).split(cfg.train.batch_size)
    if len(perm) < WARMUP + steps:
        raise SystemExit(f"--steps {steps}: only {len(perm) - WARMUP} batches after warm-up in this data")

    def run(batches):
        for idx in batches:
            loss = step_losses(modules["model"], modules.get("synth"), dd, idx, cfg, gen).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    run(perm[:WARMUP])
    sync(device)
    timed = perm[WARMUP:WARMUP + steps]
    n = sum(len(b) for b in timed)
    t = time.perf_counter()
    run(timed)
    sync(device)
    return n / (time.perf_counter() - t), n


def timed_reference(prep: Prepared, cfg, steps: int) -> tuple[float, int, float]:
    """(samples/s, samples, dataset build seconds) of the reference trainer on the CPU."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    dd = DeviceData(prep, cfg, cpu)
    modules = build_modules(cfg, prep, dd, cpu)
    opt = torch.optim.Adam([p for m in modules.values() for p in m.parameters()], lr=1e-3)
    t = time.perf_counter()
    ds = ReferenceDataset(prep, cfg.cl.k, cfg.cl.substitute_prob, cfg.train.seed)
    build_s = time.perf_counter() - t
    list(reference_steps(modules, prep, cfg, opt, WARMUP, cpu, dataset=ds))
    it = reference_steps(modules, prep, cfg, opt, steps + 1, cpu, dataset=ds)
    next(it)  # DataLoader start-up and one more warm step, outside the timing
    t = time.perf_counter()
    n = sum(it)
    return n / (time.perf_counter() - t), n, build_s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(BEAUTY), help="dataset dir (default: shared Beauty)")
    ap.add_argument("--users", type=int, default=1500, help="user slice; 0 = all")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--artifact", default=None, help="semantic artifact dir (default: interim MiniLM, cached)")
    ap.add_argument("--buckets", type=int, default=-1, help="train.length_buckets (-1 = auto)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--full-epoch", action="store_true", help="also time one whole engine epoch")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    add_args(ap)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epoch_speed_") as tmp:
        if args.smoke:  # the packaged sample, a random artifact, 1 timed step of 32 samples
            args.data, args.users, args.steps, args.batch_size, args.device, args.threads = \
                str(SAMPLE_DIR), SMOKE_USERS, 1, 32, "cpu", 1
            args.artifact = str(random_artifact(SMOKE_USERS, Path(tmp) / "artifact"))
        run(args, argv)


def run(args, argv: list[str] | None = None) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = [f"data.path={args.data}", f"train.length_buckets={args.buckets}", f"train.device={args.device}",
            f"train.batch_size={args.batch_size}", "train.progress=false"]
    sets += [f"data.max_users={args.users}"] if args.users else []
    sets += [f"semantic.artifact={args.artifact}"] if args.artifact else []
    cfg = load(None, sets)
    prep = prepare_inputs(cfg)
    device = resolve_device(cfg.train.device)
    rec = Record("epoch_speed", args, argv)
    rec.gpu(torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    pad = 1 - (prep.split.sample_hist > 0).mean()
    for key, value in (("data", prep.data.name), ("users", prep.data.n_users), ("train_samples", prep.split.n_samples),
                       ("padding_share", round(float(pad), 3)), ("semantic_source", prep.semantic_source),
                       ("device", str(device)), ("threads", torch.get_num_threads()),
                       ("length_buckets", cfg.train.length_buckets), ("batch_size", cfg.train.batch_size)):
        rec.log(key, value)
    fast, n_fast = timed_fast(prep, cfg, device, args.steps)
    rec.log("engine_timed_samples", n_fast)
    rec.log("engine_samples_per_s", round(fast, 1))
    if args.full_epoch:
        dd = DeviceData(prep, cfg, device)
        modules = build_modules(cfg, prep, dd, device)
        opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
        t = time.perf_counter()
        train_epoch(modules, dd, cfg, opt, torch.Generator(device=device).manual_seed(0), 1)
        sync(device)
        rec.log("engine_epoch_seconds", round(time.perf_counter() - t, 2))
    ref, n_ref, build_s = timed_reference(prep, cfg, args.steps)
    rec.log("reference_dataset_build_s", round(build_s, 2))
    rec.log("reference_timed_samples", n_ref)
    rec.log("reference_samples_per_s", round(ref, 1))
    rec.log("speedup_vs_reference", ratio(fast, ref))
    rec.write()
    print(f"speedup_vs_reference={fast / ref:.2f}")


if __name__ == "__main__":
    main()
