"""Multi-view captures with recovered cameras (``data=colmap_views``): the photos, user masks and the cameras
``python sfm.py`` wrote, as batches for CAPNet / DRWR (the batch of datamodules/multiview.py, same keys).

A capture is the output folder of one SfM run (README "Cameras from photos"):
    <capture>/cameras.npz        sfm/cameras_file.py layout: K, Rt per registered photo (object frame),
                                 ``image_names``, and the folders of the images (undistorted when needed) and masks
    <capture>/points.ply         the sparse points (object frame)
    <capture>/pointcloud.npz     optional ``points`` (N, 3) (+ ``normals``) of the true surface in the cameras' frame
    <capture>/mesh.ply           optional true mesh, same frame (built-in captures: the occupancy ground truth)
Masks are the user's PNGs (white = object), given to sfm.py as ``masks_dir``; a capture without masks is an
error here (the models learn from silhouettes). Each capture is one shape (synset ``capture``, model id = the
folder name); with a single capture the train, val and test splits are that capture (per-object fitting).
``points_gt`` is ``pointcloud.npz`` when present, else the sparse SfM points inside the unit cube (a proxy:
only textured parts; sfm.py scales the box of the object's points to that cube).

Frames of a capture's shape (`capture_frames`): "original" and "occnet" are the cameras' frame (the object frame
sfm.py writes: unit cube, y up), "deepsdf" is DeepSDF's unit sphere of the capture's points. With
``ground_truth_dir`` set, ``prepare_data`` writes every capture's true surface (when it has one) there in the
evaluation's layouts, so evaluate.py and stages score captures like any dataset; ``silhouette_views`` gives a
stage (``stage=meshsdf``) its observed masks and cameras.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import trimesh
from shapelab.datamodules.common import (
    ShapeDataModule,
    ShapeDataset,
    check_mask_resize,
    image_tensor,
    open_image,
    resize_mask,
)
from shapelab.datamodules.formats import deepsdf as deepsdf_format
from shapelab.datamodules.formats import occnet as occnet_format
from shapelab.datamodules.formats.validation import load_npz
from shapelab.datamodules.multiview import background_distance
from shapelab.geometry.farthest_points import farthest_point_sampling
from shapelab.geometry.frames import ShapeFrames
from shapelab.geometry.inside import occupancy
from shapelab.geometry.normalisation import deepsdf_normalisation
from shapelab.sfm.cameras_file import CaptureCameras, read_capture_cameras

from shapelab.errors import ShapelabError

CAPTURE_SYNSET = "capture"
DATASET_NAME = "colmap_views"
OCCUPANCY_POINTS = 100_000  # points.npz of a capture with mesh.ply: OccNet's count, uniform in the cube of side 1.1


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


def capture_frames(folder: Path) -> ShapeFrames:
    """Frame parameters of a capture's shape (module docstring): occnet = the cameras' frame, deepsdf = DeepSDF's
    normalisation (`geometry.normalisation`) of `capture_points`."""
    return ShapeFrames(deepsdf=deepsdf_normalisation(capture_points(folder)), occnet=(np.zeros(3), 1.0))


def write_capture_ground_truth(folder: Path, root: Path) -> bool:
    """Write the true surface of capture ``folder`` under ``root`` in the evaluation's layouts (frames:
    `capture_frames`): DeepSDF ``SurfaceSamples`` + ``NormalizationParameters`` from pointcloud.npz, OccNet
    ``pointcloud.npz`` when it has normals, OccNet ``points.npz`` (occupancies) from mesh.ply. Returns False (and
    writes nothing) for a capture without pointcloud.npz: real photos have no ground truth."""
    if not (folder / "pointcloud.npz").is_file():
        return False
    truth = load_npz(folder / "pointcloud.npz", None, "write it with points (N, 3) and normals (N, 3)")
    frames, shape = capture_frames(folder), (CAPTURE_SYNSET, folder.name)
    deepsdf_dir = root / "deepsdf"
    deepsdf_format.write_surface_samples(deepsdf_dir / "SurfaceSamples" / DATASET_NAME / shape[0] / f"{shape[1]}.ply",
                                         truth["points"])
    deepsdf_format.write_normalisation(deepsdf_dir / "NormalizationParameters" / DATASET_NAME / shape[0] /
                                       f"{shape[1]}.npz", *frames.deepsdf)
    shape_dir = root / "occnet" / shape[0] / shape[1]
    if "normals" in truth:
        occnet_format.write_pointcloud(shape_dir / "pointcloud.npz", truth["points"], truth["normals"], *frames.occnet)
    if (folder / "mesh.ply").is_file():
        mesh = trimesh.load(folder / "mesh.ply", force="mesh", process=False)
        query = np.random.default_rng(0).uniform(-0.55, 0.55, (OCCUPANCY_POINTS, 3))
        occnet_format.write_points(shape_dir / "points.npz", query, occupancy(mesh, query), *frames.occnet)
    return True


def scaled_intrinsics(cameras: CaptureCameras, views: Sequence[int], size: int) -> np.ndarray:
    """K (V, 3, 3) of ``views`` for their images resized to ``size`` x ``size`` pixels."""
    return np.stack([np.diag([size / cameras.width[v], size / cameras.height[v], 1.0]) @ cameras.K[v] for v in views])


def read_masks(cameras: CaptureCameras, views: Sequence[int], size: int, rule: str) -> np.ndarray:
    """(V, size, size) bool: the user's masks of ``views`` (white = object) resized to ``size`` by ``rule``
    (``datamodules.common.resize_mask``)."""
    return np.stack([resize_mask(np.asarray(open_image(mask_file(cameras.mask_dir, cameras.names[v]), "L")) >= 128,
                                 size, rule) for v in views])


class ColmapViewsDataset(ShapeDataset):
    """Captures as multi-view silhouettes (module docstring; batch keys as datamodules/multiview.py)."""

    def __init__(self, folders: Sequence[Path], cameras: Sequence[CaptureCameras], seed: int, train: bool,
                 num_views: int, image_size: int | None, mask_size: int, gt_points: int,
                 eval_input_views: int | None, mask_resize: str):
        super().__init__([(CAPTURE_SYNSET, folder.name) for folder in folders], seed, train)
        self.folders, self.cameras = list(folders), list(cameras)
        self.num_views, self.image_size, self.mask_size, self.gt_points = num_views, image_size, mask_size, gt_points
        self.eval_input_views, self.mask_resize = eval_input_views, mask_resize
        self._points: dict[int, torch.Tensor] = {}

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cameras = self.cameras[index]
        count = len(cameras.names)
        first = int(rng.integers(count)) if self.train else 0
        chosen = [first, *rng.choice(np.delete(np.arange(count), first), self.num_views - 1, replace=False).tolist()]
        masks = read_masks(cameras, chosen, self.mask_size, self.mask_resize)
        item = {
            "image": image_tensor(open_image(cameras.image_dir / cameras.names[first], "RGB"), self.image_size),
            "masks": torch.from_numpy(masks.astype(np.float32)),
            "dist": torch.from_numpy(np.stack([background_distance(m) for m in masks])),
            "K": torch.from_numpy(scaled_intrinsics(cameras, chosen, self.mask_size).astype(np.float32)),
            "Rt": torch.from_numpy(cameras.Rt[chosen].astype(np.float32)),
            "points_gt": self.points(index),
        }
        if not self.train:
            item["images"] = torch.stack([image_tensor(open_image(cameras.image_dir / name, "RGB"), self.image_size)
                                          for name in cameras.names[:self.eval_input_views]])
        return item

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
        num_views / image_size / mask_size / mask_resize / gt_points / eval_input_views: as data=synthetic_views
            (datamodules/multiview.py; val/test batches carry ``images``, the first ``eval_input_views`` views).
        masks_dir: the masks' folder when not the one recorded in cameras.npz (one capture only).
        cameras_file: the cameras' file name in each capture (``cameras_true.npz`` for a built-in capture's
            true cameras).
        ground_truth_dir: where ``prepare_data`` writes the captures' true surfaces for scoring (module
            docstring); None: captures are not scored.
        batch_size, eval_batch_size, num_workers, seed: as every datamodule.
        categories: accepted and unused (captures have no categories; experiment category groups set it).
    """

    def __init__(self, captures: Sequence[str], *, num_views: int, image_size: int | None, mask_size: int,
                 mask_resize: str, gt_points: int, masks_dir: str | None, cameras_file: str, eval_input_views: int | None,
                 ground_truth_dir: str | None, batch_size: int, eval_batch_size: int, num_workers: int, seed: int,
                 categories: Sequence[str] | None):
        # the shared parameters are listed (not **shared): the others of ShapeDataModule are fixed here
        truth = Path(ground_truth_dir) if ground_truth_dir is not None else None
        super().__init__(".", dataset_name=DATASET_NAME, build=None, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, num_workers=num_workers, train_split="train", val_split="val",
                         test_split="test", categories=None, seed=seed, validate=True,
                         deepsdf_dir=truth / "deepsdf" if truth else None, occnet_dir=truth / "occnet" if truth else None)
        if not captures:
            raise ShapelabError("data.captures is empty; give the SfM output folders, e.g. data.captures=[out/sfm]")
        if masks_dir is not None and len(captures) != 1:
            raise ShapelabError("data.masks_dir overrides the masks of a single capture; set it to null with "
                                f"{len(captures)} captures (their masks come from cameras.npz)")
        check_mask_resize(mask_resize)
        self.folders = [Path(folder) for folder in captures]
        self.masks_dir, self.cameras_file = masks_dir, cameras_file
        self.options = {"num_views": num_views, "image_size": image_size, "mask_size": mask_size, "gt_points": gt_points,
                        "eval_input_views": eval_input_views, "mask_resize": mask_resize}
        self._cameras: list[CaptureCameras] | None = None
        self.ground_truth_dir = truth

    def prepare_data(self) -> None:
        """Write the captures' true surfaces under ``ground_truth_dir`` (when set; `write_capture_ground_truth`)."""
        if self.ground_truth_dir is not None:
            for folder in self.folders:
                write_capture_ground_truth(folder, self.ground_truth_dir)

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

    def silhouette_views(self, shape: tuple[str, str], num_views: int | None, size: int) -> dict:
        """What a stage observes of capture ``shape`` (synset, model id): ``num_views`` of its registered views
        spread evenly in the order of cameras.npz (all when None or more than there are) as ``masks`` (V, size,
        size) bool and ``K`` (V, 3, 3) scaled to them, ``Rt`` (V, 3, 4) in the capture's frame, ``names``, and the
        shape's ``frames`` (`capture_frames`)."""
        index = self.split_shapes("test").index(tuple(shape))
        cameras = self.capture_cameras()[index]
        count = len(cameras.names)
        views = np.linspace(0, count, min(num_views or count, count), endpoint=False).astype(int).tolist()
        masks = read_masks(cameras, views, size, self.options["mask_resize"])
        return {"masks": masks, "K": scaled_intrinsics(cameras, views, size),
                "Rt": cameras.Rt[views], "names": [cameras.names[v] for v in views],
                "frames": capture_frames(self.folders[index])}
