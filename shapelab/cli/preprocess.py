"""Preprocess raw meshes into the standard formats: ``python preprocess.py input_dir=... name=...``.

See conf/preprocess.yaml for the options and datamodules/preprocessing.py for what is written.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from shapelab.cli.common import run_hydra_app
from shapelab.errors import ShapelabError

REQUIRED = {"input_dir": "a folder of raw meshes", "name": "a dataset name"}


def preprocess(cfg: DictConfig):
    """Run the preprocessing ``cfg`` describes; returns the PreprocessSummary."""
    from shapelab.datamodules.preprocessing import preprocess_dataset

    for key, what in REQUIRED.items():
        if OmegaConf.is_missing(cfg, key):
            raise ShapelabError(
                f"{key}: not set; give {what}, e.g. python preprocess.py input_dir=/data/ShapeNetCore.v2 name=ShapeNet"
            )
    return preprocess_dataset(
        cfg.input_dir,
        cfg.out_dir,
        name=cfg.name,
        categories=OmegaConf.to_container(cfg.categories) if cfg.categories is not None else None,
        splits=list(cfg.splits),
        seed=cfg.seed,
        workers=cfg.workers,
        overwrite=cfg.overwrite,
        progress=cfg.progress,
        frame=cfg.frame,
        **OmegaConf.to_container(cfg.options, resolve=True),
    )


@hydra.main(version_base="1.3", config_path="pkg://shapelab.conf", config_name="preprocess")
def hydra_main(cfg: DictConfig) -> None:
    try:
        summary = preprocess(cfg)
    except ShapelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(summary)
    if summary.all_failed:
        print(f"error: every shape failed ({len(summary.failed)}), nothing written; see the reasons above",
              file=sys.stderr)  # fmt: skip
        sys.exit(1)
    print(f"output: {cfg.out_dir}")


def main() -> None:
    """``python preprocess.py`` / ``shapelab-preprocess``."""
    run_hydra_app(hydra_main, "preprocess")


if __name__ == "__main__":
    main()
