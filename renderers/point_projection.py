"""Pinhole projection of point clouds into V views: DRWR's "renderer without rendering".

DRWR (Han et al. 2020, Sec. 3) never rasterises: each 3D point is projected with the known
camera and its 2D position is compared with the silhouette directly (losses/drwr.py).

Camera convention (DESIGN.md): OpenCV, x right, y down, z forward; ``Rt`` maps world to camera,
``K`` maps camera to pixels; pixel (row r, column c) covers [c, c+1) x [r, r+1), centre (c+0.5, r+0.5)
(renderers/cameras.py).
"""
from __future__ import annotations

import torch
from shapelab.renderers.cameras import to_camera
from torch import nn


def project_points(points: torch.Tensor, K: torch.Tensor, Rt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points into every view: x_cam = R p + t, (u, v) = (K x_cam)_{xy} / z.

    Args:
        points: (B, N, 3) world points.
        K: (B, V, 3, 3) pixel intrinsics.
        Rt: (B, V, 3, 4) world-to-camera [R | t].
    Returns:
        uv: (B, V, N, 2) pixel coordinates (u = column, v = row), depth: (B, V, N) camera z
        (same units as ``points``).
    """
    cam = to_camera(points[:, None], Rt)
    pix = cam @ K.mT
    return pix[..., :2] / pix[..., 2:3], cam[..., 2]


class PointProjection(nn.Module):
    """Renderer config ``renderer=point_projection``: projected 2D positions only, no image.

    ``forward(points (B,N,3), K (B,V,3,3), Rt (B,V,3,4), image_size (H, W))`` returns
    ``{"uv": (B,V,N,2), "depth": (B,V,N)}``; ``image_size`` is unused (no raster).
    """

    outputs = ("uv", "depth")

    def forward(self, points: torch.Tensor, K: torch.Tensor, Rt: torch.Tensor, image_size: tuple[int, int]) -> dict:
        uv, depth = project_points(points, K, Rt)
        return {"uv": uv, "depth": depth}
