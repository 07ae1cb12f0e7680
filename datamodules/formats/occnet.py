"""Occupancy Networks on-disk formats (Mescheder et al. 2019, released preprocessing), read and written exactly.

Per shape ``<synset>/<id>/``:
- ``points.npz``: ``points`` float16 (N, 3) uniform in the cube of side 1.1, ``occupancies`` np.packbits of
  (N,) bool, ``loc`` (3,), ``scale`` (); normalised = (original - loc) / scale.
- ``pointcloud.npz``: ``points``, ``normals`` float16 (N, 3), ``loc``, ``scale``.
- ``voxels.npz``: ``occ`` np.packbits of a (R, R, R) bool grid (C order, axes x, y, z, cells covering the unit
  cube [-0.5, 0.5]^3 of the normalised frame: cell (i, j, k) is centred at -0.5 + (i + 0.5) / R, ...) and
  ``resolution`` (int).
- ``img_choy2016/cameras.npz``: ``camera_mat_i`` (3, 3), ``world_mat_i`` (3, 4), see renderers/cameras.py;
  ``img_choy2016/NNN.jpg`` RGB views; our additions ``mask/NNN.png`` (0 / 255) and ``depth/NNN.npz``
  (``depth`` float32 (H, W), camera-space z in original units, inf = background).
Per synset ``{train,val,test}.lst`` (one id per line); per dataset ``metadata.yaml`` ``{synset: {id, name}}``.
loc/scale are written as float32 (the released files use float16; both read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from shapelab.datamodules.formats.validation import (
    atomic_write,
    check_array,
    check_points,
    fail,
    load_npz,
    require_file,
    save_npz,
)
from shapelab.renderers.cameras import occnet_to_opencv, opencv_to_occnet

from shapelab.errors import ShapelabError


def _frame(path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    loc = check_array(path, "loc", arrays["loc"].reshape(-1), (3,)).astype(np.float32)
    scale = check_array(path, "scale", arrays["scale"].reshape(-1), (1,))
    if scale[0] <= 0:
        raise fail(path, f"'scale' is {scale[0]}, expected > 0")
    return loc, float(scale[0])


def _frame_arrays(loc, scale) -> dict[str, np.ndarray]:
    return {"loc": np.asarray(loc, np.float32).reshape(3), "scale": np.float32(scale)}


def write_points(path: str | Path, points: np.ndarray, occupancies: np.ndarray, loc, scale: float) -> Path:
    """Write points.npz: points (N, 3) -> float16, occupancies (N,) bool -> packbits."""
    points = check_points("points", points)
    occupancies = np.asarray(occupancies).reshape(-1).astype(bool)
    if len(occupancies) != len(points):
        raise ShapelabError(
            f"{path}: {len(points)} points but {len(occupancies)} occupancies; fix the caller"
        )
    return save_npz(
        path,
        points=points.astype(np.float16),
        occupancies=np.packbits(occupancies),
        **_frame_arrays(loc, scale),
    )


def read_points(path: str | Path) -> dict:
    """Read points.npz -> dict(points float32 (N, 3), occupancies bool (N,), loc float32 (3,), scale float)."""
    arrays = load_npz(path, ("points", "occupancies", "loc", "scale"))
    points = check_array(path, "points", arrays["points"], (None, 3)).astype(np.float32)
    occupancies = arrays["occupancies"].reshape(-1)
    if occupancies.dtype == np.uint8 and len(occupancies) == (len(points) + 7) // 8:
        occupancies = np.unpackbits(occupancies)[: len(points)]
    elif len(occupancies) != len(points) or occupancies.dtype.kind not in "biu":
        raise fail(
            path,
            f"'occupancies' has {len(occupancies)} entries of {occupancies.dtype} for {len(points)} points "
            "(expected np.packbits of N bools or N bools)",
        )
    loc, scale = _frame(path, arrays)
    return {"points": points, "occupancies": occupancies.astype(bool), "loc": loc, "scale": scale}


def write_pointcloud(path: str | Path, points: np.ndarray, normals: np.ndarray, loc, scale: float) -> Path:
    """Write pointcloud.npz: surface points and unit normals (N, 3) as float16."""
    points, normals = check_points("points", points), check_points("normals", normals)
    if points.shape != normals.shape:
        raise ShapelabError(
            f"{path}: points {points.shape} and normals {normals.shape} differ; fix the caller"
        )
    return save_npz(
        path,
        points=points.astype(np.float16),
        normals=normals.astype(np.float16),
        **_frame_arrays(loc, scale),
    )


def read_pointcloud(path: str | Path) -> dict:
    """Read pointcloud.npz -> dict(points, normals float32 (N, 3), loc float32 (3,), scale float)."""
    arrays = load_npz(path, ("points", "normals", "loc", "scale"))
    points = check_array(path, "points", arrays["points"], (None, 3)).astype(np.float32)
    normals = check_array(path, "normals", arrays["normals"], (len(points), 3)).astype(np.float32)
    loc, scale = _frame(path, arrays)
    return {"points": points, "normals": normals, "loc": loc, "scale": scale}


def write_voxels(path: str | Path, occ: np.ndarray) -> Path:
    """Write voxels.npz from a cubic (R, R, R) bool grid (axes x, y, z; see module docstring)."""
    occ = np.asarray(occ, dtype=bool)
    if occ.ndim != 3 or len(set(occ.shape)) != 1:
        raise ShapelabError(f"{path}: voxel grid has shape {occ.shape}, expected (R, R, R); fix the caller")
    return save_npz(path, occ=np.packbits(occ.reshape(-1)), resolution=np.int64(occ.shape[0]))


def read_voxels(path: str | Path) -> np.ndarray:
    """Read voxels.npz -> (R, R, R) bool grid."""
    arrays = load_npz(path, ("occ", "resolution"))
    resolution = int(check_array(path, "resolution", arrays["resolution"].reshape(-1), (1,), kind="iu")[0])
    packed = check_array(path, "occ", arrays["occ"].reshape(-1), ((resolution**3 + 7) // 8,), kind="u")
    return np.unpackbits(packed)[: resolution**3].astype(bool).reshape(resolution, resolution, resolution)


def write_split_lst(path: str | Path, ids: list[str]) -> Path:
    """Write an OccNet split list (one model id per line)."""
    return atomic_write(path, lambda tmp: tmp.write_text("".join(f"{model_id}\n" for model_id in ids)))


def read_split_lst(path: str | Path) -> list[str]:
    """Read an OccNet split list -> model ids in file order (blank lines ignored)."""
    path = require_file(path, "check the data directory or re-run preprocess.py")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_metadata(path: str | Path, names: dict[str, str]) -> Path:
    """Write metadata.yaml ``{synset: {id: synset, name: category}}`` from ``{synset: category}``."""
    content = {synset: {"id": synset, "name": name} for synset, name in names.items()}
    return atomic_write(path, lambda tmp: tmp.write_text(yaml.safe_dump(content, sort_keys=True)))


def read_metadata(path: str | Path) -> dict[str, dict[str, str]]:
    """Read metadata.yaml -> ``{synset: {"id": synset, "name": category}}``."""
    path = require_file(path, "re-run preprocess.py to write it")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise fail(path, f"not valid YAML ({str(err).splitlines()[0]})", "fix or regenerate it") from None
    if not isinstance(content, dict) or not all(
        isinstance(entry, dict) and "name" in entry for entry in content.values()
    ):
        raise fail(path, "expected {synset: {id: synset, name: category}}", "fix or regenerate it")
    return {
        str(synset): {"id": str(entry.get("id", synset)), "name": str(entry["name"])}
        for synset, entry in content.items()
    }


def write_cameras(path: str | Path, Ks: list[np.ndarray], Rts: list[np.ndarray]) -> Path:
    """Write cameras.npz with OccNet keys ``camera_mat_i`` / ``world_mat_i`` from OpenCV K (3, 3), Rt (3, 4)."""
    if len(Ks) != len(Rts):
        raise ShapelabError(f"{path}: {len(Ks)} intrinsics but {len(Rts)} extrinsics; fix the caller")
    arrays = {}
    for index, (K, Rt) in enumerate(zip(Ks, Rts)):
        arrays[f"camera_mat_{index}"], arrays[f"world_mat_{index}"] = opencv_to_occnet(K, Rt)
    return save_npz(path, **arrays)


def read_cameras(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read cameras.npz -> [(K (3, 3), Rt (3, 4))] per view, OpenCV convention, float64, in view order."""
    arrays = load_npz(path, None)
    count = sum(1 for name in arrays if name.startswith("camera_mat_"))
    if count == 0:
        raise fail(path, "has no camera_mat_i / world_mat_i entries")
    missing = [
        f"{kind}_{i}"
        for i in range(count)
        for kind in ("camera_mat", "world_mat")
        if f"{kind}_{i}" not in arrays
    ]
    if missing:
        raise fail(path, f"missing key(s) {missing}")
    cameras = []
    for index in range(count):
        camera_mat = check_array(path, f"camera_mat_{index}", arrays[f"camera_mat_{index}"], (3, 3))
        world_mat = check_array(path, f"world_mat_{index}", arrays[f"world_mat_{index}"], (None, 4))
        try:
            cameras.append(occnet_to_opencv(camera_mat, world_mat))
        except ShapelabError as err:
            raise fail(path, str(err)) from None
    return cameras


def write_view(folder: str | Path, index: int, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> None:
    """Write view ``index`` into an ``img_choy2016`` folder: ``NNN.jpg``, ``mask/NNN.png``, ``depth/NNN.npz``."""
    folder, stem = Path(folder), f"{index:03d}"
    atomic_write(
        folder / "mask" / f"{stem}.png",
        lambda tmp: Image.fromarray(255 * mask.astype(np.uint8)).save(tmp, "PNG"),
    )
    save_npz(folder / "depth" / f"{stem}.npz", compressed=True, depth=np.asarray(depth, dtype=np.float32))
    atomic_write(folder / f"{stem}.jpg", lambda tmp: Image.fromarray(rgb).save(tmp, "JPEG", quality=95))


def read_depth(path: str | Path) -> np.ndarray:
    """Read ``depth/NNN.npz`` -> (H, W) float32 depth (inf = background; NaN is an error)."""
    depth = load_npz(path, ("depth",))["depth"]
    check_array(path, "depth", depth, (None, None), finite=False)
    if np.isnan(depth).any():
        raise fail(path, "'depth' contains NaN values")
    return depth.astype(np.float32)
