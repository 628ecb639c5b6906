"""One training step's losses, built entirely from device tensors (no per-sample Python).

All sequences a step encodes (the batch, the L_CS anchor's own pass, its k neighbour units, two
substituted views, DuoRec's extra views) go through one `encode_trimmed` call: sequences are
sorted by length into buckets and each bucket is trimmed to its longest member, so padding is
skipped exactly while every token keeps its position id.  Rows are independent (dropout draws
its own mask per row), so a block of the call is what a separate forward pass would give.
The fidelity switches (cl.cs_form, cl.cs_anchor, train.ce_padding) are in docs/FIDELITY.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sracl_ray import variants as V
from sracl_ray.config import Config
from sracl_ray.models.base import SeqRecModel
from sracl_ray.models.sracl import SemanticSynthesis, cs_loss, is_loss, loss_weights, substitute
from sracl_ray.training.inputs import DeviceData


def encode_trimmed(model: SeqRecModel, seqs: torch.Tensor, buckets: int = 1) -> torch.Tensor:
    """model.encode over [B, L] left-padded rows, skipping padding exactly. -> [B, H].

    buckets=0 encodes the full padded width (the untrimmed reference computation).
    """
    if buckets == 0:
        return model.encode(seqs)
    width = seqs.shape[1]
    lengths = (seqs > 0).sum(1)
    if buckets == 1:
        return model.encode(seqs[:, width - int(lengths.max()):])
    order = torch.argsort(lengths)
    out = None
    for chunk in order.tensor_split(buckets):
        if len(chunk) == 0:
            continue
        part = seqs[chunk]
        h = model.encode(part[:, width - int(lengths[chunk].max()):])
        if out is None:
            out = h.new_empty(len(seqs), h.shape[1])
        out[chunk] = h
    return out


def resolve_buckets(buckets: int, device: torch.device) -> int:
    """-1 (auto): 4 buckets on CPU (compute-bound), 1 on CUDA (launch-bound)."""
    if buckets >= 0:
        return buckets
    return 1 if device.type == "cuda" else 4


@dataclass
class StepLosses:
    total: torch.Tensor
    rec: torch.Tensor
    cs: torch.Tensor | None = None
    is_: torch.Tensor | None = None
    aux: torch.Tensor | None = None


def same_target_partner(dd: DeviceData, idx: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """For each sample, a uniformly drawn *other* training sample with the same target; the sample
    itself only when no other has that target (DuoRec's `SequentialDataLoader.duorec_aug`)."""
    tgt = dd.target[idx]
    start, count = dd.same_ptr[tgt], dd.same_ptr[tgt + 1] - dd.same_ptr[tgt]
    own = dd.same_pos[idx] - start  # the sample's own slot in its target's group
    r = (torch.rand(len(idx), device=idx.device, generator=gen) * (count - 1).clamp(min=1)).long()
    r = torch.where(count > 1, r + (r >= own).long(), own)  # skip the own slot
    return dd.same_idx[start + r]


def step_losses(model: SeqRecModel, synth: SemanticSynthesis | None, dd: DeviceData, idx: torch.Tensor,
                cfg: Config, gen: torch.Generator) -> StepLosses:
    """L_Rec + alpha L_CS + beta L_IS (+ the backbone's own auxiliary loss) for samples idx."""
    alpha, beta = loss_weights(cfg.cl)
    variant = V.get(cfg.cl.variant)
    self_view = not variant.cs_neighbours  # L_CS's positive: the anchor's own second dropout view
    unlearnable = not variant.learned_mix  # one random neighbour (or the self view) instead of the mix
    hist = dd.hist[idx]  # [B, L]
    b, width = hist.shape
    parts = [hist]
    reencode = alpha > 0 and cfg.cl.cs_anchor == "reencode"
    if reencode:  # the L_CS anchor's own pass (own dropout mask), as the release encodes it
        parts.append(hist)
    if alpha > 0 and self_view:
        parts.append(hist)  # one more pass of the sample itself: its own dropout mask
    elif alpha > 0:
        units = dd.unit[idx]
        nbrs = dd.unit_nbrs[units]  # [B, k]
        if unlearnable:  # one uniformly random neighbour replaces the learned mix
            pick = torch.randint(0, nbrs.shape[1], (b, 1), device=hist.device, generator=gen)
            nbrs = nbrs.gather(1, pick)
        parts.append(dd.unit_hist[nbrs].view(-1, width))
    if beta > 0:
        p = cfg.cl.substitute_prob
        parts += [substitute(hist, dd.item_nbrs, p, gen), substitute(hist, dd.item_nbrs, p, gen)]
    duo = getattr(model, "needs_same_target", False)
    if duo:
        parts += [hist, dd.hist[same_target_partner(dd, idx, gen)]]
    h_all = encode_trimmed(model, torch.cat(parts), resolve_buckets(cfg.train.length_buckets, hist.device))
    h = h_all[:b]
    rec = model.rec_loss(h, dd.target[idx], exclude_padding=cfg.train.ce_padding == "exclude")
    out = StepLosses(total=rec, rec=rec)
    pos = b
    anchor = h
    if reencode:
        anchor = h_all[pos:pos + b]
        pos += b
    if alpha > 0:
        k = 1 if self_view else nbrs.shape[1]
        h_nb = h_all[pos:pos + b * k].view(b, k, -1)
        pos += b * k
        if unlearnable:
            w = torch.ones(b, 1, device=h.device)
        else:
            w = synth.weights(dd.unit_emb[units], dd.unit_emb[nbrs])
        out.cs = cs_loss(anchor, h_nb, w, cfg.cl.temperature, cfg.cl.cs_form)
        out.total = out.total + alpha * out.cs
    if beta > 0:
        out.is_ = is_loss(h_all[pos:pos + b], h_all[pos + b:pos + 2 * b], cfg.cl.temperature)
        pos += 2 * b
        out.total = out.total + beta * out.is_
    if duo:
        out.aux = model.aux_loss(h_all[pos:pos + b], h_all[pos + b:pos + 2 * b])
        out.total = out.total + out.aux
    return out
