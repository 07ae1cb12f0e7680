"""Small shaded previews of meshes for dashboards (not differentiable; ray casting with trimesh)."""
from __future__ import annotations

import numpy as np
import trimesh


def _view_basis(view_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (right, up, forward) for a camera looking along ``view_dir`` with +y up."""
    forward = view_dir / np.linalg.norm(view_dir)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, forward), forward


def render_mesh_thumbnail(
    mesh: trimesh.Trimesh, size: int = 128, view_dir=(-1.0, -0.8, -1.2), background: int = 255
) -> np.ndarray:
    """Orthographic Lambert-shaded image of a mesh, fitted to its bounding sphere.

    Args:
        mesh: any triangle mesh (an empty one gives a blank image).
        size: image side in pixels.
        view_dir: (3,) direction the camera looks along (from the viewer toward the object).
        background: grey level of pixels no ray hits.
    Returns:
        (size, size, 3) uint8 RGB image.
    """
    image = np.full((size, size, 3), background, dtype=np.uint8)
    if len(mesh.faces) == 0:
        return image
    right, up, forward = _view_basis(np.asarray(view_dir, dtype=np.float64))
    centre = mesh.bounding_sphere.center
    radius = float(mesh.bounding_sphere.primitive.radius) * 1.05
    pixel = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(pixel, -pixel)
    origins = centre + radius * (u.reshape(-1, 1) * right + v.reshape(-1, 1) * up) - 2.0 * radius * forward
    directions = np.broadcast_to(forward, origins.shape)
    faces, rays, _ = mesh.ray.intersects_id(origins, directions, multiple_hits=False, return_locations=True)
    shade = 0.25 + 0.75 * np.abs(mesh.face_normals[faces] @ -forward)
    colour = np.array([110.0, 150.0, 220.0]) / 255.0
    image.reshape(-1, 3)[rays] = np.clip(shade[:, None] * colour * 255.0, 0, 255).astype(np.uint8)
    return image
