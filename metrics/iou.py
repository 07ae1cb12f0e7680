"""Volumetric IoU on occupancy points (Mescheder et al. 2019, Sec. 4 "Volumetric IoU")."""
from __future__ import annotations

import numpy as np
import torch
import trimesh
from shapelab.geometry.ray_parity import contains_z_parity


def occupancy_iou(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """IoU of boolean occupancies over the last axis: ``|pred & gt| / |pred | gt|``.

    Args: pred, gt (..., T) bool (True = inside), numpy or torch. Returns (...): in [0, 1]; 0 when both
    are empty (OccNet's convention).
    """
    union = (pred | gt).sum(-1)
    intersection = (pred & gt).sum(-1)
    if isinstance(union, torch.Tensor):
        return torch.where(union > 0, intersection / union.clamp_min(1), 0.0)
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


INSIDE_TESTS = ("occnet", "trimesh")


def mesh_contains(mesh: trimesh.Trimesh, points: np.ndarray, inside: str = "occnet", seed: int = 0) -> np.ndarray:
    """(T,) bool: which of the (T,3) points lie inside the mesh.

    ``inside="occnet"``: parity of ray crossings along z in both directions, OccNet's ``check_mesh_contains``
    (`geometry.ray_parity`). ``inside="trimesh"``: trimesh's ``contains`` (embree ray parity along a fixed
    oblique direction; rays whose two directions disagree are re-cast in a random direction, drawn here
    from a generator seeded with ``seed`` so the answer is repeatable). Both agree on watertight meshes.
    """
    if inside == "occnet":
        return contains_z_parity(mesh, points)
    if inside != "trimesh":
        raise ValueError(f"inside={inside!r}: choose one of {INSIDE_TESTS}")
    shared, trimesh.util._RANDOM_DEFAULT = trimesh.util._RANDOM_DEFAULT, np.random.default_rng(seed)
    try:  # trimesh draws its re-cast directions from this module-level generator
        return mesh.contains(points)
    finally:
        trimesh.util._RANDOM_DEFAULT = shared


def mesh_iou(mesh: trimesh.Trimesh | None, points: np.ndarray, occupancies: np.ndarray, inside: str = "occnet",
             empty_union: float = 0.0) -> float:
    """Volumetric IoU of a predicted mesh against ground-truth occupancies (OccNet eval ``eval_mesh``).

    Args:
        mesh: the prediction in the occnet frame; ``None`` or without faces counts as empty (IoU 0, as OccNet).
        points: (T,3) occnet-frame query points (points.npz, uniform in a cube of side 1.1);
        occupancies: (T,) bool ground truth; inside: `mesh_contains`'s test ("occnet" = OccNet's).
        empty_union: the value when neither the mesh nor the ground truth contains a point (OccNet's
            ``compute_iou`` gives 0/0 = NaN). Returns: IoU in [0, 1] (unitless).
    """
    if mesh is None or len(mesh.faces) == 0:
        return 0.0
    pred, gt = mesh_contains(mesh, points, inside), occupancies.astype(bool)
    if not (pred | gt).any():
        return float(empty_union)
    return float(occupancy_iou(pred, gt))
