"""Evaluate a checkpoint or a folder of predictions: ``python evaluate.py ckpt_path=... | pred_dir=...``.

See conf/evaluate.yaml for the options and docs/metrics.md for the metrics. Only Hydra and OmegaConf are
imported at module level: ``--help`` answers before torch/Lightning load.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from shapelab import config as config_check
from shapelab import resolvers
from shapelab.cli.common import run_hydra_app
from shapelab.errors import ShapelabError
from shapelab.runs import instantiate_group, resolve_ckpt_path, run_entry_point

log = logging.getLogger(__name__)


def _datamodule(data_cfg: DictConfig, split: str):
    datamodule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("test" if split == "test" else "validate")
    return datamodule


def load_run_config(run_dir: Path) -> DictConfig:
    """The config a training run saved (``<run_dir>/.hydra/config.yaml``), after checking that it names only
    trusted ``_target_``s (it may come from someone else: README "What is trusted")."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ShapelabError(f"{path} is missing, so the checkpoint's model cannot be rebuilt; "
                            "give a checkpoint inside a train.py run directory (<run>/checkpoints/*.ckpt)")
    run_cfg = OmegaConf.load(path)
    config_check.check_trusted_targets(run_cfg, path)
    return run_cfg


def _check_saved_data(data_cfg: DictConfig, run_dir: Path) -> None:
    """One line, naming the key and both ways out, when the run's saved data config no longer fits its target
    (e.g. a run saved before a data parameter existed)."""
    try:
        config_check.check_targets(data_cfg, "data")
    except ShapelabError as error:
        raise ShapelabError(f"{run_dir}/.hydra/config.yaml: {error}; or evaluate on today's data config with "
                            "data=<name> (the run's data group)") from None


def evaluate_pred_dir(cfg: DictConfig) -> dict[str, float]:
    """Score the files of ``cfg.pred_dir`` against the ground truth of ``cfg.data``."""
    from shapelab.evaluation import evaluate_predictions

    if not cfg.get("data"):
        raise ShapelabError("pred_dir: choose the dataset holding the ground truth with data=<name>")
    split = cfg.evaluate.split
    out_dir = cfg.out_dir or Path(cfg.paths.output_dir) / "eval" / split
    loggers = instantiate_group(cfg.get("logger"))
    datamodule = _datamodule(cfg.data, split)
    return evaluate_predictions(cfg.pred_dir, cfg.pred_frame, datamodule, cfg.evaluate, out_dir, loggers)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the model of ``cfg.ckpt_path``'s run from its saved config, load the weights, score it."""
    import torch

    from shapelab.checkpoints import load_weights
    from shapelab.evaluation import evaluate_model

    ckpt = Path(resolve_ckpt_path(cfg.ckpt_path, cfg.paths.log_dir, "train"))
    run_dir = ckpt.parent.parent
    run_cfg = load_run_config(run_dir)
    filled = config_check.fill_added_parameters(run_cfg.model, "model")
    if filled:
        log.info("%s was saved before %s existed: evaluating with the earlier behaviour", run_dir, ", ".join(filled))
    config_check.check_targets(run_cfg.model, "model")  # one line for a key the saved config lacks or misspells
    model = hydra.utils.instantiate(run_cfg.model)
    load_weights(model, ckpt)  # before the data: a bad checkpoint fails fast
    if torch.cuda.is_available():
        model = model.cuda()
    split = cfg.evaluate.split
    if cfg.get("data"):
        data_cfg = cfg.data
    else:
        data_cfg = run_cfg.data
        _check_saved_data(data_cfg, run_dir)
    datamodule = _datamodule(data_cfg, split)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # loggers write into the training run (its tensorboard/, wandb/)
    out_dir = cfg.out_dir or run_dir / "eval" / split
    return evaluate_model(model, datamodule, cfg.evaluate, out_dir, instantiate_group(cfg.get("logger")),
                          source=f"{type(model).__name__} checkpoint {ckpt}")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score ``cfg.pred_dir`` or the checkpoint ``cfg.ckpt_path``; returns the overall metrics."""
    resolvers.register()
    config_check.validate(cfg, "evaluate")
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed)
    if cfg.pred_dir:
        return evaluate_pred_dir(cfg)
    if not cfg.ckpt_path:
        raise ShapelabError("nothing to evaluate: give ckpt_path=<run dir | .ckpt | last> or pred_dir=<folder>")
    return evaluate_checkpoint(cfg)


@hydra.main(version_base="1.3", config_path="pkg://shapelab.conf", config_name="evaluate")
def hydra_main(cfg: DictConfig) -> float | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    return run_entry_point(lambda c: evaluate(c).get(f"eval/{c.evaluate.split}/chamfer_l1_occnet"), cfg, multirun)


def main() -> None:
    """``python evaluate.py`` / ``shapelab-evaluate``."""
    run_hydra_app(hydra_main, "evaluate")


if __name__ == "__main__":
    main()
