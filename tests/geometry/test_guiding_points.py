"""Guiding-point operations of Small Steps and Level Sets: matching in the inward cone, capped steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from shapelab.geometry.guiding_points import (
    capped_step_lengths,
    even_subset,
    exterior_offset_points,
    guide_step,
    inward_cone_match,
    march_to_offset_surface,
    point_spacing,
    sphere_samples,
)


def brute_force_match(guides, normals, inputs, spacing, cone_cos=0.9):
    """The released rule literally: min over x of D + [outside cone]·([behind] + [beyond 2 spacing]), <= 0.9999."""
    matched, index = [], []
    for y, n in zip(guides.tolist(), normals.tolist()):
        best, best_j = np.inf, -1
        for j, x in enumerate(inputs.tolist()):
            d = np.subtract(x, y)
            dist = np.linalg.norm(d)
            cos = float(np.dot(d / dist, -np.asarray(n)))
            value = dist + (cos <= cone_cos) * ((cos <= 0) + (dist >= 2 * spacing))
            if value < best:
                best, best_j = value, j
        matched.append(best <= 0.9999)
        index.append(best_j)
    return np.array(matched), np.array(index)


@pytest.mark.parametrize("candidates", [1, 4, 32, 500])  # 1, 4: most guides need the brute-force pass; 500: none
def test_cone_match_equals_the_released_rule(candidates):
    generator = torch.Generator().manual_seed(0)
    guides = torch.rand(40, 3, generator=generator) * 1.6 - 0.8
    normals = torch.nn.functional.normalize(torch.randn(40, 3, generator=generator), dim=-1)
    inputs = torch.rand(150, 3, generator=generator) - 0.5
    matched, index = inward_cone_match(guides, normals, inputs, spacing=0.05, candidates=candidates, chunk=7)
    expected_matched, expected_index = brute_force_match(guides, normals, inputs, 0.05)
    assert 0 < matched.sum() < len(guides)  # both cases occur
    np.testing.assert_array_equal(matched.numpy(), expected_matched)
    np.testing.assert_array_equal(index.numpy()[expected_matched], expected_index[expected_matched])


def test_guiding_points_move_toward_their_targets_and_never_beyond_the_cap():
    # input: a plane z = 0; guides above it at several heights, normals up (inward = -z)
    xy = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 21), np.linspace(-0.5, 0.5, 21)), -1).reshape(-1, 2)
    inputs = torch.tensor(np.column_stack([xy, np.zeros(len(xy))]), dtype=torch.float32)
    heights = torch.tensor([0.05, 0.08, 0.3, 0.6, 0.9])
    guides = torch.stack([torch.zeros(5), torch.zeros(5), heights], dim=1)
    normals = torch.tensor([[0.0, 0.0, 1.0]]).repeat(5, 1)
    radius, cap = 0.05, 0.1
    step = guide_step(guides, normals, inputs, radius, spacing=0.05, cap_floor=cap)
    assert step.matched.all()
    assert (step.steps.abs() <= cap + 1e-6).all()
    new_heights = step.points[:, 2]
    before = (guides[:, 2] - radius).abs()
    after = (new_heights - radius).abs()
    assert (after <= before + 1e-6).all() and (after < before).any()  # closer to r above the plane
    np.testing.assert_allclose(new_heights.numpy(), [0.05, 0.05, 0.2, 0.5, 0.8], atol=1e-5)
    np.testing.assert_allclose(step.points[:, :2].numpy(), 0.0, atol=1e-6)  # along the normal only


def test_the_cap_is_the_smallest_target_when_all_are_far():
    lengths, cap = capped_step_lengths(torch.tensor([0.3, 0.5, 0.9]), cap_floor=0.1)
    assert cap == pytest.approx(0.3) and lengths.tolist() == pytest.approx([0.3, 0.3, 0.3])
    lengths, cap = capped_step_lengths(torch.tensor([-0.4, 0.05, 0.9]), cap_floor=0.1)
    assert cap == 0.1 and lengths.tolist() == pytest.approx([-0.1, 0.05, 0.1])


def test_march_reaches_the_dilated_surface_of_a_sphere():
    rng = np.random.default_rng(0)
    inputs = sphere_samples(4000, 0.5, rng)
    start = sphere_samples(500, 1.0, rng)
    points, normals = march_to_offset_surface(start, start.copy(), cKDTree(inputs), 0.1, 0.01, 100, rng)
    assert len(points) > 400
    distance, _ = cKDTree(inputs).query(points)
    assert (distance <= 0.1 + 1e-9).all() and (distance > 0.099).all()  # r from its anchor, maybe nearer another
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 0.6, atol=0.02)
    assert ((normals * points).sum(1) > 0.9 * np.linalg.norm(points, axis=1)).mean() > 0.95  # outward


def test_point_spacing_and_even_subset():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(10) * 0.1] * 2), -1).reshape(-1, 2)
    plane = np.column_stack([grid, np.zeros(len(grid))])
    assert point_spacing(plane) == pytest.approx(0.1 * (1 + 1 + np.sqrt(2) + np.sqrt(2)) / 4, rel=0.3)
    chosen = even_subset(sphere_samples(5000, 1.0, rng), 300, rng)
    assert len(chosen) == 300 and len(np.unique(chosen)) == 300


def test_the_outward_pass_reaches_the_far_wall_of_a_cavity():
    # a channel: two walls x = ±0.3 (|y|, |z| <= 0.5), open at the top and bottom; dilation r = 0.05
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 41), np.linspace(-0.5, 0.5, 41)), -1).reshape(-1, 2)
    walls = np.concatenate([np.column_stack([np.full(len(grid), side), grid]) for side in (-0.3, 0.3)])
    tree, radius = cKDTree(walls), 0.05
    start = sphere_samples(3000, 1.0, rng)
    inward, _ = march_to_offset_surface(start, start.copy(), tree, radius, radius / 10, 50, rng)
    points, normals = exterior_offset_points(start, tree, radius, np.random.default_rng(0))
    distance, _ = tree.query(points)
    assert (distance <= radius + 1e-9).all()
    inner = lambda p: (np.abs(p[:, 0]) < 0.3) & (np.abs(p[:, 1:]) < 0.4).all(axis=1)  # inner faces, off the edges
    between = inner(points)
    assert ((normals[between, 0] * np.sign(points[between, 0])) < -0.9).all()  # facing into the channel
    assert between.sum() > 2 * inner(inward).sum()  # the outward pass adds most of the inner-face points
