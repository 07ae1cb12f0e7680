"""Conditioning encoders: image, point cloud and voxel grid -> a global code ``c`` of size ``c_dim``.

Architectures follow Occupancy Networks (Mescheder et al. 2019, supplementary Sec. 1): a ResNet-18
image encoder, a small conv image encoder for CPU, a ResNet-style PointNet and a 3D-conv voxel
encoder. The latent encoder q(z | points, occupancies, c) of the generative model is here too.
Images are (B, 3, H, W) floats in [0, 1]; point clouds (B, N, 3); voxels (B, 32, 32, 32) in {0, 1}.
"""
from __future__ import annotations

from pathlib import Path

import torch
from shapelab.declarative.robust_pooling import PENALTIES, robust_pool
from torch import nn
from torch.nn import functional as F

from shapelab.errors import ShapelabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ("max", "mean", *(f"robust_{penalty}" for penalty in PENALTIES if penalty != "quadratic"))


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ShapelabError(f"model.encoder.pooling={pooling!r} is unknown; use one of {POOLINGS}")


def pool_points(x: torch.Tensor, pooling: str, dim: int = 1, keepdim: bool = False, alpha: float = 1.0) -> torch.Tensor:
    """Symmetric pooling over the point axis: ``"max"`` (PointNet), ``"mean"``, or ``"robust_<penalty>"``
    (a deep declarative node, Gould et al. 2020 Sec. 5.1: the robust average under the penalty with scale
    ``alpha``, in feature units; `shapelab.declarative.robust_pooling`)."""
    check_pooling(pooling)
    if pooling == "max":
        return x.max(dim=dim, keepdim=keepdim).values
    if pooling == "mean":
        return x.mean(dim=dim, keepdim=keepdim)
    pooled = robust_pool(x, dim, pooling.removeprefix("robust_"), alpha)
    return pooled.unsqueeze(dim) if keepdim else pooled


class ResnetBlockFC(nn.Module):
    """Fully connected residual block: x + fc(relu(fc(relu(x)))), last layer zero-initialised."""

    def __init__(self, size_in: int, size_out: int | None = None, size_h: int | None = None):
        super().__init__()
        size_out = size_in if size_out is None else size_out
        size_h = min(size_in, size_out) if size_h is None else size_h
        self.fc_0 = nn.Linear(size_in, size_h)
        self.fc_1 = nn.Linear(size_h, size_out)
        nn.init.zeros_(self.fc_1.weight)
        self.shortcut = None if size_in == size_out else nn.Linear(size_in, size_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.fc_1(F.relu(self.fc_0(F.relu(x))))
        x_s = x if self.shortcut is None else self.shortcut(x)
        return x_s + dx


class ResNet18Encoder(nn.Module):
    """torchvision ResNet-18 with its classifier replaced by a linear layer to ``c_dim``.

    ``pretrained=True`` (OccNet: ``models.resnet18(pretrained=True)``) loads torchvision's ImageNet
    weights from ``weights_path`` or, when that is null, from torchvision's own cache file
    (``imagenet_weights_file()``); a missing file stops with one line saying where to put it.
    Nothing is downloaded. ``pretrained=False`` with ``weights_path`` loads that file;
    without either the network is randomly initialised. The input is normalised with the ImageNet
    mean/std, as OccNet's ``Resnet18(normalize=True)``.

    Args: images (B, 3, H, W) in [0, 1]. Returns: (B, c_dim).
    """

    input_type = "image"  # the data.input_type it encodes

    def __init__(self, c_dim: int, weights_path: str | None, pretrained: bool):
        super().__init__()
        from torchvision.models import resnet18

        self.features = resnet18(weights=None)
        if pretrained or weights_path is not None:
            path = Path(weights_path) if weights_path is not None else imagenet_weights_file()
            self.features.load_state_dict(_load_resnet_state_dict(path))
        self.features.fc = nn.Identity()
        self.fc = nn.Linear(512, c_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features((images - self.mean) / self.std))


def imagenet_weights_file() -> Path:
    """Where torchvision caches its ImageNet ResNet-18 weights: ``<torch hub dir>/checkpoints/resnet18-f37072fd.pth``
    (``$TORCH_HOME/hub``, default ``~/.cache/torch/hub``); the name is the one in the weights' URL."""
    from torchvision.models import ResNet18_Weights

    name = ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _load_resnet_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise ShapelabError(
            f"ImageNet ResNet-18 weights not found at {path}: put torchvision's resnet18 ImageNet file "
            f"({imagenet_weights_file().name}) there, or set model.encoder.weights_path=<file> "
            "(model.encoder.pretrained=false trains from random init)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ShapelabError(f"{path}: not a readable torch state dict ({exc}); re-save it with torch.save") from exc
    expected = {"conv1.weight", "fc.weight", "layer4.1.bn2.running_var"}
    if not isinstance(state, dict) or not expected <= set(state):
        raise ShapelabError(f"{path}: not a torchvision resnet18 state dict; save resnet18().state_dict()")
    return state


class ConvImageEncoder(nn.Module):
    """Small CPU-friendly image encoder (OccNet ``ConvEncoder``): five stride-2 3x3 convs, global
    average pooling, linear layer to ``c_dim``.

    Args: images (B, 3, H, W) in [0, 1]. Returns: (B, c_dim).
    """

    input_type = "image"  # the data.input_type it encodes

    def __init__(self, c_dim: int, channels: tuple[int, ...] = (32, 64, 128, 256, 512)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers[:-1])  # no ReLU before pooling, as OccNet
        self.fc = nn.Linear(c_in, c_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.convs(images - 0.5)
        return self.fc(F.relu(features.mean(dim=(2, 3))))


class ResnetPointNetEncoder(nn.Module):
    """ResNet-style PointNet (OccNet ``ResnetPointnet``): five residual FC blocks; after each of
    the first four, the pooled feature is concatenated back to every point. ``pooling`` is one of
    `POOLINGS`; ``pooling_alpha`` is the robust penalties' scale.

    Args: points (B, N, 3). Returns: (B, c_dim).
    """

    input_type = "pointcloud"  # the data.input_type it encodes

    def __init__(self, c_dim: int, *, dim: int = 3, hidden_dim: int, pooling: str, pooling_alpha: float):
        super().__init__()
        check_pooling(pooling)
        self.pooling, self.pooling_alpha = pooling, pooling_alpha
        self.fc_pos = nn.Linear(dim, 2 * hidden_dim)
        self.blocks = nn.ModuleList(ResnetBlockFC(2 * hidden_dim, hidden_dim) for _ in range(5))
        self.fc_c = nn.Linear(hidden_dim, c_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        net = self.blocks[0](self.fc_pos(points))
        for block in self.blocks[1:]:
            pooled = pool_points(net, self.pooling, keepdim=True, alpha=self.pooling_alpha).expand_as(net)
            net = block(torch.cat([net, pooled], dim=2))
        return self.fc_c(F.relu(pool_points(net, self.pooling, alpha=self.pooling_alpha)))


class VoxelEncoder(nn.Module):
    """3D conv encoder for a 32^3 occupancy grid (OccNet ``VoxelEncoder``): 32 channels, then four
    stride-2 convs to 512 x 2^3, then a linear layer to ``c_dim``.

    Args: voxels (B, 32, 32, 32) in {0, 1}. Returns: (B, c_dim).
    """

    input_type = "voxels"  # the data.input_type it encodes

    def __init__(self, c_dim: int, resolution: int):
        super().__init__()
        if resolution % 16:
            raise ShapelabError(f"model.encoder.resolution={resolution} must be a multiple of 16")
        self.resolution = resolution
        self.conv_in = nn.Conv3d(1, 32, 3, padding=1)
        self.convs = nn.ModuleList(
            nn.Conv3d(c_in, c_out, 3, padding=1, stride=2)
            for c_in, c_out in ((32, 64), (64, 128), (128, 256), (256, 512))
        )
        self.fc = nn.Linear(512 * (resolution // 16) ** 3, c_dim)

    def forward(self, voxels: torch.Tensor) -> torch.Tensor:
        if voxels.shape[1:] != (self.resolution,) * 3:
            raise ShapelabError(
                f"voxel input has shape {tuple(voxels.shape[1:])}, the encoder expects "
                f"{(self.resolution,) * 3}; set model.encoder.resolution"
            )
        net = self.conv_in(voxels.unsqueeze(1) - 0.5)
        for conv in self.convs:
            net = conv(F.relu(net))
        return self.fc(F.relu(net.flatten(1)))


class LatentEncoder(nn.Module):
    """q(z | points, occupancies, c) of OccNet's generative model (paper Sec. 3.3, Eq. 4):
    per-point features of (p, o) (+ c), pooled, mapped to the mean and log-std of a Gaussian.

    Args: points (B, T, 3), occ (B, T) in {0, 1}, c (B, c_dim) or None.
    Returns: (mean, logstd), each (B, z_dim).
    """

    def __init__(self, z_dim: int, c_dim: int, *, dim: int = 3, hidden_dim: int, pooling: str = "max",
                 pooling_alpha: float = 1.0):
        super().__init__()
        check_pooling(pooling)
        self.pooling, self.pooling_alpha = pooling, pooling_alpha
        self.fc_pos = nn.Linear(dim, hidden_dim)
        self.fc_occ = nn.Linear(1, hidden_dim)
        self.fc_c = nn.Linear(c_dim, hidden_dim) if c_dim > 0 else None
        self.fc_0 = nn.Linear(hidden_dim, hidden_dim)
        self.fc_1 = nn.Linear(2 * hidden_dim, hidden_dim)
        self.fc_2 = nn.Linear(2 * hidden_dim, hidden_dim)
        self.fc_mean = nn.Linear(hidden_dim, z_dim)
        self.fc_logstd = nn.Linear(hidden_dim, z_dim)

    def forward(self, points: torch.Tensor, occ: torch.Tensor, c: torch.Tensor | None = None):
        net = self.fc_pos(points) + self.fc_occ(occ.unsqueeze(-1) * 2.0 - 1.0)
        if self.fc_c is not None and c is not None:
            net = net + self.fc_c(c).unsqueeze(1)
        net = self.fc_0(F.relu(net))
        for fc in (self.fc_1, self.fc_2):
            pooled = pool_points(net, self.pooling, keepdim=True, alpha=self.pooling_alpha).expand_as(net)
            net = fc(F.relu(torch.cat([net, pooled], dim=2)))
        net = F.relu(pool_points(net, self.pooling, alpha=self.pooling_alpha))
        return self.fc_mean(net), self.fc_logstd(net)
