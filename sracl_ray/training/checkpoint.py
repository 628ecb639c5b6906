"""Resumable checkpoints without pickle: safetensors for weights and RNG, JSON for state.

The optimizer state is saved with torch.save and always loaded with weights_only=True.
A checkpoint directory is written beside the old one and swapped in, so a crash leaves either
the previous complete checkpoint or the new one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_weights(path: Path, module_states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Save several modules' state dicts in one safetensors file (keys prefixed by module name)."""
    flat = {f"{name}.{k}": v.detach().cpu().contiguous() for name, sd in module_states.items() for k, v in sd.items()}
    save_file(flat, str(path))


def load_weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of save_weights."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(path)).items():
        name, rest = key.split(".", 1)
        out.setdefault(name, {})[rest] = value
    return out


def save_checkpoint(ckpt_dir: Path, modules: dict, optimizer: torch.optim.Optimizer, state: dict,
                    gen: torch.Generator, best: dict | None) -> None:
    """Atomically replace ckpt_dir with the current training state."""
    new = ckpt_dir.with_name(ckpt_dir.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_weights(new / "model.safetensors", {n: m.state_dict() for n, m in modules.items()})
    if best is not None:
        save_weights(new / "best.safetensors", best)
    torch.save(optimizer.state_dict(), new / "optim.pt")
    rng = {"torch": torch.get_rng_state(), "gen": gen.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(new / "rng.safetensors"))
    (new / "state.json").write_text(json.dumps(state, indent=1))
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt_dir.exists():
        ckpt_dir.rename(old)
    new.rename(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(ckpt_dir: Path) -> Path | None:
    """The complete checkpoint (state.json present), falling back to a half-swapped .old one."""
    for cand in (ckpt_dir, ckpt_dir.with_name(ckpt_dir.name + ".old")):
        if (cand / "state.json").exists():
            return cand
    return None


def load_checkpoint(ckpt: Path, modules: dict, optimizer: torch.optim.Optimizer, gen: torch.Generator
                    ) -> tuple[dict, dict | None]:
    """Restore modules, optimizer and RNG in place; return (state, best weights or None)."""
    weights = load_weights(ckpt / "model.safetensors")
    for name, module in modules.items():
        module.load_state_dict(weights[name])
    optimizer.load_state_dict(torch.load(ckpt / "optim.pt", weights_only=True))
    rng = load_file(str(ckpt / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    gen.set_state(rng["gen"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    best = load_weights(ckpt / "best.safetensors") if (ckpt / "best.safetensors").exists() else None
    return json.loads((ckpt / "state.json").read_text()), best
