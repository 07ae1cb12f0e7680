"""SION%: the share of Self-Intersecting Outward Normals of a shape (Koneputugodage et al., CVPR 2024).

A ground-truth surface point p with outward normal n "self-intersects" when its outward normal ray meets the
shape again: some other surface point q lies more than ``min_ahead`` along the ray ((q - p)·n > 0.02) and
within ``ray_radius`` of it (||(q - p) - ((q - p)·n) n|| <= 0.01). SION% = 100 × the share of such points.
Definition and thresholds as the released code (``sion.py`` of PG-SDF, which runs it on all points of each
shape's point cloud in OccNet's unit-cube frame). The thresholds are absolute, so the frame matters: give
points in the unit-cube frame (OccNet ``pointcloud.npz``), where the shape's longest side is ~1.

A convex shape has SION% 0; deep concavities (the inside of a cup, the slots of a shelf) raise it.

Fast path: each ray is sampled every ``step`` from ``min_ahead`` to where it leaves the points' bounding box;
the ``candidates`` nearest surface points of each sample within sqrt(ray_radius² + (step/2)²) (KD-tree) are
tested exactly (samples in no voxel near a point are skipped first, `NearSurfaceGrid`). Any q within ``ray_radius`` of the ray lies within that distance of a sample, so the count
is exact unless more than ``candidates`` points crowd one sample (tests compare it with the brute force).
``num_queries`` estimates the share from a random subset of rays (all points still block rays); the standard
error is at most 50/sqrt(num_queries) percentage points (0.5 at the default 10 000).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.spatial import cKDTree

RAY_RADIUS = 0.01
MIN_AHEAD = 0.02


def self_intersecting_normals(points: np.ndarray, normals: np.ndarray, queries: np.ndarray | None = None,
                              ray_radius: float = RAY_RADIUS, min_ahead: float = MIN_AHEAD, step: float = 0.01,
                              candidates: int = 16, chunk: int = 200_000) -> np.ndarray:
    """(Q,) bool: whether the outward normal ray of each queried point meets another surface point.

    points, normals: (N, 3) surface points and outward unit normals (unit-cube frame); queries: indices (Q,)
    of the points whose rays are tested (None = all)."""
    points = np.asarray(points, dtype=np.float64)
    normals = np.asarray(normals, dtype=np.float64)
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    queries = np.arange(len(points)) if queries is None else np.asarray(queries)
    tree = cKDTree(points)
    reach = np.sqrt(ray_radius**2 + (step / 2) ** 2)
    lower, upper = points.min(axis=0) - reach, points.max(axis=0) + reach
    origin, direction = points[queries], normals[queries]
    with np.errstate(divide="ignore", invalid="ignore"):  # exit distance of each ray from the bounding box
        exits = np.where(direction > 0, (upper - origin) / direction,
                         np.where(direction < 0, (lower - origin) / direction, np.inf)).min(axis=1)
    counts = np.maximum(np.ceil((exits - min_ahead) / step).astype(np.int64) + 1, 0)
    ray_of_sample = np.repeat(np.arange(len(queries)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    near_surface = NearSurfaceGrid(points, lower, reach)
    hit = np.zeros(len(queries), dtype=bool)
    for start in range(0, len(ray_of_sample), chunk):
        rays = ray_of_sample[start:start + chunk]
        along = min_ahead + step * offsets[start:start + chunk]
        samples = origin[rays] + along[:, None] * direction[rays]
        keep = ~hit[rays] & near_surface.contains(samples)
        rays, samples = rays[keep], samples[keep]
        if len(rays) == 0:
            continue
        _, neighbour = tree.query(samples, k=candidates, distance_upper_bound=reach, workers=-1)
        neighbour = neighbour.reshape(len(rays), -1)
        found = neighbour < len(points)
        offset = points[np.where(found, neighbour, 0)] - origin[rays][:, None]
        ahead = (offset * direction[rays][:, None]).sum(-1)
        across = np.linalg.norm(offset - ahead[..., None] * direction[rays][:, None], axis=-1)
        blocked = (found & (ahead > min_ahead) & (across <= ray_radius)).any(axis=1)
        hit[np.unique(rays[blocked])] = True
    return hit


class NearSurfaceGrid:
    """Voxels of side ``cell`` that hold a point, dilated by one voxel: every location within ``cell`` of a
    point is in a marked voxel, so ray samples outside marked voxels need no KD-tree query."""

    def __init__(self, points: np.ndarray, lower: np.ndarray, cell: float):
        self.lower, self.cell = lower, cell
        index = np.floor((points - lower) / cell).astype(np.int64)
        self.marked = np.zeros(index.max(axis=0) + 2, dtype=bool)
        self.marked[tuple(index.T)] = True
        self.marked = binary_dilation(self.marked, np.ones((3, 3, 3), dtype=bool))

    def contains(self, samples: np.ndarray) -> np.ndarray:
        index = np.floor((samples - self.lower) / self.cell).astype(np.int64)
        inside = ((index >= 0) & (index < self.marked.shape)).all(axis=1)
        result = np.zeros(len(samples), dtype=bool)
        result[inside] = self.marked[tuple(index[inside].T)]
        return result


def sion_percent(points: np.ndarray, normals: np.ndarray, num_queries: int | None = 10_000, seed: int = 0,
                 ray_radius: float = RAY_RADIUS, min_ahead: float = MIN_AHEAD) -> float:
    """SION% of a shape from its surface points (N, 3) and outward normals (N, 3) in the unit-cube frame:
    100 × the share of points whose outward normal ray meets the surface again (see the module docstring).
    ``num_queries``: rays tested (a seeded random subset; None = every point, as the released code)."""
    if len(points) == 0:
        return float("nan")
    queries = None
    if num_queries is not None and num_queries < len(points):
        queries = np.random.default_rng(seed).choice(len(points), num_queries, replace=False)
    return 100.0 * float(self_intersecting_normals(points, normals, queries, ray_radius, min_ahead).mean())
