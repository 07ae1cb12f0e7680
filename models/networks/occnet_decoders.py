"""Occupancy decoders f_theta(p, z, c) -> logits (Occupancy Networks, supplementary Sec. 1, Fig. 1).

``DecoderCBatchNorm``: five residual blocks whose batch norms take their scale and shift from the
condition code c (conditional batch normalisation); the paper's network for every conditional
task. ``DecoderResnetFC``: the "simple" fully connected residual decoder where c and z are added
to the point features; with ``c_dim=0`` it is the unconditional decoder of the generative model.

Both: points (B, T, 3), z (B, z_dim) or None, c (B, c_dim) or None -> logits (B, T).
"""
from __future__ import annotations

import torch
from shapelab.models.networks.encoders import ResnetBlockFC
from torch import nn
from torch.nn import functional as F


class CBatchNorm1d(nn.Module):
    """Batch norm over (B, F, T) whose affine parameters are predicted from c: gamma(c) * BN(x) + beta(c).

    gamma starts at 1 and beta at 0, so an untrained layer is a plain batch norm.
    """

    def __init__(self, c_dim: int, f_dim: int):
        super().__init__()
        self.conv_gamma = nn.Conv1d(c_dim, f_dim, 1)
        self.conv_beta = nn.Conv1d(c_dim, f_dim, 1)
        self.bn = nn.BatchNorm1d(f_dim, affine=False)
        nn.init.zeros_(self.conv_gamma.weight)
        nn.init.ones_(self.conv_gamma.bias)
        nn.init.zeros_(self.conv_beta.weight)
        nn.init.zeros_(self.conv_beta.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.unsqueeze(2)
        return self.conv_gamma(c) * self.bn(x) + self.conv_beta(c)


class CResnetBlockConv1d(nn.Module):
    """Residual block of two (CBN, ReLU, 1x1 conv) stages on (B, hidden, T); second conv zero-initialised."""

    def __init__(self, c_dim: int, size: int):
        super().__init__()
        self.bn_0 = CBatchNorm1d(c_dim, size)
        self.bn_1 = CBatchNorm1d(c_dim, size)
        self.fc_0 = nn.Conv1d(size, size, 1)
        self.fc_1 = nn.Conv1d(size, size, 1)
        nn.init.zeros_(self.fc_1.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        net = self.fc_0(F.relu(self.bn_0(x, c)))
        return x + self.fc_1(F.relu(self.bn_1(net, c)))


class DecoderCBatchNorm(nn.Module):
    """Conditional-batch-norm residual decoder (OccNet ``DecoderCBatchNorm``)."""

    def __init__(self, c_dim: int, z_dim: int, *, dim: int = 3, hidden_dim: int, num_blocks: int = 5):
        super().__init__()
        if c_dim <= 0:
            raise ValueError("DecoderCBatchNorm needs c_dim > 0; use DecoderResnetFC for unconditional models")
        self.z_dim = z_dim
        self.fc_p = nn.Conv1d(dim, hidden_dim, 1)
        self.fc_z = nn.Linear(z_dim, hidden_dim) if z_dim > 0 else None
        self.blocks = nn.ModuleList(CResnetBlockConv1d(c_dim, hidden_dim) for _ in range(num_blocks))
        self.bn = CBatchNorm1d(c_dim, hidden_dim)
        self.fc_out = nn.Conv1d(hidden_dim, 1, 1)

    def forward(self, points: torch.Tensor, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        net = self.fc_p(points.transpose(1, 2))
        if self.fc_z is not None:
            net = net + self.fc_z(z).unsqueeze(2)
        for block in self.blocks:
            net = block(net, c)
        return self.fc_out(F.relu(self.bn(net, c))).squeeze(1)


class DecoderResnetFC(nn.Module):
    """Simple residual FC decoder (OccNet ``Decoder``): c and z are projected and added to the point
    features; ``c_dim=0`` gives the unconditional decoder of the generative model."""

    def __init__(self, c_dim: int = 0, z_dim: int = 0, dim: int = 3, *, hidden_dim: int, num_blocks: int = 5):
        super().__init__()
        self.fc_p = nn.Linear(dim, hidden_dim)
        self.fc_z = nn.Linear(z_dim, hidden_dim) if z_dim > 0 else None
        self.fc_c = nn.Linear(c_dim, hidden_dim) if c_dim > 0 else None
        self.blocks = nn.ModuleList(ResnetBlockFC(hidden_dim) for _ in range(num_blocks))
        self.fc_out = nn.Linear(hidden_dim, 1)

    def forward(self, points: torch.Tensor, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        net = self.fc_p(points)
        if self.fc_z is not None:
            net = net + self.fc_z(z).unsqueeze(1)
        if self.fc_c is not None:
            net = net + self.fc_c(c).unsqueeze(1)
        for block in self.blocks:
            net = block(net)
        return self.fc_out(F.relu(net)).squeeze(-1)
