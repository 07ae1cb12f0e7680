"""Depth image -> partial SDF samples (DeepSDF shape completion): back-projection and free-space samples against
slow loop references, and on a rendered built-in shape (points on the surface, free space outside)."""
from __future__ import annotations

import igl
import numpy as np
import pytest
import torch
from shapelab.datamodules.synthetic import generate_shape
from shapelab.geometry.depth_observation import (
    backproject_depth,
    camera_centre,
    depth_sdf_samples,
    free_space_samples,
    towards_camera,
)
from shapelab.geometry.raycast import render_view
from shapelab.renderers.cameras import choy2016_extrinsics, choy2016_intrinsics

from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)

CHAIR = "03001627"


def random_camera(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    K = np.array([[rng.uniform(20, 40), 0, rng.uniform(4, 8)], [0, rng.uniform(20, 40), rng.uniform(4, 8)], [0, 0, 1]])
    return K, choy2016_extrinsics(rng.uniform(0, 360), rng.uniform(-40, 40), rng.uniform(1.5, 3.0))


def test_backprojection_equals_a_pixel_loop():
    rng = np.random.default_rng(0)
    K, Rt = random_camera(rng)
    depth = rng.uniform(0.5, 2.0, (9, 12))
    depth[rng.random(depth.shape) < 0.3] = np.inf
    expected = []
    for row in range(depth.shape[0]):
        for col in range(depth.shape[1]):
            if np.isfinite(depth[row, col]):
                ray = np.linalg.solve(K, [col + 0.5, row + 0.5, 1.0])  # camera coordinates at z = 1
                expected.append(np.linalg.solve(Rt[:, :3], depth[row, col] * ray - Rt[:, 3]))
    points = backproject_depth(torch.from_numpy(depth), torch.from_numpy(K), torch.from_numpy(Rt))
    np.testing.assert_allclose(points.numpy(), np.array(expected), rtol=0, atol=1e-12)
    np.testing.assert_allclose(camera_centre(torch.from_numpy(Rt)).numpy(), np.linalg.solve(Rt[:, :3], -Rt[:, 3]))


def leave_ball_by_bisection(start: np.ndarray, direction: np.ndarray, radius: float) -> float:
    """Distance along the ray from ``start`` (inside the ball) to the sphere, by bisection."""
    low, high = 0.0, 4.0 * radius
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if np.linalg.norm(start + middle * direction) < radius else (low, middle)
    return low


def test_towards_camera_equals_a_loop_with_a_bisected_ball_exit():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(40, 3))
    start *= rng.uniform(0.1, 0.95, (40, 1)) / np.linalg.norm(start, axis=1, keepdims=True)  # inside the unit ball
    fraction = rng.random(40)
    for centre in (np.array([0.3, 2.5, -1.5]), np.array([0.2, 0.1, 0.3])):  # camera outside / inside the ball
        expected = []
        for point, u in zip(start, fraction):
            direction = (centre - point) / np.linalg.norm(centre - point)
            reach = min(np.linalg.norm(centre - point), leave_ball_by_bisection(point, direction, 1.0))
            expected.append(point + u * reach * direction)
        result = towards_camera(torch.from_numpy(start), torch.from_numpy(centre), torch.from_numpy(fraction), 1.0)
        np.testing.assert_allclose(result.numpy(), np.array(expected), atol=1e-9)
        assert result.norm(dim=-1).max() <= 1.0 + 1e-9


def test_samples_are_mixed_as_asked_and_reproducible():
    surface, centre = torch.rand(50, 3) * 0.5, torch.tensor([0.0, 0.0, 3.0])
    samples = depth_sdf_samples(surface, centre, 1000, 0.3, 1.0, torch.Generator().manual_seed(0))
    assert samples["xyz"].shape == (1000, 3) and samples["free_space"].sum() == 300
    assert torch.all(samples["sdf"] == 0) and not samples["free_space"][:700].any()
    assert (samples["xyz"][:700, None] == surface[None]).all(-1).any(-1).all()  # surface samples are pixels
    again = depth_sdf_samples(surface, centre, 1000, 0.3, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(samples["xyz"], again["xyz"])
    free = free_space_samples(surface, centre, 500, 1.0, torch.Generator().manual_seed(1))
    assert free.norm(dim=-1).max() <= 1.0 + 1e-6


@pytest.fixture(scope="module")
def rendered_chair():
    """A built-in chair (original units, unit bounding-box diagonal) and one 137-px depth view of it."""
    mesh = generate_shape(CHAIR, 0, seed=0)
    K, Rt = choy2016_intrinsics(137), choy2016_extrinsics(30.0, 25.0, 1.3)
    view = render_view(mesh, K, Rt, 137, 137)
    return mesh, K, Rt, view.depth


def test_backprojected_depth_lies_on_the_true_surface(rendered_chair):
    """Tolerance 1e-5 (mesh units, bounding-box diagonal 1): the renderer stores the hit's camera z in float32
    (relative error 2^-24, ~1e-7 at depth ~1.3) and the back-projection is exact up to rounding, so the error
    budget is ~1e-6 with embree's single-precision hits; a pixel-centre or axis mistake moves points by a pixel
    footprint (~0.008) or more, three orders of magnitude above the tolerance."""
    mesh, K, Rt, depth = rendered_chair
    points = backproject_depth(torch.from_numpy(depth).double(), torch.from_numpy(K), torch.from_numpy(Rt)).numpy()
    assert len(points) == np.isfinite(depth).sum() > 1000
    squared, _, _ = igl.point_mesh_squared_distance(points, mesh.vertices, mesh.faces)
    assert np.sqrt(squared).max() < 1e-5
    shifted = backproject_depth(torch.from_numpy(depth).double(), torch.from_numpy(K + [[0, 0, 0.5], [0, 0, 0], [0, 0, 0]]),
                                torch.from_numpy(Rt)).numpy()  # half a pixel off: the test must notice
    assert np.sqrt(igl.point_mesh_squared_distance(shifted, mesh.vertices, mesh.faces)[0]).max() > 1e-3


def test_free_space_samples_are_outside_the_true_shape(rendered_chair):
    mesh, K, Rt, depth = rendered_chair
    surface = backproject_depth(torch.from_numpy(depth).double(), torch.from_numpy(K), torch.from_numpy(Rt))
    free = free_space_samples(surface, camera_centre(torch.from_numpy(Rt)), 20000, 0.6,
                              torch.Generator().manual_seed(0)).numpy()
    winding = igl.fast_winding_number(mesh.vertices, mesh.faces, free)
    assert np.all(winding < 0.5)
    assert np.linalg.norm(free, axis=1).max() <= 0.6 + 1e-9
    # the check can fail: 5 mm along the rays in front of the surface is outside, 5 mm behind it mostly inside
    centre = camera_centre(torch.from_numpy(Rt)).numpy()
    rays = (surface.numpy() - centre) / np.linalg.norm(surface.numpy() - centre, axis=1, keepdims=True)
    front, behind = surface.numpy() - 0.005 * rays, surface.numpy() + 0.005 * rays
    assert np.all(igl.fast_winding_number(mesh.vertices, mesh.faces, front) < 0.5)
    assert (igl.fast_winding_number(mesh.vertices, mesh.faces, behind) > 0.5).mean() > 0.9
