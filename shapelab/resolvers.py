"""The OmegaConf resolvers shapelab's configs use, registered by the entry points before Hydra composes.

- ``${shapelab_root:}``: the repository (checkout) root, or ``$SHAPELAB_ROOT`` when set; ``paths.root_dir``.
- ``${run_suffix:}``: this process's id, cached like Hydra's ``${now:...}`` so every use in one run (and the
  sweep jobs launched from it) sees the same value; run directories are ``<time>_<pid>``, so two runs started
  in the same second never share one.
- ``${model_monitor:metric}`` / ``${model_monitor:mode}``: the metric the config's model declares
  (``ShapeModel.monitor``: DeepSDF val/sdf_l1 min, OccNet val/iou max, image-to-points val/chamfer_capnet min).
- ``${optuna_direction:${monitor.mode}}``: "minimize" / "maximize", so a sweep's direction follows the metric.
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]


def shapelab_root() -> str:
    """``$SHAPELAB_ROOT`` if set, else the folder holding the ``shapelab`` package (the checkout)."""
    return os.environ.get("SHAPELAB_ROOT") or str(REPO_ROOT)


def model_monitor(field: str, *, _root_) -> str:
    """``field`` ("metric" or "mode") of the monitor declared by the class of ``model._target_``."""
    from shapelab.config import locate_target

    model_cls = locate_target(_root_.model._target_, "model")
    return getattr(model_cls.monitor, field)


def optuna_direction(mode: str) -> str:
    directions = {"min": "minimize", "max": "maximize"}
    if mode not in directions:
        raise ValueError(f"monitor.mode={mode!r} must be 'min' or 'max'")
    return directions[mode]


def register() -> None:
    """Register the resolvers (idempotent)."""
    OmegaConf.register_new_resolver("shapelab_root", shapelab_root, replace=True)
    OmegaConf.register_new_resolver("run_suffix", os.getpid, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("model_monitor", model_monitor, replace=True)
    OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
