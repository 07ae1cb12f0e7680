"""The object frame: moving a reconstruction (arbitrary gauge) to the framework's frame.

SfM fixes its world only up to a similarity. The models expect the object centred in the unit cube,
y up (OccNet frame, shapes in [-0.5, 0.5]^3). The similarity ``p' = s R (p - c)`` is chosen as:
- object points: the sparse points that fall inside the silhouette in at least ``mask_agreement`` of the
  registered views whose image they project into (when masks are given; all views, not only the ones that
  observed the point: a point triangulated badly from two views inside their masks falls outside the others'
  masks — with DSP-SIFT and guided matching such outliers stretched the car's box to 3x its size); without masks, the points inside the 2nd-98th
  percentile box on every axis (background clutter is then the user's to crop);
- up (+y): photos taken upright (no roll) have horizontal x axes, so up is the direction most orthogonal to
  every camera's x axis (the eigenvector of the smallest eigenvalue of sum_i x_i x_i^T), signed to agree with
  the mean camera up vector (minus each camera's y axis: OpenCV's y points down). When all x axes are
  parallel (no turn around the object) it is that mean up vector itself. The mean alone would tilt towards the
  object when the cameras look down at it from one side (an arc rather than a ring);
- azimuth: the first registered image (by name) looks from +z (ShapeNet's front): seen from the mean of the
  object points its centre lies at azimuth 0 (same x as that mean, larger z);
- centre ``c`` and scale ``s``: the bounding box of the object points is centred and its longest edge becomes 1.
"""
from __future__ import annotations

import numpy as np

from shapelab.errors import ShapelabError


def up_rotation(up: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) taking the unit direction ``up`` to +y (the shortest one; Rodrigues)."""
    up = up / np.linalg.norm(up)
    target = np.array([0.0, 1.0, 0.0])
    axis, cosine = np.cross(up, target), float(up @ target)
    if np.linalg.norm(axis) < 1e-12:
        return np.eye(3) if cosine > 0 else np.diag([1.0, -1.0, -1.0])
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1.0 + cosine)


def up_direction(Rts: np.ndarray) -> np.ndarray:
    """Unit up direction (3,) of cameras Rts (V, 3, 4) taken upright (see the module docstring)."""
    mean_up = -Rts[:, 1, :3].mean(0)  # row 1 of R is the camera's y axis (down) in world coordinates
    axes = Rts[:, 0, :3]  # rows 0: the cameras' x axes
    eigenvalues, eigenvectors = np.linalg.eigh(axes.T @ axes)
    if eigenvalues[1] < 1e-3 * eigenvalues[2]:
        return mean_up / np.linalg.norm(mean_up)
    up = eigenvectors[:, 0]
    return up if up @ mean_up > 0 else -up


def object_points(points: np.ndarray, inside_fraction: np.ndarray | None, mask_agreement: float) -> np.ndarray:
    """The sparse points (N, 3) taken as the object (see the module docstring); ``inside_fraction`` (N,) is the
    share of the views seeing each point that see it inside their mask (None without masks)."""
    if inside_fraction is not None:
        keep = inside_fraction >= mask_agreement
    else:
        low, high = np.percentile(points, [2, 98], axis=0)
        keep = ((points >= low) & (points <= high)).all(1)
    if keep.sum() < 4:
        raise ShapelabError(f"object frame: only {int(keep.sum())} of {len(points)} sparse points lie on the object "
                            "(check the masks: white = object), cannot place the object in the unit cube")
    return points[keep]


def object_frame(points: np.ndarray, Rts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R (3, 3), t (3,)) with ``p' = s R p + t`` moving object points (N, 3) and cameras Rts (V, 3, 4)
    (the first one defines the azimuth) into the object frame."""
    rotation = up_rotation(up_direction(Rts))
    first_centre = rotation @ (-Rts[0, :, :3].T @ Rts[0, :, 3] - points.mean(0))
    yaw = np.arctan2(first_centre[0], first_centre[2])  # turn about y: the first camera's x = the points' mean x
    cos, sin = np.cos(-yaw), np.sin(-yaw)
    rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]]) @ rotation
    rotated = points @ rotation.T
    low, high = rotated.min(0), rotated.max(0)
    scale = 1.0 / float((high - low).max())
    return scale, rotation, -scale * (low + high) / 2.0
