"""Shape completion from one depth image (DeepSDF, Park et al. 2019, Sec. 6.3): a test split whose SDF batches
come from one rendered depth view per shape instead of the SdfSamples files.

Per shape it reads ``<occnet>/<synset>/<id>/img_choy2016/depth/<view>.npz`` and ``cameras.npz`` (the cameras
map the original frame, datamodules/formats/occnet.py) and the shape's DeepSDF ``NormalizationParameters``,
back-projects the observed pixels and adds free-space samples along their camera rays
(geometry/depth_observation.py), all in the deepsdf frame. Batch keys as ``datamodules/sdf.py`` (``xyz``,
``sdf``) plus ``free_space`` (B, S) bool: samples whose ``sdf`` (0) is only a lower bound.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from shapelab.datamodules.common import ShapeDataset
from shapelab.datamodules.formats.deepsdf import read_normalisation
from shapelab.datamodules.formats.occnet import read_cameras, read_depth
from shapelab.geometry.depth_observation import backproject_depth, camera_centre, depth_sdf_samples
from shapelab.geometry.frames import original_to_deepsdf

from shapelab.errors import ShapelabError

VIEWS_FOLDER = "img_choy2016"  # where preprocess.py writes the renders, depth and cameras.npz
DEEPSDF_RADIUS = 1.0  # the deepsdf frame's unit sphere: free-space samples stay inside it


@dataclass(frozen=True)
class DepthCompletion:
    """``data.completion``: complete each test shape from depth view ``view`` (index into its renders) with
    ``num_samples`` partial SDF samples, a share ``free_space_fraction`` of them free space."""

    view: int
    num_samples: int
    free_space_fraction: float

    def __post_init__(self):
        if self.view < 0 or self.num_samples < 1 or not 0.0 <= self.free_space_fraction < 1.0:
            raise ShapelabError(
                f"data.completion: view {self.view} must be >= 0, num_samples {self.num_samples} >= 1 and "
                f"free_space_fraction {self.free_space_fraction} in [0, 1); fix data.completion"
            )


@dataclass(frozen=True)
class DepthViewFiles:
    """The files one shape's completion reads."""

    depth: Path
    cameras: Path
    normalisation: Path


def depth_view_files(occnet_root: Path, deepsdf_root: Path, dataset_name: str, shape: tuple[str, str],
                     view: int) -> DepthViewFiles:
    synset, model_id = shape
    views = occnet_root / synset / model_id / VIEWS_FOLDER
    return DepthViewFiles(views / "depth" / f"{view:03d}.npz", views / "cameras.npz",
                          deepsdf_root / "NormalizationParameters" / dataset_name / synset / f"{model_id}.npz")


def observed_surface(files: DepthViewFiles, view: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(surface (P, 3), camera centre (3,)) of one depth view in the deepsdf frame, float64; bad files (NaN or
    negative depth, a view without object pixels, a camera index out of range) raise one line naming the file."""
    depth = read_depth(files.depth)
    if (depth <= 0).any():
        raise ShapelabError(f"{files.depth}: depth has values <= 0 (camera-space z must be positive); re-render it")
    if not np.isfinite(depth).any():
        raise ShapelabError(f"{files.depth}: the view shows no object pixels (every depth is inf); "
                            "choose another data.completion.view")
    cameras = read_cameras(files.cameras)
    if view >= len(cameras):
        raise ShapelabError(f"{files.cameras}: has {len(cameras)} views, data.completion.view={view} is out of range")
    K, Rt = (torch.from_numpy(matrix) for matrix in cameras[view])
    offset, scale = read_normalisation(files.normalisation)
    surface = backproject_depth(torch.from_numpy(depth).double(), K, Rt)
    points = original_to_deepsdf(np.concatenate([surface.numpy(), camera_centre(Rt)[None].numpy()]), offset, scale)
    return torch.from_numpy(points[:-1]), torch.from_numpy(points[-1])


class DepthViewDataset(ShapeDataset):
    """Test shapes observed through one depth view each; item = partial SDF samples (module docstring)."""

    def __init__(self, files: Sequence[DepthViewFiles], shapes: Sequence[tuple[str, str]], seed: int,
                 settings: DepthCompletion):
        super().__init__(shapes, seed, train=False)
        self.files, self.settings = list(files), settings

    def check(self, index: int) -> None:
        observed_surface(self.files[index], self.settings.view)

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        surface, centre = observed_surface(self.files[index], self.settings.view)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        samples = depth_sdf_samples(surface, centre, self.settings.num_samples, self.settings.free_space_fraction,
                                    DEEPSDF_RADIUS, generator)
        return {"xyz": samples["xyz"].float(), "sdf": samples["sdf"].float(), "free_space": samples["free_space"]}
