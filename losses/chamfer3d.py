"""3D-supervised baseline for image -> point cloud: Chamfer distance to ground-truth surface points.

The comparison point for CAPNet / DRWR (both papers train the same network with a 3D Chamfer loss as
their upper bound): ``L = mean_x min_y ||x - y||² + mean_y min_x ||x - y||²`` between the predicted cloud
and ``points_gt`` (metrics/chamfer.py ``chamfer_distance``, squared form), averaged over the batch.
"""
from __future__ import annotations

import torch
from shapelab.metrics.chamfer import chamfer_distance
from torch import nn


class Chamfer3dLoss(nn.Module):
    """Loss config ``loss=chamfer3d`` (no renderer needed).

    ``forward(points (B,N,3), rendered (ignored), batch with points_gt (B,P,3))`` returns
    ``{"loss", "chamfer3d"}`` in squared occnet units.
    """

    renderer_outputs: tuple[str, ...] = ()
    batch_format = "multiview"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def forward(self, points: torch.Tensor, rendered: dict | None, batch: dict) -> dict[str, torch.Tensor]:
        chamfer = chamfer_distance(points, batch["points_gt"].to(points)).mean()
        return {"loss": chamfer, "chamfer3d": chamfer}
