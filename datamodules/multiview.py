"""Multi-view silhouette data for CAPNet (Navaneet et al. 2019) and DRWR (Han et al. 2020), read from the
OccNet layout: ``img_choy2016/NNN.jpg`` + ``cameras.npz`` (+ ``mask/NNN.png`` when present) + ``pointcloud.npz``.

Batch (DEVELOPING.md "Batches"), V = ``num_views``, H = W = ``mask_size``:
- ``image`` (B, 3, Hi, Wi) float in [0, 1]: the input view (random in training, view 0 in val/test).
- ``masks`` (B, V, H, W) float {0, 1}: silhouettes of V distinct views, the input view first; from
  ``mask/NNN.png`` or, without that folder, every pixel that is not white background connected to the
  image border (``white_background_mask``: white object parts inside the outline stay in the mask).
- ``dist`` (B, V, H, W) float32: Euclidean distance (pixels) from each background pixel to the nearest
  mask pixel, 0 on the mask (``scipy.ndimage.distance_transform_edt``), for CAPNet's affinity loss and DRWR.
- ``K`` (B, V, 3, 3) pixel intrinsics of the H x W mask grid; ``Rt`` (B, V, 3, 4) OpenCV world -> camera
  where "world" is the occnet frame of ``points_gt`` (cameras.npz extrinsics re-expressed with loc/scale).
- ``points_gt`` (B, P, 3) float32, occnet frame: the first ``surface_points`` (16,384) points of pointcloud.npz
  reduced to P = ``gt_points`` (1024) by farthest point sampling, as CAPNet's evaluation; the same points as
  test scoring (geometry/farthest_points.py ``capnet_reference_points``).
- ``images`` (B, Vi, 3, Hi, Wi), val/test only: the first Vi = ``eval_input_views`` views (all when None) as
  inputs; evaluation predicts from each and averages (CAPNet: every view; DRWR: best and mean over views).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from shapelab.datamodules.common import (
    OccnetLayoutDataModule,
    OccnetLayoutDataset,
    check_mask_resize,
    image_tensor,
    list_views,
    open_image,
    resize_mask,
    white_background_mask,
)
from shapelab.datamodules.formats.occnet import read_cameras, read_pointcloud
from shapelab.geometry.farthest_points import capnet_reference_points
from shapelab.renderers.cameras import extrinsics_for_normalised_frame

from shapelab.errors import ShapelabError


def background_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance (pixels) of each pixel to the nearest mask pixel (0 on the mask). An empty
    mask has no nearest pixel: every pixel gets the image diagonal."""
    if not mask.any():
        return np.full(mask.shape, float(np.hypot(*mask.shape)), dtype=np.float32)
    return distance_transform_edt(~mask).astype(np.float32)


class MultiViewDataset(OccnetLayoutDataset):
    """OccNet-layout shapes of one split as multi-view silhouettes; see the module docstring.
    ``layout``: OccnetLayoutDataset's (root, shapes, seed, train, img_folder)."""

    def __init__(
        self,
        *layout,
        num_views: int,
        image_size: int | None,
        mask_size: int,
        white_threshold: int,
        surface_points: int,
        gt_points: int,
        eval_input_views: int | None,
        mask_resize: str,
    ):
        super().__init__(*layout)
        self.mask_resize = mask_resize
        self.eval_input_views = eval_input_views
        self.num_views, self.image_size, self.mask_size = num_views, image_size, mask_size
        self.white_threshold, self.surface_points, self.gt_points = white_threshold, surface_points, gt_points
        self._surfaces: dict[int, tuple[torch.Tensor, np.ndarray, float]] = {}

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        view_dir = self.view_dir(index)
        views = list_views(view_dir)
        first = int(rng.integers(len(views))) if self.train else 0
        others = np.delete(np.arange(len(views)), first)
        chosen = [first, *rng.choice(others, self.num_views - 1, replace=False).tolist()]
        masks = np.stack([self.load_mask(views[v]) for v in chosen])
        input_view = open_image(views[first], "RGB")
        points_gt, loc, scale = self.surface(index)
        cameras = read_cameras(view_dir / "cameras.npz")
        pixel_scale = np.diag([self.mask_size / input_view.width, self.mask_size / input_view.height, 1.0])
        K = np.stack([pixel_scale @ cameras[v][0] for v in chosen])
        Rt = np.stack([extrinsics_for_normalised_frame(cameras[v][1], loc, scale) for v in chosen])
        item = {
            "image": image_tensor(input_view, self.image_size),
            "masks": torch.from_numpy(masks.astype(np.float32)),
            "dist": torch.from_numpy(np.stack([background_distance(m) for m in masks])),
            "K": torch.from_numpy(K.astype(np.float32)),
            "Rt": torch.from_numpy(Rt.astype(np.float32)),
            "points_gt": points_gt,
        }
        if not self.train:
            item["images"] = torch.stack([image_tensor(open_image(view, "RGB"), self.image_size)
                                          for view in views[:self.eval_input_views]])
        return item

    def load_mask(self, view: Path) -> np.ndarray:
        """(mask_size, mask_size) bool silhouette of one view (mask/NNN.png, else the non-white pixels)."""
        mask_file = view.parent / "mask" / f"{view.stem}.png"
        if mask_file.parent.is_dir():
            mask = np.asarray(open_image(mask_file, "L")) >= 128
        else:
            mask = white_background_mask(open_image(view, "RGB"), self.white_threshold)
        return resize_mask(mask, self.mask_size, self.mask_resize)

    def surface(self, index: int) -> tuple[torch.Tensor, np.ndarray, float]:
        """(points_gt (P, 3), loc, scale) of shape ``index`` from pointcloud.npz: the fixed evaluation points
        and the occnet frame. Read once per worker, then cached (FPS costs ~0.06 s per shape)."""
        if index not in self._surfaces:
            cloud = read_pointcloud(self.shape_dir(index) / "pointcloud.npz")
            points_gt = torch.from_numpy(capnet_reference_points(cloud["points"], self.gt_points, self.surface_points))
            self._surfaces[index] = (points_gt, cloud["loc"], cloud["scale"])
        return self._surfaces[index]

    def required_paths(self, index: int) -> list[Path]:
        return [self.view_dir(index) / "cameras.npz", self.shape_dir(index) / "pointcloud.npz"]

    def check(self, index: int) -> None:
        """Read every file item ``index`` needs, raising ShapelabError for a bad or inconsistent one."""
        view_dir = self.view_dir(index)
        views = list_views(view_dir)
        cameras = read_cameras(view_dir / "cameras.npz")
        if len(cameras) < len(views) or len(views) < self.num_views:
            raise ShapelabError(
                f"{view_dir}: {len(views)} views and {len(cameras)} cameras in cameras.npz, need one camera per "
                f"view and at least data.num_views={self.num_views} views; re-render or lower data.num_views"
            )
        masks_dir = view_dir / "mask"
        for view in views:
            open_image(view, "RGB")
            if masks_dir.is_dir():
                open_image(masks_dir / f"{view.stem}.png", "L")
        read_pointcloud(self.shape_dir(index) / "pointcloud.npz")


class MultiViewDataModule(OccnetLayoutDataModule):
    """Multi-view images + masks + cameras of OccNet-layout data (CAPNet / DRWR); a split of "*" = every
    model folder of the category (e.g. the released ShapeNet renderings without .lst files).

    Args (beyond ``OccnetLayoutDataModule``'s):
        num_views: V views per sample (CAPNet: 4).
        image_size: side of the input image (None keeps the rendering's size).
        mask_size: side of masks/dist; K is scaled to it (CAPNet projects on a 64 x 64 grid).
        white_threshold: derived masks: background = pixels with all channels >= this, connected to the border.
        surface_points / gt_points: pointcloud.npz subset and its FPS reduction (CAPNet eval: 16384 -> 1024).
        eval_input_views: input views predicted from in val/test (batch key ``images``); None: all of them.
        mask_resize: how masks are reduced to ``mask_size``: "area" (coverage >= 0.5) or "any" (CAPNet's loader:
            bilinear at the pixel centres, object wherever any object pixel contributes; ``resize_mask``).
    """

    dataset_class = MultiViewDataset
    batch_format = "multiview"  # DEVELOPING.md "Batches"; train.py matches it with the model's
    input_type = "image"  # the input view; an encoder must take images

    def __init__(
        self,
        data_dir: str | Path,
        *,
        num_views: int,
        image_size: int | None,
        mask_size: int,
        white_threshold: int,
        surface_points: int,
        gt_points: int,
        eval_input_views: int | None,
        mask_resize: str,
        **shared,
    ):
        super().__init__(data_dir, **shared)
        if num_views < 1:
            raise ShapelabError(f"data.num_views={num_views}: need at least 1 view; fix the data config")
        check_mask_resize(mask_resize)
        self.num_views = num_views
        self.options = {"num_views": num_views, "image_size": image_size, "mask_size": mask_size,
                        "white_threshold": white_threshold, "surface_points": surface_points, "gt_points": gt_points,
                        "eval_input_views": eval_input_views, "mask_resize": mask_resize}

    def built_formats(self) -> list[str]:
        return [*super().built_formats(), "renderings"]

    def dataset_options(self, train: bool) -> dict:
        return self.options
