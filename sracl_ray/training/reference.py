"""A reference SRA-CL trainer that builds batches the way the authors' release does.

Used only as the yardstick of benchmarks/epoch_speed.py: a torch Dataset whose __getitem__ does
per-sample Python work (neighbour lookups, 20% substitutions with `random`), a DataLoader without
workers, and every sequence encoded at its full padded length in separate calls.  Same model,
same losses, same sizes and the same fidelity switches (cl.cs_form, cl.cs_anchor,
train.ce_padding, semantic.normalize; docs/FIDELITY.md) as the fast path: with cs_anchor=reencode
the L_CS anchor is its own encoder call, as in the release.
"""
from __future__ import annotations

import random

import torch
from torch.utils.data import DataLoader, Dataset

from sracl_ray.config import Config
from sracl_ray.models.sracl import cs_loss, is_loss, loss_weights
from sracl_ray.training.inputs import Prepared, synthesis_inputs
from sracl_ray.semantic.units import sample_units


class ReferenceDataset(Dataset):
    """Per-sample Python batching, as in the authors' release."""

    def __init__(self, prep: Prepared, k: int, prob: float, seed: int):
        sp, art = prep.split, prep.semantic
        self.hist = [list(map(int, h)) for h in sp.sample_hist]
        self.target = [int(t) for t in sp.sample_target]
        self.unit = [int(u) for u in sample_units(sp, art.granularity)]
        self.unit_hist = [list(map(int, h)) for h in prep.unit_inputs()[1]]
        self.unit_nbrs = [list(map(int, r[:k])) for r in art.unit_nbrs]
        self.item_nbrs = [list(map(int, r[:k])) for r in art.item_nbrs]
        self.prob, self.rng = prob, random.Random(seed)

    def __len__(self) -> int:
        return len(self.target)

    def substitute(self, seq: list[int]) -> list[int]:
        return [self.rng.choice(self.item_nbrs[i]) if i and self.rng.random() < self.prob else i for i in seq]

    def __getitem__(self, i: int):
        nb = self.unit_nbrs[self.unit[i]]
        return (torch.tensor(self.hist[i]), torch.tensor(self.target[i]), torch.tensor(self.unit[i]),
                torch.tensor(nb), torch.tensor([self.unit_hist[n] for n in nb]),
                torch.tensor(self.substitute(self.hist[i])), torch.tensor(self.substitute(self.hist[i])))


def reference_loss(modules: dict, batch, unit_emb: torch.Tensor, cfg: Config) -> torch.Tensor:
    """L_Rec + alpha L_CS + beta L_IS of one collated ReferenceDataset batch, one encoder call per part.

    unit_emb: [U, D] what the synthesis head reads (training/inputs.py synthesis_inputs).
    """
    alpha, beta = loss_weights(cfg.cl)
    model, synth = modules["model"], modules["synth"]
    hist, tgt, unit, nb, nb_hist, v1, v2 = batch
    b, k, width = nb_hist.shape
    h = model.encode(hist)  # [B, H]
    loss = model.rec_loss(h, tgt, exclude_padding=cfg.train.ce_padding == "exclude")
    anchor = model.encode(hist) if cfg.cl.cs_anchor == "reencode" else h  # own dropout mask, as the release
    h_nb = model.encode(nb_hist.view(-1, width)).view(b, k, -1)  # [B, k, H]
    p = synth.weights(unit_emb[unit], unit_emb[nb])
    loss = loss + alpha * cs_loss(anchor, h_nb, p, cfg.cl.temperature, cfg.cl.cs_form)
    return loss + beta * is_loss(model.encode(v1), model.encode(v2), cfg.cl.temperature)


def reference_steps(modules: dict, prep: Prepared, cfg: Config, opt: torch.optim.Optimizer, steps: int,
                    device: torch.device = torch.device("cpu"), dataset: ReferenceDataset | None = None):
    """Run `steps` reference training steps (full SRA-CL, learnable synthesis); yields batch sizes.

    Pass a prebuilt `dataset` to keep its construction (seconds on full Beauty) out of a timing.
    """
    ds = dataset if dataset is not None else ReferenceDataset(prep, cfg.cl.k, cfg.cl.substitute_prob, cfg.train.seed)
    unit_emb = torch.as_tensor(synthesis_inputs(prep.semantic, cfg.semantic.normalize, prep.semantic_source),
                               device=device)
    loader = DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, num_workers=0, drop_last=True)
    for step, batch in enumerate(loader):
        if step >= steps:
            return
        batch = [t.to(device) for t in batch]
        loss = reference_loss(modules, batch, unit_emb, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield len(batch[0])
