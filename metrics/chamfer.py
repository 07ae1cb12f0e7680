"""Chamfer distances, in the named variants of the anchor papers.

Torch (differentiable, for losses and validation): :func:`chamfer_distance`.
NumPy (evaluation, KD-tree nearest neighbours, any point count):

=====================  ===========================================================  ===============
name                   definition (d = Euclidean nearest-neighbour distance)         frame, reported
=====================  ===========================================================  ===============
``chamfer_l1_occnet``  0.5 * (mean_pred d(pred->gt) + mean_gt d(gt->pred))           occnet, x10
``chamfer_l2_occnet``  0.5 * (mean_pred d^2(pred->gt) + mean_gt d^2(gt->pred))       occnet
``chamfer_deepsdf``    mean_gt d^2(gt->pred) + mean_pred d^2(pred->gt)               original, x1e3
``chamfer_capnet``     mean d^2 both ways, summed, after :func:`normalise_capnet`     per-cloud cube
``chamfer_drwr``       mean_pred d(pred->gt) + mean_gt d(gt->pred), unsquared        occnet, x100
=====================  ===========================================================  ===============

Empty predictions get the OccNet penalty (Mescheder et al. 2019, eval code): each one-way term is
sqrt(3) unsquared / 3 squared (the unit cube's diagonal), so chamfer_l1_occnet = sqrt(3),
chamfer_l2_occnet = 3 and chamfer_deepsdf = chamfer_capnet = 6.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from shapelab.metrics.nearest import PointMatches, match_points

EMPTY_DISTANCE = math.sqrt(3.0)
"""OccNet's one-way penalty for an empty prediction: the diagonal of the unit cube."""

_CHUNK_ELEMENTS = 2**22


def _nearest_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from each point of ``a`` (B,N,3) to its nearest point of ``b`` (B,M,3): (B,N).

    Exact differences (no |a|^2 - 2ab + |b|^2 cancellation), in chunks of ``a`` so memory stays
    near ``_CHUNK_ELEMENTS`` elements; gradients flow to both inputs through the min.
    """
    batch, _, _ = a.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * b.shape[1] * 3))
    parts = []
    for start in range(0, a.shape[1], chunk):
        diff = a[:, start:start + chunk, None, :] - b[:, None, :, :]
        parts.append(diff.pow(2).sum(-1).min(dim=2).values)
    return torch.cat(parts, dim=1)


def _safe_sqrt(values: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) derivative at 0, so coincident points give finite gradients."""
    positive = values > 0
    return torch.where(positive, torch.where(positive, values, torch.ones_like(values)).sqrt(), 0.0)


def chamfer_distance(x: torch.Tensor, y: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """Symmetric Chamfer distance per batch element, differentiable.

    ``CD(X, Y) = 1/|X| sum_x min_y ||x - y||^p + 1/|Y| sum_y min_x ||x - y||^p`` with p = 2 when
    ``squared`` (the DeepSDF / CAPNet form, DeepSDF supplementary eq. for "Chamfer distance") and p = 1
    otherwise (the sum, not the OccNet half-sum: halve it for ``chamfer_l1_occnet``).

    Args:
        x: (B, N, 3) points; y: (B, M, 3) points, in the same frame (any units).
    Returns:
        (B,) distances in the input units (squared units when ``squared``).

    Dense chunked computation: O(N·M) time, meant for the few thousand points of a training loss or
    validation metric; use :func:`match_points` (KD-tree) for evaluation-sized clouds.
    """
    if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != 3 or y.shape[-1] != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"chamfer_distance expects (B,N,3) and (B,M,3), got {tuple(x.shape)} and {tuple(y.shape)}")
    x_to_y = _nearest_squared(x, y)
    y_to_x = _nearest_squared(y, x)
    if not squared:
        x_to_y, y_to_x = _safe_sqrt(x_to_y), _safe_sqrt(y_to_x)
    return x_to_y.mean(dim=1) + y_to_x.mean(dim=1)


def chamfer_occnet(pred: np.ndarray, gt: np.ndarray, matches: PointMatches | None = None) -> dict[str, float]:
    """OccNet Chamfer (Mescheder et al. 2019, Sec. 4 "Chamfer-L1"; eval code ``distance_p2p``).

    accuracy = mean over pred of d(pred -> gt), completeness = mean over gt of d(gt -> pred), unsquared;
    ``chamfer_l1_occnet = 0.5 * (accuracy + completeness)``; ``chamfer_l2_occnet`` the same with d^2.

    Args:
        pred: (N,3) points sampled on the prediction (OccNet: 100k on the mesh);
        gt: (M,3) ground-truth surface points (pointcloud.npz, 100k), both in the occnet frame (unit cube).
    Returns:
        dict with ``accuracy``, ``completeness``, ``chamfer_l1_occnet``, ``chamfer_l2_occnet`` in occnet
        units (the paper reports chamfer_l1 x10). Empty ``pred``: the OccNet penalty (sqrt(3), 3).
    """
    if len(pred) == 0:
        return {"accuracy": EMPTY_DISTANCE, "completeness": EMPTY_DISTANCE,
                "chamfer_l1_occnet": EMPTY_DISTANCE, "chamfer_l2_occnet": EMPTY_DISTANCE**2}
    matches = matches or match_points(pred, gt)
    accuracy, completeness = matches.pred_to_gt.mean(), matches.gt_to_pred.mean()
    return {
        "accuracy": float(accuracy),
        "completeness": float(completeness),
        "chamfer_l1_occnet": float(0.5 * (accuracy + completeness)),
        "chamfer_l2_occnet": float(0.5 * ((matches.pred_to_gt**2).mean() + (matches.gt_to_pred**2).mean())),
    }


def chamfer_deepsdf(pred: np.ndarray, gt: np.ndarray, matches: PointMatches | None = None) -> float:
    """DeepSDF Chamfer (Park et al. 2019, Sec. 6 / ``compute_trimesh_chamfer``).

    ``mean_gt d^2(gt -> pred) + mean_pred d^2(pred -> gt)`` (a sum of two means, no 0.5).

    Args:
        pred: (N,3) points sampled on the reconstruction (DeepSDF: 30k), gt: (M,3) SurfaceSamples
        (30k), both in the original mesh units.
    Returns:
        the distance in squared original units (the paper reports x1e3). Empty ``pred``: 6.
    """
    if len(pred) == 0:
        return 2 * EMPTY_DISTANCE**2
    matches = matches or match_points(pred, gt)
    return float((matches.gt_to_pred**2).mean() + (matches.pred_to_gt**2).mean())


def normalise_capnet(points: np.ndarray) -> np.ndarray:
    """CAPNet's evaluation normalisation (Navaneet et al. 2019, eval code ``scale``): (N,3) -> (N,3).

    Each cloud on its own is centred on its bounding-box centre and divided by its longest box edge,
    so its bounding cube becomes [-0.5, 0.5]^3 (removes the prediction's scale and offset).
    """
    low, high = points.min(axis=0), points.max(axis=0)
    longest = float((high - low).max())
    return (points - 0.5 * (low + high)) / (longest if longest > 0 else 1.0)


def chamfer_capnet(pred: np.ndarray, gt: np.ndarray) -> float:
    """CAPNet Chamfer (Navaneet et al. 2019, Sec. 4.2; eval code ``get_metrics``).

    ``mean d^2(gt -> pred) + mean d^2(pred -> gt)`` between the clouds after :func:`normalise_capnet`
    (each independently in its own [-0.5,0.5] bounding cube; the paper uses 1024 vs 1024 points).
    Means, as the released code (equal to the paper's sums divided by 1024).

    Args: pred (N,3), gt (M,3) in any frame. Returns: the distance in squared cube units. Empty: 6.
    """
    if len(pred) == 0:
        return 2 * EMPTY_DISTANCE**2
    return chamfer_deepsdf(normalise_capnet(pred), normalise_capnet(gt))


def chamfer_drwr(pred: np.ndarray, gt: np.ndarray) -> float:
    """DRWR's Chamfer distance (Han et al. 2020, Sec. 4; eval code ``eval_chamfer_distance.py``, from DPC).

    ``mean d(pred -> gt) + mean d(gt -> pred)``, unsquared, against the dense ground truth, with no per-cloud
    normalisation (both clouds in the same frame). DRWR reports 100x the mean over shapes of the best input
    view's value (evaluation column ``chamfer_drwr_best``; ``chamfer_drwr`` averages the views as DPC).

    Args: pred (N,3), gt (M,3) in one frame. Returns: the distance in that frame's units. Empty: 2·sqrt(3).
    """
    if len(pred) == 0:
        return 2 * EMPTY_DISTANCE
    matches = match_points(pred, gt)
    return float(matches.pred_to_gt.mean() + matches.gt_to_pred.mean())
