"""CAPNet projection loss: per-view BCE on the soft silhouette + λ · affinity loss.

CAPNet (Navaneet et al. 2019, Sec. 3.2). With M the ground-truth mask, M̂ the continuous
projection (renderers/gaussian_projection.py) and d the squared pixel distance
d((i,j),(k,l)) = (i-k)² + (j-l)²:

- Eq. 3, BCE:       L_bce = (1/HW) Σ_{i,j} -M_{ij} log M̂_{ij} - (1 - M_{ij}) log(1 - M̂_{ij})
- Eq. 4, affinity:  L_aff = Σ_{i,j} min_{(k,l)∈M+} d · M̂_{ij} M_{kl}
                           + Σ_{i,j} min_{(k,l)∈M̂+} d · M_{ij} M̂_{kl}
  with M+ = {M_{kl} = 1}, M̂+ = {M̂_{kl} > τ} (τ = 0 in the paper).
- Eq. 5, total:     L = Σ_views (L_bce + λ L_aff), λ = 1e-4; averaged over the batch here.

The nearest-pixel searches are distance transforms (the paper's equation; the released code
instead indexes both masks at the same pixel). The first term uses the ground-truth distance
transform of the background, precomputed by the datamodule (batch key ``dist``); the second a
scipy distance transform of M̂+ with the index of the nearest pixel, through which M̂_{kl}
stays differentiable.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import nn


def capnet_bce(pred_mask: torch.Tensor, gt_mask: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """CAPNet Eq. 3: pixel-mean binary cross-entropy of a soft mask.

    Args: pred_mask, gt_mask: (..., H, W), values in [0, 1]. Returns: (...,) per view.
    """
    pred = pred_mask.clamp(eps, 1.0 - eps)
    bce = -gt_mask * torch.log(pred) - (1.0 - gt_mask) * torch.log(1.0 - pred)
    return bce.mean(dim=(-2, -1))


def nearest_foreground(foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Euclidean distance transform to the nearest foreground pixel, one image at a time.

    Args: foreground: (M, H, W) bool. Returns: distance (M, H, W) in px and the (row, col) index
    arrays (M, H, W) of the nearest foreground pixel; images without foreground get distance 0
    and index (0, 0) (their term has zero weight).
    """
    dist = np.zeros(foreground.shape, dtype=np.float64)
    rows = np.zeros(foreground.shape, dtype=np.int64)
    cols = np.zeros(foreground.shape, dtype=np.int64)
    for m, fg in enumerate(foreground):
        if fg.any():
            dist[m], (rows[m], cols[m]) = ndimage.distance_transform_edt(~fg, return_indices=True)
    return dist, rows, cols


def capnet_affinity(
    pred_mask: torch.Tensor, gt_mask: torch.Tensor, gt_dist: torch.Tensor, pred_threshold: float = 0.0
) -> torch.Tensor:
    """CAPNet Eq. 4: affinity loss in both directions, weighted by pixel confidence.

    Args:
        pred_mask: (..., H, W) soft mask M̂ in [0, 1].
        gt_mask: (..., H, W) binary mask M.
        gt_dist: (..., H, W) distance (px) from each pixel to the nearest pixel of M (0 inside).
        pred_threshold: τ defining M̂+ = {M̂ > τ}.
    Returns:
        (...,) per view, in px² (summed over pixels, not averaged).
    """
    pred_to_gt = (pred_mask * gt_dist**2).sum(dim=(-2, -1))

    height, width = pred_mask.shape[-2:]
    flat_pred = pred_mask.reshape(-1, height * width)
    support = (flat_pred.detach() > pred_threshold).reshape(-1, height, width).cpu().numpy()
    dist, rows, cols = nearest_foreground(support)
    nearest = torch.from_numpy(rows * width + cols).to(pred_mask.device).reshape(-1, height * width)
    weight = torch.gather(flat_pred, 1, nearest).reshape(pred_mask.shape)
    dist_sq = torch.from_numpy(dist**2).to(pred_mask).reshape(pred_mask.shape)
    gt_to_pred = (gt_mask * dist_sq * weight).sum(dim=(-2, -1))
    return pred_to_gt + gt_to_pred


class CapnetProjectionLoss(nn.Module):
    """Loss config ``loss=capnet_projection`` (renderer ``gaussian_projection``): CAPNet Eq. 5.

    ``forward(points, rendered, batch)`` with ``rendered["mask"]`` (B,V,H,W) and batch ``masks``,
    ``dist`` (B,V,H,W) returns ``{"loss", "bce", "affinity"}`` (each summed over views, batch mean).
    """

    renderer_outputs = ("mask",)

    def __init__(self, affinity_weight: float = 1e-4, pred_threshold: float = 0.0):
        super().__init__()
        self.affinity_weight = affinity_weight
        self.pred_threshold = pred_threshold

    def forward(self, points: torch.Tensor, rendered: dict, batch: dict) -> dict[str, torch.Tensor]:
        bce = capnet_bce(rendered["mask"], batch["masks"]).sum(dim=1).mean()
        affinity = capnet_affinity(rendered["mask"], batch["masks"], batch["dist"], self.pred_threshold)
        affinity = affinity.sum(dim=1).mean()
        return {"loss": bce + self.affinity_weight * affinity, "bce": bce, "affinity": affinity}
