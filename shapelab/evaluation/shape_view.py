"""Interactive 3D view of ground truth and reconstructions for the HTML reports (plotly, works offline).

A view is a grid: one row per shape, one column per source (ground truth, then reconstructions or runs);
each cell is a turnable plotly scene with the shape decimated by `shapelab.dashboards.decimate` (meshes to
2000 faces, clouds to 2048 points), so a page with a few shapes stays at a few MB. plotly.js is embedded in
the page (no network, no file beside it). The evaluation writes ``eval/<split>/shapes_3d.html`` and the
decimated ground truth it showed (``eval/<split>/ground_truth/<synset>/<id>.ply``, points) so compare.py can
put the same ground truth beside every run's reconstruction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from shapelab.dashboards import Shape, decimate

VIEW_FILE = "shapes_3d.html"
GROUND_TRUTH_DIR = "ground_truth"
COLOURS = ("#7f7f7f", "#4361ee", "#e76f51", "#2a9d8f", "#8338ec", "#e9c46a")
"""Per column: ground truth grey, then one colour per reconstruction / run (hues apart from matplotlib's)."""
MAX_SCENES = 16
"""Browsers give a page about 16 WebGL contexts; plotly uses one per scene."""


def shape_view_figure(rows: dict[str, dict[str, Shape]]):
    """A plotly figure: ``rows`` is row label (a shape) -> column label (a source) -> mesh or (N, 3) points."""
    from plotly.subplots import make_subplots

    columns = list(dict.fromkeys(column for cells in rows.values() for column in cells))[:MAX_SCENES]
    labels = list(rows)
    while labels and len(labels) * len(columns) > MAX_SCENES:
        labels.pop()
    fig = make_subplots(
        rows=max(len(labels), 1), cols=max(len(columns), 1),
        specs=[[{"type": "scene"}] * max(len(columns), 1) for _ in range(max(len(labels), 1))],
        subplot_titles=[f"{label}<br>{column}" for label in labels for column in columns],
        horizontal_spacing=0.01, vertical_spacing=0.03,
    )
    for r, label in enumerate(labels, start=1):
        for c, column in enumerate(columns, start=1):
            shape = rows[label].get(column)
            if shape is not None:
                fig.add_trace(_trace(decimate(shape), COLOURS[(c - 1) % len(COLOURS)]), row=r, col=c)
    hidden = {"visible": False}
    fig.update_scenes(xaxis=hidden, yaxis=hidden, zaxis=hidden, aspectmode="data",
                      camera={"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 1.3, "y": 0.9, "z": 1.6}})
    fig.update_layout(height=260 * max(len(labels), 1), width=260 * max(len(columns), 1) + 40, showlegend=False,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, paper_bgcolor="white")
    fig.update_annotations(font_size=10)
    return fig


def _trace(shape: Shape, colour: str):
    from plotly import graph_objects as go

    if isinstance(shape, trimesh.Trimesh):
        vertices, faces = np.asarray(shape.vertices, np.float32), np.asarray(shape.faces)
        return go.Mesh3d(x=vertices[:, 0], y=vertices[:, 1], z=vertices[:, 2], i=faces[:, 0], j=faces[:, 1],
                         k=faces[:, 2], color=colour, flatshading=True, hoverinfo="skip",
                         lighting={"ambient": 0.45, "diffuse": 0.8, "specular": 0.1})
    points = np.asarray(shape, np.float32).reshape(-1, 3)
    return go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers",
                        marker={"size": 1.5, "color": colour}, hoverinfo="skip")


def shape_view_div(rows: dict[str, dict[str, Shape]]) -> str:
    """The view as an HTML fragment with plotly.js embedded (for a page of its own or inside a report)."""
    return shape_view_figure(rows).to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})


def write_shape_view(path: Path, rows: dict[str, dict[str, Shape]], title: str) -> Path:
    """A self-contained page with the view and a heading."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                    f"<body style='font-family:sans-serif'><h2>{title}</h2>{shape_view_div(rows)}</body></html>")
    return path


def write_evaluation_view(out_dir: Path, pairs: dict[str, list], synsets: dict[str, str]) -> Path | None:
    """``<out_dir>/shapes_3d.html`` from the evaluation's previews (category -> [(model_id, ground truth points,
    predicted points, predicted mesh or None)]; ``synsets``: model_id -> synset), and each shown ground truth
    (decimated) as ``<out_dir>/ground_truth/<synset>/<id>.ply`` for compare.py. None when there is nothing to show."""
    rows: dict[str, dict[str, Shape]] = {}
    for category, items in pairs.items():
        for model_id, gt, pred, mesh in items:
            synset = synsets[model_id]
            gt = decimate(gt)
            if len(gt):
                target = Path(out_dir) / GROUND_TRUTH_DIR / synset / f"{model_id}.ply"
                target.parent.mkdir(parents=True, exist_ok=True)
                trimesh.PointCloud(gt).export(target)
            rows[f"{category} {model_id[:12]}"] = {"ground truth": gt,
                                                   "reconstruction": mesh if mesh is not None else pred}
    return write_shape_view(Path(out_dir) / VIEW_FILE, rows, "ground truth vs reconstruction") if rows else None


def compare_rows(run_dirs: dict[str, Path], split: str, max_shapes: int = 4) -> dict[str, dict[str, Shape]]:
    """Rows for compare.py: the first ``max_shapes`` shapes every run reconstructed (``eval/<split>/
    reconstructions``), the ground truth the evaluation saved beside them, then each run's reconstruction;
    at most ``MAX_SCENES`` cells (fewer shapes when there are many runs, at most 7 runs)."""
    from shapelab.evaluation.reconstruct import load_prediction

    run_dirs = dict(list(run_dirs.items())[: MAX_SCENES // 2 - 1])
    max_shapes = min(max_shapes, MAX_SCENES // (len(run_dirs) + 1))

    found = [{path.relative_to(directory / "eval" / split / "reconstructions").with_suffix(""): path
              for path in sorted((directory / "eval" / split / "reconstructions").glob("*/*.*"))}
             for directory in run_dirs.values()]
    shared = sorted(set.intersection(*(set(files) for files in found))) if found else []
    rows: dict[str, dict[str, Shape]] = {}
    for key in shared[:max_shapes]:
        cells: dict[str, Shape] = {}
        for directory in run_dirs.values():
            truth = directory / "eval" / split / GROUND_TRUTH_DIR / key.with_suffix(".ply")
            if truth.is_file():
                cells["ground truth"] = np.asarray(trimesh.load(truth).vertices)
                break
        for (name, _), files in zip(run_dirs.items(), found):
            recon = load_prediction(files[key], "occnet")  # the frame does not matter for viewing
            cells[name] = recon.mesh if recon.mesh is not None else recon.points
        rows[f"{key.parent.name} {key.name[:12]}"] = cells
    return rows
