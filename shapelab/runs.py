"""Run plumbing shared by train.py and evaluate.py: instantiation, checkpoints, saved configs."""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from shapelab.errors import ShapelabError

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SHAPELAB_ROOT", str(REPO_ROOT))


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, logger)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def fill_from_facts(model_cfg: DictConfig, facts: dict) -> None:
    """Fill model config keys that are ``null`` from the datamodule's facts (e.g. ``num_shapes``)."""
    with open_dict(model_cfg):
        for key, value in facts.items():
            if key in model_cfg and model_cfg[key] is None:
                model_cfg[key] = value


def resolve_ckpt_path(ckpt_path: str | None, log_dir: str | Path, task_name: str) -> str | None:
    """A checkpoint file from a file path, a run directory, or "last" (newest run of the task)."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        runs = sorted((Path(log_dir) / task_name).glob("runs/*/checkpoints/last.ckpt"), key=os.path.getmtime)
        runs += sorted((Path(log_dir) / task_name).glob("multiruns/*/*/checkpoints/last.ckpt"), key=os.path.getmtime)
        if not runs:
            raise ShapelabError(
                f"ckpt_path=last: no checkpoints/last.ckpt under {Path(log_dir) / task_name}; train first or give a path"
            )
        return str(max(runs, key=os.path.getmtime))
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.is_file():
        raise ShapelabError(f"ckpt_path: {path} does not exist; give a .ckpt file, a run directory or 'last'")
    return str(path)


def group_sweep_run(cfg: DictConfig, sweep_name: str, overrides: list[str]) -> None:
    """Group the runs of one sweep on the dashboards and tag each with its overrides."""
    with open_dict(cfg):
        cfg.tags = [*cfg.tags, *overrides]
        if cfg.get("logger") and cfg.logger.get("wandb"):
            cfg.logger.wandb.group = f"{cfg.task_name}-{sweep_name}"


def save_run_config(cfg: DictConfig, output_dir: str | Path) -> Path:
    """Write the config (with filled facts) to <run>/.hydra/config.yaml, which evaluate.py reloads."""
    path = Path(output_dir) / ".hydra" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path)
    return path


def run_entry_point(task: Callable[[DictConfig], float | None], cfg: DictConfig, multirun: bool) -> float | None:
    """Run ``task(cfg)``; user errors print one line. In a sweep a failed run is recorded, not fatal."""
    try:
        return task(cfg)
    except Exception as exc:
        # hydra.utils.instantiate wraps a constructor's ShapelabError in InstantiationException
        user_error = exc if isinstance(exc, ShapelabError) else exc.__cause__
        if isinstance(user_error, ShapelabError):
            summary = details = f"error: {user_error}"
            if not multirun:
                print(summary, file=sys.stderr)
                sys.exit(2)
        elif not multirun:
            raise
        else:
            cause = exc.__cause__ or exc
            summary, details = f"{type(cause).__name__}: {cause}", traceback.format_exc()
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "FAILED").write_text(details + "\n")
    print(f"run failed (recorded in {out / 'FAILED'}): {summary}", file=sys.stderr)
    return float("nan")
