"""Occupancy Networks data (Mescheder et al. 2019): points.npz occupancies + one conditioning input.

Batch (DEVELOPING.md "Batches"): ``points`` (B, T, 3) float32 and ``occ`` (B, T) float {0, 1} in the occnet
(unit cube) frame; ``inputs`` = image (B, 3, H, W) float in [0, 1] | point cloud (B, N, 3) | voxels
(B, R, R, R) float {0, 1}; ``index`` (B,) long; ``synset`` / ``model_id`` lists.

As OccNet's loader: float16 points get ``points_noise`` (1e-4) Gaussian noise when cast to float32; training
samples ``train_points`` (2048) points per shape with replacement, val/test use ``eval_points`` (None = all,
OccNet's ``points_iou``); the image input is a random one of the views in training and view 0 in val/test;
the point-cloud input is ``input_points`` (300) points of pointcloud.npz with replacement plus Gaussian
noise of std ``input_noise`` (0.005).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from shapelab.datamodules.common import (
    OccnetLayoutDataModule,
    OccnetLayoutDataset,
    image_tensor,
    list_views,
    open_image,
)
from shapelab.datamodules.formats.occnet import read_pointcloud, read_points, read_voxels

from shapelab.errors import ShapelabError

INPUT_TYPES = ("image", "pointcloud", "voxels")
OUTLIER_BOX = 1.1  # side of the cube outliers are drawn in (OccNet's points.npz box)


class OccupancyDataset(OccnetLayoutDataset):
    """OccNet-layout shapes of one split; see the module docstring for what an item holds.
    ``layout``: OccnetLayoutDataset's (root, shapes, seed, train, img_folder)."""

    def __init__(
        self,
        *layout,
        input_type: str,
        num_points: int | None,
        points_noise: float,
        img_size: int | None,
        input_points: int,
        input_noise: float,
        input_outliers: float,
    ):
        super().__init__(*layout)
        self.input_type, self.num_points, self.points_noise = input_type, num_points, points_noise
        self.img_size, self.input_points, self.input_noise = img_size, input_points, input_noise
        self.input_outliers = input_outliers

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        data = read_points(self.shape_dir(index) / "points.npz")
        points, occ = data["points"], data["occupancies"]
        if self.num_points is not None:
            chosen = rng.integers(0, len(points), self.num_points)
            points, occ = points[chosen], occ[chosen]
        points = points + self.points_noise * rng.standard_normal(points.shape, dtype=np.float32)
        return {
            "points": torch.from_numpy(points.astype(np.float32)),
            "occ": torch.from_numpy(occ.astype(np.float32)),
            "inputs": self.load_inputs(index, rng),
        }

    def load_inputs(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        shape_dir = self.shape_dir(index)
        if self.input_type == "image":
            views = list_views(self.view_dir(index))
            view = int(rng.integers(len(views))) if self.train else 0
            return image_tensor(open_image(views[view], "RGB"), self.img_size)
        if self.input_type == "pointcloud":
            surface = read_pointcloud(shape_dir / "pointcloud.npz")["points"]
            chosen = surface[rng.integers(0, len(surface), self.input_points)]
            chosen = chosen + self.input_noise * rng.standard_normal(chosen.shape, dtype=np.float32)
            outliers = round(self.input_outliers * self.input_points)
            chosen[:outliers] = rng.uniform(-OUTLIER_BOX / 2, OUTLIER_BOX / 2, (outliers, 3))
            return torch.from_numpy(chosen.astype(np.float32))
        return torch.from_numpy(read_voxels(shape_dir / "voxels.npz").astype(np.float32))

    def required_paths(self, index: int) -> list[Path]:
        return [self.shape_dir(index) / "points.npz"]

    def check(self, index: int) -> int:
        """Read every file item ``index`` needs (raising ShapelabError for a bad one); returns the number
        of points in points.npz."""
        shape_dir = self.shape_dir(index)
        count = len(read_points(shape_dir / "points.npz")["points"])
        if self.input_type == "image":
            for view in list_views(self.view_dir(index)):
                open_image(view, "RGB")
        elif self.input_type == "pointcloud":
            read_pointcloud(shape_dir / "pointcloud.npz")
        else:
            read_voxels(shape_dir / "voxels.npz")
        return count


class OccupancyDataModule(OccnetLayoutDataModule):
    """OccNet-format data under ``<occnet_dir>/<synset>/<id>/`` listed by ``<synset>/<split>.lst``
    (a split of "*" = every model folder of the category).

    Args (beyond ``OccnetLayoutDataModule``'s):
        input_type: "image" | "pointcloud" | "voxels" (the encoder's input).
        train_points: occupancy points per shape in training (OccNet: 2048).
        eval_points: points per shape in val/test; None = all of points.npz (for IoU, as OccNet).
        points_noise: std of the noise added to the float16 points (OccNet: 1e-4); 0 to disable.
        img_size: side images are resized to (OccNet: 224; None keeps 137).
        input_points / input_noise: point-cloud input size and noise std (OccNet: 300, 0.005).
        input_outliers: share of the input points replaced by outliers uniform in the cube of side 1.1
            (the DDN paper's robust-pooling experiment; 0 = none, OccNet).
    """

    dataset_class = OccupancyDataset
    batch_format = "occupancy"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(
        self,
        data_dir: str | Path,
        *,
        input_type: str,
        train_points: int,
        eval_points: int | None,
        points_noise: float,
        img_size: int | None,
        input_points: int,
        input_noise: float,
        input_outliers: float,
        **shared,
    ):
        super().__init__(data_dir, **shared)
        if input_type not in INPUT_TYPES:
            raise ShapelabError(f"data.input_type={input_type!r} is not one of {INPUT_TYPES}; fix the data config")
        self.input_type, self.train_points, self.eval_points = input_type, train_points, eval_points
        self.options = {"input_type": input_type, "points_noise": points_noise, "img_size": img_size,
                        "input_points": input_points, "input_noise": input_noise, "input_outliers": input_outliers}
        if not 0.0 <= input_outliers <= 1.0:
            raise ShapelabError(f"data.input_outliers={input_outliers} must be a share in [0, 1]")

    def built_formats(self) -> list[str]:
        """Image inputs are the rendered views."""
        return super().built_formats() + (["renderings"] if self.input_type == "image" else [])

    def dataset_options(self, train: bool) -> dict:
        return {**self.options, "num_points": self.train_points if train else self.eval_points}

    def check_consistency(self, dataset: OccupancyDataset, checks: list[int]) -> None:
        """Whole points.npz files (eval_points None) batch only when they hold equal point counts."""
        if dataset.num_points is None and len(set(checks)) > 1:
            raise ShapelabError(
                f"{dataset.root}: points.npz files hold different point counts {sorted(set(checks))}, "
                "so they cannot be batched whole; set data.eval_points"
            )
