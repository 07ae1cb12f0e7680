"""CAPNet projection loss: per-view BCE on the soft silhouette + λ · affinity loss.

CAPNet (Navaneet et al. 2019, Sec. 3.2). With M the ground-truth mask, M̂ the continuous
projection (renderers/gaussian_projection.py) and d the squared pixel distance
d((i,j),(k,l)) = (i-k)² + (j-l)²:

- Eq. 3, BCE:       L_bce = (1/HW) Σ_{i,j} -M_{ij} log M̂_{ij} - (1 - M_{ij}) log(1 - M̂_{ij})
- Eq. 4, affinity:  L_aff = Σ_{i,j} min_{(k,l)∈M+} d · M̂_{ij} M_{kl}
                           + Σ_{i,j} min_{(k,l)∈M̂+} d · M_{ij} M̂_{kl}
  with M+ = {M_{kl} = 1}, M̂+ = {M̂_{kl} > τ} (τ = 0 in the paper).
- Eq. 5, total:     L = Σ_views (L_bce + λ L_aff), λ = 1e-4.

The first term (predicted pixels far from the ground truth) is the paper's, through the ground-truth
distance transform of the background, precomputed by the datamodule (batch key ``dist``).

The second term (ground-truth pixels far from the prediction) cannot be used as written: Gaussian tails
make M̂ > 0 on almost every pixel, so with τ = 0 every uncovered pixel is its own nearest "predicted"
pixel (distance 0, the term is inert), and with a hard τ > 0 its only gradient lowers M̂ at the border of
the covered region, pushing points away from the uncovered part. Here the nearest predicted pixel is a
soft one, a generalised squared distance transform

    D_ij = min_{k,l} d((i,j),(k,l)) + β · max(0, log τ - log M̂_kl),       L_aff,2 = Σ_ij M_ij D_ij

Pixels with M̂ ≥ τ cost nothing to reach, fainter ones cost β · log(τ/M̂): for the tail of one
splatted point at distance r, β·r²/(2σ²). The minimum then lies on a faint pixel between the uncovered
pixel and the covered region, and its gradient raises M̂ there: points move into the uncovered part.
For a gap of g pixels D ≈ β/(1+β) · g² (0.9 g² at β = 9); as β → ∞ this is the hard support M̂ ≥ τ.
M̂ is floored at 1e-30 (float32 tails underflow), so D saturates at β·log(τ/1e-30) (≈ 26 px at β = 9).

The released code (get_losses.py) differs: it indexes both masks at the same pixel (no distances),
uses unsquared distance + 1, and averages both terms over pixels and views; ``reduction="mean"``
reproduces its reductions (BCE and affinity pixel means, views averaged), ``reduction="sum"`` the
paper's Eq. 4-5 (affinity summed over pixels, views summed).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from shapelab.errors import ShapelabError

SUPPORT_FLOOR = 1e-30


def capnet_bce(pred_mask: torch.Tensor, gt_mask: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """CAPNet Eq. 3: pixel-mean binary cross-entropy of a soft mask.

    Args: pred_mask, gt_mask: (..., H, W), values in [0, 1]. Returns: (...,) per view.
    """
    pred = pred_mask.clamp(eps, 1.0 - eps)
    bce = -gt_mask * torch.log(pred) - (1.0 - gt_mask) * torch.log(1.0 - pred)
    return bce.mean(dim=(-2, -1))


def squared_distance_transform(cost: torch.Tensor) -> torch.Tensor:
    """Generalised squared distance transform D_ij = min_{k,l} (i-k)² + (j-l)² + cost_kl, differentiable in cost.

    Separable and exact: the argmin (k, l) of every pixel is found without gradients by a minimum along rows,
    then along columns (O(HW(H+W)) per image); the gradient flows to cost at that argmin.

    Args: cost: (..., H, W). Returns: (..., H, W) in px² (plus cost units).
    """
    height, width = cost.shape[-2:]
    flat_cost = cost.reshape(-1, height, width)
    cols = torch.arange(width, device=cost.device)
    rows = torch.arange(height, device=cost.device)
    col_sq = ((cols[:, None] - cols[None, :]) ** 2).to(cost.dtype)  # (W j, W l)
    row_sq = ((rows[:, None] - rows[None, :]) ** 2).to(cost.dtype)  # (H i, H k)
    with torch.no_grad():
        along_rows, best_col = (flat_cost[:, :, None, :] + col_sq).min(dim=-1)  # (M, H k, W j): min over l
        best_row = (along_rows.transpose(1, 2)[:, :, None, :] + row_sq).min(dim=-1).indices.transpose(1, 2)  # (M, H i, W j)
        best_col = torch.gather(best_col, 1, best_row)  # l of the argmin (k, l) of each (i, j)
    reached = torch.gather(flat_cost.flatten(1), 1, (best_row * width + best_col).flatten(1)).view_as(flat_cost)
    sq_dist = (rows[:, None] - best_row) ** 2 + (cols - best_col) ** 2
    return (sq_dist.to(cost.dtype) + reached).reshape(cost.shape)


def soft_support_distance(pred_mask: torch.Tensor, threshold: float, support_weight: float) -> torch.Tensor:
    """D_ij = min_kl d² + β·max(0, log τ - log M̂_kl): squared distance (px²) to the soft predicted support.

    Args: pred_mask: (..., H, W) M̂ in [0, 1]; threshold: τ (pixels at or above it are support);
    support_weight: β. Returns: (..., H, W).
    """
    log_mask = torch.log(pred_mask.clamp_min(SUPPORT_FLOOR))
    cost = support_weight * (math.log(threshold) - log_mask).clamp_min(0.0)
    return squared_distance_transform(cost)


def capnet_affinity(
    pred_mask: torch.Tensor, gt_mask: torch.Tensor, gt_dist: torch.Tensor, pred_threshold: float = 0.5,
    support_weight: float = 9.0,
) -> torch.Tensor:
    """CAPNet Eq. 4: affinity loss in both directions (second term on the soft support, module docstring).

    Args:
        pred_mask: (..., H, W) soft mask M̂ in [0, 1].
        gt_mask: (..., H, W) binary mask M.
        gt_dist: (..., H, W) distance (px) from each pixel to the nearest pixel of M (0 inside).
        pred_threshold: τ, M̂ at which a pixel is fully predicted.
        support_weight: β, the cost of reaching fainter pixels.
    Returns:
        (...,) per view, in px² (summed over pixels, not averaged).
    """
    pred_to_gt = (pred_mask * gt_dist**2).sum(dim=(-2, -1))
    gt_to_pred = (gt_mask * soft_support_distance(pred_mask, pred_threshold, support_weight)).sum(dim=(-2, -1))
    return pred_to_gt + gt_to_pred


class CapnetProjectionLoss(nn.Module):
    """Loss config ``loss=capnet_projection`` (renderer ``gaussian_projection``): CAPNet Eq. 5.

    ``forward(points, rendered, batch)`` with ``rendered["mask"]`` (B,V,H,W) and batch ``masks``,
    ``dist`` (B,V,H,W) returns ``{"loss", "bce", "affinity"}`` (batch means).

    ``reduction``: ``"mean"`` (released code: BCE and affinity pixel means, views averaged) or ``"sum"``
    (paper Eq. 4-5: affinity summed over pixels, views summed).
    """

    renderer_outputs = ("mask",)
    batch_format = "multiview"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(self, affinity_weight: float, pred_threshold: float, support_weight: float, reduction: str):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ShapelabError(f"loss.reduction={reduction!r}: use 'mean' (released code) or 'sum' (paper Eq. 4-5)")
        self.affinity_weight = affinity_weight
        self.pred_threshold = pred_threshold
        self.support_weight = support_weight
        self.reduction = reduction

    def forward(self, points: torch.Tensor, rendered: dict, batch: dict) -> dict[str, torch.Tensor]:
        mask = rendered["mask"]
        bce = capnet_bce(mask, batch["masks"])
        affinity = capnet_affinity(mask, batch["masks"], batch["dist"], self.pred_threshold, self.support_weight)
        if self.reduction == "mean":
            bce, affinity = bce.mean(dim=1), affinity.mean(dim=1) / (mask.shape[-2] * mask.shape[-1])
        else:
            bce, affinity = bce.sum(dim=1), affinity.sum(dim=1)
        bce, affinity = bce.mean(), affinity.mean()
        return {"loss": bce + self.affinity_weight * affinity, "bce": bce, "affinity": affinity}
