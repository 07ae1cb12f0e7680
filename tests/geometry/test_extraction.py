"""Mesh extraction: dense marching cubes vs coarse-to-fine on analytic fields."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapelab.geometry.extraction import extract_mesh

from shapelab.errors import ShapelabError


def sphere_sdf(points: torch.Tensor, radius: float = 0.6) -> torch.Tensor:
    return points.norm(dim=-1) - radius


def box_sdf(points: torch.Tensor, half_size=(0.5, 0.3, 0.2), centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    q = (points - torch.tensor(centre)).abs() - torch.tensor(half_size)
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


def assert_same_mesh(a, b, spacing: float):
    """Identical triangulation; vertices equal up to float32 rounding of the field (<< cell size)."""
    assert np.array_equal(a.faces, b.faces)
    assert a.vertices.shape == b.vertices.shape
    assert np.abs(a.vertices - b.vertices).max() <= 1e-4 * spacing


@pytest.mark.parametrize("field", [sphere_sdf, box_sdf], ids=["sphere", "box"])
def test_coarse_to_fine_equals_dense_for_sdf(field):
    dense = extract_mesh(field, 128, method="dense")
    fine = extract_mesh(field, 128, method="coarse_to_fine")
    assert len(dense.mesh.faces) > 1000
    assert_same_mesh(dense.mesh, fine.mesh, 2 / 128)
    assert dense.num_queries == 129**3
    assert fine.num_queries * 5 < dense.num_queries


def test_sphere_mesh_is_outward_and_accurate():
    mesh = extract_mesh(sphere_sdf, 64).mesh
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.6**3, rel=5e-3)  # > 0: outward faces
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.6).max() < 2e-3


def test_thin_plate_needs_lipschitz_criterion():
    """A plate thinner than a coarse cell, between coarse vertices: the Lipschitz test keeps it,
    the sign-change test (no bound) misses it, as documented."""

    def plate(points):
        return box_sdf(points, half_size=(0.5, 0.5, 0.004), centre=(0.0, 0.0, 0.03))

    dense = extract_mesh(plate, 128, method="dense")
    fine = extract_mesh(plate, 128, method="coarse_to_fine")
    sign_only = extract_mesh(plate, 128, method="coarse_to_fine", lipschitz=None)
    assert len(dense.mesh.faces) > 0
    assert_same_mesh(dense.mesh, fine.mesh, 2 / 128)
    assert len(sign_only.mesh.faces) == 0


def test_occupancy_mise_matches_dense():
    """OccNet setting: logits inside above, threshold 0.2 as a logit, resolution 32 * 2**2."""

    def occupancy_logits(points):
        return 8.0 * (0.05 - box_sdf(points, half_size=(0.2, 0.15, 0.1)))

    level = math.log(0.2 / 0.8)
    kwargs = {"bounds": (-0.55, 0.55), "level": level, "inside": "above", "resolution0": 32, "upsampling_steps": 2}
    dense = extract_mesh(occupancy_logits, method="dense", **kwargs)
    mise = extract_mesh(occupancy_logits, lipschitz=None, **kwargs)
    assert dense.num_queries == 129**3 and mise.num_queries * 4 < dense.num_queries
    assert_same_mesh(dense.mesh, mise.mesh, 1.1 / 128)
    assert dense.mesh.volume > 0  # outward faces for inside="above"


def test_chunk_size_does_not_change_the_mesh():
    big = extract_mesh(sphere_sdf, 64, chunk_size=1 << 20)
    small = extract_mesh(sphere_sdf, 64, chunk_size=777)
    assert big.num_queries == small.num_queries
    assert_same_mesh(big.mesh, small.mesh, 2 / 64)


def test_non_cubic_bounds_put_the_mesh_in_the_field_frame():
    def shifted(points):
        return sphere_sdf(points - torch.tensor([0.2, -0.1, 0.3]), radius=0.25)

    mesh = extract_mesh(shifted, 64, bounds=((-0.1, -0.4, 0.0), (0.5, 0.2, 0.6))).mesh
    assert np.allclose(mesh.vertices.mean(axis=0), [0.2, -0.1, 0.3], atol=2e-3)


@pytest.mark.parametrize("method", ["dense", "coarse_to_fine"])
def test_no_surface_gives_empty_mesh(method):
    result = extract_mesh(lambda p: p.norm(dim=-1) + 1.0, 32, method=method)
    assert len(result.mesh.vertices) == 0 and len(result.mesh.faces) == 0
    assert result.num_queries > 0


def test_bad_inputs_raise_shapelab_error():
    with pytest.raises(ShapelabError, match="NaN"):
        extract_mesh(lambda p: p[:, 0] * float("nan"), 16)
    with pytest.raises(ShapelabError, match="method"):
        extract_mesh(sphere_sdf, 16, method="octree")
    with pytest.raises(ShapelabError, match="divisible"):
        extract_mesh(sphere_sdf, 100, resolution0=32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_path_matches_cpu():
    cpu = extract_mesh(sphere_sdf, 64)
    gpu = extract_mesh(sphere_sdf, 64, device="cuda")
    assert np.array_equal(cpu.mesh.faces, gpu.mesh.faces)
    assert np.abs(cpu.mesh.vertices - gpu.mesh.vertices).max() < 1e-5


def test_close_pads_like_occnet_and_caps_a_surface_cut_by_the_box():
    """OccNet pads the grid with -1e6 before marching cubes: a solid leaving the box comes out closed,
    capped on the box faces; without padding the mesh is open there."""

    def slab_logits(points):  # occupancy logits of a slab |z| < 0.2 spanning the whole box in x and y
        return 10.0 * (0.2 - points[:, 2].abs())

    kwargs = {"bounds": (-0.55, 0.55), "level": math.log(0.2 / 0.8), "inside": "above", "method": "dense"}
    opened = extract_mesh(slab_logits, 32, **kwargs).mesh
    closed = extract_mesh(slab_logits, 32, close=True, **kwargs).mesh
    assert not opened.is_watertight and closed.is_watertight
    half_thickness = 0.2 - math.log(0.2 / 0.8) / 10  # logit(0.2) level: |z| < 0.2 + 0.139
    assert closed.volume == pytest.approx(1.1 * 1.1 * 2 * half_thickness, rel=0.01)
    assert np.abs(closed.vertices[:, :2]).max() == pytest.approx(0.55, abs=1e-4)  # caps on the box faces
    sdf_closed = extract_mesh(lambda p: p[:, 2].abs() - 0.2, 32, bounds=(-0.55, 0.55), close=True).mesh
    assert sdf_closed.is_watertight and sdf_closed.volume > 0  # SDF (inside below): padded with +1e6


def test_mise_without_dilation_refines_only_straddling_cells():
    """dilation=0 is OccNet's rule (libmise: subdivide a voxel next to both signs); dilation 1 also refines
    neighbours (more queries). A sphere's mesh is the dense one either way."""

    def ball_logits(points):
        return 8.0 * (0.3 - points.norm(dim=-1))

    kwargs = {"bounds": (-0.55, 0.55), "level": math.log(0.2 / 0.8), "inside": "above",
              "resolution0": 32, "upsampling_steps": 2, "lipschitz": None}
    dense = extract_mesh(ball_logits, method="dense", **kwargs)
    occnet = extract_mesh(ball_logits, dilation=0, **kwargs)
    dilated = extract_mesh(ball_logits, dilation=1, **kwargs)
    assert occnet.num_queries < dilated.num_queries < dense.num_queries
    assert_same_mesh(dense.mesh, occnet.mesh, 1.1 / 128)
    assert_same_mesh(dense.mesh, dilated.mesh, 1.1 / 128)


def test_mise_cells_to_refine_matches_a_per_cell_loop():
    """The vectorised criterion against the obvious loop over cells (corner at the level = both sides)."""
    from shapelab.geometry.mise import cells_to_refine

    rng = np.random.default_rng(0)
    values = rng.choice([-1.0, 0.0, 1.0], size=(6, 6, 6), p=[0.45, 0.1, 0.45]).astype(np.float32)
    fast = cells_to_refine(values, 0.0, None, dilation=0)
    for i, j, k in np.ndindex(5, 5, 5):
        corners = values[i : i + 2, j : j + 2, k : k + 2]
        assert fast[i, j, k] == bool((corners >= 0).any() and (corners <= 0).any())
