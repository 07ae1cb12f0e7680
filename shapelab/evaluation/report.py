"""Step 4 of the evaluation, what it shows: ``summary.json``, the metric table (markdown file + rich
console), the contact sheet, and the run's dashboards (W&B table and 3D objects, TensorBoard scalars and
images, any logger's scalars)."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import trimesh
from matplotlib.figure import Figure
from PIL import Image
from rich.console import Console
from rich.table import Table

from shapelab.dashboards import log_image, log_shapes
from shapelab.evaluation.collect import ResultsFile
from shapelab.evaluation.ground_truth import GroundTruthSource
from shapelab.evaluation.reconstruct import load_prediction
from shapelab.evaluation.scoring import MetricInfo
from shapelab.evaluation.shape_view import write_evaluation_view
from shapelab.metrics.chamfer import normalise_capnet
from shapelab.renderers.thumbnail import render_mesh_thumbnail

log = logging.getLogger("shapelab.evaluation")
PREVIEW_POINTS = 2048

TABLE_COLUMNS = {
    "chamfer_l1_occnet": "CD-L1 occnet", "normal_consistency": "NC", "iou": "IoU", "fscore_1pct": "F@1%",
    "chamfer_deepsdf": "CD deepsdf", "chamfer_capnet": "CD capnet", "emd_capnet": "EMD capnet",
    "chamfer_drwr_best": "CD drwr",
}
"""Columns of the console/markdown table and their short console labels (the CSV and JSON have all)."""


def _header(name: str, info: MetricInfo, short: bool = False) -> str:
    arrow = "↑" if info.higher_is_better else "↓"
    scale = f" ×{info.report_scale:g}" if info.report_scale != 1 else ""
    return f"{TABLE_COLUMNS[name] if short else name}{scale} {arrow}"


def _cell(value: float, info: MetricInfo) -> str:
    return "–" if math.isnan(value) else f"{value * info.report_scale:.4g}"


def table_rows(
    summary: dict, columns: dict[str, MetricInfo], short: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one per category, then the mean over classes and the mean over shapes."""
    shown = [name for name in TABLE_COLUMNS if name in columns]
    header = ["category", "shapes"] + [_header(name, columns[name], short) for name in shown]
    rows = [[category, str(stats["num_shapes"])] + [_cell(stats[name], columns[name]) for name in shown]
            for category, stats in summary["per_category"].items()]
    for label, key in (("mean/classes", "mean_over_classes"), ("mean/shapes", "mean_over_shapes"),
                       ("median/shapes", "median_over_shapes")):
        if key not in summary:  # summaries written before the median row
            continue
        rows.append([label, str(summary["num_scored"])] + [_cell(summary[key][name], columns[name]) for name in shown])
    return header, rows


def write_markdown_table(path: Path, summary: dict, columns: dict[str, MetricInfo]) -> None:
    header, rows = table_rows(summary, columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    note = (f"\nValues × the factor in the header (the papers' reporting scale); ↓ lower is better. mean/classes: "
            f"mean of the category means (OccNet's reporting); mean/shapes, median/shapes: mean and median over "
            f"all scored shapes (DeepSDF reports both). "
            f"{summary['num_failed']} of {summary['num_shapes']} shapes failed (see summary.json).\n")
    Path(path).write_text("\n".join(lines) + "\n" + note)


def print_table(summary: dict, columns: dict[str, MetricInfo], out_dir: Path) -> None:
    header, rows = table_rows(summary, columns, short=True)
    table = Table(*header, title=f"evaluation ({summary['num_scored']} scored, {summary['num_failed']} failed)",
                  caption="column definitions: docs/metrics.md")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.width = max(console.width, 110)  # the table needs ~100 columns; narrower pipes would squeeze it
    console.print(table)
    if summary.get("num_unmatched_files"):
        console.print(f"{summary['num_unmatched_files']} prediction files match no shape of the split "
                      f"(summary.json: unmatched_files): {', '.join(summary['unmatched_files'][:5])}")
    console.print(f"results: {out_dir} (per_shape.csv, metrics.md, summary.json, contact_sheet.png, reconstructions/)")


def _point_thumbnail(ax, points: np.ndarray, title: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=6)
    if len(points) == 0:
        ax.text2D(0.5, 0.5, "empty", ha="center", transform=ax.transAxes)
        return
    points = normalise_capnet(points)
    # plot axes (x, -z, y): y up, a proper rotation; the view matches render_mesh_thumbnail's default
    # camera direction (1, 0.8, 1.2), so point and mesh thumbnails show the same side
    ax.scatter(points[:, 0], -points[:, 2], points[:, 1], s=1.5, c=points[:, 1], cmap="viridis", depthshade=False)
    ax.set_xlim(-0.5, 0.5), ax.set_ylim(-0.5, 0.5), ax.set_zlim(-0.5, 0.5)
    ax.view_init(elev=27, azim=-50)


def _mesh_thumbnail(ax, mesh: trimesh.Trimesh, title: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=6)
    ax.imshow(render_mesh_thumbnail(mesh, size=160))


def contact_sheet(path: Path, pairs_by_category: dict[str, list[tuple]]) -> Path | None:
    """One row per category, one (ground truth, prediction) pair of thumbnails per shape.

    ``pairs_by_category[category] = [(model_id, gt_points (N,3), pred_points (M,3), pred_mesh | None), ...]``.
    Point clouds are scatter plots, each in its own bounding cube (matplotlib, no OpenGL); a predicted
    mesh is ray cast and shaded (renderers/thumbnail.py, embree).
    """
    if not pairs_by_category:
        return None
    rows, cols = len(pairs_by_category), 2 * max(len(pairs) for pairs in pairs_by_category.values())
    fig = Figure(figsize=(1.6 * cols, 1.7 * rows), dpi=100)  # no pyplot: no GUI backend, no global state
    for r, (category, pairs) in enumerate(pairs_by_category.items()):
        for c, (model_id, gt, pred, mesh) in enumerate(pairs):
            title = f"{category} GT\n{model_id[:12]}"
            _point_thumbnail(fig.add_subplot(rows, cols, r * cols + 2 * c + 1, projection="3d"), gt, title)
            if mesh is not None and len(mesh.faces):
                _mesh_thumbnail(fig.add_subplot(rows, cols, r * cols + 2 * c + 2), mesh, "prediction")
            else:
                _point_thumbnail(fig.add_subplot(rows, cols, r * cols + 2 * c + 2, projection="3d"), pred, "prediction")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def log_to_dashboards(loggers, split: str, summary: dict, rows: list[dict], columns: list[str],
                      sheet: Path | None, previews: dict[str, np.ndarray]) -> None:
    """Overall means as ``eval/<split>/<metric>`` scalars on every logger; W&B also gets the per-shape table,
    the contact sheet and 3D point clouds (``previews``: name -> (N,3)); TensorBoard the contact sheet and clouds
    (pictures and shapes through shapelab/dashboards.py)."""
    from pytorch_lightning.loggers import WandbLogger

    scalars = {f"eval/{split}/{name}": value for name, value in summary["mean_over_classes"].items()
               if not math.isnan(value)}
    scalars[f"eval/{split}/num_failed"] = summary["num_failed"]
    for logger in loggers or []:
        logger.log_metrics(scalars)
        if isinstance(logger, WandbLogger):
            logger.log_table(key=f"eval/{split}/per_shape", columns=columns,
                             data=[[row[column] for column in columns] for row in rows])
    if sheet is not None:
        log_image(loggers, f"eval/{split}/contact_sheet", np.asarray(Image.open(sheet).convert("RGB")))
    log_shapes(loggers, f"eval/{split}/3d", previews)
    for logger in loggers or []:
        logger.save()


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


SION_AXES = (("iou", "IoU ↑"), ("chamfer_l1_occnet", "Chamfer-L1 (OccNet, unit cube) ↓"))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def quality_vs_sion(path: Path, rows_by_method: dict[str, list[dict]]) -> Path | None:
    """IoU and Chamfer-L1 of each scored shape against its ground truth's SION% (how concave it is), one
    series per method (Small Steps and Level Sets' figure). None when no row has a SION% value."""
    series = {method: [row for row in rows if row.get("status") == "ok" and not math.isnan(_number(row.get("sion_percent")))]
              for method, rows in rows_by_method.items()}
    if not any(series.values()):
        return None
    figure = Figure(figsize=(9, 3.6), dpi=90)
    for index, (column, label) in enumerate(SION_AXES):
        axes = figure.add_subplot(1, 2, index + 1)
        for method, rows in series.items():
            rows = sorted(rows, key=lambda row: _number(row["sion_percent"]))
            axes.plot([_number(row["sion_percent"]) for row in rows], [_number(row.get(column)) for row in rows],
                      "o-", markersize=4, label=method)
        axes.set_xlabel("SION % of the ground truth")
        axes.set_ylabel(label)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def write_all(out_dir: Path, summary: dict, results: ResultsFile, columns: dict[str, MetricInfo],
              truth_source: GroundTruthSource, contact_sheet_shapes: int, loggers) -> None:
    """The contact sheet, ``summary.json``, ``metrics.md``, the dashboards and the console table.

    A picture that cannot be made (a bad prediction file, a plotting error) is skipped with a warning and
    its reason in ``summary.json`` (``pictures``): pictures never abort an evaluation.
    """
    split = summary["split"]
    pairs, sheet = {}, None
    summary["pictures"] = "none" if not contact_sheet_shapes else "ok"
    if contact_sheet_shapes:
        try:
            pairs = _previews(results, truth_source, out_dir, contact_sheet_shapes)
            sheet = contact_sheet(out_dir / "contact_sheet.png", pairs)
            write_evaluation_view(out_dir, pairs, {row["model_id"]: row["synset"] for row in results.rows.values()})
        except Exception as exc:  # noqa: BLE001 - the numbers matter more than the pictures
            pairs, sheet = {}, None
            summary["pictures"] = f"skipped: {type(exc).__name__}: {str(exc).strip()[:200]}"
            log.warning("contact sheet %s", summary["pictures"])
    (out_dir / "summary.json").write_text(json.dumps(_nan_to_none(summary), indent=2, allow_nan=False) + "\n")
    write_markdown_table(out_dir / "metrics.md", summary, columns)
    previews = {f"{category}_{model_id}": pred for category, items in pairs.items() for model_id, _, pred, _ in items}
    rows = list(results.rows.values())
    quality_vs_sion(out_dir / "quality_vs_sion.png", {summary.get("source", "prediction"): rows})
    log_to_dashboards(loggers, split, summary, rows, results.columns, sheet, previews)
    print_table(summary, columns, out_dir)
