"""Base class of shapelab's torchmetrics: a DDP-safe mean over shapes of a per-shape score."""
from __future__ import annotations

import torch
from torchmetrics import Metric


class BatchMean(Metric):
    """Mean over shapes of a per-shape score, accumulated across batches and DDP processes.

    Subclasses implement ``per_shape(*args) -> (B,) tensor``; states are a sum and a count reduced with
    "sum", so the result is the mean over every shape seen by every process.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def per_shape(self, *args) -> torch.Tensor:
        raise NotImplementedError

    def update(self, *args) -> None:
        values = self.per_shape(*args).detach()
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()
