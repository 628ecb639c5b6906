"""fit(): train one configuration, early-stop on a validation metric, test once. Knows no Ray."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from sracl_ray.config import Config, to_dict
from sracl_ray.manifest import atomic_write, atomic_write_text, code_version
from sracl_ray.models import build_model
from sracl_ray.models.sracl import SemanticSynthesis, loss_weights
from sracl_ray.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint, save_weights
from sracl_ray.training.evaluate import metrics_from_ranks, rank_targets
from sracl_ray.training.inputs import DeviceData, Prepared, prepare_inputs
from sracl_ray.training.step import step_losses

log = logging.getLogger(__name__)
Report = Callable[[dict, Path], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_modules(cfg: Config, prep: Prepared, dd: DeviceData, device: torch.device) -> dict:
    """The backbone plus, when L_CS is learnable, the semantic synthesis head."""
    modules = {"model": build_model(cfg.model, prep.split.n_items, prep.split.max_len).to(device)}
    alpha, _ = loss_weights(cfg.cl)
    if alpha > 0 and cfg.cl.variant != "unlearnable":
        modules["synth"] = SemanticSynthesis(dd.sem_dim, cfg.model.hidden, cfg.cl.attn_dropout).to(device)
    return modules


def make_optimizer(params: list, cfg: Config, device: torch.device) -> torch.optim.Optimizer:
    """Adam as in the paper; the fused kernel on CUDA (one launch instead of one per tensor)."""
    cuda = device.type == "cuda"
    return torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=cuda,
                            capturable=cuda and cfg.train.cuda_graph)


def make_stepper(modules: dict, dd: DeviceData, cfg: Config, opt: torch.optim.Optimizer):
    """A callable idx -> loss doing one optimisation step (CUDA-graphed when configured)."""
    if cfg.train.cuda_graph and dd.hist.device.type == "cuda":
        from sracl_ray.training.graphed import GraphedStep
        return GraphedStep(modules, dd, cfg, opt)
    amp = cfg.train.amp and dd.hist.device.type == "cuda"

    def step(idx: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            losses = step_losses(modules["model"], modules.get("synth"), dd, idx, cfg, gen)
        opt.zero_grad(set_to_none=True)
        losses.total.backward()
        opt.step()
        return losses.total.detach()
    return step


def train_epoch(modules: dict, dd: DeviceData, cfg: Config, opt: torch.optim.Optimizer,
                gen: torch.Generator, epoch: int, stepper=None) -> float:
    """One pass over a random permutation of all training prefixes; returns the mean loss."""
    stepper = stepper or make_stepper(modules, dd, cfg, opt)
    for m in modules.values():
        m.train()
    perm = torch.randperm(dd.n_samples, device=dd.hist.device, generator=gen)
    batches = perm.split(cfg.train.batch_size)
    if cfg.train.progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False)
    total = torch.zeros((), device=dd.hist.device)
    for idx in batches:
        if len(idx) < 2:  # in-batch negatives need two rows
            continue
        total += stepper(idx, gen)
    return float(total) / max(1, len(batches))


def evaluate_split(model, dd: DeviceData, cfg: Config, which: str) -> tuple[dict, np.ndarray]:
    hist, target = getattr(dd, f"{which}_hist"), getattr(dd, f"{which}_target")
    seen = getattr(dd, f"{which}_seen") if cfg.eval.mask_history else None
    ranks = rank_targets(model, hist, target, seen, cfg.eval.batch_size)
    return metrics_from_ranks(ranks, which), ranks


def fit(cfg: Config, out_dir: str | Path, report: Report | None = None, prepared: Prepared | None = None,
        resume: bool = True) -> dict:
    """Train with early stopping on cfg.train.metric; evaluate test once with the best weights."""
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    gen = torch.Generator(device=device).manual_seed(cfg.train.seed)
    prep = prepared or prepare_inputs(cfg)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    params = [p for m in modules.values() for p in m.parameters()]
    opt = make_optimizer(params, cfg, device)
    ckpt_dir = out / "checkpoint"
    state = {"epoch": 0, "best_value": -np.inf, "best_epoch": 0, "bad_epochs": 0,
             "history": [], "train_seconds": 0.0}
    best = None
    found = find_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        state, best = load_checkpoint(found, modules, opt, gen)
        log.info("resuming %s from epoch %d", out, state["epoch"])
    stepper = make_stepper(modules, dd, cfg, opt)  # after resuming: a CUDA graph binds these tensors
    while state["epoch"] < cfg.train.epochs and state["bad_epochs"] < cfg.train.patience:
        epoch = state["epoch"] + 1
        te = time.time()
        loss = train_epoch(modules, dd, cfg, opt, gen, epoch, stepper)
        valid, _ = evaluate_split(modules["model"], dd, cfg, "valid")
        value = valid[cfg.train.metric]
        if value > state["best_value"]:
            state.update(best_value=value, best_epoch=epoch, bad_epochs=0)
            best = {n: {k: v.detach().clone() for k, v in m.state_dict().items()} for n, m in modules.items()}
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["train_seconds"] += time.time() - te
        metrics = {"epoch": epoch, "train/loss": loss, **valid, "epoch_seconds": time.time() - te}
        state["history"].append(metrics)
        save_checkpoint(ckpt_dir, modules, opt, state, gen, best)
        log.info("epoch %d loss %.4f %s %.4f", epoch, loss, cfg.train.metric, value)
        if report:
            report(metrics, ckpt_dir)
    result = finish(cfg, out, prep, dd, modules, state, best, device, time.time() - t0)
    if report:
        report({"epoch": state["epoch"], **result["metrics"], "best_epoch": state["best_epoch"], "final": True},
               ckpt_dir)
    return result


def finish(cfg: Config, out: Path, prep: Prepared, dd: DeviceData, modules: dict, state: dict, best: dict | None,
           device: torch.device, wall: float) -> dict:
    """Load the best weights, test once, write ranks, best weights and result.json."""
    if best is not None:
        for name, m in modules.items():
            m.load_state_dict(best[name])
    model = modules["model"]
    valid, valid_ranks = evaluate_split(model, dd, cfg, "valid")
    test, test_ranks = evaluate_split(model, dd, cfg, "test")
    train_len = prep.split.train_len
    ranks = pd.DataFrame({"user": np.arange(1, len(train_len) + 1), "rank_valid": valid_ranks,
                          "rank_test": test_ranks, "train_len": train_len, "test_input_len": train_len + 1})
    atomic_write(out / "ranks.parquet", lambda p: ranks.to_parquet(p, index=False))
    atomic_write(out / "best.safetensors",
                 lambda p: save_weights(p, {n: m.state_dict() for n, m in modules.items()}))
    result = {
        "config": to_dict(cfg), "seed": cfg.train.seed, "code_version": code_version(),
        "dataset": {"name": prep.data.name, "fingerprint": prep.data.fingerprint, "n_users": prep.split.n_users,
                    "n_items": prep.split.n_items, "n_train_samples": prep.split.n_samples},
        "semantic": {"source": prep.semantic_source,
                     "manifest": prep.semantic.manifest if prep.semantic is not None else None},
        "metrics": {**valid, **test}, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "wall_time_s": wall, "train_seconds": state["train_seconds"], "ranks_path": str(out / "ranks.parquet"),
        "mask_history": cfg.eval.mask_history, "max_len": cfg.data.max_len, "device": str(device),
        "history": state["history"],
    }
    atomic_write_text(out / "result.json", json.dumps(result, indent=2, default=str))
    return result
