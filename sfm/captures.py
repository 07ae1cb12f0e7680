"""Built-in captures with known cameras: textured renderings of the built-in shapes, for testing and
benchmarking Structure-from-Motion (and the multi-view models on recovered cameras).

A capture folder (the layout ``python sfm.py`` and ``data=colmap_views`` read):
    images/NNN.png      RGB views on white (renderers/textured.py)
    masks/NNN.png       silhouettes, 0 / 255
    cameras_true.npz    the true cameras (sfm/cameras_file.py layout) in the shape's frame
    pointcloud.npz      ``points`` / ``normals`` (N, 3) sampled on the shape, same frame (for scoring)
The shape's frame is the built-in generator's (ShapeNetCore v2 normalisation: y up, bounding-box diagonal 1,
centred). Cameras sit on rings (``ViewSet``): for each elevation, ``azimuths`` views evenly spaced over ``azimuth_span``
degrees from azimuth 0 (+z, the front; full rings at different elevations are offset by half a step), all
looking at the origin from ``distance``,
with a focal length such that the bounding sphere (radius 0.5) fills ``fill`` of the image side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from shapelab.geometry.sampling import sample_surface
from shapelab.renderers.cameras import look_at_origin
from shapelab.renderers.textured import SolidTexture, render_textured_view
from shapelab.sfm.cameras_file import CaptureCameras, write_capture_cameras
from tqdm.auto import tqdm

from shapelab.errors import ShapelabError

SHAPE_RADIUS = 0.5  # bounding-sphere radius of a v2-normalised shape (bounding-box diagonal 1)


@dataclass
class ViewSet:
    """Camera rings: ``azimuths`` views per elevation (degrees), at ``distance``, ``image_size`` px square."""

    azimuths: int = 18
    elevations: list[float] = field(default_factory=lambda: [15.0, 40.0])
    azimuth_span: float = 360.0
    distance: float = 1.6
    image_size: int = 512
    fill: float = 0.85

    def cameras(self) -> CaptureCameras:
        if self.azimuths < 1 or not self.elevations or self.distance <= SHAPE_RADIUS:
            raise ShapelabError(f"capture views {self}: need azimuths >= 1, one elevation or more and "
                                f"distance > {SHAPE_RADIUS}; fix capture.views")
        focal = 0.5 * self.image_size * self.fill / np.tan(np.arcsin(SHAPE_RADIUS / self.distance))
        K = np.array([[focal, 0, self.image_size / 2], [0, focal, self.image_size / 2], [0, 0, 1]])
        Rts = []
        full_circle = self.azimuth_span >= 360.0
        step = np.radians(self.azimuth_span) / (self.azimuths if full_circle else max(1, self.azimuths - 1))
        for ring, elevation in enumerate(np.radians(self.elevations)):
            offset = 0.5 * ring * step if full_circle else 0.0
            for azimuth in np.arange(self.azimuths) * step + offset:
                position = self.distance * np.array(
                    [np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
                Rts.append(look_at_origin(position))
        count = len(Rts)
        return CaptureCameras([f"{i:03d}.png" for i in range(count)], np.repeat(K[None], count, 0), np.stack(Rts),
                              np.full(count, self.image_size), np.full(count, self.image_size))


def write_capture(out_dir: str | Path, mesh: trimesh.Trimesh, views: ViewSet | None = None, seed: int = 0,
                  texture_seed: int = 0, surface_points: int = 30000, progress: bool = True) -> Path:
    """Render the capture of ``mesh`` (a built-in shape: ``datamodules.synthetic.generate_shape``) into ``out_dir``
    (layout in the module docstring); returns out_dir."""
    out = Path(out_dir)
    views = views or ViewSet()
    cameras = views.cameras()
    cameras.image_dir, cameras.mask_dir = out / "images", out / "masks"
    texture = SolidTexture(seed=texture_seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    for name, K, Rt in tqdm(list(zip(cameras.names, cameras.K, cameras.Rt)), desc="rendering capture",
                            disable=not progress, leave=False):
        view = render_textured_view(mesh, K, Rt, views.image_size, views.image_size, texture)
        Image.fromarray(view.rgb).save(out / "images" / name)
        Image.fromarray((view.mask * 255).astype(np.uint8)).save(out / "masks" / name)
    write_capture_cameras(out / "cameras_true.npz", cameras)
    points, normals = sample_surface(mesh, surface_points, np.random.default_rng(seed))
    np.savez(out / "pointcloud.npz", points=points.astype(np.float32), normals=normals.astype(np.float32))
    mesh.export(out / "mesh.ply")
    return out
