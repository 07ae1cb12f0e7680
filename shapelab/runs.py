"""Run plumbing shared by train.py and evaluate.py: instantiation, checkpoints, saved configs."""
from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from shapelab.errors import ShapelabError


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a dict-of-configs group (callbacks, logger)."""
    if not group:
        return []
    return [hydra.utils.instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def new_run_dir(root: str | Path, label: str = "") -> Path:
    """``<root>/<YYYY-mm-dd_HH-MM-SS>_<pid>[_<label>]``, named as train.py names its runs: two processes started in
    the same second get different directories (two benches once shared one and loaded each other's last.ckpt)."""
    name = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"
    return Path(root) / (f"{name}_{label}" if label else name)


def fill_from_facts(model_cfg: DictConfig, facts: dict) -> None:
    """Fill model config keys that are ``null`` from the datamodule's facts (e.g. ``num_shapes``)."""
    with open_dict(model_cfg):
        for key, value in facts.items():
            if key in model_cfg and model_cfg[key] is None:
                model_cfg[key] = value


def _run_identity(run_dir: Path) -> tuple[str | None, str | None]:
    """(model ``_target_``, experiment choice) of a run, from its saved ``.hydra/config.yaml`` / ``hydra.yaml``."""
    def load(name: str):
        path = run_dir / ".hydra" / name
        try:
            return OmegaConf.load(path) if path.is_file() else None
        except Exception:  # noqa: BLE001 - an unreadable run config identifies nothing
            return None

    config, hydra_cfg = load("config.yaml"), load("hydra.yaml")
    model = OmegaConf.select(config, "model._target_", throw_on_missing=False) if config is not None else None
    experiment = OmegaConf.select(hydra_cfg, "hydra.runtime.choices.experiment", default=None) if hydra_cfg else None
    return model, experiment


def _started(run_dir: Path) -> float:
    """When a run started: Hydra writes ``.hydra/hydra.yaml`` once, at the start."""
    marker = run_dir / ".hydra" / "hydra.yaml"
    return os.path.getmtime(marker if marker.is_file() else run_dir)


def resolve_last_run(log_dir: str | Path, task_name: str, model: str | None = None,
                     experiment: str | None = None) -> Path:
    """``checkpoints/last.ckpt`` of the newest run of the task with the same model class and experiment
    (any run when ``model`` is None). Says which run is resumed, and when a newer run of the same kind has
    no checkpoint yet (it stopped before its first epoch ended)."""
    root = Path(log_dir) / task_name
    run_dirs = [*root.glob("runs/*"), *root.glob("multiruns/*/*")]
    same = [d for d in run_dirs if d.is_dir() and (model is None or _run_identity(d) == (model, experiment))]
    with_ckpt = [d for d in same if (d / "checkpoints" / "last.ckpt").is_file()]
    kind = f"model {model}, experiment {experiment}" if model else "any model"
    if not with_ckpt:
        raise ShapelabError(
            f"ckpt_path=last: no run of this kind ({kind}) with checkpoints/last.ckpt under {root}; "
            "train first or give a run directory / .ckpt file"
        )
    chosen = max(with_ckpt, key=_started)
    newer = [d for d in same if d not in with_ckpt and _started(d) > _started(chosen)]
    note = f" (the newer run {max(newer, key=_started)} has no checkpoint yet)" if newer else ""
    print(f"ckpt_path=last: using {chosen / 'checkpoints' / 'last.ckpt'}{note}", file=sys.stderr)
    return chosen / "checkpoints" / "last.ckpt"


def resolve_ckpt_path(ckpt_path: str | None, log_dir: str | Path, task_name: str, model: str | None = None,
                      experiment: str | None = None) -> str | None:
    """A checkpoint file from a file path, a run directory, or "last" (see ``resolve_last_run``)."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        return str(resolve_last_run(log_dir, task_name, model, experiment))
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
