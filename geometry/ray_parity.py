"""Inside/outside of points against a (possibly open) triangle mesh by the parity of ray crossings along z,
exactly as Occupancy Networks' evaluation decides it (``check_mesh_contains``, im2mesh/utils/libmesh).

A point is inside when the vertical line through it crosses the mesh an odd number of times above it AND an
odd number of times below it (both directions must agree). Only crossings strictly inside a triangle's
xy-projection count. Deterministic: no random re-casts (trimesh's ``contains`` re-casts ambiguous rays in
random directions, which changes the answer on non-watertight meshes from run to run).

As OccNet, coordinates are first mapped so the mesh's bounding box spans [0.5, resolution - 0.5] per axis;
a 2D grid of ``resolution``² cells lists the triangles whose xy bounding box touches each cell (the
original's ``TriangleHash``), so each point is tested only against the triangles of its cell. Vectorised
in NumPy (the original is Cython); the arithmetic is the original's, so the answers are the same.
"""
from __future__ import annotations

import numpy as np
import trimesh

OCCNET_HASH_RESOLUTION = 512
POINT_CHUNK = 50_000


def contains_z_parity(mesh: trimesh.Trimesh, points: np.ndarray,
                      resolution: int = OCCNET_HASH_RESOLUTION) -> np.ndarray:
    """points (N,3) in the mesh's frame -> (N,) bool, True inside (OccNet's ``check_mesh_contains``)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    contains = np.zeros(len(points), dtype=bool)
    triangles = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]
    if len(triangles) == 0 or len(points) == 0:
        return contains
    low, high = triangles.reshape(-1, 3).min(axis=0), triangles.reshape(-1, 3).max(axis=0)
    with np.errstate(divide="ignore"):
        scale = (resolution - 1) / (high - low)
    translate = 0.5 - scale * low
    triangles = scale * triangles + translate
    points = scale * points + translate
    inside_box = np.all((points >= 0) & (points <= resolution), axis=1)
    cells, cell_triangles = _triangle_hash(triangles[:, :, :2], resolution)
    for start in range(0, len(points), POINT_CHUNK):
        chunk = np.flatnonzero(inside_box[start:start + POINT_CHUNK]) + start
        if len(chunk):
            contains[chunk] = _query(points[chunk], triangles, cells, cell_triangles, resolution)
    return contains


def _triangle_hash(triangles_2d: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell id per entry, triangle per entry) sorted by cell: every grid cell that each triangle's xy
    bounding box touches (clamped to the grid), as the original's spatial hash."""
    low = np.clip(triangles_2d.min(axis=1), 0, resolution - 1).astype(np.int64)
    high = np.clip(triangles_2d.max(axis=1), 0, resolution - 1).astype(np.int64)
    size = high - low + 1
    counts = size[:, 0] * size[:, 1]
    triangle = np.repeat(np.arange(len(triangles_2d)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    x = low[triangle, 0] + offset // size[triangle, 1]
    y = low[triangle, 1] + offset % size[triangle, 1]
    cell = resolution * x + y
    order = np.argsort(cell, kind="stable")
    return cell[order], triangle[order]


def _query(points: np.ndarray, triangles: np.ndarray, cells: np.ndarray, cell_triangles: np.ndarray,
           resolution: int) -> np.ndarray:
    """Parity test of rescaled points (P,3) that lie in the rescaled bounding box."""
    xy = points[:, :2].astype(np.int64)
    valid = np.all((xy >= 0) & (xy < resolution), axis=1)
    cell = resolution * xy[:, 0] + xy[:, 1]
    first = np.searchsorted(cells, cell, side="left")
    counts = np.where(valid, np.searchsorted(cells, cell, side="right") - first, 0)
    point_index = np.repeat(np.arange(len(points)), counts)
    entry = np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    triangle_index = cell_triangles[entry]
    hit = _inside_triangle_2d(points[point_index, :2], triangles[triangle_index, :, :2])
    point_index, triangle_index = point_index[hit], triangle_index[hit]
    depth, abs_n2 = _crossing_depth(points[point_index], triangles[triangle_index])
    above = depth >= points[point_index, 2] * abs_n2  # NaN depth (a vertical triangle) counts in neither
    below = depth < points[point_index, 2] * abs_n2
    crossings_above = np.bincount(point_index[above], minlength=len(points))
    crossings_below = np.bincount(point_index[below], minlength=len(points))
    return (crossings_above % 2 == 1) & (crossings_below % 2 == 1)


def _inside_triangle_2d(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(K,2) points strictly inside their (K,3,2) triangles (barycentric test without division, as OccNet)."""
    a = (triangles[:, :2] - triangles[:, 2:]).transpose(0, 2, 1)
    y = points - triangles[:, 2]
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    sign, abs_det = np.sign(det), np.abs(det)
    u = (a[:, 1, 1] * y[:, 0] - a[:, 0, 1] * y[:, 1]) * sign
    v = (-a[:, 1, 0] * y[:, 0] + a[:, 0, 0] * y[:, 1]) * sign
    return (det != 0) & (0 < u) & (u < abs_det) & (0 < v) & (v < abs_det) & (0 < u + v) & (u + v < abs_det)


def _crossing_depth(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z of the crossing of each point's vertical line with its triangle's plane, times |n_z| (and |n_z|)."""
    t1, t2, t3 = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normals = np.cross(t3 - t1, t2 - t1)
    alpha = np.sum(normals[:, :2] * (t1[:, :2] - points[:, :2]), axis=1)
    n2 = normals[:, 2]
    depth = np.full(len(points), np.nan)
    nonzero = n2 != 0
    depth[nonzero] = t1[nonzero, 2] * np.abs(n2[nonzero]) + alpha[nonzero] * np.sign(n2[nonzero])
    return depth, np.abs(n2)
