"""CAPNet's continuous approximate projection of a point cloud to a soft silhouette.

CAPNet (Navaneet et al. 2019, Sec. 3.1, Eqs. 1-2): every projected point (x̂_k, ŷ_k) is splatted
with the unnormalised Gaussian kernel φ(k) = exp(-k² / 2σ²) and the mask is

    M̂_{i,j} = tanh( Σ_k φ(x̂_k - i) φ(ŷ_k - j) )

on the H×W pixel grid (σ² = 0.5 px² in the paper). There is no occlusion: every point counts.

The kernel is separable, so Σ_k φ(ŷ_k - row) φ(x̂_k - col) is the matrix product
Φ_rowᵀ Φ_col of two (N, H) and (N, W) kernel tables: exact (no truncation of the Gaussian
tails) with memory O(N·(H+W)) per view instead of the dense O(N·H·W).
"""
from __future__ import annotations

import torch
from shapelab.renderers.point_projection import project_points
from torch import nn


def gaussian_splat(uv: torch.Tensor, height: int, width: int, sigma_sq: float = 0.5) -> torch.Tensor:
    """Soft silhouette M̂ = tanh(Σ_k φ(u_k - col) φ(v_k - row)) (CAPNet Eq. 2).

    Args:
        uv: (..., N, 2) pixel coordinates (u = column, v = row; pixel centres at +0.5, renderers/cameras.py).
        height, width: grid size in pixels.
        sigma_sq: kernel variance σ² in px².
    Returns:
        (..., H, W) mask values in [0, 1).
    """
    cols = torch.arange(width, dtype=uv.dtype, device=uv.device) + 0.5
    rows = torch.arange(height, dtype=uv.dtype, device=uv.device) + 0.5
    phi_col = torch.exp(-((uv[..., 0:1] - cols) ** 2) / (2.0 * sigma_sq))  # (..., N, W)
    phi_row = torch.exp(-((uv[..., 1:2] - rows) ** 2) / (2.0 * sigma_sq))  # (..., N, H)
    return torch.tanh(phi_row.transpose(-1, -2) @ phi_col)


class GaussianProjection(nn.Module):
    """Renderer config ``renderer=gaussian_projection`` (CAPNet).

    ``forward(points (B,N,3), K (B,V,3,3), Rt (B,V,3,4), image_size (H, W))`` returns
    ``{"uv": (B,V,N,2), "depth": (B,V,N), "mask": (B,V,H,W)}``.
    """

    outputs = ("uv", "depth", "mask")

    def __init__(self, sigma_sq: float):
        super().__init__()
        self.sigma_sq = sigma_sq

    def forward(self, points: torch.Tensor, K: torch.Tensor, Rt: torch.Tensor, image_size: tuple[int, int]) -> dict:
        uv, depth = project_points(points, K, Rt)
        mask = gaussian_splat(uv, image_size[0], image_size[1], self.sigma_sq)
        return {"uv": uv, "depth": depth, "mask": mask}
