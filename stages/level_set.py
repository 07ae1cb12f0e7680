"""``stage=level_set_fit``: fit a neural SDF to each shape of a split from its point cloud (Small Steps and Level Sets).

For every shape of ``split`` (OccNet layout: ``<occnet>/<synset>/<id>/pointcloud.npz``, the built-in data or a
user's OccNet-format ShapeNet): take ``num_points`` of its points (seeded; optional Gaussian ``noise``), fit
``model=level_set`` with ``guidance=guiding_points|none``, extract the zero level set (occnet frame) and write
``<run>/level_set/meshes/<synset>/<id>.ply`` + ``fits/<synset>/<id>.json`` (settings key, steps, seconds,
the paper's squared Chamfer). Then the meshes are scored by the shared evaluation into ``<run>/eval/<split>/``
(the usual columns, SION%, ``quality_vs_sion.png``; where compare.py looks). Loss curves, guiding-point pictures and meshes go to the run's loggers.

Resumable: a shape whose ``fits/<id>.json`` holds the same key — a hash of the model, guidance and stage
settings and of the input file's bytes — is not fitted again; any difference refits it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import trimesh
from omegaconf import DictConfig, OmegaConf, open_dict
from shapelab.metrics.chamfer import chamfer_deepsdf
from shapelab.models.level_set import LevelSetModel
from shapelab.stages.base import Stage, StageRun
from shapelab.stages.level_set_logging import FitLogger
from tqdm.auto import tqdm

from shapelab.errors import ShapelabError
from shapelab.evaluation import evaluate_predictions
from shapelab.evaluation.ground_truth import GroundTruthSource

log = logging.getLogger("shapelab.level_set")
PAPER_CHAMFER_SAMPLES = 30_000  # PG-SDF metrics: 30k mesh samples vs the input cloud, squared, summed both ways


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reuse_key(settings: dict, path: Path) -> str:
    """The key a fit is reused on: a hash of its settings and of its input file's bytes."""
    return hashlib.sha256(json.dumps({**settings, "file": file_digest(path)}, sort_keys=True).encode()).hexdigest()


def input_points(points: np.ndarray, path: Path, num_points: int | None, noise: float, min_points: int,
                 seed: int) -> np.ndarray:
    """The fit's input (K, 3): ``num_points`` of ``points`` (seeded; all when None or fewer) plus N(0, noise²).
    An empty cloud, non-finite values or fewer than ``min_points`` points raise one line naming ``path``."""
    if len(points) < min_points:
        raise ShapelabError(f"{path}: {len(points)} points, fewer than stage.min_points={min_points}; "
                            "regenerate the point cloud or lower stage.min_points")
    if not np.isfinite(points).all():
        raise ShapelabError(f"{path}: the points contain NaN or inf values; regenerate the point cloud")
    rng = np.random.default_rng(seed)
    if num_points is not None and num_points < len(points):
        points = points[rng.choice(len(points), num_points, replace=False)]
    return points + noise * rng.standard_normal(points.shape) if noise else points.astype(np.float64)


class LevelSetFitStage(Stage):
    """Fit every shape of a split (see the module docstring).

    Args:
        split: "test" or "val" (scored by the shared evaluation); max_shapes: first n shapes (None = all).
        shapes: only these shapes of the split, as "<synset>/<model_id>" (None = all).
        num_points: input points per shape taken from pointcloud.npz (None = all 100k).
        noise: std of Gaussian noise added to the input (unit-cube frame).
        min_points: fewer input points is an error.
        log_every_steps: loss curves to the loggers every this many optimisation steps.
        picture_every_moves: a picture of the guiding points every this many moves (0 = none).
        seed: input subsampling, noise and the fit.
    """

    def __init__(self, split: str, max_shapes: int | None, shapes: list[str] | None, num_points: int | None,
                 noise: float, min_points: int, log_every_steps: int, picture_every_moves: int, seed: int):
        if split not in ("test", "val"):
            raise ShapelabError(f"stage.split={split!r}: choose 'test' or 'val' (the shared evaluation scores those)")
        self.split, self.max_shapes, self.only, self.num_points, self.noise = split, max_shapes, shapes, num_points, noise
        self.min_points, self.log_every_steps, self.picture_every_moves, self.seed = (
            min_points, log_every_steps, picture_every_moves, seed)

    def settings_key(self, cfg: DictConfig) -> dict:
        """What a fit depends on besides its input file (the reuse key's contents)."""
        return {"model": OmegaConf.to_container(cfg.model, resolve=True),
                "guidance": OmegaConf.to_container(cfg.guidance, resolve=True),
                "input": {"num_points": self.num_points, "noise": self.noise, "seed": self.seed}}

    def run(self, run: StageRun) -> dict[str, float]:
        cfg, datamodule = run.cfg, run.datamodule
        if cfg.get("guidance") is None:
            raise ShapelabError("stage=level_set_fit needs a guidance: add guidance=guiding_points or guidance=none")
        model = hydra.utils.instantiate(cfg.model, _convert_="partial")
        if not isinstance(model, LevelSetModel):
            raise ShapelabError(f"stage=level_set_fit needs model=level_set, got model._target_={cfg.model.get('_target_')}")
        guidance = hydra.utils.instantiate(cfg.guidance, _convert_="partial")
        truths = GroundTruthSource.from_datamodule(datamodule)
        if truths.occnet_root is None:
            raise ShapelabError(f"stage=level_set_fit reads OccNet pointcloud.npz files; {datamodule.format_dir('occnet')} "
                                "does not exist: use data=synthetic_occ or data=shapenet_occ")
        shapes = self.chosen_shapes([tuple(shape) for shape in datamodule.dataset(self.split).shapes])
        out_dir = run.output_dir / "level_set"
        settings = self.settings_key(cfg)
        rows = [self.fit_shape(model, guidance, truths.occnet_root, key, out_dir, settings, run.loggers)
                for key in tqdm(shapes, desc=f"level-set fits ({self.split})", unit="shape")]
        eval_cfg = cfg.evaluate.copy()
        with open_dict(eval_cfg):
            eval_cfg.split = self.split
        # the evaluation's resume is keyed on the mesh files, so refitted shapes are rescored
        metrics = evaluate_predictions(out_dir / "meshes", "occnet", datamodule, eval_cfg,
                                       run.output_dir / "eval" / self.split, run.loggers, shapes=shapes)
        fit_means = {name: float(np.nanmean([row.get(name, np.nan) for row in rows]))
                     for name in ("chamfer_pgsdf", "seconds", "cpu_seconds", "steps", "loss")}
        (out_dir / "fits.json").write_text(json.dumps({"mean": fit_means, "shapes": rows}, indent=2) + "\n")
        metrics.update({f"level_set/{name}": value for name, value in fit_means.items()})
        metrics["train/loss"] = fit_means["loss"]  # the monitored metric of model=level_set (no validation)
        return metrics

    def chosen_shapes(self, shapes: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The split's shapes limited by ``shapes`` (an unknown entry is an error) and ``max_shapes``."""
        if self.only is not None:
            known = {f"{synset}/{model_id}": (synset, model_id) for synset, model_id in shapes}
            missing = [entry for entry in self.only if entry not in known]
            if missing:
                raise ShapelabError(f"stage.shapes: {missing} not in the {self.split} split; give <synset>/<model_id> "
                                    f"entries of data's {self.split} split")
            shapes = [known[entry] for entry in self.only]
        return shapes[:self.max_shapes]

    def fit_shape(self, model: LevelSetModel, guidance, occnet_root: Path, key: tuple[str, str], out_dir: Path,
                  settings: dict, loggers: list) -> dict:
        """Fit one shape (or reuse its earlier fit with the same key); returns its record."""
        synset, model_id = key
        path = occnet_root / synset / model_id / "pointcloud.npz"
        record_path = out_dir / "fits" / synset / f"{model_id}.json"
        mesh_path = out_dir / "meshes" / synset / f"{model_id}.ply"
        key = reuse_key(settings, path)
        if record_path.is_file() and mesh_path.is_file():
            record = json.loads(record_path.read_text())
            if record.get("key") == key:
                return {**record, "fitted_now": False}
        cloud = GroundTruthSource(None, occnet_root, "").load(synset, model_id).pointcloud
        points = input_points(cloud["points"], path, self.num_points, self.noise, self.min_points, self.seed)
        name = f"{synset}_{model_id}"
        fit_logger = FitLogger(loggers, name, points, out_dir / "fits" / synset / model_id, self.log_every_steps,
                               self.picture_every_moves)
        wall, cpu = time.perf_counter(), time.process_time()
        fitted = model.fit(points, guidance, self.seed, fit_logger)
        mesh = model.extract(fitted)
        seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        fit_logger.final_mesh(mesh)
        mesh_path.parent.mkdir(parents=True, exist_ok=True)
        mesh.export(mesh_path)
        record = {"key": key, "shape": name, "input_points": len(points), "steps": fitted.steps, "loss": fitted.loss,
                  "seconds": seconds, "cpu_seconds": cpu_seconds,
                  "chamfer_pgsdf": paper_chamfer(mesh, cloud["points"], self.seed)}
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        log.info("%s: %d steps, %.1f s (%.1f CPU-s)", name, fitted.steps, seconds, cpu_seconds)
        return {**record, "fitted_now": True}


def paper_chamfer(mesh: trimesh.Trimesh, cloud: np.ndarray, seed: int) -> float:
    """PG-SDF's "SqChamfer": mean squared nearest distance from 30k mesh samples to the ground-truth cloud plus
    the reverse, unit-cube frame (NaN for an empty mesh)."""
    if len(mesh.faces) == 0:
        return float("nan")
    samples, _ = trimesh.sample.sample_surface(mesh, PAPER_CHAMFER_SAMPLES, seed=seed)
    return chamfer_deepsdf(np.asarray(samples), cloud)
