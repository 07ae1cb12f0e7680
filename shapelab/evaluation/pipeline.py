"""The evaluation pipeline, one way: reconstruct (`reconstruct`) → score (`scoring`) → collect
(`collect`) → report (`report`).

Entry points: :func:`evaluate_model` (a trained ShapeModel; train.py and evaluate.py ckpt_path=...) and
:func:`evaluate_predictions` (files made elsewhere; evaluate.py pred_dir=...). Output in ``out_dir``:
``per_shape.csv`` (appended as shapes finish; a rerun skips the done ones), ``metrics.md``,
``summary.json``, ``reconstructions/<synset>/<model_id>.ply`` and ``contact_sheet.png``.
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from shapelab.evaluation.collect import ResultsFile, summarise
from shapelab.evaluation.ground_truth import GroundTruthSource, MissingGroundTruth
from shapelab.evaluation.reconstruct import (
    Stream,
    files_stream,
    model_stream,
    save_reconstruction,
    split_shapes,
)
from shapelab.evaluation.report import write_all
from shapelab.evaluation.scoring import ScoringSettings, axes_warning, score_shape

log = logging.getLogger("shapelab.evaluation")
AXES_CHECK_SHAPES = 3  # pred_dir: the first scored shapes whose axes are compared with the ground truth's


def evaluate_model(model, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None) -> dict:
    """Reconstruct every shape of ``cfg_evaluate.split`` with ``model.reconstruct(batch)`` and score it.

    Returns the overall metrics (mean over classes) as ``{"eval/<split>/<metric>": value}``.
    """
    shapes = split_shapes(datamodule, cfg_evaluate.split)
    stream = model_stream(model, datamodule, cfg_evaluate.split)
    return _evaluate(stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers, f"model {type(model).__name__}")


def evaluate_predictions(
    pred_dir: str | Path, pred_frame: str, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None
) -> dict:
    """Score files ``<pred_dir>/<synset>/<model_id>.(obj|ply|off|npz)`` (meshes or point clouds in frame
    ``pred_frame``) against the datamodule's ground truth for every shape of the split."""
    shapes = split_shapes(datamodule, cfg_evaluate.split)
    stream = files_stream(pred_dir, pred_frame, shapes)
    return _evaluate(
        stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers, f"pred_dir {pred_dir}", check_axes=True
    )


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _evaluate(
    stream: Stream, shapes, datamodule, cfg, out_dir: Path, loggers, source: str, check_axes: bool = False
) -> dict:
    """Score ``stream``; ``check_axes``: warn (once) when the first scored predictions look turned ±90° about y
    against the ground truth (files made elsewhere may be in ShapeNet v2 axes while the data is in OccNet's)."""
    settings = ScoringSettings.from_config(cfg)
    columns = settings.columns()
    groups = settings.checked_groups(cfg.groups)
    truth_source = GroundTruthSource.from_datamodule(datamodule)
    names = truth_source.category_names()
    results = ResultsFile(out_dir / "per_shape.csv", list(columns), resume=cfg.resume)
    todo = {key for key in shapes if key not in results.done}
    skipped: dict[str, str] = {}
    axes_checked = 0
    with tqdm(total=len(shapes), initial=len(shapes) - len(todo), desc=f"evaluating {cfg.split}", unit="shape") as bar:
        for (synset, model_id), recon in stream(todo):
            row = {"synset": synset, "model_id": model_id, "category": names.get(synset, synset)}
            try:
                if isinstance(recon, Exception):
                    raise recon
                truth = truth_source.load(synset, model_id)
                values, missing = score_shape(recon, truth, settings, groups)
                if not values:
                    raise MissingGroundTruth("no ground truth for any metric (" + "; ".join(missing.values()) + ")")
                for group, reason in missing.items():
                    skipped.setdefault(group, reason)
                if cfg.save_reconstructions:
                    save_reconstruction(recon, out_dir / "reconstructions" / synset / f"{model_id}.ply")
                row.update(values, kind="mesh" if recon.mesh is not None else "points", frame=recon.frame, status="ok")
                if check_axes and axes_checked < AXES_CHECK_SHAPES:
                    axes_checked += 1
                    warning = axes_warning(recon, truth)
                    if warning:
                        log.warning("%s/%s: %s", synset, model_id, warning)
                        axes_checked = AXES_CHECK_SHAPES  # once is enough
            except Exception as exc:  # noqa: BLE001 - reported and counted, never silently dropped
                row["status"] = f"failed: {_one_line(exc)}"
                log.warning("%s/%s %s", synset, model_id, row["status"])
            results.add(row)
            bar.update()
    summary = summarise(list(results.rows.values()), list(columns))
    summary.update({
        "split": cfg.split,
        "source": source,
        "skipped_metric_groups": skipped,
        "definitions": {name: vars(info) for name, info in columns.items()},
        "settings": OmegaConf.to_container(cfg, resolve=True),
    })
    for group, reason in skipped.items():
        log.warning("metric group %s skipped for some shapes: %s", group, reason)
    write_all(out_dir, summary, results, columns, truth_source, cfg.contact_sheet_shapes, loggers)
    overall = {f"eval/{cfg.split}/{name}": value for name, value in summary["mean_over_classes"].items()}
    overall[f"eval/{cfg.split}/num_failed"] = summary["num_failed"]
    return overall
