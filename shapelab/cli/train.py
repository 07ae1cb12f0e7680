"""Train a shapelab model: ``python train.py [experiment=<name>] [key=value ...]`` (see README).

Only Hydra and OmegaConf are imported at module level: ``--help`` answers before torch/Lightning load.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from shapelab import config as config_check
from shapelab import resolvers
from shapelab.cli.common import run_hydra_app
from shapelab.runs import (
    fill_from_facts,
    group_sweep_run,
    instantiate_group,
    resolve_ckpt_path,
    run_entry_point,
    save_run_config,
)

log = logging.getLogger("shapelab.train")


def _hydra_choices() -> dict:
    """Hydra's group choices of this run (``model: occnet``), or {} outside a Hydra run."""
    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def used_splits(cfg: DictConfig) -> list[str]:
    """The Lightning stages whose splits this run reads: fit (train + val) and the evaluated split."""
    stages = ["fit"] if cfg.train else []
    if cfg.evaluate_after_training:
        stages.append("test" if cfg.evaluate.split == "test" else "validate")
    return stages


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and evaluate) the model ``cfg`` describes; returns the final metrics."""
    resolvers.register()
    config_check.validate(cfg, "train")
    choices = _hydra_choices()
    config_check.check_compatibility(cfg, choices)

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ProgressBar

    from shapelab.callbacks import NonFiniteLossGuard, learning_rate_keys
    from shapelab.checkpoints import check_fits, load_weights, read_checkpoint

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    for stage in used_splits(cfg) or ["fit"]:
        datamodule.setup(stage)  # every split the run reads is validated now, not after training
    fill_from_facts(cfg.model, datamodule.facts())
    save_run_config(cfg, cfg.paths.output_dir)

    if cfg.get("stage"):
        from shapelab.stages.base import StageRun

        stage = hydra.utils.instantiate(cfg.stage, _convert_="partial")
        run = StageRun(cfg, datamodule, instantiate_group(cfg.get("logger")), Path(cfg.paths.output_dir))
        metrics = stage.run(run)
        print("\n".join(f"{name}: {value:.5g}" for name, value in metrics.items()))
        print_run_summary(cfg.paths.output_dir, [])
        return metrics

    model = hydra.utils.instantiate(cfg.model)
    ckpt = resolve_ckpt_path(cfg.ckpt_path, cfg.paths.log_dir, cfg.task_name, cfg.model._target_, choices.get("experiment"))
    if ckpt and cfg.train:
        check_fits(model, read_checkpoint(ckpt), ckpt)  # one line before Lightning's raw errors
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    for callback in callbacks:
        if isinstance(callback, NonFiniteLossGuard):
            callback.lr_keys = learning_rate_keys(cfg.model)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    elif ckpt:
        load_weights(model, ckpt)

    if cfg.evaluate_after_training and trainer.is_global_zero:
        from shapelab.evaluation import evaluate_model

        # the model as trained (= checkpoints/last.ckpt) or as loaded from ckpt_path with train=false
        eval_out = f"{cfg.paths.output_dir}/eval/{cfg.evaluate.split}"
        metrics.update(evaluate_model(model, datamodule, cfg.evaluate, eval_out, loggers=loggers))
    if trainer.is_global_zero:
        print_run_summary(cfg.paths.output_dir, loggers)
    return metrics


def print_run_summary(output_dir: str, loggers: list) -> None:
    """Tell the user where this run's checkpoints, dashboard logs and evaluation outputs are."""
    out = Path(output_dir)
    lines = [f"run directory: {out}", f"  config:      {out / '.hydra' / 'config.yaml'}",
             f"  checkpoints: {out / 'checkpoints'}"]
    for logger in loggers:
        lines.append(f"  {type(logger).__name__.removesuffix('Logger').lower() + ':':<12} {logger.log_dir or logger.save_dir}")
    for eval_dir in sorted((out / "eval").glob("*")):
        lines.append(f"  evaluation:  {eval_dir} (metrics.md, contact_sheet.png, reconstructions/)")
    print("\n".join(lines))


@hydra.main(version_base="1.3", config_path="pkg://shapelab.conf", config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun:
        group_sweep_run(cfg, Path(hydra_cfg.sweep.dir).name, list(hydra_cfg.overrides.task))

    def task(cfg: DictConfig) -> float | None:
        metrics = train(cfg)
        if cfg.monitor.metric not in metrics:
            log.warning("the monitored metric %s was never logged (no validation run?)", cfg.monitor.metric)
        return metrics.get(cfg.monitor.metric, float("nan"))

    return run_entry_point(task, cfg, multirun)


def main() -> None:
    """``python train.py`` / ``shapelab-train``."""
    run_hydra_app(hydra_main, "train")


if __name__ == "__main__":
    main()
