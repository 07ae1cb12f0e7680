"""Multi-view captures with recovered cameras (``data=colmap_views``): the photos, user masks and the cameras
``python sfm.py`` wrote, as batches for CAPNet / DRWR (the batch of datamodules/multiview.py, same keys).

A capture is the output folder of one SfM run (README "Cameras from photos"):
    <capture>/cameras.npz        sfm/cameras_file.py layout: K, Rt per registered photo (object frame),
                                 ``image_names``, and the folders of the images (undistorted when needed) and masks
    <capture>/points.ply         the sparse points (object frame)
    <capture>/pointcloud.npz     optional ``points`` (N, 3) of the true surface in the cameras' frame (scoring)
Masks are the user's PNGs (white = object), given to sfm.py as ``masks_dir``; a capture without masks is an
error here (the models learn from silhouettes). Each capture is one shape (synset ``capture``, model id = the
folder name); with a single capture the train, val and test splits are that capture (per-object fitting).
``points_gt`` is ``pointcloud.npz`` when present, else the sparse SfM points inside the unit cube (a proxy:
only textured parts; sfm.py scales the box of the object's points to that cube).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import trimesh
from shapelab.datamodules.common import ShapeDataModule, ShapeDataset, image_tensor, open_image, resize_mask
from shapelab.datamodules.formats.validation import load_npz
from shapelab.datamodules.multiview import background_distance
from shapelab.geometry.farthest_points import farthest_point_sampling
from shapelab.sfm.cameras_file import CaptureCameras, read_capture_cameras

from shapelab.errors import ShapelabError

CAPTURE_SYNSET = "capture"


def mask_file(mask_dir: Path, image_name: str) -> Path:
    return mask_dir / f"{Path(image_name).stem}.png"


def capture_points(folder: Path) -> np.ndarray:
    """(N, 3) float32 points of a capture: pointcloud.npz ``points`` if present, else those of points.ply in
    the unit cube."""
    if (folder / "pointcloud.npz").is_file():
        return load_npz(folder / "pointcloud.npz", ("points",), "write it with points (N, 3)")["points"].astype(np.float32)
    if not (folder / "points.ply").is_file():
        raise ShapelabError(f"{folder}: neither pointcloud.npz nor points.ply; run sfm.py with out_dir={folder}")
    points = np.asarray(trimesh.load(folder / "points.ply", process=False).vertices, dtype=np.float32)
    return points[np.abs(points).max(1) <= 0.5 + 1e-6]  # the object's points: sfm.py fits their box to the unit cube


class ColmapViewsDataset(ShapeDataset):
    """Captures as multi-view silhouettes (module docstring; batch keys as datamodules/multiview.py)."""

    def __init__(self, folders: Sequence[Path], cameras: Sequence[CaptureCameras], seed: int, train: bool,
                 num_views: int, image_size: int | None, mask_size: int, gt_points: int,
                 eval_input_views: int | None):
        super().__init__([(CAPTURE_SYNSET, folder.name) for folder in folders], seed, train)
        self.folders, self.cameras = list(folders), list(cameras)
        self.num_views, self.image_size, self.mask_size, self.gt_points = num_views, image_size, mask_size, gt_points
        self.eval_input_views = eval_input_views
        self._points: dict[int, torch.Tensor] = {}

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cameras = self.cameras[index]
        count = len(cameras.names)
        first = int(rng.integers(count)) if self.train else 0
        chosen = [first, *rng.choice(np.delete(np.arange(count), first), self.num_views - 1, replace=False).tolist()]
        masks = np.stack([resize_mask(self.read_mask(cameras, v), self.mask_size) for v in chosen])
        scales = [np.diag([self.mask_size / cameras.width[v], self.mask_size / cameras.height[v], 1.0]) for v in chosen]
        item = {
            "image": image_tensor(open_image(cameras.image_dir / cameras.names[first], "RGB"), self.image_size),
            "masks": torch.from_numpy(masks.astype(np.float32)),
            "dist": torch.from_numpy(np.stack([background_distance(m) for m in masks])),
            "K": torch.from_numpy(np.stack([s @ cameras.K[v] for s, v in zip(scales, chosen)]).astype(np.float32)),
            "Rt": torch.from_numpy(cameras.Rt[chosen].astype(np.float32)),
            "points_gt": self.points(index),
        }
        if not self.train:
            item["images"] = torch.stack([image_tensor(open_image(cameras.image_dir / name, "RGB"), self.image_size)
                                          for name in cameras.names[:self.eval_input_views]])
        return item

    @staticmethod
    def read_mask(cameras: CaptureCameras, view: int) -> np.ndarray:
        return np.asarray(open_image(mask_file(cameras.mask_dir, cameras.names[view]), "L")) >= 128

    def points(self, index: int) -> torch.Tensor:
        """(gt_points, 3) farthest-point subset of the capture's points (cached)."""
        if index not in self._points:
            points = capture_points(self.folders[index])
            self._points[index] = torch.from_numpy(points[farthest_point_sampling(points, self.gt_points)])
        return self._points[index]


class ColmapViewsDataModule(ShapeDataModule):
    """``data=colmap_views``: SfM captures (folders written by sfm.py) for the multi-view models.

    Args:
        captures: SfM output folders (each with cameras.npz); every split uses all of them.
        num_views / image_size / mask_size / gt_points / eval_input_views: as data=synthetic_views
            (datamodules/multiview.py; val/test batches carry ``images``, the first ``eval_input_views`` views).
        masks_dir: the masks' folder when not the one recorded in cameras.npz (one capture only).
        cameras_file: the cameras' file name in each capture (``cameras_true.npz`` for a built-in capture's
            true cameras).
        batch_size, eval_batch_size, num_workers, seed: as every datamodule.
        categories: accepted and unused (captures have no categories; experiment category groups set it).
    """

    def __init__(self, captures: Sequence[str], *, num_views: int, image_size: int | None, mask_size: int,
                 gt_points: int, masks_dir: str | None, cameras_file: str, eval_input_views: int | None, **shared):
        super().__init__(".", dataset_name="colmap_views", build=None, train_split="train", val_split="val",
                         test_split="test", validate=True, deepsdf_dir=None, occnet_dir=None, **shared)
        if not captures:
            raise ShapelabError("data.captures is empty; give the SfM output folders, e.g. data.captures=[out/sfm]")
        if masks_dir is not None and len(captures) != 1:
            raise ShapelabError("data.masks_dir overrides the masks of a single capture; set it to null with "
                                f"{len(captures)} captures (their masks come from cameras.npz)")
        self.folders = [Path(folder) for folder in captures]
        self.masks_dir, self.cameras_file = masks_dir, cameras_file
        self.options = {"num_views": num_views, "image_size": image_size, "mask_size": mask_size, "gt_points": gt_points,
                        "eval_input_views": eval_input_views}
        self._cameras: list[CaptureCameras] | None = None

    def capture_cameras(self) -> list[CaptureCameras]:
        """Every capture's cameras, checked: enough views, image and mask files present (read once)."""
        if self._cameras is None:
            self._cameras = [self.check_capture(folder) for folder in self.folders]
        return self._cameras

    def check_capture(self, folder: Path) -> CaptureCameras:
        path = folder / self.cameras_file
        if not path.is_file():
            raise ShapelabError(f"{path}: not found; run `python sfm.py images_dir=<photos> masks_dir=<masks> "
                                f"out_dir={folder}` first")
        cameras = read_capture_cameras(path)
        if self.masks_dir is not None:
            cameras.mask_dir = Path(self.masks_dir)
        if cameras.mask_dir is None:
            raise ShapelabError(f"{path}: this capture has no masks; re-run sfm.py with masks_dir=<folder of "
                                "<photo stem>.png, white = object> or set data.masks_dir")
        if len(cameras.names) < self.options["num_views"]:
            raise ShapelabError(f"{path}: {len(cameras.names)} registered views, data.num_views="
                                f"{self.options['num_views']}; lower data.num_views or add photos")
        for name in cameras.names:
            if not (cameras.image_dir / name).is_file():
                raise ShapelabError(f"{cameras.image_dir / name}: image not found; re-run sfm.py for {folder}")
            if not mask_file(cameras.mask_dir, name).is_file():
                raise ShapelabError(f"{mask_file(cameras.mask_dir, name)}: mask not found; give one PNG per photo "
                                    "named <photo stem>.png (white = object)")
        return cameras

    def make_dataset(self, split_key: str, train: bool) -> ColmapViewsDataset:
        return ColmapViewsDataset(self.folders, self.capture_cameras(), self.seed, train, **self.options)

    def split_shapes(self, split_key: str) -> list[tuple[str, str]]:
        return [(CAPTURE_SYNSET, folder.name) for folder in self.folders]
