"""fit(): train one configuration, early-stop on a validation metric, test once. Knows no Ray.

Before anything is written, fit() reads and checks every input (config, data, semantic artifact,
an existing checkpoint's fingerprint), so a bad input leaves the output dir untouched.  A
non-finite loss stops the run with NonFiniteError naming the epoch and step: no metrics, no
result.json, no checkpoint of the diverged epoch.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from sracl_ray import variants as V
from sracl_ray.training import stopping
from sracl_ray.config import Config, to_dict
from sracl_ray.errors import NonFiniteError
from sracl_ray.manifest import atomic_write, atomic_write_text, code_version
from sracl_ray.models import build_model
from sracl_ray.models.sracl import SemanticSynthesis, loss_weights
from sracl_ray.training.checkpoint import (check_fingerprint, find_checkpoint, load_checkpoint, run_fingerprint,
                                           save_checkpoint, save_weights)
from sracl_ray.training.evaluate import metrics_from_ranks, rank_targets
from sracl_ray.training.inputs import DeviceData, Prepared, prepare_inputs
from sracl_ray.training.prepare import check_out_dir, needs_semantic
from sracl_ray.training.step import step_losses

log = logging.getLogger(__name__)
Report = Callable[[dict, Path], None]
# What fit() writes into an output dir; --overwrite removes exactly these (nothing else there).
OUTPUTS = ("checkpoint", "checkpoint.old", "checkpoint.new", "result.json", "ranks.parquet", "best.safetensors")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_modules(cfg: Config, prep: Prepared, dd: DeviceData, device: torch.device) -> dict:
    """The backbone plus, when L_CS is learnable, the semantic synthesis head."""
    modules = {"model": build_model(cfg.model, prep.split.n_items, prep.split.max_len).to(device)}
    alpha, _ = loss_weights(cfg.cl)
    if alpha > 0 and V.get(cfg.cl.variant).learned_mix:
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


def diverged(epoch: int, step: int, n_steps: int, loss: float) -> NonFiniteError:
    return NonFiniteError(f"training diverged: non-finite loss ({loss}) at epoch {epoch}, step {step} of {n_steps}; "
                          f"no metrics were written (lower train.lr or cl.alpha/cl.beta, or check the inputs)")


def train_epoch(modules: dict, dd: DeviceData, cfg: Config, opt: torch.optim.Optimizer,
                gen: torch.Generator, epoch: int, stepper=None) -> float:
    """One pass over a random permutation of all training prefixes; returns the mean loss.

    Raises NonFiniteError at the first non-finite step loss.  On CPU every step is checked as it
    happens; on CUDA the first bad step is recorded on the device (no per-step sync, which would
    stall the launch-bound step) and checked at the end of the epoch.
    """
    stepper = stepper or make_stepper(modules, dd, cfg, opt)
    for m in modules.values():
        m.train()
    device = dd.hist.device
    perm = torch.randperm(dd.n_samples, device=device, generator=gen)
    batches = perm.split(cfg.train.batch_size)
    n_steps = len(batches)
    if cfg.train.progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False)
    total = torch.zeros((), device=device)
    first_bad = torch.full((), n_steps + 1, device=device, dtype=torch.long)
    for step, idx in enumerate(batches, 1):
        if len(idx) < 2:  # in-batch negatives need two rows
            continue
        loss = stepper(idx, gen)
        if device.type == "cpu":
            if not math.isfinite(float(loss)):
                raise diverged(epoch, step, n_steps, float(loss))
        else:
            first_bad = torch.where(torch.isfinite(loss) | (first_bad <= n_steps), first_bad,
                                    torch.full_like(first_bad, step))
        total += loss
    bad = int(first_bad)
    if bad <= n_steps:
        raise diverged(epoch, bad, n_steps, float("nan"))
    return float(total) / max(1, n_steps)


def evaluate_split(model, dd: DeviceData, cfg: Config, which: str) -> tuple[dict, np.ndarray]:
    hist, target = getattr(dd, f"{which}_hist"), getattr(dd, f"{which}_target")
    seen = getattr(dd, f"{which}_seen") if cfg.eval.mask_history else None
    ranks = rank_targets(model, hist, target, seen, cfg.eval.batch_size)
    return metrics_from_ranks(ranks, which, ties=cfg.eval.ties), ranks


def clear_outputs(out: Path) -> None:
    """--overwrite: remove what an earlier run wrote into out (only fit()'s own files)."""
    for name in OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def fit(cfg: Config, out_dir: str | Path, report: Report | None = None, prepared: Prepared | None = None,
        resume: bool = True) -> dict:
    """Train with early stopping on cfg.train.metric; evaluate test once with the best weights.

    resume=True continues a checkpoint in out_dir written by the same run (same fingerprint) and
    refuses one written by another; resume=False (`--overwrite`) removes earlier outputs first.
    """
    t0 = time.time()
    out = Path(out_dir)
    check_out_dir(out)
    prep = prepared or prepare_inputs(cfg)  # reads and checks every input before anything is written
    fingerprint = run_fingerprint(to_dict(cfg), prep.data.fingerprint, semantic_used(cfg, prep)["fingerprint"])
    ckpt_dir = out / "checkpoint"
    found = find_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        check_fingerprint(found, fingerprint)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    gen = torch.Generator(device=device).manual_seed(cfg.train.seed)
    dd = DeviceData(prep, cfg, device)
    modules = build_modules(cfg, prep, dd, device)
    params = [p for m in modules.values() for p in m.parameters()]
    opt = make_optimizer(params, cfg, device)
    state = {"epoch": 0, "best_value": -np.inf, "best_epoch": 0, "bad_epochs": 0,
             "history": [], "train_seconds": 0.0, "fingerprint": fingerprint}
    best = None
    if found is not None:
        state, best = load_checkpoint(found, modules, opt, gen)
        log.info("resuming %s from epoch %d", out, state["epoch"])
    elif not resume and out.exists():
        clear_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    stepper = make_stepper(modules, dd, cfg, opt)  # after resuming: a CUDA graph binds these tensors
    rule = cfg.train.stop_rule
    while state["epoch"] < cfg.train.epochs and not stopping.exhausted(state["bad_epochs"], cfg.train.patience, rule):
        epoch = state["epoch"] + 1
        te = time.time()
        loss = train_epoch(modules, dd, cfg, opt, gen, epoch, stepper)
        valid, _ = evaluate_split(modules["model"], dd, cfg, "valid")
        value = valid[cfg.train.metric]
        if stopping.improves(value, state["best_value"], rule):  # training/stopping.py: release | strict
            state.update(best_value=stopping.score(value, rule), best_epoch=epoch, bad_epochs=0)
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


def semantic_used(cfg: Config, prep: Prepared) -> dict:
    """The semantic artifact this run read: none for a variant without L_CS/L_IS, even when the
    prepared inputs (shared by a sweep's trials) carry one."""
    if prep.semantic is None or not needs_semantic(cfg):
        return {"source": "none", "builder": "none", "fingerprint": None, "manifest": None}
    return {"source": prep.semantic_source, "builder": prep.semantic_builder,
            "fingerprint": prep.semantic_fingerprint, "manifest": prep.semantic.manifest}


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
    # rank_* = the pessimistic 0-based rank (ties against the target); ties_* = the tied candidates,
    # so per-user values under either tie policy follow (training/evaluate.py per_user).
    ranks = pd.DataFrame({"user": np.arange(1, len(train_len) + 1),
                          "rank_valid": valid_ranks.pessimistic, "ties_valid": valid_ranks.ties,
                          "rank_test": test_ranks.pessimistic, "ties_test": test_ranks.ties,
                          "train_len": train_len, "test_input_len": train_len + 1})
    atomic_write(out / "ranks.parquet", lambda p: ranks.to_parquet(p, index=False))
    atomic_write(out / "best.safetensors",
                 lambda p: save_weights(p, {n: m.state_dict() for n, m in modules.items()}))
    alpha, beta = loss_weights(cfg.cl)
    result = {
        "status": "ok", "config": to_dict(cfg), "seed": cfg.train.seed, "code_version": code_version(),
        "fingerprint": state.get("fingerprint"), "host": socket.gethostname(),
        "dataset": {"name": prep.data.name, "fingerprint": prep.data.fingerprint, "n_users": prep.split.n_users,
                    "n_items": prep.split.n_items, "n_train_samples": prep.split.n_samples},
        "semantic": semantic_used(cfg, prep),
        "alpha_applied": alpha, "beta_applied": beta, "ties": cfg.eval.ties,
        "metrics": {**valid, **test}, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        # the best epoch was the last one allowed: the trial was still improving when it was stopped
        "hit_epoch_cap": state["best_epoch"] >= cfg.train.epochs,
        "wall_time_s": wall, "train_seconds": state["train_seconds"], "ranks_path": str(out / "ranks.parquet"),
        "mask_history": cfg.eval.mask_history, "max_len": cfg.data.max_len, "device": str(device),
        "history": state["history"],
    }
    atomic_write_text(out / "result.json", json.dumps(result, indent=2, default=str))
    return result
