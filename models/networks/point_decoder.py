"""Fully connected point-cloud decoder: a global code -> N points (CAPNet / DRWR decoders)."""
from __future__ import annotations

import torch
from torch import nn


class PointDecoder(nn.Module):
    """MLP from a code (B, c_dim) to a point cloud (B, num_points, 3).

    CAPNet's decoder is a stack of fully connected layers ending in N·3 outputs. The last layer
    goes through ``extent · tanh`` so points stay in the occnet cube [-extent, extent]³.

    Args:
        c_dim: code size; num_points: N (1024 in CAPNet); hidden: widths of the hidden layers;
        extent: half side of the output cube (0.5 for the occnet frame);
        last_layer_std: initialise the output layer's weights N(0, std²) truncated at 2 std, biases zero
        (DRWR/DPC: 0.025); None keeps PyTorch's default.
    """

    def __init__(self, c_dim: int, num_points: int, hidden: tuple[int, ...], extent: float,
                 last_layer_std: float | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        width = c_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_points * 3))
        if last_layer_std is not None:
            nn.init.trunc_normal_(layers[-1].weight, std=last_layer_std, a=-2 * last_layer_std, b=2 * last_layer_std)
            nn.init.zeros_(layers[-1].bias)
        self.mlp = nn.Sequential(*layers)
        self.num_points = num_points
        self.extent = extent

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.extent * torch.tanh(self.mlp(code).view(code.shape[0], self.num_points, 3))
