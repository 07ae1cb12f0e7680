"""Nearest-neighbour matches between two point sets through a KD-tree (pykdtree, OpenMP over all cores).

A 100k x 100k query takes ~0.08 s on 2 cores (scipy's cKDTree with ``workers=-1``: ~0.17 s, the same distances
and indices) instead of the O(N·M) distance matrix (bench/nearest_neighbours.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pykdtree.kdtree import KDTree


def nearest_neighbours(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query point (N,3), the Euclidean distance (N,) to and index (N,) of its nearest reference point (M,3)."""
    tree = KDTree(np.ascontiguousarray(reference, dtype=np.float64))
    distances, indices = tree.query(np.ascontiguousarray(query, dtype=np.float64), k=1)
    return distances, indices.astype(np.int64)


@dataclass
class PointMatches:
    """Nearest-neighbour matches both ways between a prediction and the ground truth.

    ``pred_to_gt[i]`` is the (unsquared) distance from pred[i] to its nearest gt point, index
    ``pred_to_gt_index[i]``; ``gt_to_pred`` likewise. Computed once and shared by Chamfer, F-score and
    normal consistency.
    """

    pred_to_gt: np.ndarray
    pred_to_gt_index: np.ndarray
    gt_to_pred: np.ndarray
    gt_to_pred_index: np.ndarray


def match_points(pred: np.ndarray, gt: np.ndarray) -> PointMatches:
    """Nearest neighbours pred (N,3) -> gt (M,3) and gt -> pred, in the frame both are given in."""
    pred_to_gt, pred_to_gt_index = nearest_neighbours(pred, gt)
    gt_to_pred, gt_to_pred_index = nearest_neighbours(gt, pred)
    return PointMatches(pred_to_gt, pred_to_gt_index, gt_to_pred, gt_to_pred_index)
