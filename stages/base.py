"""The stage interface: ``python train.py stage=<name>`` runs a stage instead of plain training.

A stage config is a ``_target_`` class deriving from `Stage`; train.py instantiates it, sets the datamodule
up and calls ``stage.run(StageRun(...))``. The stage takes ground truth, scoring and dashboards from the
shared code (the run's loggers are in ``StageRun.loggers``) and returns its metrics as a flat dict.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig


@dataclass
class StageRun:
    """What a stage gets from train.py: the whole run config, the datamodule (set up for "fit"),
    the run's Lightning loggers (``logger=`` group) and the run directory."""

    cfg: DictConfig
    datamodule: Any
    loggers: list
    output_dir: Path


class Stage(ABC):
    """A step that runs after or instead of plain training (MeshSDF refinement, level-set fitting, SfM)."""

    @abstractmethod
    def run(self, run: StageRun) -> dict[str, float]:
        """Do the stage's work; returns its metrics (``<stage>/<metric>`` names)."""
