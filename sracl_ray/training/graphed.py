"""Whole-step CUDA graph: forward, losses, backward and Adam replayed as one graph.

On a GPU the SRA-CL step is launch-bound (hundreds of small kernels), so capturing it once and
replaying it per batch removes the launch overhead.  Shapes must be static: no length trimming
(the encoder sees the full padded width) and full batches only (the last partial batch of an epoch
runs eagerly).  Random draws (dropout, substitutions, partners) use the default CUDA generator,
which graphs support.  The warm-up steps that capture needs are undone afterwards, in place.
"""
from __future__ import annotations

import dataclasses

import torch

from sracl_ray.config import Config
from sracl_ray.training.inputs import DeviceData
from sracl_ray.training.step import step_losses


def _state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]


class GraphedStep:
    """Capture one training step for a fixed batch size; call with the batch's sample indices."""

    def __init__(self, modules: dict, dd: DeviceData, cfg: Config, opt: torch.optim.Optimizer, warmup: int = 3):
        self.modules, self.dd, self.opt = modules, dd, opt
        self.cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, length_buckets=0))
        self.amp = cfg.train.amp
        b, dev = cfg.train.batch_size, dd.hist.device
        self.idx = torch.randint(0, dd.n_samples, (b,), device=dev)
        params = [p for m in modules.values() for p in m.parameters()]
        saved = [p.detach().clone() for p in params]
        fresh = not opt.state  # a resumed run brings optimizer state that must survive capture
        saved_state = [t.clone() for t in _state_tensors(opt)]
        opt.zero_grad(set_to_none=True)
        self._eager()  # creates the optimizer state tensors the graph will update in place
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                opt.zero_grad(set_to_none=True)
                self._eager()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = self._loss()
            self.loss.backward()
            opt.step()
        with torch.no_grad():  # undo the warm-up steps, in place (the graph holds these tensors)
            for live, old in zip(params, saved):
                live.copy_(old)
            for live, old in zip(_state_tensors(opt), saved_state if not fresh else []):
                live.copy_(old)
            if fresh:
                for live in _state_tensors(opt):
                    live.zero_()

    def _loss(self) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return step_losses(self.modules["model"], self.modules.get("synth"), self.dd, self.idx, self.cfg,
                               None).total

    def _eager(self) -> torch.Tensor:
        loss = self._loss()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def __call__(self, idx: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """One optimisation step on samples idx (graph replay for full batches; gen is unused:
        graphed random draws come from the default CUDA generator)."""
        if len(idx) == len(self.idx):
            self.idx.copy_(idx)
            self.graph.replay()
            return self.loss.detach()
        self.opt.zero_grad(set_to_none=False)
        loss = step_losses(self.modules["model"], self.modules.get("synth"), self.dd, idx, self.cfg, None).total
        loss.backward()
        self.opt.step()
        return loss.detach()
