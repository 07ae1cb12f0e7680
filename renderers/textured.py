"""Textured ray-cast rendering (trimesh + embree): a procedural solid colour texture so that feature
detectors (SIFT in COLMAP) find many stable points on the surface, for Structure-from-Motion tests.

The texture is a function of the 3D surface point, not of the view (a solid texture), and never repeats
(so SIFT's ratio test keeps its matches): value noise, i.e. independent N(0, 1) values on cubic lattices of
spacing ``cell_sizes`` (units of the mesh) interpolated by cubic splines, summed over the octaves; the
luminance is ``0.6 + contrast * noise / sqrt(octaves)``, times a colour tint in [0.7, 1] from the coarsest
octave's spacing (three more lattices). Detail lives in the luminance because SIFT works on grey levels. Shading is Lambert from a light fixed in the
world (two-sided, plus ambient), so a point looks the same from every camera up to the light.
Cameras follow renderers/cameras.py (OpenCV K, world->camera Rt, pixel centres at +0.5); the background
is white, the mask is "a ray hits the mesh".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.ndimage import map_coordinates, spline_filter
from shapelab.geometry.raycast import BACKGROUND, RenderedView, camera_rays


@dataclass
class SolidTexture:
    """Random multi-octave value-noise solid texture (see the module docstring); deterministic given ``seed``."""

    seed: int = 0
    cell_sizes: tuple[float, ...] = (0.08, 0.04, 0.02, 0.01)
    contrast: float = 0.35
    extent: float = 0.6

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        # cubic-spline coefficients computed once (map_coordinates would re-filter every call)
        self.luminance = [spline_filter(rng.standard_normal(self.lattice_shape(h))) for h in self.cell_sizes]
        self.tint = [spline_filter(rng.standard_normal(self.lattice_shape(self.cell_sizes[0]))) for _ in range(3)]

    def lattice_shape(self, cell: float) -> tuple[int, int, int]:
        return (int(np.ceil(2 * self.extent / cell)) + 4,) * 3

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Colours (N, 3) in [0, 1] of surface points (N, 3) (inside the cube of half-side ``extent``)."""
        noise = sum(self.sample(points, lattice, h) for lattice, h in zip(self.luminance, self.cell_sizes))
        luminance = 0.6 + self.contrast * noise / np.sqrt(len(self.cell_sizes))
        tint = 0.85 + 0.15 * np.tanh(np.stack([self.sample(points, t, self.cell_sizes[0]) for t in self.tint], 1))
        return np.clip(luminance[:, None] * tint, 0.0, 1.0)

    def sample(self, points: np.ndarray, lattice: np.ndarray, cell: float) -> np.ndarray:
        """(N,) cubic-spline interpolation of a random lattice of spacing ``cell`` at ``points`` (N, 3)."""
        coordinates = ((np.asarray(points, np.float64) + self.extent) / cell + 2).T
        return map_coordinates(lattice, coordinates, order=3, mode="nearest", prefilter=False)


def render_textured_view(
    mesh: trimesh.Trimesh,
    K: np.ndarray,
    Rt: np.ndarray,
    width: int,
    height: int,
    texture: SolidTexture,
    light: tuple[float, float, float] = (0.3, 1.0, 0.5),
    ambient: float = 0.6,
) -> RenderedView:
    """Render ``mesh`` with ``texture`` seen by (K (3, 3), Rt (3, 4)) at width x height pixels, one ray per pixel."""
    origins, directions = camera_rays(K, Rt, width, height)
    locations, ray_index, face_index = mesh.ray.intersects_location(origins, directions, multiple_hits=False)
    depth = np.full(width * height, np.inf, dtype=np.float32)
    depth[ray_index] = (locations @ Rt[:, :3].T + Rt[:, 3])[:, 2]
    light_direction = np.asarray(light, dtype=np.float64) / np.linalg.norm(light)
    lambert = np.abs(mesh.face_normals[face_index] @ light_direction)
    shade = ambient + (1.0 - ambient) * lambert
    rgb = np.full((width * height, 3), BACKGROUND, dtype=np.uint8)
    rgb[ray_index] = np.clip(255.0 * shade[:, None] * texture(locations), 0, 255).astype(np.uint8)
    return RenderedView(
        rgb.reshape(height, width, 3), np.isfinite(depth).reshape(height, width), depth.reshape(height, width)
    )
