"""Normal consistency (Mescheder et al. 2019, Sec. 4 "Normal Consistency"; eval code ``distance_p2p``)."""
from __future__ import annotations

import numpy as np
from shapelab.metrics.nearest import PointMatches, match_points

EMPTY_NORMAL_CONSISTENCY = -1.0
"""OccNet's value for an empty prediction."""


def _unit(normals: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(normals, axis=-1, keepdims=True)
    return normals / np.where(lengths > 0, lengths, 1.0)


def normal_consistency(
    pred_points: np.ndarray,
    pred_normals: np.ndarray,
    gt_points: np.ndarray,
    gt_normals: np.ndarray,
    matches: PointMatches | None = None,
) -> float:
    """Mean absolute cosine between each point's normal and its nearest neighbour's, both ways.

    ``NC = 0.5 * (mean_pred |n_pred . n_gt(nn)| + mean_gt |n_gt . n_pred(nn)|)`` with unit normals;
    ``|.|`` makes it independent of normal orientation (OccNet's definition). 1 is perfect.

    Args:
        pred_points, pred_normals: (N,3) points on the prediction and their normals (OccNet: face normals
        of the sampled faces); gt_points, gt_normals: (M,3) (pointcloud.npz). Same frame (occnet); the
        value is unitless. Empty prediction: -1 (OccNet's penalty).
    """
    if len(pred_points) == 0:
        return EMPTY_NORMAL_CONSISTENCY
    matches = matches or match_points(pred_points, gt_points)
    pred_normals, gt_normals = _unit(pred_normals), _unit(gt_normals)
    accuracy = np.abs((pred_normals * gt_normals[matches.pred_to_gt_index]).sum(-1)).mean()
    completeness = np.abs((gt_normals * pred_normals[matches.gt_to_pred_index]).sum(-1)).mean()
    return float(0.5 * (accuracy + completeness))
