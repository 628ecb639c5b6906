"""Resumable checkpoints without pickle: safetensors for weights and RNG, JSON for state.

The optimizer state is saved with torch.save and always loaded with weights_only=True.
A checkpoint directory is written beside the old one and swapped in, so a crash leaves either
the previous complete checkpoint or the new one.

Every checkpoint records the *fingerprint* of the run that wrote it: every setting that
determines the weights (the config minus run-time-only keys), the dataset's fingerprint and the
semantic artifact's.  A run only resumes a checkpoint whose fingerprint equals its own; otherwise
it stops with one line naming the keys that differ (`--overwrite` starts fresh).  A checkpoint
file that cannot be read (truncated, foreign) is an error naming the file, never a traceback.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sracl_ray.config import flatten
from sracl_ray.errors import UserError

# Settings that do not change the weights a run reaches at a given epoch: how it is displayed,
# where files live, how fast it runs (the trimming and CUDA-graph paths are exact), and how far
# it may go (a checkpoint at epoch n is the same whatever the epoch cap or patience).  Data and
# semantic files are covered by their content fingerprints instead of their paths.
RUNTIME_KEYS = ("data.name", "data.path", "semantic.artifact", "semantic.cache_dir", "train.progress",
                "train.num_threads", "train.device", "train.length_buckets", "train.cuda_graph", "train.epochs",
                "train.patience", "eval.batch_size")


class CheckpointError(UserError):
    """A checkpoint belongs to another run or cannot be read."""


def run_fingerprint(config: dict, data_fp: str, semantic_fp: str | None) -> dict:
    """What determines the weights: flat config minus RUNTIME_KEYS, plus data and artifact fingerprints."""
    flat = {k: v for k, v in flatten(config).items() if k not in RUNTIME_KEYS}
    return {**flat, "data.fingerprint": data_fp, "semantic.fingerprint": semantic_fp}


def fingerprint_diff(stored: dict | None, current: dict) -> list[str]:
    """'key: stored -> current' for every key whose value differs."""
    stored = stored or {}
    keys = sorted(set(stored) | set(current))
    return [f"{k}: {stored.get(k, '<absent>')!r} -> {current.get(k, '<absent>')!r}"
            for k in keys if json.dumps(stored.get(k), default=str) != json.dumps(current.get(k), default=str)]


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


def read_state(ckpt: Path) -> dict:
    """state.json of a checkpoint (an unreadable one is a CheckpointError naming it)."""
    path = ckpt / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({type(e).__name__}); "
                              f"rerun with --overwrite to start fresh") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise CheckpointError(f"{path}: not a checkpoint state of this tool; rerun with --overwrite to start fresh")
    return state


def check_fingerprint(ckpt: Path, current: dict) -> dict:
    """The checkpoint's state when it was written by a run with this fingerprint, else CheckpointError."""
    state = read_state(ckpt)
    diff = fingerprint_diff(state.get("fingerprint"), current)
    if diff:
        shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise CheckpointError(f"{ckpt} was written by a different run ({shown}); resuming it would mix settings. "
                              f"Rerun with --overwrite to start fresh, or choose another --out")
    return state


def _read(path: Path, load):
    try:
        return load(path)
    except Exception as e:  # safetensors / torch raise several types for truncated or foreign files
        raise CheckpointError(f"{path}: unreadable checkpoint file ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]}); rerun with --overwrite to start fresh") from None


def load_checkpoint(ckpt: Path, modules: dict, optimizer: torch.optim.Optimizer, gen: torch.Generator
                    ) -> tuple[dict, dict | None]:
    """Restore modules, optimizer and RNG in place; return (state, best weights or None)."""
    state = read_state(ckpt)
    weights = _read(ckpt / "model.safetensors", load_weights)
    optim = _read(ckpt / "optim.pt", lambda p: torch.load(p, weights_only=True))
    rng = _read(ckpt / "rng.safetensors", lambda p: load_file(str(p)))
    best = _read(ckpt / "best.safetensors", load_weights) if (ckpt / "best.safetensors").exists() else None
    try:
        for name, module in modules.items():
            module.load_state_dict(weights[name])
        optimizer.load_state_dict(optim)
        torch.set_rng_state(rng["torch"])
        gen.set_state(rng["gen"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{ckpt}: does not fit this model ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]}); rerun with --overwrite to start fresh") from None
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state, best
