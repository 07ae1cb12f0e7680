"""DRWR's image encoder: DPC's (Insafutdinov & Dosovitskiy 2018) as in DRWR's released ``networks/encoder.py``."""
from __future__ import annotations

import math

import torch
from torch import nn


class DpcImageEncoder(nn.Module):
    """5x5 stride-2 conv (``base_channels``) + blocks of [3x3 stride-2, 3x3 stride-1] convs doubling the channels
    down to 4 x 4, then FC ``fc_dim`` -> FC ``fc_dim`` -> FC ``c_dim``; leaky ReLU (slope 0.2) after every layer.

    At 128 px: 16 channels, 4 blocks (32, 64, 128, 256), 4096 -> 1024 -> 1024 -> 1024. With the decoder
    ``PointDecoder(1024, 2000, hidden=(), extent=0.5, last_layer_std=0.025)`` (DRWR's FC -> N·3, tanh / 2)
    the network has 13.6 M parameters (tests/models/test_paper_networks.py). Inputs are mapped to [-1, 1] as
    DPC; weights He-initialised (TensorFlow's variance_scaling_initializer), biases zero.

    Args: c_dim: code size (z_dim, 1024); image_size: input side (128); base_channels: f_dim (16);
    fc_dim: 1024. Input (B, 3, H, W) in [0, 1]; output (B, c_dim).
    """

    def __init__(self, c_dim: int, image_size: int, base_channels: int, fc_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, base_channels, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
        channels = base_channels
        for _ in range(int(math.log2(image_size / 4)) - 1):
            layers += [nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(2 * channels, 2 * channels, 3, stride=1, padding=1), nn.LeakyReLU(0.2)]
            channels *= 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(channels * 16, fc_dim), nn.LeakyReLU(0.2), nn.Linear(fc_dim, fc_dim),
                                nn.LeakyReLU(0.2), nn.Linear(fc_dim, c_dim), nn.LeakyReLU(0.2))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")  # fan-in, scale 2
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(images * 2.0 - 1.0).flatten(1))
