"""Pixel rays (geometry/raycast.py): each ray goes through its pixel centre, row-major, from the camera centre."""
from __future__ import annotations

import numpy as np
from shapelab.geometry.raycast import camera_rays
from shapelab.renderers.cameras import project


def test_camera_rays_pass_through_their_pixel_centres():
    K = np.array([[60.0, 0.0, 15.0], [0.0, 55.0, 11.0], [0.0, 0.0, 1.0]])
    angle = 0.4
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    Rt = np.concatenate([rotation, [[0.1], [-0.2], [2.5]]], axis=1)
    width, height = 7, 5
    origins, directions = camera_rays(K, Rt, width, height)
    assert origins.shape == directions.shape == (width * height, 3)
    np.testing.assert_allclose(origins, np.broadcast_to(-rotation.T @ Rt[:, 3], origins.shape))
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    pixels = project(origins + 1.7 * directions, K, Rt)
    expected = [(col + 0.5, row + 0.5) for row in range(height) for col in range(width)]  # row-major
    np.testing.assert_allclose(pixels, expected, atol=1e-9)
