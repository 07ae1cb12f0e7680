"""The evaluation pipeline: reconstruct (or load) every shape of a split, score it against the dataset's
ground truth with every applicable metric, and write tables, pictures and dashboards.

Entry points: :func:`evaluate_model` (a trained ShapeModel; train.py and evaluate.py ckpt_path=...) and
:func:`evaluate_predictions` (files made elsewhere; evaluate.py pred_dir=...). Output in ``out_dir``:
``per_shape.csv`` (appended as shapes finish; a rerun skips the done ones), ``metrics.md``,
``summary.json``, ``reconstructions/<synset>/<model_id>.ply`` and ``contact_sheet.png``.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import trimesh
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from shapelab import reports
from shapelab.errors import ShapelabError
from shapelab.ground_truth import GroundTruthSource, MissingGroundTruth
from shapelab.models.base import FRAMES, Reconstruction
from shapelab.results import ResultsFile, summarise
from shapelab.scoring import METRIC_GROUPS, ScoringSettings, score_shape

log = logging.getLogger("shapelab.evaluation")

PREDICTION_EXTENSIONS = (".obj", ".ply", ".off", ".npz")
PREVIEW_POINTS = 2048

ShapeKey = tuple[str, str]
Stream = Callable[[set[ShapeKey]], Iterator[tuple[ShapeKey, Reconstruction | Exception]]]


def _settings(cfg: DictConfig) -> ScoringSettings:
    return ScoringSettings(
        occnet_points=cfg.occnet_points, deepsdf_points=cfg.deepsdf_points, capnet_points=cfg.capnet_points,
        fscore_thresholds=dict(cfg.fscore_thresholds), seed=cfg.seed,
    )


def _split_shapes(datamodule, split: str) -> list[ShapeKey]:
    if split not in ("test", "val"):
        raise ShapelabError(f"evaluate.split={split!r}: choose 'test' or 'val'")
    return [tuple(shape) for shape in datamodule.dataset(split).shapes]


def evaluate_model(model, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None) -> dict:
    """Reconstruct every shape of ``cfg_evaluate.split`` with ``model.reconstruct(batch)`` and score it.

    Returns the overall metrics (mean over classes) as ``{"eval/<split>/<metric>": value}``.
    """
    split = cfg_evaluate.split
    shapes = _split_shapes(datamodule, split)
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    model.eval()

    def stream(todo: set[ShapeKey]):
        for batch in loader:
            keys = list(zip(batch["synset"], batch["model_id"]))
            if not todo.intersection(keys):
                continue
            try:
                reconstructions = model.reconstruct(_to_device(batch, model.device))
                if len(reconstructions) != len(keys):
                    raise RuntimeError(f"reconstruct returned {len(reconstructions)} shapes for a batch of {len(keys)}")
            except ShapelabError:
                raise
            except Exception as exc:
                log.debug("reconstruct failed", exc_info=True)
                reconstructions = [exc] * len(keys)
            yield from ((key, recon) for key, recon in zip(keys, reconstructions) if key in todo)

    source = f"model {type(model).__name__}"
    return _evaluate(stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers, source)


def evaluate_predictions(
    pred_dir: str | Path, pred_frame: str, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None
) -> dict:
    """Score files ``<pred_dir>/<synset>/<model_id>.(obj|ply|off|npz)`` (meshes or point clouds in frame
    ``pred_frame``) against the datamodule's ground truth for every shape of the split."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ShapelabError(f"pred_dir={pred_dir} is not a directory; give the folder holding <synset>/<model_id>.ply")
    if pred_frame not in FRAMES:
        raise ShapelabError(f"pred_frame={pred_frame!r} is not one of {FRAMES}; say which frame the files are in")
    shapes = _split_shapes(datamodule, cfg_evaluate.split)

    def stream(todo: set[ShapeKey]):
        for key in shapes:
            if key in todo:
                try:
                    yield key, load_prediction(_prediction_file(pred_dir, *key), pred_frame)
                except Exception as exc:  # noqa: BLE001 - a missing or broken file fails that shape only
                    yield key, exc

    return _evaluate(stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers, f"pred_dir {pred_dir}")


def _prediction_file(pred_dir: Path, synset: str, model_id: str) -> Path:
    for extension in PREDICTION_EXTENSIONS:
        path = pred_dir / synset / f"{model_id}{extension}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no prediction {pred_dir / synset / model_id}.(obj|ply|off|npz)")


def load_prediction(path: Path, frame: str) -> Reconstruction:
    """A mesh or point cloud file as a Reconstruction. ``.npz``: ``vertices`` + ``faces`` or ``points``."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if "vertices" in arrays and "faces" in arrays:
                return Reconstruction(frame, mesh=trimesh.Trimesh(arrays["vertices"], arrays["faces"], process=False))
            if "points" in arrays:
                return Reconstruction(frame, points=np.asarray(arrays["points"], dtype=np.float64).reshape(-1, 3))
        raise ShapelabError(f"{path}: npz has neither 'vertices'+'faces' nor 'points'; save one of them")
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry() if loaded.geometry else trimesh.Trimesh()
    if isinstance(loaded, trimesh.PointCloud):
        return Reconstruction(frame, points=np.asarray(loaded.vertices, dtype=np.float64))
    if not isinstance(loaded, trimesh.Trimesh):
        raise ShapelabError(f"{path}: holds a {type(loaded).__name__}, not a triangle mesh or point cloud; export one")
    return Reconstruction(frame, mesh=loaded)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _save_reconstruction(recon: Reconstruction, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = recon.mesh if recon.mesh is not None else trimesh.PointCloud(recon.points)
    geometry.export(path)


def _evaluate(stream: Stream, shapes, datamodule, cfg, out_dir: Path, loggers, source: str) -> dict:
    settings = _settings(cfg)
    columns = settings.columns()
    groups = list(cfg.groups)
    unknown = sorted(set(groups) - set(METRIC_GROUPS))
    if unknown:
        raise ShapelabError(f"evaluate.groups: unknown {unknown}; choose from {sorted(METRIC_GROUPS)}")
    truth_source = GroundTruthSource.from_datamodule(datamodule)
    names = truth_source.category_names()
    results = ResultsFile(out_dir / "per_shape.csv", list(columns), resume=cfg.resume)
    todo = {key for key in shapes if key not in results.done}
    skipped: dict[str, str] = {}
    with tqdm(total=len(shapes), initial=len(shapes) - len(todo), desc=f"evaluating {cfg.split}", unit="shape") as bar:
        for (synset, model_id), recon in stream(todo):
            row = {"synset": synset, "model_id": model_id, "category": names.get(synset, synset)}
            try:
                if isinstance(recon, Exception):
                    raise recon
                values, missing = score_shape(recon, truth_source.load(synset, model_id), settings, groups)
                if not values:
                    raise MissingGroundTruth("no ground truth for any metric (" + "; ".join(missing.values()) + ")")
                for group, reason in missing.items():
                    skipped.setdefault(group, reason)
                if cfg.save_reconstructions:
                    _save_reconstruction(recon, out_dir / "reconstructions" / synset / f"{model_id}.ply")
                row.update(values, kind="mesh" if recon.mesh is not None else "points", frame=recon.frame, status="ok")
            except Exception as exc:  # noqa: BLE001 - reported and counted, never silently dropped
                row["status"] = f"failed: {_one_line(exc)}"
                log.warning("%s/%s %s", synset, model_id, row["status"])
            results.add(row)
            bar.update()
    return _finish(results, columns, truth_source, cfg, out_dir, loggers, source, skipped)


def _previews(results: ResultsFile, truth_source: GroundTruthSource, out_dir: Path, per_category: int):
    """(ground truth, prediction) point clouds of the first shapes of each category, from the saved files."""
    pairs: dict[str, list] = {}
    for row in results.rows.values():
        path = out_dir / "reconstructions" / row["synset"] / f"{row['model_id']}.ply"
        if row["status"] != "ok" or not path.is_file() or len(pairs.get(row["category"], [])) >= per_category:
            continue
        truth = truth_source.load(row["synset"], row["model_id"])
        gt = truth.pointcloud["points"] if truth.pointcloud is not None else truth.surface
        recon = load_prediction(path, row["frame"])
        pred = recon.points if recon.mesh is None else (
            recon.mesh.sample(PREVIEW_POINTS) if len(recon.mesh.faces) else np.zeros((0, 3)))
        rng = np.random.default_rng(0)
        gt = gt[rng.choice(len(gt), min(len(gt), PREVIEW_POINTS), replace=False)] if gt is not None else np.zeros((0, 3))
        pairs.setdefault(row["category"], []).append((row["model_id"], gt, np.asarray(pred), recon.mesh))
    return pairs


def _nan_to_none(value):
    """NaN (a metric that applied to no shape) as JSON null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _finish(results, columns, truth_source, cfg, out_dir: Path, loggers, source: str, skipped: dict) -> dict:
    rows = list(results.rows.values())
    summary = summarise(rows, list(columns))
    summary.update({
        "split": cfg.split,
        "source": source,
        "skipped_metric_groups": skipped,
        "definitions": {name: vars(info) for name, info in columns.items()},
        "settings": OmegaConf.to_container(cfg, resolve=True),
    })
    (out_dir / "summary.json").write_text(json.dumps(_nan_to_none(summary), indent=2, allow_nan=False) + "\n")
    reports.write_markdown_table(out_dir / "metrics.md", summary, columns)
    pairs = _previews(results, truth_source, out_dir, cfg.contact_sheet_shapes) if cfg.contact_sheet_shapes else {}
    sheet = reports.contact_sheet(out_dir / "contact_sheet.png", pairs)
    previews = {f"{category}_{model_id}": pred for category, items in pairs.items() for model_id, _, pred, _ in items}
    reports.log_to_dashboards(loggers, cfg.split, summary, rows, results.columns, sheet, previews)
    reports.print_table(summary, columns, out_dir)
    for group, reason in skipped.items():
        log.warning("metric group %s skipped for some shapes: %s", group, reason)
    overall = {f"eval/{cfg.split}/{name}": value for name, value in summary["mean_over_classes"].items()}
    overall[f"eval/{cfg.split}/num_failed"] = summary["num_failed"]
    return overall
