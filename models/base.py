"""The interface every shapelab model implements, so evaluate.py can score any of them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytorch_lightning as pl
import trimesh
from shapelab.geometry.frames import FRAMES

from shapelab.dashboards import Shape, log_shapes


@dataclass
class Reconstruction:
    """One reconstructed shape: a mesh (implicit models) or a point cloud (point models).

    ``frame`` names the coordinate frame of the geometry: "deepsdf" (unit sphere), "occnet"
    (unit cube) or "original" (raw mesh units); see DEVELOPING.md.
    ``views``: point models predicting from several input views of the shape give every view's cloud
    (Vi, N, 3) here, ``points`` being the first; point-cloud metrics then average (or take the best) over them.
    """

    frame: str
    mesh: trimesh.Trimesh | None = None
    points: np.ndarray | None = None
    views: np.ndarray | None = None

    def __post_init__(self):
        if self.frame not in FRAMES:
            raise ValueError(f"Reconstruction.frame must be one of {FRAMES}, got {self.frame!r}")
        if (self.mesh is None) == (self.points is None):
            raise ValueError("Reconstruction needs exactly one of mesh or points")


@dataclass(frozen=True)
class Monitor:
    """The validation metric a model is judged by: checkpoints keep the best by it, sweeps optimise it."""

    metric: str
    mode: str  # "min" | "max"


class ShapeModel(pl.LightningModule):
    """A LightningModule that can reconstruct the shapes of a batch for evaluation.

    Each model declares ``monitor`` (the metric it logs in validation and whether lower or higher is better)
    and ``batch_format``, the datamodules' batch format it trains on (DEVELOPING.md "Batches": "sdf",
    "occupancy", "multiview"); train.py checks the chosen data and loss against it before any data work.
    """

    monitor: ClassVar[Monitor]
    batch_format: ClassVar[str]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the model class, so a checkpoint of another model is refused in one line (shapelab/checkpoints.py)."""
        checkpoint["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    logged_shapes: int = 2
    """How many shapes of the first validation batch a model sends to the dashboards as 3D objects."""

    def reconstruct(self, batch: dict) -> list[Reconstruction]:
        """Return one Reconstruction per shape of ``batch`` (same order)."""
        raise NotImplementedError

    def log_training_terms(self, terms: dict, batch_size: int) -> None:
        """Log each loss term as ``train/<name>`` (``train/loss`` also on the progress bar), only on the steps whose
        values the loggers write: every ``trainer.log_every_n_steps``-th, as Lightning writes step values.

        Lightning's ``self.log`` costs ~0.5 ms per call on CPU whether or not the step is written; logging every
        step took ~5 % of a default DeepSDF step (bench/RESULTS.md "main_job_budget"). Without a trainer (a
        model stepped by hand) every step logs.
        """
        trainer = self._trainer
        every = 1 if trainer is None else trainer.log_every_n_steps
        # in training_step global_step counts the steps before this one, as Lightning's step counter then
        if every and (self.global_step + 1) % every == 0:
            for name, value in terms.items():
                self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch_size)

    def log_validation_shapes(self, shapes: dict[str, Shape]) -> None:
        """Send reconstructions (and ground truth) seen at validation — name -> mesh or (N, 3) points — to the
        dashboards as ``val/shapes/<name>`` 3D objects (shapelab/dashboards.py), from rank 0 outside the sanity check."""
        trainer = self._trainer
        if self.loggers and (trainer is None or (trainer.is_global_zero and not trainer.sanity_checking)):
            log_shapes(self.loggers, "val/shapes", shapes, self.global_step)


def shape_name(batch: dict, index: int) -> str:
    """``<synset>_<model_id>`` of shape ``index`` of a batch (``shape<index>`` when the batch has no ids)."""
    if "synset" in batch and "model_id" in batch:
        return f"{batch['synset'][index]}_{batch['model_id'][index]}"
    return f"shape{index}"
