"""Ray casting (trimesh + embree, no OpenGL): rays through pixel centres, and an RGB view with two-sided Lambert
shading, mask and depth — what the preprocessing renders and what silhouettes are compared with.

Cameras follow renderers/cameras.py (OpenCV K, world->camera Rt, pixel centres at +0.5). Depth is the
camera-space z of the first hit (the unit of the mesh), ``inf`` where the ray misses (background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

BACKGROUND = 255
AMBIENT = 0.3


@dataclass
class RenderedView:
    """rgb (H, W, 3) uint8 on a white background, mask (H, W) bool, depth (H, W) float32 (inf = background)."""

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


def camera_rays(K: np.ndarray, Rt: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """World-space (origins (H*W, 3), unit directions (H*W, 3)) through the pixel centres, row-major."""
    rows, cols = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(rows.size)], axis=1)
    rotation, translation = Rt[:, :3], Rt[:, 3]
    directions = pixels @ np.linalg.inv(K).T @ rotation  # (R^T K^-1 p)^T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -rotation.T @ translation
    return np.broadcast_to(origin, directions.shape).copy(), directions


def render_view(
    mesh: trimesh.Trimesh,
    K: np.ndarray,
    Rt: np.ndarray,
    width: int,
    height: int,
    colour: tuple[float, float, float] = (0.55, 0.6, 0.7),
) -> RenderedView:
    """Render one view of ``mesh`` (in the frame Rt expects) by casting one ray per pixel."""
    origins, directions = camera_rays(K, Rt, width, height)
    locations, ray_index, face_index = mesh.ray.intersects_location(origins, directions, multiple_hits=False)
    depth = np.full(width * height, np.inf, dtype=np.float32)
    depth[ray_index] = (locations @ Rt[:, :3].T + Rt[:, 3])[:, 2]
    lambert = np.abs(np.einsum("ij,ij->i", mesh.face_normals[face_index], directions[ray_index]))
    shade = AMBIENT + (1.0 - AMBIENT) * lambert
    rgb = np.full((width * height, 3), BACKGROUND, dtype=np.uint8)
    rgb[ray_index] = np.clip(255.0 * shade[:, None] * np.asarray(colour), 0, 255).astype(np.uint8)
    mask = np.isfinite(depth)
    return RenderedView(
        rgb.reshape(height, width, 3), mask.reshape(height, width), depth.reshape(height, width)
    )
