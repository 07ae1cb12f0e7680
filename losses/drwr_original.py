"""DRWR's losses as its released code computes them (Han et al. 2020; ``models/model_base.py``
``add_coord_loss`` / ``add_potential_loss``, ``scripts/tf_records_generator.py`` ``sdf``): ``loss=drwr_original``.

The paper's structure is the same as ``loss=drwr`` (losses/drwr.py): a unary term pulling projected points into
the silhouette through a distance image D, and a repulsion between projected points weighted by the mask. The
released code fixes what the paper leaves open, and this module follows it:

- D: 1 on the silhouette, (220 - d·255/(64√2)) / 255 outside (a step to 0.86 at the border, then 1/90.5 per pixel
  of a 128-px render), computed on the 128-px render and resized to the 32 x 32 grid (TensorFlow 1 bilinear
  resizing by an integer factor takes every k-th pixel).
- unary: mean |1 - D(p)|, D sampled bilinearly at the projected point, coordinates clamped to the grid.
- repulsion ("potential"): mean_i [ w_i mean_j exp(-d_ij² / 5 + b_i) w_j ] over all pairs (i itself included),
  with w the mask sampled bilinearly (soft: between 0 and 1 near the border) and the ring bias
  b_i = 3.5 + the mean over r = 0..4 of the mask sampled at the four corners of a ring of radius r around p_i;
  weight 3 against the unary's 1.

Distances are in pixels of the 32-grid (DRWR's vox_size), pixel i at coordinate i. Its mask images are flipped
up-down before sampling to match its projection's y axis; here masks and projections share one convention.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from shapelab.errors import ShapelabError

DRWR_BORDER_LEVEL = 220.0 / 255.0
"""The released distance image just outside the silhouette (``tf_records_generator.py`` ``sdf``): 220 of 255."""


def subsample_to_grid(image: torch.Tensor, grid: int) -> torch.Tensor:
    """TensorFlow 1's ``resize_images`` (bilinear, no half-pixel centres) to ``grid`` when the size is a multiple of it:
    output pixel i samples input pixel i·k exactly, i.e. every k-th pixel from 0. (..., H, W) -> (..., grid, grid)."""
    height, width = image.shape[-2:]
    if height % grid or width % grid:
        raise ShapelabError(f"data.mask_size={height}: loss=drwr_original needs a multiple of loss.grid={grid}")
    return image[..., :: height // grid, :: width // grid]


def drwr_distance_image(masks: torch.Tensor, dist: torch.Tensor, render_size: int = 128) -> torch.Tensor:
    """DRWR's silhouette distance image: 1 on the silhouette, (220 - d·255/(64√2)) / 255 outside, d the distance (px)
    to the silhouette on a ``render_size`` render (DRWR: 128; ``dist`` is rescaled from the masks' size).

    Args: masks, dist: (..., H, W) binary masks and background distance (px at H). Returns: (..., H, W).
    """
    d = dist * (render_size / masks.shape[-1])
    outside = DRWR_BORDER_LEVEL - d / (64.0 * math.sqrt(2.0))
    return torch.where(masks > 0.5, torch.ones_like(outside), outside)


def ring_sample(image: torch.Tensor, xy: torch.Tensor, rings: int) -> torch.Tensor:
    """DRWR's ``bilinear_sampler(coords, imgs, n)``: for r = 0 .. rings-1, a bilinear blend of the four pixels at
    (floor(x - r), floor(x + r) + 1) x (floor(y - r), floor(y + r) + 1) with weights (x1 - (x + r), (x - r) - x0) per
    axis (r = 0: ordinary bilinear; r > 0: the corners of a ring around the point). Coordinates are clamped to
    the image (zero gradient outside), pixel i at coordinate i.

    Args: image (M, H, W); xy (M, N, 2) grid coordinates (x = column); rings: n. Returns (M, N, n).
    """
    height, width = image.shape[-2:]
    r = torch.arange(rings, dtype=xy.dtype, device=xy.device)
    x, y = xy[..., 0:1], xy[..., 1:2]  # (M, N, 1)

    def corners(coord, limit):
        low, high = coord - r, coord + r
        first = low.floor().clamp(0, limit - 1)
        second = (high.floor() + 1).clamp(0, limit - 1)
        return first, second, second - high.clamp(0, limit - 1), low.clamp(0, limit - 1) - first

    x0, x1, wx0, wx1 = corners(x, width)
    y0, y1, wy0, wy1 = corners(y, height)
    flat = image.flatten(-2)

    def at(row, col):
        return torch.gather(flat, 1, (row * width + col).long().flatten(1)).view_as(row)

    return wx0 * wy0 * at(y0, x0) + wx0 * wy1 * at(y1, x0) + wx1 * wy0 * at(y0, x1) + wx1 * wy1 * at(y1, x1)


def drwr_original_repulsion(xy: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor,
                            bandwidth_sq: float) -> torch.Tensor:
    """DRWR's ``add_potential_loss``: mean_i [ w_i · mean_j exp(-‖p_i - p_j‖² / h + b_i) · w_j ] (j over all points,
    i itself included), with soft mask weights w and the ring bias b.

    Args: xy (M, N, 2) grid coordinates; weights, bias (M, N); bandwidth_sq: h (px² of the grid, DRWR: 5). Returns (M,).
    """
    sq = (xy[..., :, None, :] - xy[..., None, :, :]).pow(2).sum(-1)
    kernel = torch.exp(-sq / bandwidth_sq + bias[..., :, None]) * weights[..., None, :]
    return (weights * kernel.mean(-1)).mean(-1)


class DrwrOriginalLoss(nn.Module):
    """Loss config ``loss=drwr_original`` (renderer ``point_projection``): DRWR's released losses.

    On a ``grid`` x ``grid`` (32) subsampling of the masks: unary ``mean |1 - D(p)|`` with :func:`drwr_distance_image`
    sampled bilinearly (``coord_weight`` 1), plus ``repulsion_weight`` (3) x :func:`drwr_original_repulsion` with
    w = bilinear mask value, b = ``ring_bias`` (3.5) + the mean of ``rings`` (5) :func:`ring_sample` values of the
    mask, h = ``bandwidth_sq`` (5). Views and batch averaged. Dense O(N²) per view (DRWR: 2000 points, 5 views).

    ``forward(points, rendered, batch)`` with ``rendered["uv"]`` (B,V,N,2) and batch ``masks``, ``dist`` (B,V,H,W)
    returns ``{"loss", "unary", "repulsion"}``.
    """

    renderer_outputs = ("uv",)

    def __init__(self, repulsion_weight: float, unary_weight: float, grid: int, render_size: int, rings: int,
                 ring_bias: float, bandwidth_sq: float):
        super().__init__()
        self.repulsion_weight, self.unary_weight = repulsion_weight, unary_weight
        self.grid, self.render_size, self.rings = grid, render_size, rings
        self.ring_bias, self.bandwidth_sq = ring_bias, bandwidth_sq

    def forward(self, points: torch.Tensor, rendered: dict, batch: dict) -> dict[str, torch.Tensor]:
        masks, uv = batch["masks"], rendered["uv"]
        step = masks.shape[-1] / self.grid
        distance_image = subsample_to_grid(drwr_distance_image(masks, batch["dist"], self.render_size), self.grid)
        soft_masks = subsample_to_grid(masks, self.grid).flatten(0, 1)
        xy = ((uv - 0.5) / step).flatten(0, 1)  # grid pixel i = mask pixel i·step, centre at i
        unary = (1.0 - ring_sample(distance_image.flatten(0, 1), xy, 1)[..., 0]).abs().mean()
        weights = ring_sample(soft_masks, xy, 1)[..., 0]
        bias = self.ring_bias + ring_sample(soft_masks, xy, self.rings).mean(-1)
        repulsion = drwr_original_repulsion(xy, weights, bias, self.bandwidth_sq).mean()
        loss = self.unary_weight * unary + self.repulsion_weight * repulsion
        return {"loss": loss, "unary": unary, "repulsion": repulsion}
