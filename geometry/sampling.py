"""Point sampling for the standard training formats (DeepSDF SdfSamples, OccNet points/pointcloud/voxels)."""

from __future__ import annotations

import numpy as np
import trimesh
from shapelab.geometry.inside import outer_surface_mask

DEEPSDF_VARIANCES = (0.005, 0.0005)  # near-surface perturbation variances (DeepSDF PreprocessMesh.cpp)
# PreprocessMesh.cpp with -t (test shapes): variance 0.05, second variance variance / 100 (its 45/50 near-surface
# ratio is set but unused: the sample count still uses 47/50)
DEEPSDF_TEST_VARIANCES = (0.05, 0.0005)
DEEPSDF_UNIFORM_FRACTION = 3 / 50  # share of samples uniform in [-1, 1]^3
OCCNET_BOX_SIZE = 1.1  # unit cube + padding 0.1


def sample_surface(
    mesh: trimesh.Trimesh, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples -> (points (count, 3), unit face normals (count, 3)), float64."""
    points, faces = trimesh.sample.sample_surface(mesh, count, seed=rng)
    return np.asarray(points), np.asarray(mesh.face_normals[faces])


def sample_outer_surface(
    mesh: trimesh.Trimesh, count: int, rng: np.random.Generator, num_directions: int = 32, max_rounds: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`sample_surface` but only on the outer surface (geometry/inside.py ``outer_surface_mask``):
    internal faces of part soups and flipped duplicates get no samples. Draws in rounds until ``count``
    are kept; if the outer surface is tiny, kept samples are repeated to fill ``count``."""
    kept_points, kept_normals, total = [], [], 0
    for _ in range(max_rounds):
        points, normals = sample_surface(mesh, 2 * count, rng)
        keep = outer_surface_mask(mesh, points, normals, num_directions)
        kept_points.append(points[keep])
        kept_normals.append(normals[keep])
        total += int(keep.sum())
        if total >= count:
            break
    if total == 0:
        raise ValueError("no surface sample is visible from outside the mesh")
    points, normals = np.concatenate(kept_points), np.concatenate(kept_normals)
    chosen = np.arange(count) if total >= count else rng.choice(total, count)
    return points[chosen], normals[chosen]


def deepsdf_query_points(
    surface_points: np.ndarray, count: int, rng: np.random.Generator, variances=DEEPSDF_VARIANCES
) -> np.ndarray:
    """(count, 3) DeepSDF sample locations in the unit-sphere frame: 47/50 are surface points perturbed with
    N(0, variances[0]) and N(0, variances[1]) (training: 0.005 and 0.0005; test shapes: DEEPSDF_TEST_VARIANCES;
    one of each per drawn surface point), 3/50 uniform in [-1, 1]^3."""
    num_uniform = round(count * DEEPSDF_UNIFORM_FRACTION)
    num_near = count - num_uniform
    chosen = surface_points[rng.integers(0, len(surface_points), num_near)]
    std = np.sqrt(np.where(np.arange(num_near) % 2 == 0, variances[0], variances[1]))
    near = chosen + rng.normal(size=(num_near, 3)) * std[:, None]
    return np.concatenate([near, rng.uniform(-1.0, 1.0, size=(num_uniform, 3))])


def uniform_cube_points(
    count: int, rng: np.random.Generator, box_size: float = OCCNET_BOX_SIZE
) -> np.ndarray:
    """(count, 3) points uniform in the centred cube of side ``box_size`` (OccNet points.npz)."""
    return box_size * (rng.random((count, 3)) - 0.5)


def voxel_centres(resolution: int) -> np.ndarray:
    """(R^3, 3) centres of the R^3 cells tiling [-0.5, 0.5]^3, C order over (x, y, z)."""
    axis = -0.5 + (np.arange(resolution) + 0.5) / resolution
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def voxelise(inside_centres: np.ndarray, surface_points: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) bool solid voxels, like binvox's: a cell is filled when its centre is inside
    (``inside_centres`` (R^3,) from :func:`voxel_centres`) or when a surface sample (unit-cube frame) falls
    in it, so thin parts thinner than a cell survive."""
    grid = np.asarray(inside_centres, dtype=bool).reshape(resolution, resolution, resolution).copy()
    cells = np.floor((surface_points + 0.5) * resolution).astype(np.int64)
    cells = cells[((cells >= 0) & (cells < resolution)).all(axis=1)]
    grid[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    return grid
