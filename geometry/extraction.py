"""Mesh extraction from implicit fields (SDF or occupancy logits), shared by every implicit model.

A field is sampled on a regular grid of ``resolution`` cells per axis ((resolution+1)^3 vertices)
spanning ``bounds`` and triangulated with scikit-image's marching cubes (Lewiner). ``dense``
evaluates every vertex; ``coarse_to_fine`` (octree / OccNet MISE, `geometry.mise`) evaluates only
cells that may contain the surface and returns the same mesh (see the guarantee in geometry/mise.py).
The mesh is in the frame of ``bounds``; `geometry.frames` maps it to the other frames.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from shapelab.geometry.mise import coarse_to_fine_grid
from skimage import measure

from shapelab.errors import ShapelabError

FieldFn = Callable[[torch.Tensor], torch.Tensor]
METHODS = ("dense", "coarse_to_fine")
INSIDE = ("below", "above")


@dataclass
class ExtractionResult:
    """The extracted mesh (frame of ``bounds``; empty when the field has no level crossing) and the
    number of field evaluations it took."""

    mesh: trimesh.Trimesh
    num_queries: int


@dataclass(frozen=True)
class Grid:
    """A vertex grid of ``resolution`` cells per axis between corners ``lower`` and ``upper`` (3,)."""

    resolution: int
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_bounds(cls, resolution: int, bounds) -> Grid:
        """``bounds``: (lo, hi) scalars for a cube, or ((x0, y0, z0), (x1, y1, z1))."""
        lower, upper = (np.broadcast_to(np.asarray(b, dtype=np.float64), (3,)) for b in bounds)
        if resolution < 1 or not np.all(upper > lower):
            raise ShapelabError(
                f"mesh extraction: resolution {resolution} / bounds {bounds} invalid; "
                "use resolution >= 1 and bounds (lo, hi) with lo < hi"
            )
        return cls(resolution, lower, upper)

    @property
    def spacing(self) -> np.ndarray:
        """(3,) cell size per axis."""
        return (self.upper - self.lower) / self.resolution

    def points(self, indices: np.ndarray) -> np.ndarray:
        """World coordinates (M, 3) float32 of integer vertex indices (M, 3)."""
        return (self.lower + indices * self.spacing).astype(np.float32)


def evaluate_field(
    field_fn: FieldFn, points: np.ndarray, chunk_size: int, device: torch.device | str
) -> np.ndarray:
    """Field values (M,) float32 at points (M, 3), evaluated ``chunk_size`` points at a time."""
    values = []
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk_size):
            chunk = torch.from_numpy(points[start : start + chunk_size]).to(device)
            values.append(field_fn(chunk).reshape(-1).float().cpu())
    values = torch.cat(values).numpy() if values else np.zeros(0, np.float32)
    if values.shape[0] != points.shape[0]:
        raise ShapelabError(
            f"mesh extraction: field_fn returned {values.shape[0]} values for {points.shape[0]} points; "
            "it must map (N, 3) points to (N,) values"
        )
    if not np.all(np.isfinite(values)):
        raise ShapelabError("mesh extraction: field_fn returned NaN/inf values; check the model weights")
    return values


# OccNet's generation pads the value grid with -1e6 (outside for occupancy logits) before marching cubes
CLOSING_PAD = 1e6


def pad_outside(values: np.ndarray, inside: str) -> np.ndarray:
    """(R+1)^3 -> (R+3)^3 values with one layer of a far-outside value around the grid (OccNet's -1e6
    for ``inside="above"``, +1e6 for an SDF), so marching cubes closes surfaces cut by the grid's box."""
    return np.pad(values, 1, constant_values=-CLOSING_PAD if inside == "above" else CLOSING_PAD)


def grid_mesh(values: np.ndarray, grid: Grid, level: float, inside: str, close: bool = False) -> trimesh.Trimesh:
    """Marching cubes on vertex values (R+1)^3; outward-facing triangles, frame of the grid.

    ``close``: pad the grid first (``pad_outside``) so a surface leaving the box is capped at the box
    (the caps lie within 1e-5 cells outside the grid's faces, as OccNet's).
    An empty mesh when no value crosses ``level``.
    """
    if not (values.min() < level < values.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    origin = grid.lower
    if close:
        values, origin = pad_outside(values, inside), grid.lower - grid.spacing
    vertices, faces, _, _ = measure.marching_cubes(values, level=level, spacing=tuple(grid.spacing))
    if inside == "above":  # skimage winds faces outward for fields that increase outward
        faces = faces[:, ::-1]
    return trimesh.Trimesh(vertices + origin, np.ascontiguousarray(faces), process=False)


def default_resolution0(resolution: int, minimum: int = 32) -> int:
    """Coarsest grid reachable from ``resolution`` by halving while it stays >= ``minimum``."""
    resolution0 = resolution
    while resolution0 % 2 == 0 and resolution0 // 2 >= minimum:
        resolution0 //= 2
    return resolution0


def extract_mesh(
    field_fn: FieldFn,
    resolution: int | None = None,
    bounds=(-1.0, 1.0),
    level: float = 0.0,
    inside: str = "below",
    method: str = "coarse_to_fine",
    chunk_size: int = 65536,
    device: torch.device | str = "cpu",
    resolution0: int | None = None,
    upsampling_steps: int | None = None,
    lipschitz: float | None = 1.0,
    safety: float = 1.5,
    dilation: int = 1,
    close: bool = False,
) -> ExtractionResult:
    """Extract the ``level`` iso-surface of ``field_fn`` with marching cubes.

    Args:
        field_fn: points (N, 3) float32 tensor on ``device`` -> (N,) values.
        resolution: cells per axis of the final grid (vertices: resolution + 1 per axis); may be
            omitted when ``resolution0`` and ``upsampling_steps`` are given
            (resolution = resolution0 * 2**upsampling_steps, OccNet MISE: 32 and 2).
        bounds: (lo, hi) or ((x0, y0, z0), (x1, y1, z1)) grid corners in the field's frame.
        level: iso-value; 0 for SDFs, logit(threshold) for occupancy logits.
        inside: "below" (SDF, negative inside) or "above" (occupancy).
        method: "dense" or "coarse_to_fine" (same mesh, fewer evaluations).
        chunk_size: points per field_fn call (bounds memory).
        device: where the points are sent.
        resolution0, upsampling_steps: coarse grid for "coarse_to_fine"; by default the coarsest
            grid >= 32 cells reachable by halving ``resolution``.
        lipschitz: Lipschitz bound of the field (1 for an SDF) used to skip cells far from the
            surface; None refines cells whose corners change sign (OccNet MISE; can miss features
            thinner than a coarse cell).
        safety: factor on ``lipschitz`` for networks that are only approximately Lipschitz.
        dilation: with ``lipschitz=None``, also refine the cells within ``dilation`` cells of a
            straddling cell (ours; OccNet's MISE: 0).
        close: pad the grid with a far-outside value before marching cubes, as OccNet, so meshes
            cut by the box are closed there (``grid_mesh``).
    Returns:
        ExtractionResult(mesh in the frame of ``bounds``, num_queries).
    """
    if method not in METHODS:
        raise ShapelabError(f"mesh extraction: method {method!r} unknown; use one of {METHODS}")
    if inside not in INSIDE:
        raise ShapelabError(f"mesh extraction: inside {inside!r} unknown; use one of {INSIDE}")
    if resolution is None:
        if resolution0 is None or upsampling_steps is None:
            raise ShapelabError("mesh extraction: give resolution, or resolution0 and upsampling_steps")
        resolution = resolution0 * 2**upsampling_steps
    grid = Grid.from_bounds(resolution, bounds)

    def evaluate(indices: np.ndarray) -> np.ndarray:
        return evaluate_field(field_fn, grid.points(indices), chunk_size, device)

    if method == "dense":
        axis = np.arange(resolution + 1)
        indices = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        values, num_queries = evaluate(indices).reshape((resolution + 1,) * 3), indices.shape[0]
    else:
        if upsampling_steps is None:
            resolution0 = resolution0 or default_resolution0(resolution)
            upsampling_steps = max(0, round(math.log2(resolution / resolution0)))
        elif resolution0 is None:
            resolution0 = max(1, resolution // 2**upsampling_steps)
        if resolution0 * 2**upsampling_steps != resolution:
            raise ShapelabError(
                f"mesh extraction: resolution {resolution} is not resolution0 * 2**upsampling_steps "
                f"({resolution0} * 2**{upsampling_steps}); pick a resolution divisible by 2**upsampling_steps"
            )
        values, num_queries = coarse_to_fine_grid(
            evaluate, resolution0, upsampling_steps, level, lipschitz, safety, grid.spacing, dilation
        )
    return ExtractionResult(grid_mesh(values, grid, level, inside, close), num_queries)

