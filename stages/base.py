"""The stage interface: ``python train.py stage=<name>`` runs a stage instead of plain training.

A stage config is a ``_target_`` class deriving from `Stage`; train.py instantiates it, sets the datamodule
up and calls ``stage.run(StageRun(...))``. The stage takes ground truth, scoring and dashboards from the
shared code (the run's loggers are in ``StageRun.loggers``) and returns its metrics as a flat dict.
A datamodule whose shapes are observed rather than known (``data=colmap_views``: captures with masks and recovered
cameras) gives a stage its observations through ``StageRun.observed_views``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from shapelab.geometry.frames import ShapeFrames
from shapelab.renderers.cameras import extrinsics_for_normalised_frame


@dataclass
class ObservedViews:
    """Silhouettes of one shape as the data gives them: ``masks`` (V, S, S) float {0, 1}, ``K`` (V, 3, 3) pixel
    intrinsics of those masks, ``Rt`` (V, 3, 4) OpenCV world -> camera in the data's frame ("original"), the view
    ``names`` and the shape's ``frames`` (the parameters of its normalised frames)."""

    masks: torch.Tensor
    K: torch.Tensor
    Rt: torch.Tensor
    names: list[str]
    frames: ShapeFrames

    def in_frame(self, frame: str) -> dict[str, torch.Tensor]:
        """``{"masks", "K", "Rt"}`` with the cameras moved to ``frame`` (a similarity of the original frame:
        the same pixels, camera depth rescaled; `renderers.cameras.extrinsics_for_normalised_frame`)."""
        origin = self.frames.to_original(np.zeros((1, 3)), frame)[0]
        unit = float(np.linalg.norm(self.frames.to_original(np.eye(3)[:1], frame)[0] - origin))
        Rt = np.stack([extrinsics_for_normalised_frame(rt, origin, unit) for rt in self.Rt.double().numpy()])
        return {"masks": self.masks, "K": self.K, "Rt": torch.tensor(Rt, dtype=self.Rt.dtype)}


@dataclass
class StageRun:
    """What a stage gets from train.py: the whole run config, the datamodule (set up for "fit"),
    the run's Lightning loggers (``logger=`` group) and the run directory."""

    cfg: DictConfig
    datamodule: Any
    loggers: list
    output_dir: Path

    def observed_views(self, shape: tuple[str, str], num_views: int | None, size: int) -> ObservedViews | None:
        """The data's own silhouettes of ``shape`` (``num_views`` spread over its views, masks resized to ``size``),
        or None when the datamodule has none (its shapes have ground-truth meshes: the stage renders its own)."""
        views = getattr(self.datamodule, "silhouette_views", None)
        if views is None:
            return None
        given = views(shape, num_views, size)
        return ObservedViews(torch.tensor(given["masks"], dtype=torch.float32), torch.tensor(given["K"], dtype=torch.float32),
                             torch.tensor(given["Rt"], dtype=torch.float32), list(given["names"]), given["frames"])


class Stage(ABC):
    """A step that runs after or instead of plain training (MeshSDF refinement, level-set fitting, SfM)."""

    @abstractmethod
    def run(self, run: StageRun) -> dict[str, float]:
        """Do the stage's work; returns its metrics (``<stage>/<metric>`` names)."""
