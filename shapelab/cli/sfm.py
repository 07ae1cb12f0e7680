"""Structure-from-Motion of photos with COLMAP: ``python sfm.py images_dir=... [out_dir=...]`` (conf/sfm.yaml)."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from shapelab.cli.common import run_hydra_app
from shapelab.errors import ShapelabError


def sfm(cfg: DictConfig) -> dict:
    """Run the SfM ``cfg`` describes (rendering the built-in capture first when ``builtin`` is set); returns
    the report and logs the cameras picture and the sparse points to the configured loggers."""
    import numpy as np
    import trimesh
    from PIL import Image

    from shapelab.dashboards import log_image, log_shapes
    from shapelab.runs import instantiate_group
    from shapelab.sfm.pipeline import SfmOptions
    from shapelab.sfm.run import run_sfm, summary_lines

    out_dir = Path(cfg.out_dir)
    images_dir, masks_dir, gt_cameras = cfg.images_dir, cfg.masks_dir, cfg.gt_cameras
    if cfg.builtin:
        from shapelab.sfm.captures import ViewSet, write_capture

        capture = write_capture(out_dir / "capture", builtin_shape(cfg.builtin, cfg.builtin_shape),
                                ViewSet(**OmegaConf.to_container(cfg.views)), progress=cfg.progress)
        images_dir, masks_dir, gt_cameras = capture / "images", capture / "masks", capture / "cameras_true.npz"
    if not images_dir:
        raise ShapelabError("images_dir is not set; give the folder of photos (images_dir=...) or builtin=<category>")
    options = SfmOptions(**OmegaConf.to_container(cfg.colmap, resolve=True))
    report = run_sfm(images_dir, out_dir, options, masks_dir, gt_cameras, cfg.overwrite, cfg.progress)
    picture = np.asarray(Image.open(out_dir / "cameras.png").convert("RGB"))
    points = np.asarray(trimesh.load(out_dir / "points.ply", process=False).vertices)
    loggers = instantiate_group(cfg.get("logger"))
    log_image(loggers, "sfm/cameras", picture, 0)
    log_shapes(loggers, "sfm/points", {"sparse_points": points}, 0)
    for logger in loggers:
        logger.log_metrics({f"sfm/{key}": float(value) for key, value in flat_numbers(report).items()}, step=0)
        logger.finalize("success")
    print("\n".join(summary_lines(report)))
    print(f"output: {out_dir} (cameras.npz, sparse/, points.ply, cameras.png, report.json)")
    return report


def builtin_shape(category: str, index: int):
    """The mesh of built-in shape ``index`` of ``category`` (a name such as "chair", or a synset id)."""
    from shapelab.datamodules.synthetic import CATEGORIES, generate_shape

    synset = {name: synset for synset, name in CATEGORIES.items()}.get(category, category)
    if synset not in CATEGORIES:
        raise ShapelabError(f"builtin={category!r}: not a built-in category; use one of {sorted(CATEGORIES.values())}")
    return generate_shape(synset, index, seed=0)


def flat_numbers(report: dict) -> dict[str, float]:
    """The report's scalar numbers for dashboards (registered counts, errors, seconds, pose errors)."""
    numbers = {key: report[key] for key in ("images_registered", "images_total", "points", "reprojection_error_px",
                                            "mean_track_length") if key in report}
    numbers.update({key: report["timing"][key] for key in ("seconds", "cpu_seconds", "seconds_per_image")})
    evaluation = report.get("evaluation", {})
    numbers.update({key: value for key, value in evaluation.items() if isinstance(value, float)})
    return numbers


@hydra.main(version_base="1.3", config_path="pkg://shapelab.conf", config_name="sfm")
def hydra_main(cfg: DictConfig) -> None:
    try:
        sfm(cfg)
    except ShapelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)



def main() -> None:
    """``python sfm.py`` / ``shapelab-sfm``."""
    run_hydra_app(hydra_main, "sfm")


if __name__ == "__main__":
    main()
