"""``cameras.npz`` of a multi-view capture (SfM output or built-in capture), in the project's layout.

Keys: OccNet's ``camera_mat_i`` (3, 3) / ``world_mat_i`` (3, 4) for view i (written through
renderers/cameras.py, so the OccNet readers load it unchanged), plus ``K`` (V, 3, 3), ``Rt`` (V, 3, 4)
(OpenCV: world -> camera, pixel K), ``image_names`` (V,) unicode (the image file of view i, relative to
``image_dir``), ``width`` / ``height`` (V,) pixels, and ``image_dir`` / ``mask_dir`` (unicode scalars; '' =
none): the folders of the images these cameras fit (the undistorted ones when the model had distortion) and
of their masks, relative to the file's folder when below it. Only ``allow_pickle=False``-safe arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapelab.renderers.cameras import occnet_to_opencv, opencv_to_occnet

from shapelab.errors import ShapelabError

FIX = "re-run sfm.py for this capture"


@dataclass
class CaptureCameras:
    """Cameras of V views: names (V,), K (V, 3, 3), Rt (V, 3, 4) OpenCV, width / height (V,) pixels."""

    names: list[str]
    K: np.ndarray
    Rt: np.ndarray
    width: np.ndarray
    height: np.ndarray
    image_dir: Path | None = None
    mask_dir: Path | None = None

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def centres(self) -> np.ndarray:
        """(V, 3) camera centres in world coordinates, ``-R^T t``."""
        return -np.einsum("vji,vj->vi", self.Rt[:, :, :3], self.Rt[:, :, 3])

    def subset(self, names: list[str]) -> CaptureCameras:
        rows = [self.index()[name] for name in names]
        return CaptureCameras(list(names), self.K[rows], self.Rt[rows], self.width[rows], self.height[rows],
                              self.image_dir, self.mask_dir)


def write_capture_cameras(path: str | Path, cameras: CaptureCameras) -> Path:
    arrays = {}
    for i, (K, Rt) in enumerate(zip(cameras.K, cameras.Rt)):
        arrays[f"camera_mat_{i}"], arrays[f"world_mat_{i}"] = opencv_to_occnet(K, Rt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to a path
        np.savez(handle, **arrays, K=np.asarray(cameras.K, np.float64), Rt=np.asarray(cameras.Rt, np.float64),
                 image_names=np.array(cameras.names, dtype=str), width=np.asarray(cameras.width, np.int64),
                 height=np.asarray(cameras.height, np.int64),
                 image_dir=np.array(_relative(cameras.image_dir, path.parent)),
                 mask_dir=np.array(_relative(cameras.mask_dir, path.parent)))
    return path


def _relative(folder: str | Path | None, base: Path) -> str:
    if folder is None:
        return ""
    folder = Path(folder).resolve()
    return str(folder.relative_to(base.resolve())) if folder.is_relative_to(base.resolve()) else str(folder)


def read_capture_cameras(path: str | Path) -> CaptureCameras:
    """Read a capture's cameras.npz (ShapelabError naming the file on any problem); K / Rt come from the
    OccNet keys (through renderers/cameras.py), names / sizes / folders from the added keys."""
    path = Path(path)
    if not path.is_file():
        raise ShapelabError(f"{path}: file not found; {FIX}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ShapelabError(f"{path}: not a readable npz file ({exc}); {FIX}") from None
    missing = [key for key in ("image_names", "width", "height", "camera_mat_0", "world_mat_0") if key not in arrays]
    if missing:
        raise ShapelabError(f"{path}: missing key(s) {missing} (an OccNet cameras.npz, not an SfM one?); {FIX}")
    names = [str(name) for name in arrays["image_names"]]
    try:
        pairs = [occnet_to_opencv(arrays[f"camera_mat_{i}"], arrays[f"world_mat_{i}"]) for i in range(len(names))]
    except KeyError as exc:
        raise ShapelabError(f"{path}: {len(names)} image_names but no {exc.args[0]}; {FIX}") from None
    except ShapelabError as exc:
        raise ShapelabError(f"{path}: {exc}") from None
    if arrays["width"].shape != (len(names),) or arrays["height"].shape != (len(names),):
        raise ShapelabError(f"{path}: width/height do not have one entry per image name; {FIX}")
    folders = {key: str(arrays[key]) if key in arrays else "" for key in ("image_dir", "mask_dir")}
    image_dir, mask_dir = (path.parent / folders[key] if folders[key] else None for key in ("image_dir", "mask_dir"))
    return CaptureCameras(names, np.stack([k for k, _ in pairs]), np.stack([rt for _, rt in pairs]),
                          arrays["width"].astype(np.int64), arrays["height"].astype(np.int64), image_dir, mask_dir)
