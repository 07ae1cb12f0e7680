"""Coarse-to-fine evaluation of an implicit field on a regular grid (octree / MISE style).

Evaluates a coarse grid, then repeatedly halves the cell size, evaluating the field only at the
vertices of cells that may contain the level set; elsewhere the grid receives trilinearly
interpolated values, which have the correct side of the level set there.

Guarantee (used by `geometry.extraction.extract_mesh` to return *the same* marching-cubes mesh as
dense extraction): a cell is skipped only if all 8 corners lie strictly on one side of the level
and, when ``lipschitz`` is given, ``min |f(corner) - level| > safety * lipschitz * half_diagonal``.
For a field that is L-Lipschitz with L <= safety * lipschitz, every point of such a cell is within
half a diagonal of some corner, so the whole cell lies on that corner's side and no finer cell
inside it can straddle the level. Hence every vertex of every final-resolution cell that
straddles the level gets its true value, every other vertex a value on its true side of the
level, and marching cubes (which only reads straddling cells) produces identical output.
With ``lipschitz=None`` (occupancy logits, no bound) a cell is refined when its corners straddle
the level (a corner exactly at the level counts on both sides), as OccNet's MISE
(``im2mesh/utils/libmise/mise.pyx``: ``next_to_positive and next_to_negative``, no dilation), then
optionally dilated by ``dilation`` cells, an addition of ours that also refines the neighbours of
straddling cells (OccNet preset: 0). Surface parts thinner than a coarse cell that leave no sign
change on coarse corners can be missed either way.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# evaluate(indices (M, 3) int64 vertex indices of the final grid) -> (M,) float32 field values
GridEvaluator = Callable[[np.ndarray], np.ndarray]


def upsample_grid(values: np.ndarray) -> np.ndarray:
    """Trilinear 2x refinement of vertex values: (n+1)^3 -> (2n+1)^3, even indices copied exactly."""
    for axis in range(3):
        old = np.moveaxis(values, axis, 0)
        new = np.empty((2 * old.shape[0] - 1, *old.shape[1:]), dtype=values.dtype)
        new[0::2] = old
        new[1::2] = 0.5 * (old[:-1] + old[1:])
        values = np.moveaxis(new, 0, axis)
    return np.ascontiguousarray(values)


def cell_corners(values: np.ndarray) -> list[np.ndarray]:
    """The 8 corner values of every cell of a vertex grid (n+1)^3, each (n, n, n)."""
    return [
        values[i : values.shape[0] - 1 + i, j : values.shape[1] - 1 + j, k : values.shape[2] - 1 + k]
        for i in (0, 1) for j in (0, 1) for k in (0, 1)
    ]


def cells_to_refine(
    values: np.ndarray, level: float, margin: float | None, dilation: int = 1
) -> np.ndarray:
    """Cells (n, n, n) bool that may contain the level set, from the vertex values (n+1)^3.

    With ``margin`` (Lipschitz mode): not (all corners on one side and min |value - level| > margin).
    Without: corners on both sides of ``level``, dilated by ``dilation`` cells.
    """
    corners = cell_corners(values - level)
    above = np.all([c > 0 for c in corners], axis=0)
    below = np.all([c < 0 for c in corners], axis=0)
    if margin is not None:
        far = np.min([np.abs(c) for c in corners], axis=0) > margin
        return ~((above | below) & far)
    straddle = ~(above | below)
    return dilate(straddle, dilation)


def dilate(cells: np.ndarray, steps: int) -> np.ndarray:
    """Binary dilation of a 3D mask with the 3x3x3 cube, ``steps`` times."""
    for _ in range(steps):
        padded = np.pad(cells, 1)
        n0, n1, n2 = cells.shape
        grown = np.zeros_like(cells)
        for i in range(3):
            for j in range(3):
                for k in range(3):
                    grown |= padded[i : i + n0, j : j + n1, k : k + n2]
        cells = grown
    return cells


def cell_vertices(cells: np.ndarray) -> np.ndarray:
    """Vertices (n+1)^3 bool touched by any of the cells (n, n, n)."""
    vertices = np.zeros(tuple(s + 1 for s in cells.shape), dtype=bool)
    for view in cell_corners(vertices):
        view |= cells
    return vertices


def coarse_to_fine_grid(
    evaluate: GridEvaluator,
    resolution0: int,
    upsampling_steps: int,
    level: float,
    lipschitz: float | None,
    safety: float,
    spacing: np.ndarray,
    dilation: int = 1,
) -> tuple[np.ndarray, int]:
    """Vertex values of the final grid (R+1)^3, R = resolution0 * 2**upsampling_steps.

    Args:
        evaluate: field at final-grid vertex indices, see ``GridEvaluator``.
        resolution0: cells per axis of the coarse grid.
        upsampling_steps: number of 2x refinements.
        level: iso-value of the surface.
        lipschitz: bound on the field's Lipschitz constant in field units per world unit
            (1 for an SDF), or None for the sign-change criterion.
        safety: factor on ``lipschitz`` (headroom for networks that are not exactly Lipschitz).
        spacing: (3,) final cell size per axis in world units.
        dilation: cells of dilation in sign-change mode.
    Returns:
        values (R+1, R+1, R+1) float32, and the number of field evaluations.
    """
    stride = 2**upsampling_steps
    axis = np.arange(resolution0 + 1) * stride
    coarse_index = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = evaluate(coarse_index).reshape((resolution0 + 1,) * 3)
    num_queries = coarse_index.shape[0]
    candidates = np.ones((resolution0,) * 3, dtype=bool)
    for _ in range(upsampling_steps):
        half_diagonal = 0.5 * float(np.linalg.norm(spacing * stride))
        margin = None if lipschitz is None else safety * lipschitz * half_diagonal
        refine = cells_to_refine(values, level, margin, dilation) & candidates
        values = upsample_grid(values)
        stride //= 2
        candidates = refine.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        fresh = cell_vertices(candidates)
        fresh[0::2, 0::2, 0::2] = False  # already evaluated at the coarser level
        fresh_index = np.argwhere(fresh)
        if len(fresh_index):
            values[fresh] = evaluate(fresh_index * stride)
        num_queries += fresh_index.shape[0]
    return values, num_queries
