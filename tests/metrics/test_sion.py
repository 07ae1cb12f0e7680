"""SION% (share of self-intersecting outward normals): 0 for convex shapes, a hand count on a known concavity."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from shapelab.metrics.sion import self_intersecting_normals, sion_percent


def brute_force(points, normals, ray_radius=0.01, min_ahead=0.02):
    """The released definition, one point at a time over all points."""
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    hit = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        offset = points - points[i]
        ahead = offset @ normals[i]
        front = ahead > min_ahead
        if front.any():
            hit[i] = (np.linalg.norm(offset[front] - ahead[front, None] * normals[i], axis=1) <= ray_radius).any()
    return hit


def surface(mesh, count, seed=0):
    points, faces = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points), mesh.face_normals[faces]


def test_a_sphere_and_a_box_have_sion_zero():
    for mesh in (trimesh.creation.icosphere(3, radius=0.4), trimesh.creation.box([0.8, 0.5, 0.3])):
        points, normals = surface(mesh, 20000)
        assert sion_percent(points, normals, num_queries=None) == 0.0


def test_hand_count_on_two_facing_plates():
    """Two parallel squares 0.2 apart facing each other (outward normals toward the other plate): every
    point whose normal ray lands inside the other plate (more than 0.01 from its edge) self-intersects."""
    side, spacing = 0.4, 0.01
    axis = np.arange(-side / 2, side / 2 + 1e-9, spacing)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    bottom = np.column_stack([grid, np.zeros(len(grid))])  # normals +z, toward the top plate
    top = np.column_stack([grid[:, :1] + 0.3, grid[:, 1:], np.full(len(grid), 0.2)])  # shifted by 0.3 in x
    points = np.vstack([bottom, top])
    normals = np.vstack([np.tile([0.0, 0.0, 1.0], (len(grid), 1)), np.tile([0.0, 0.0, -1.0], (len(grid), 1))])
    # overlap in x: bottom x in [0.1, 0.2] sees the top plate (x in [0.1, 0.5]) and vice versa
    bottom_hits = (bottom[:, 0] >= 0.1 - 0.01 - 1e-9).sum()
    top_hits = (top[:, 0] <= 0.2 + 0.01 + 1e-9).sum()
    expected = 100.0 * (bottom_hits + top_hits) / len(points)
    assert sion_percent(points, normals, num_queries=None) == pytest.approx(expected)
    assert 0 < expected < 50


def test_fast_path_equals_brute_force_on_a_cup():
    cup = trimesh.creation.annulus(r_min=0.3, r_max=0.35, height=0.6)
    cup = trimesh.boolean.union([cup, trimesh.creation.cylinder(0.35, 0.05).apply_translation([0, 0, -0.3])],
                                engine="manifold")
    points, normals = surface(cup, 3000)
    fast = self_intersecting_normals(points, normals)
    np.testing.assert_array_equal(fast, brute_force(points, normals))
    assert 5 < 100 * fast.mean() < 90  # inner walls and floor see the other side (3000 points: sparse)


def test_subset_estimate_and_empty_input():
    cup = trimesh.creation.annulus(r_min=0.3, r_max=0.35, height=0.6)
    points, normals = surface(cup, 20000)
    full = sion_percent(points, normals, num_queries=None)
    estimate = sion_percent(points, normals, num_queries=4000, seed=1)
    assert abs(estimate - full) < 3 * 50 / np.sqrt(4000)
    assert np.isnan(sion_percent(np.zeros((0, 3)), np.zeros((0, 3))))
