"""Rankings that learn nothing, as the floor every trained model must clear.

- popularity: every user gets the same ranking, items by how often they occur in the training
  part of the sequences (never the validation or test items, which would leak the answers);
- random: the exact expectation of a uniformly random ranking, i.e. a constant score under the
  `expected` tie policy.

Both go through the same full-ranking evaluation as a trained model (training/evaluate.py: the
same candidates, history masking and tie policy), so their numbers are directly comparable.  A
popularity ranking has many ties (items seen equally often), so `eval.ties` matters for it: under
the default `pessimistic` policy every tie counts against it, as it does for a model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sracl_ray.config import Config, EvalConfig
from sracl_ray.data.split import Split
from sracl_ray.errors import UserError
from sracl_ray.training.inputs import seen_matrix
from sracl_ray.training.evaluate import metrics_from_ranks, rank_targets

BASELINES = ("popularity", "random")


class FixedScores(torch.nn.Module):
    """A 'model' whose full_sort_predict gives every user the same item scores."""

    def __init__(self, scores: np.ndarray):
        super().__init__()
        self.register_buffer("scores", torch.as_tensor(np.asarray(scores, np.float32)))

    def full_sort_predict(self, hist: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(len(hist), -1)


def training_counts(split: Split) -> np.ndarray:
    """[n_items + 1] occurrences of each item in the training sequences (index 0: padding, 0)."""
    items = np.concatenate([np.asarray(s, np.int64) for s in split.train_seqs[1:]] or [np.zeros(0, np.int64)])
    return np.bincount(items, minlength=split.n_items + 1).astype(np.float64)


def _eval_inputs(split: Split, which: str, mask_history: bool):
    hist, target = (split.valid_hist, split.valid_target) if which == "valid" else (split.test_hist, split.test_target)
    seen = torch.as_tensor(seen_matrix(split, which)) if mask_history else None
    return torch.as_tensor(hist), torch.as_tensor(target), seen


def baseline_metrics(split: Split, eval_cfg: EvalConfig, which: str = "test") -> dict[str, dict[str, float]]:
    """{baseline: {<which>/<metric>@<k>: value}} for `BASELINES` on one split."""
    hist, target, seen = _eval_inputs(split, which, eval_cfg.mask_history)
    out = {}
    pop = FixedScores(training_counts(split))
    out["popularity"] = metrics_from_ranks(rank_targets(pop, hist, target, seen, eval_cfg.batch_size), which,
                                           ties=eval_cfg.ties)
    flat = FixedScores(np.zeros(split.n_items + 1))
    out["random"] = metrics_from_ranks(rank_targets(flat, hist, target, seen, eval_cfg.batch_size), which,
                                       ties="expected")
    return out


def baseline_rows(cfg: Config) -> list[dict]:
    """One row per baseline for cfg's dataset: name, dataset, n_items, the tie policy used, and
    valid/* and test/* metrics (the same names as a trial's row)."""
    from sracl_ray.config import dataset_label
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out

    split = leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
    valid, test = baseline_metrics(split, cfg.eval, "valid"), baseline_metrics(split, cfg.eval, "test")
    return [{"baseline": name, "dataset": dataset_label(cfg.data), "n_items": int(split.n_items),
             "n_users": int(split.n_users), "ties": cfg.eval.ties if name == "popularity" else "expected",
             "mask_history": bool(cfg.eval.mask_history), **valid[name], **test[name]} for name in BASELINES]


def write_baselines(storage: str | Path, rows: list[dict]) -> Path:
    """storage/baselines.json (results/layout.py), atomically."""
    from sracl_ray.manifest import atomic_write
    from sracl_ray.results.layout import BASELINES_FILENAME

    path = Path(storage) / BASELINES_FILENAME
    atomic_write(path, lambda p: p.write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n"))
    return path


def read_baselines(storage: str | Path) -> list[dict]:
    """The rows of storage/baselines.json ([] when absent); a file that is not a list of rows with
    a known baseline name and finite metrics is a UserError naming it (the file is untrusted)."""
    from sracl_ray.results.layout import BASELINES_FILENAME

    path = Path(storage) / BASELINES_FILENAME
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8")[:1_000_000])
        ok = isinstance(rows, list) and all(
            isinstance(r, dict) and r.get("baseline") in BASELINES
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                    for k, v in r.items() if "/" in k) for r in rows)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not JSON ({e})") from None
    if not ok:
        raise UserError(f"{path}: expected a list of rows with baseline in {BASELINES} and metrics in [0, 1]")
    return rows
