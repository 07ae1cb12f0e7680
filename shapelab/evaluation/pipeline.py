"""The evaluation pipeline, one way: reconstruct (`reconstruct`) → score (`scoring`) → collect
(`collect`) → report (`report`).

Entry points: :func:`evaluate_model` (a trained ShapeModel; train.py and evaluate.py ckpt_path=...) and
:func:`evaluate_predictions` (files made elsewhere; evaluate.py pred_dir=...). Output in ``out_dir``:
``per_shape.csv`` (appended as shapes finish; a rerun of the same evaluation skips the done ones),
``resume_key.json``, ``metrics.md``, ``summary.json``, ``reconstructions/<synset>/<model_id>.ply`` and
``contact_sheet.png``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from shapelab.errors import ShapelabError
from shapelab.evaluation.collect import ResultsFile, resume_key, summarise
from shapelab.evaluation.ground_truth import GroundTruthSource, MissingGroundTruth
from shapelab.evaluation.reconstruct import (
    ShapeKey,
    Stream,
    files_identity,
    files_stream,
    model_identity,
    model_stream,
    one_line,
    save_reconstruction,
    split_shapes,
    unmatched_files,
)
from shapelab.evaluation.report import write_all
from shapelab.evaluation.scoring import ScoringSettings, axes_warning, score_shape

log = logging.getLogger("shapelab.evaluation")
AXES_CHECK_SHAPES = 3  # pred_dir: the first scored shapes whose axes are compared with the ground truth's


def evaluate_model(model, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None,
                   source: str | None = None) -> dict:
    """Reconstruct every shape of ``cfg_evaluate.split`` with ``model.reconstruct(batch)`` and score it.

    ``source`` names where the weights came from in ``summary.json`` (e.g. the checkpoint file).
    Returns the overall metrics (mean over classes) as ``{"eval/<split>/<metric>": value}``.
    """
    shapes = split_shapes(datamodule, cfg_evaluate.split)
    stream = model_stream(model, datamodule, cfg_evaluate.split)
    identity = model_identity(model)
    observation = datamodule.observation(cfg_evaluate.split)  # e.g. one depth view (shape completion)
    if observation:
        identity += f" observed {json.dumps(observation, sort_keys=True)}"
    return _evaluate(stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers,
                     source or f"model {type(model).__name__}", identity, [])


def evaluate_predictions(
    pred_dir: str | Path, pred_frame: str, datamodule, cfg_evaluate: DictConfig, out_dir: str | Path, loggers=None,
    shapes: list[ShapeKey] | None = None,
) -> dict:
    """Score files ``<pred_dir>/<synset>/<model_id>.(obj|ply|off|npz)`` (meshes or point clouds in frame
    ``pred_frame``) against the datamodule's ground truth for every shape of the split (or of ``shapes``,
    e.g. the part of a split a stage worked on). Files for other shapes are counted and named in
    ``summary.json`` (``unmatched_files``)."""
    shapes = split_shapes(datamodule, cfg_evaluate.split) if shapes is None else [tuple(key) for key in shapes]
    stream = files_stream(pred_dir, pred_frame, shapes)
    return _evaluate(stream, shapes, datamodule, cfg_evaluate, Path(out_dir), loggers, f"pred_dir {pred_dir}",
                     files_identity(pred_dir, pred_frame), unmatched_files(pred_dir, shapes), check_axes=True)


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C stops the evaluation after the shape being scored (its row written) instead of inside native
    multi-threaded code (KD-tree queries, ray casts), where an interrupt once crashed the process; a second
    Ctrl-C stops at once. Yields ``interrupted() -> bool``. Only in the main thread (signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed: list[int] = []

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        log.warning("interrupted: finishing the current shape, then stopping (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ground_truth_key(truth_source: GroundTruthSource, shapes: list[ShapeKey], split: str) -> dict:
    shape_list = "\n".join(f"{synset}/{model_id}" for synset, model_id in shapes)
    return {"deepsdf_root": str(truth_source.deepsdf_root), "occnet_root": str(truth_source.occnet_root),
            "dataset_name": truth_source.dataset_name, "split": split, "num_shapes": len(shapes),
            "shapes_sha256": hashlib.sha256(shape_list.encode()).hexdigest()}


def _evaluate(stream: Stream, shapes, datamodule, cfg, out_dir: Path, loggers, source: str, identity: str,
              unmatched: list[str], check_axes: bool = False) -> dict:
    """Score ``stream``; ``identity`` names what is scored (resume key); ``check_axes``: warn (once) when the
    first scored predictions look turned ±90° about y against the ground truth (files made elsewhere may be in
    ShapeNet v2 axes while the data is in OccNet's)."""
    settings = ScoringSettings.from_config(cfg)
    columns = settings.columns()
    groups = settings.checked_groups(cfg.groups)
    truth_source = GroundTruthSource.from_datamodule(datamodule)
    names = truth_source.category_names()
    key = resume_key(identity, {**dataclasses.asdict(settings), "groups": groups},
                     _ground_truth_key(truth_source, shapes, cfg.split))
    results = ResultsFile(out_dir / "per_shape.csv", list(columns), key, resume=cfg.resume)
    todo = {shape for shape in shapes if shape not in results.done}
    skipped: dict[str, str] = {}
    axes_checked = 0
    bar = tqdm(total=len(shapes), initial=len(shapes) - len(todo), desc=f"evaluating {cfg.split}", unit="shape")
    with bar, _deferred_interrupt() as interrupted:
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
                row["status"] = f"failed: {one_line(exc)}"
                log.warning("%s/%s %s", synset, model_id, row["status"])
            results.add(row)
            bar.update()
            if interrupted():
                raise ShapelabError(
                    f"evaluation interrupted after {len(results.rows)} of {len(shapes)} shapes; the scored ones are "
                    f"kept in {results.path}: run the same command again to resume")
    summary = summarise(list(results.rows.values()), list(columns))
    summary.update({
        "split": cfg.split,
        "source": source,
        "resume_key": key,
        "num_unmatched_files": len(unmatched),
        "unmatched_files": unmatched,
        "skipped_metric_groups": skipped,
        "definitions": {name: vars(info) for name, info in columns.items()},
        "settings": OmegaConf.to_container(cfg, resolve=True),
    })
    for group, reason in skipped.items():
        log.warning("metric group %s skipped for some shapes: %s", group, reason)
    if unmatched:
        log.warning("%d prediction files match no shape of the %s split (listed in summary.json): %s",
                    len(unmatched), cfg.split, ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else ""))
    write_all(out_dir, summary, results, columns, truth_source, cfg.contact_sheet_shapes, loggers)
    overall = {f"eval/{cfg.split}/{name}": value for name, value in summary["mean_over_classes"].items()}
    overall[f"eval/{cfg.split}/num_failed"] = summary["num_failed"]
    return overall
