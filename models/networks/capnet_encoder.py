"""CAPNet's image encoder (Navaneet et al. 2019, released code ``net.py`` ``recon_net_large``)."""
from __future__ import annotations

import torch
from torch import nn

# (out channels, kernel, stride) of the 12 conv layers, each followed by ReLU
CAPNET_CONVS = (
    (32, 3, 1), (32, 3, 1), (64, 3, 2), (64, 3, 1), (64, 3, 1), (128, 3, 2),
    (128, 3, 1), (128, 3, 1), (256, 3, 2), (256, 3, 1), (256, 3, 1), (512, 5, 2),
)


class CapnetImageEncoder(nn.Module):
    """12 ReLU conv layers (32 ... 512 channels, four stride-2) -> flatten -> FC ``c_dim`` (the bottleneck, 128) + ReLU.

    With the decoder ``PointDecoder(128, N, hidden=(256, 256))`` this is CAPNet's whole network: 7.16 M
    parameters at 64 x 64 input and N = 1024 (tests/models/test_paper_networks.py). Padding keeps the size
    ("same"; TensorFlow pads odd amounts at the bottom/right, PyTorch symmetrically). The released code declares L2
    regularisers (1e-5 conv, 1e-3 FC) but trains with ``lambda_reg`` = 0, so there is no weight decay here either.

    Args: c_dim: bottleneck width; image_size: input side (64). Input (B, 3, H, W) in [0, 1]; output (B, c_dim).
    """

    def __init__(self, c_dim: int, image_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 3, image_size
        for out, kernel, stride in CAPNET_CONVS:
            layers += [nn.Conv2d(channels, out, kernel, stride=stride, padding=kernel // 2), nn.ReLU()]
            channels, size = out, (size - 1) // stride + 1
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(channels * size * size, c_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(images).flatten(1))
