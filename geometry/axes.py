"""Axes of ShapeNet data: the axes of OccNet's released files, and a check for predictions in the other ones.

(geometry/frames.py converts between the normalised frames of one shape; this module is about axes.)

OccNet's released ShapeNet files (pointcloud.npz, points.npz, img_choy2016 cameras) are in ShapeNet v1 axes. Relative
to a ShapeNetCore v2 ``model_normalized.obj`` they are ``p_occnet = s · R_y(−90°) · (p_v2 − c)`` with ``c`` the
centre of the v2 bounding box (measured on ../shared/data: Chamfer 0.004 under −90°, 0.086 under +90°, 0.42
unrotated for the bench). ``s`` is 1 except for the few v2 OBJs with unreferenced vertices (the sample table:
1.30); it cancels in OccNet's unit-cube frame, which normalises by the bounding box.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

AXES = ("original", "occnet")  # preprocess.py frame=...


def y_rotation(degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about +y (right-handed: +90° takes +z to +x)."""
    angle = np.radians(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])


V2_TO_OCCNET = y_rotation(-90.0)


def v2_to_occnet(points: np.ndarray) -> np.ndarray:
    """(N, 3) points of a ShapeNet v2 mesh -> OccNet's (v1) axes, bounding box centred at the origin (s = 1)."""
    points = np.asarray(points, dtype=np.float64)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    return (points - centre) @ V2_TO_OCCNET.T


def to_axes(mesh: trimesh.Trimesh, frame: str) -> trimesh.Trimesh:
    """``mesh`` in the axes ``frame``: "original" unchanged, "occnet" moved by :func:`v2_to_occnet` (a rotation and a
    shift, so face winding and inside/outside are unchanged)."""
    if frame == "original":
        return mesh
    if frame != "occnet":
        raise ValueError(f"unknown frame {frame!r}; use one of {AXES}")
    moved = mesh.copy()
    moved.vertices = v2_to_occnet(mesh.vertices)
    return moved


def chamfer_under_y_rotations(
    pred: np.ndarray, gt: np.ndarray, angles=(0.0, 90.0, -90.0)
) -> dict[float, float]:
    """{angle: symmetric mean nearest distance between ``pred`` rotated by ``angle`` about +y and ``gt``}
    (both (N, 3), same frame, centred near the origin). A much smaller value away from 0° means the
    prediction is in the other axes (e.g. ShapeNet v2 vs OccNet's v1: prediction needs R_y(−90°))."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    gt_tree, result = cKDTree(gt), {}
    for angle in angles:
        rotated = pred @ y_rotation(angle).T
        result[angle] = float((gt_tree.query(rotated)[0].mean() + cKDTree(rotated).query(gt)[0].mean()) / 2.0)
    return result


def rotation_warning(pred: np.ndarray, gt: np.ndarray, ratio: float = 0.5) -> str:
    """'' or one line saying that ``pred`` fits ``gt`` much better (Chamfer below ``ratio`` × unrotated) after a
    ±90° rotation about y, and the likely fix."""
    chamfer = chamfer_under_y_rotations(pred, gt)
    best = min(chamfer, key=chamfer.get)
    if best == 0.0 or chamfer[best] >= ratio * chamfer[0.0]:
        return ""
    return (
        f"predictions match the ground truth much better turned by {best:+.0f}° about y (Chamfer "
        f"{chamfer[0.0]:.4f} as given, {chamfer[best]:.4f} turned): one side is in ShapeNet v2 axes, the other "
        "in OccNet's (v1); preprocess with frame=occnet to match OccNet's released data, or score "
        "against ground truth in the predictions' axes"
    )
