"""Samples/s of SRA-CL training: the device-resident engine vs a per-sample reference trainer.

Both run in this process on the same data, model sizes and losses (full SRA-CL, alpha=beta=0.1,
k=10); the reference builds batches per sample in Python like the authors' release.

    python benchmarks/epoch_speed.py                       # CPU: 1,500-user Beauty slice
    python benchmarks/epoch_speed.py --users 0 --device cuda --full-epoch   # GPU: full Beauty
Last line: speedup_vs_reference=<float>
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sracl_ray.config import load
from sracl_ray.training.fit import build_modules, make_optimizer, resolve_device, train_epoch
from sracl_ray.training.inputs import DeviceData, Prepared, prepare_inputs
from sracl_ray.training.reference import reference_steps
from sracl_ray.training.step import step_losses

BEAUTY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beauty"


def timed_fast(prep: Prepared, cfg, device, steps: int) -> float:
    """Samples/s of the engine's training step over `steps` batches (after 2 warm-up steps)."""
    torch.manual_seed(0)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    perm = torch.randperm(dd.n_samples, device=device, generator=gen).split(cfg.train.batch_size)
    def run(batches):
        for idx in batches:
            loss = step_losses(modules["model"], modules.get("synth"), dd, idx, cfg, gen).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    run(perm[:2])
    sync(device)
    t = time.perf_counter()
    run(perm[2:2 + steps])
    sync(device)
    return steps * cfg.train.batch_size / (time.perf_counter() - t)


def timed_reference(prep: Prepared, cfg, steps: int) -> float:
    torch.manual_seed(0)
    dd = DeviceData(prep, cfg, torch.device("cpu"))
    modules = build_modules(cfg, prep, dd, torch.device("cpu"))
    opt = torch.optim.Adam([p for m in modules.values() for p in m.parameters()], lr=1e-3)
    list(reference_steps(modules, prep, cfg, opt, 2))
    t = time.perf_counter()
    n = sum(reference_steps(modules, prep, cfg, opt, steps))
    return n / (time.perf_counter() - t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(BEAUTY), help="dataset dir (default: shared Beauty)")
    ap.add_argument("--users", type=int, default=1500, help="user slice; 0 = all")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--artifact", default=None, help="semantic artifact dir (default: interim MiniLM, cached)")
    ap.add_argument("--buckets", type=int, default=-1, help="train.length_buckets (-1 = auto)")
    ap.add_argument("--full-epoch", action="store_true", help="also time one whole engine epoch")
    args = ap.parse_args()
    sets = [f"data.path={args.data}", "data.name=beauty", f"train.length_buckets={args.buckets}",
            f"train.device={args.device}", "train.progress=false"]
    sets += [f"data.max_users={args.users}"] if args.users else []
    sets += [f"semantic.artifact={args.artifact}"] if args.artifact else []
    cfg = load(None, sets)
    prep = prepare_inputs(cfg)
    device = resolve_device(cfg.train.device)
    pad = 1 - (prep.split.sample_hist > 0).mean()
    print(f"data={prep.data.name} samples={prep.split.n_samples} padding_share={pad:.3f} device={device} "
          f"threads={torch.get_num_threads()} buckets={args.buckets}")
    fast = timed_fast(prep, cfg, device, args.steps)
    print(f"engine_samples_per_s={fast:.1f}")
    if args.full_epoch:
        dd = DeviceData(prep, cfg, device)
        modules = build_modules(cfg, prep, dd, device)
        opt = make_optimizer([p for m in modules.values() for p in m.parameters()], cfg, device)
        t = time.perf_counter()
        train_epoch(modules, dd, cfg, opt, torch.Generator(device=device).manual_seed(0), 1)
        sync(device)
        print(f"engine_epoch_seconds={time.perf_counter() - t:.2f}")
    ref = timed_reference(prep, cfg, args.steps)
    print(f"reference_samples_per_s={ref:.1f}")
    print(f"speedup_vs_reference={fast / ref:.2f}")


if __name__ == "__main__":
    main()
