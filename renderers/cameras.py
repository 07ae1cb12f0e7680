"""Pinhole cameras in one convention, and conversions from the formats that store them.

Convention (DESIGN.md): OpenCV. Camera axes x right, y down, z forward; extrinsics ``Rt`` (3, 4) map
world -> camera (``X_cam = R X + t``); intrinsics ``K`` (3, 3) map to pixels, where pixel (col, row)
covers [col, col + 1) x [row, row + 1), i.e. its centre is at (col + 0.5, row + 0.5).

OccNet's ``img_choy2016/cameras.npz`` (``camera_mat_i`` 3x3, ``world_mat_i`` 3x4) already uses this
convention: ``camera_mat`` is a pixel matrix for the 137x137 image (f = 149.84375 = 137 * 35 mm / 32 mm,
c = 68.5) and ``world_mat`` maps the shape's *original* frame (``occnet_points * scale + loc``) to the camera.
tests/renderers/test_cameras.py checks this by projecting the real pointcloud.npz onto img_choy2016.
Use :func:`extrinsics_for_normalised_frame` to project points given in the OccNet unit-cube frame.

Choy et al. 2016 (3D-R2N2) placement: the camera looks at the origin from azimuth ``a`` (degrees, about
the world y axis, which is up), elevation ``e`` (degrees) and distance ``d``, at position
``d * (cos e cos a, sin e, cos e sin a)``; their rendering_metadata.txt stores
``azimuth elevation 0 distance_ratio fov`` with ``d = distance_ratio * 1.75``.
"""

from __future__ import annotations

import numpy as np

from shapelab.errors import ShapelabError

CHOY2016_IMAGE_SIZE = 137
CHOY2016_MAX_CAMERA_DISTANCE = 1.75
CHOY2016_FOCAL_MM = 35.0
CHOY2016_SENSOR_MM = 32.0


def occnet_to_opencv(camera_mat: np.ndarray, world_mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OccNet ``camera_mat`` (3, 3) pixel intrinsics and ``world_mat`` (3, 4) or (4, 4) -> (K (3, 3), Rt (3, 4)).

    OccNet stores OpenCV-convention matrices already (see the module docstring), so this validates and
    reshapes; a (4, 4) ``world_mat`` must have last row (0, 0, 0, 1).
    """
    camera_mat = np.asarray(camera_mat, dtype=np.float64)
    world_mat = np.asarray(world_mat, dtype=np.float64)
    if camera_mat.shape != (3, 3) or world_mat.shape not in ((3, 4), (4, 4)):
        raise ShapelabError(
            f"camera_mat {camera_mat.shape} / world_mat {world_mat.shape}: expected (3, 3) and (3, 4) or (4, 4); "
            "regenerate cameras.npz with preprocess.py"
        )
    if world_mat.shape == (4, 4) and not np.allclose(world_mat[3], [0, 0, 0, 1]):
        raise ShapelabError("world_mat (4, 4) is not affine (last row != 0 0 0 1); regenerate cameras.npz")
    return camera_mat.copy(), world_mat[:3].copy()


def opencv_to_occnet(K: np.ndarray, Rt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), Rt (3, 4)) -> OccNet (``camera_mat`` (3, 3), ``world_mat`` (3, 4)); same convention."""
    return occnet_to_opencv(K, Rt)


def choy2016_intrinsics(image_size: int = CHOY2016_IMAGE_SIZE) -> np.ndarray:
    """K (3, 3) of the Choy 2016 renderings (35 mm lens, 32 mm sensor) scaled to ``image_size`` pixels."""
    focal = image_size * CHOY2016_FOCAL_MM / CHOY2016_SENSOR_MM
    centre = image_size / 2.0
    return np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])


def look_at_origin(position: np.ndarray, up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    """Rt (3, 4) of an OpenCV camera at ``position`` (3,) looking at the origin with world ``up`` on screen."""
    position = np.asarray(position, dtype=np.float64)
    forward = -position / np.linalg.norm(position)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return np.concatenate([rotation, (-rotation @ position)[:, None]], axis=1)


def choy2016_extrinsics(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Rt (3, 4) world -> camera for Choy 2016 placement (see module docstring), y up, looking at the origin."""
    azimuth, elevation = np.radians(azimuth_deg), np.radians(elevation_deg)
    position = distance * np.array(
        [np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)]
    )
    return look_at_origin(position)


def sample_choy2016_views(
    num_views: int,
    rng: np.random.Generator,
    elevation_range: tuple[float, float] = (25.0, 30.0),
    distance_ratio_range: tuple[float, float] = (0.65, 0.95),
) -> np.ndarray:
    """(num_views, 3) rows (azimuth deg, elevation deg, distance) drawn as in 3D-R2N2's renderings:
    azimuth uniform in [0, 360), elevation in ``elevation_range``, distance ``ratio * 1.75`` with the ratio
    uniform in ``distance_ratio_range`` (the real rendering_metadata.txt has 25-30 deg and ratios 0.65-0.95)."""
    azimuth = rng.uniform(0.0, 360.0, num_views)
    elevation = rng.uniform(*elevation_range, num_views)
    distance = rng.uniform(*distance_ratio_range, num_views) * CHOY2016_MAX_CAMERA_DISTANCE
    return np.stack([azimuth, elevation, distance], axis=1)


def extrinsics_for_normalised_frame(Rt: np.ndarray, loc: np.ndarray, scale: float) -> np.ndarray:
    """Rt (3, 4) for the original frame -> Rt' (3, 4) for points in the OccNet frame ``(x - loc) / scale``.

    ``R (s p + loc) + t = s (R p + (R loc + t) / s)``: the same pixels, camera-space depth divided by ``s``.
    """
    Rt = np.asarray(Rt, dtype=np.float64)
    rotation, translation = Rt[:, :3], Rt[:, 3]
    return np.concatenate(
        [rotation, ((rotation @ np.asarray(loc, np.float64) + translation) / scale)[:, None]], 1
    )


def to_camera(points, Rt):
    """World points (..., N, 3) -> camera-frame points (..., N, 3); Rt (..., 3, 4). numpy or torch."""
    return points @ Rt[..., :3].mT + Rt[..., None, :, 3]


def project(points, K, Rt):
    """Pixels (..., N, 2) (continuous, OpenCV; pixel centres at +0.5) of world points (..., N, 3) seen by
    cameras K (..., 3, 3), Rt (..., 3, 4). Works on numpy arrays and (differentiably) on torch tensors;
    points must be in front of the camera (z > 0)."""
    homogeneous = to_camera(points, Rt) @ K.mT
    return homogeneous[..., :2] / homogeneous[..., 2:3]


# COLMAP camera models (Schönberger & Frahm 2016; COLMAP's src/colmap/sensor/models.h): parameter order,
# and which are pinhole (no distortion). COLMAP's image coordinates put the centre of the top-left pixel at
# (0.5, 0.5) and its poses are world -> camera with x right, y down, z forward, as OpenCV: a COLMAP pose
# (``Image.cam_from_world().matrix()``) is an OpenCV Rt as it is, only the intrinsics need converting.
COLMAP_MODEL_PARAMS = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
}
COLMAP_PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")


def colmap_to_opencv_intrinsics(model: str, params) -> tuple[np.ndarray, np.ndarray]:
    """COLMAP camera ``model`` name and ``params`` (its order, see COLMAP_MODEL_PARAMS) -> (K (3, 3),
    OpenCV distortion coefficients (k1, k2, p1, p2): zeros for pinhole models, (k, 0, 0, 0) for SIMPLE_RADIAL)."""
    if model not in COLMAP_MODEL_PARAMS:
        raise ShapelabError(f"camera model {model!r} is not supported; use one of {sorted(COLMAP_MODEL_PARAMS)}")
    params = np.ravel(np.asarray(params, dtype=np.float64))
    if len(params) != len(COLMAP_MODEL_PARAMS[model]):
        raise ShapelabError(f"camera model {model} takes {len(COLMAP_MODEL_PARAMS[model])} parameters "
                            f"{COLMAP_MODEL_PARAMS[model]}, got {len(params)}; fix the intrinsics")
    values = dict(zip(COLMAP_MODEL_PARAMS[model], params))
    fx, fy = values.get("fx", values.get("f")), values.get("fy", values.get("f"))
    K = np.array([[fx, 0.0, values["cx"]], [0.0, fy, values["cy"]], [0.0, 0.0, 1.0]])
    distortion = np.array([values.get("k1", values.get("k", 0.0)), values.get("k2", 0.0),
                           values.get("p1", 0.0), values.get("p2", 0.0)])
    return K, distortion


def opencv_to_colmap_intrinsics(K: np.ndarray, model: str, distortion=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Inverse of :func:`colmap_to_opencv_intrinsics`: K (3, 3) (+ distortion k1, k2, p1, p2) -> COLMAP params.
    Single-focal models take the mean of fx and fy; a model that cannot hold the distortion given is an error."""
    if model not in COLMAP_MODEL_PARAMS:
        raise ShapelabError(f"camera model {model!r} is not supported; use one of {sorted(COLMAP_MODEL_PARAMS)}")
    K = np.asarray(K, dtype=np.float64)
    k1, k2, p1, p2 = np.asarray(distortion, dtype=np.float64)
    if (model in COLMAP_PINHOLE_MODELS and np.any([k1, k2, p1, p2])) or (model == "SIMPLE_RADIAL" and np.any([k2, p1, p2])):
        raise ShapelabError(f"camera model {model} cannot represent distortion {list(distortion)}; use OPENCV")
    values = {"fx": K[0, 0], "fy": K[1, 1], "f": 0.5 * (K[0, 0] + K[1, 1]), "cx": K[0, 2], "cy": K[1, 2],
              "k": k1, "k1": k1, "k2": k2, "p1": p1, "p2": p2}
    return np.array([values[name] for name in COLMAP_MODEL_PARAMS[model]])
