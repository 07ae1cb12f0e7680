"""DRWR: a differentiable renderer without rendering (Han et al. 2020, Sec. 3.2-3.3).

Points projected with the known camera (renderers/point_projection.py) are compared with the
silhouette directly, never rasterised:

- Unary loss (Eq. 2): L_U = (1/N) Σ_n |1 - D(p_n)|, where D is the silhouette distance image:
  1 on the foreground, decaying with the distance transform of the background outside,
  D = 1 - dist / τ (τ = ``decay_px``), sampled bilinearly at each projected point p_n. Points
  outside the image continue the decay with their distance to the image border.
- Pairwise (structure-aware repulsion, Eq. 3): only pairs of projected points that both lie
  inside the silhouette repel each other, spreading the points over the whole silhouette:
  L_P = (1/N) Σ_n Σ_{m≠n} 1[p_n ∈ S] 1[p_m ∈ S] exp(-‖p_n - p_m‖² / h²), h = ``bandwidth_px``.
- Total: L = Σ_views (L_U + w_P L_P), averaged over the batch. DRWR's code weighs the repulsion by 3
  against its own D (at 64 px: a 0.14 step at the border, then 1/90.5 per pixel) and its own kernel.
  With this D and kernel, w_P = 3 pushes most points out of the silhouettes (5 % inside every view on
  the built-in chairs: ~635 silhouette pixels for 1024 points), so conf/loss/drwr.yaml sets w_P = 0.1, chosen by
  measurement (bench/RESULTS.md, pointcloud_quality).

The paper fixes the structure (unary on a silhouette distance image, repulsion only between points
inside); the exact decay of D (linear in the distance transform) and the repulsion kernel (a Gaussian
of bandwidth h over all inside pairs, no k-NN cut) are this implementation's choices, set in conf/loss/drwr.yaml.

Distances are in pixels. The pairwise sum visits only neighbours within a few h, found with a
KD-tree, so time and memory grow with N·(neighbours), not N².
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn
from torch.nn import functional as F


def sample_bilinear(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of ``image`` at pixel coordinates, clamped to the image border.

    Args: image: (..., H, W); uv: (..., N, 2) with u = column, v = row, pixel centres at +0.5
    (renderers/cameras.py). Returns: (..., N).
    """
    height, width = image.shape[-2:]
    lead = image.shape[:-2]
    grid = (uv * uv.new_tensor([2.0 / width, 2.0 / height]) - 1.0).reshape(-1, 1, uv.shape[-2], 2)
    values = F.grid_sample(
        image.reshape(-1, 1, height, width), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return values.reshape(*lead, uv.shape[-2])


def distance_outside_image(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Distance (px) from each point to the rectangle of pixel centres (0 inside). (..., N, 2) -> (..., N).

    Continues :func:`sample_bilinear`'s border clamp so points off the image are still pulled back.
    """
    clamped = uv.clamp(min=uv.new_full((2,), 0.5), max=uv.new_tensor([width - 0.5, height - 0.5]))
    return (uv - clamped).norm(dim=-1)


def drwr_unary(uv: torch.Tensor, dist: torch.Tensor, decay_px: float) -> torch.Tensor:
    """DRWR Eq. 2: mean |1 - D(p)| with D = 1 - dist / τ sampled bilinearly.

    Args: uv: (B, V, N, 2) projected points; dist: (B, V, H, W) distance transform of the
    background (px, 0 on the foreground); decay_px: τ. Returns: (B, V).
    """
    height, width = dist.shape[-2:]
    distance = sample_bilinear(dist, uv) + distance_outside_image(uv, height, width)
    return (distance / decay_px).mean(-1)


def inside_silhouette(uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Whether each projected point falls on a foreground pixel (the pixel containing it; off the image: no).

    Args: uv: (B, V, N, 2); mask: (B, V, H, W) in {0, 1}. Returns: (B, V, N) bool.
    """
    height, width = mask.shape[-2:]
    col, row = uv.detach().floor().long().unbind(-1)
    in_image = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
    on_mask = torch.gather(mask.flatten(-2), -1, flat) > 0.5
    return in_image & on_mask


def inside_neighbour_pairs(uv: torch.Tensor, inside: torch.Tensor, radius: float) -> torch.Tensor:
    """Pairs of inside points closer than ``radius`` (px), per view, from a KD-tree (scipy cKDTree).

    Args: uv: (M, N, 2) projected points; inside: (M, N) bool. Returns: (P, 3) long rows (view, n, m), n < m.
    """
    points, flags = uv.detach().cpu().numpy(), inside.cpu().numpy()
    rows = []
    for view, (view_points, view_flags) in enumerate(zip(points, flags)):
        index = np.flatnonzero(view_flags)
        pairs = index[cKDTree(view_points[index]).query_pairs(radius, output_type="ndarray")]
        rows.append(np.column_stack([np.full(len(pairs), view), pairs]))
    return torch.from_numpy(np.concatenate(rows).astype(np.int64)).to(uv.device)


def crowded(uv: torch.Tensor, inside: torch.Tensor, radius: float, share: float = 0.05) -> bool:
    """Whether the inside points are so bunched (e.g. the untrained network's clump) that listing their close pairs
    costs more than the dense N x N kernel: pairs sharing one radius-sized grid cell (a lower bound of the close
    pairs) exceed ``share`` of all pairs. Args: uv (M, N, 2); inside (M, N) bool."""
    cells = torch.floor(uv.detach() / radius).long()
    view = torch.arange(uv.shape[0], device=uv.device)[:, None].expand_as(inside)
    keys = torch.stack([view[inside], cells[..., 0][inside], cells[..., 1][inside]], -1)
    if len(keys) == 0:
        return False
    counts = torch.unique(keys, dim=0, return_counts=True)[1].double()
    return bool((counts * (counts - 1) / 2).sum() > share * uv.shape[0] * uv.shape[1] ** 2 / 2)


def dense_inside_kernel(uv: torch.Tensor, inside: torch.Tensor, bandwidth_px: float, radius: float) -> torch.Tensor:
    """Σ over ordered pairs n ≠ m of inside points closer than ``radius`` of exp(-d²/h²), per view, from the full
    N x N distance matrix. Args: uv (M, N, 2); inside (M, N) bool. Returns (M,)."""
    sq_norm = (uv**2).sum(-1)
    sq_dist = (sq_norm[:, :, None] + sq_norm[:, None, :] - 2.0 * uv @ uv.mT).clamp_min(0.0)
    both = inside[:, :, None] & inside[:, None, :] & ~torch.eye(uv.shape[1], dtype=torch.bool, device=uv.device)
    use = both & (sq_dist <= radius**2)
    return torch.where(use, torch.exp(-sq_dist / bandwidth_px**2), 0.0).sum(dim=(1, 2))


def drwr_repulsion(uv: torch.Tensor, inside: torch.Tensor, bandwidth_px: float, cutoff: float = 3.0) -> torch.Tensor:
    """DRWR Eq. 3: structure-aware repulsion between projected points that are both inside.

    Only pairs closer than ``cutoff · h`` are summed (neighbours from a KD-tree, O(N log N) per view; when the
    points are bunched so that most pairs are close, the dense N x N kernel instead, see :func:`crowded`);
    a farther pair would add less than exp(-cutoff²) each (1.2e-4 at the default 3).

    Args: uv: (B, V, N, 2) projected points; inside: (B, V, N) bool; bandwidth_px: h. Returns: (B, V).
    """
    lead, num_points = uv.shape[:-2], uv.shape[-2]
    flat_uv, flat_inside = uv.reshape(-1, num_points, 2), inside.reshape(-1, num_points)
    radius = cutoff * bandwidth_px
    if crowded(flat_uv, flat_inside, radius):
        return (dense_inside_kernel(flat_uv, flat_inside, bandwidth_px, radius) / num_points).reshape(lead)
    pairs = inside_neighbour_pairs(flat_uv, flat_inside, radius)
    view, first, second = pairs.unbind(-1)
    sq_dist = ((flat_uv[view, first] - flat_uv[view, second]) ** 2).sum(-1)
    kernel = 2.0 * torch.exp(-sq_dist / bandwidth_px**2)  # each unordered pair counts as (n, m) and (m, n)
    total = uv.new_zeros(flat_uv.shape[0]).index_add(0, view, kernel)
    return (total / num_points).reshape(lead)


class DrwrLoss(nn.Module):
    """Loss config ``loss=drwr`` (renderer ``point_projection``): DRWR unary + weighted repulsion.

    ``forward(points, rendered, batch)`` with ``rendered["uv"]`` (B,V,N,2) and batch ``masks``,
    ``dist`` (B,V,H,W) returns ``{"loss", "unary", "repulsion"}`` (summed over views, batch mean).
    """

    renderer_outputs = ("uv",)
    batch_format = "multiview"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(self, repulsion_weight: float, decay_px: float, bandwidth_px: float):
        super().__init__()
        self.repulsion_weight = repulsion_weight
        self.decay_px = decay_px
        self.bandwidth_px = bandwidth_px

    def forward(self, points: torch.Tensor, rendered: dict, batch: dict) -> dict[str, torch.Tensor]:
        uv = rendered["uv"]
        unary = drwr_unary(uv, batch["dist"], self.decay_px).sum(dim=1).mean()
        inside = inside_silhouette(uv, batch["masks"])
        repulsion = drwr_repulsion(uv, inside, self.bandwidth_px).sum(dim=1).mean()
        return {"loss": unary + self.repulsion_weight * repulsion, "unary": unary, "repulsion": repulsion}
