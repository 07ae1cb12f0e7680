"""Compare runs: final metrics, differing config values, learning curves and per-category bars.

Reads only what every run writes locally (``.hydra/config.yaml``, ``csv/metrics.csv`` from the CSV
logger, ``eval/<split>/summary.json`` from evaluation), so it needs no
account and no network. Writes ``report.md`` + PNG plots and a self-contained ``report.html``, which also
holds an interactive 3D view (plotly, embedded) of the first test shapes: the ground truth the evaluation
saved and each run's reconstruction (``shapelab/evaluation/shape_view.py``).
"""
from __future__ import annotations

import base64
import csv
import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from omegaconf import OmegaConf

from shapelab.errors import ShapelabError
from shapelab.evaluation.report import quality_vs_sion
from shapelab.evaluation.shape_view import compare_rows, shape_view_div

# shown only when asked for with --metrics (the main table stays readable)
SECONDARY_EVAL_METRICS = {"accuracy_occnet", "completeness_occnet", "precision_1pct", "recall_1pct",
                          "precision_2pct", "recall_2pct", "chamfer_l2_occnet", "fscore_2pct"}


@dataclass
class Run:
    """What compare needs from one run directory."""

    path: Path
    name: str
    config: dict[str, object]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: bool = False

    def final_metrics(self) -> dict[str, float]:
        final = {name: points[-1][1] for name, points in self.curves.items() if points}
        final.update({f"eval/{k}": v for k, v in self.evaluation.items()})
        return final


def find_run_dirs(patterns: list[str]) -> list[Path]:
    """Run directories (those holding .hydra/config.yaml) at or below the given paths / glob patterns."""
    runs: list[Path] = []
    for pattern in patterns:
        matches = glob.glob(pattern) or []
        if not matches:
            raise ShapelabError(f"compare: '{pattern}' matches nothing; give run or sweep directories")
        for match in map(Path, sorted(matches)):
            found = [p.parent.parent for p in sorted(match.glob("**/.hydra/config.yaml"))]
            runs += [r for r in found if r not in runs]
    if not runs:
        raise ShapelabError(f"compare: no run directories (with .hydra/config.yaml) under {patterns}")
    return runs


def _flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _read_curves(csv_path: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    if not csv_path.is_file():
        return curves
    with csv_path.open() as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                curves.setdefault(key, []).append((step, float(value)))
    return curves


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def load_run(path: Path, split: str = "test") -> Run:
    config = OmegaConf.to_container(OmegaConf.load(path / ".hydra" / "config.yaml"), resolve=False)
    run = Run(path=path, name=path.name, config=_flatten(config))
    run.curves = _read_curves(path / "csv" / "metrics.csv")
    summary = path / "eval" / split / "summary.json"
    if summary.is_file():  # evaluation means: over classes (OccNet's reporting), and per category
        data = json.loads(summary.read_text())
        run.evaluation = {k: float(v) for k, v in data.get("mean_over_classes", {}).items() if _is_number(v)}
        run.per_category = {
            category: {k: float(v) for k, v in values.items() if _is_number(v) and k != "num_shapes"}
            for category, values in data.get("per_category", {}).items()
        }
    run.failed = (path / "FAILED").is_file()
    return run


def differing_config(runs: list[Run]) -> list[str]:
    """Config keys whose values differ between runs (paths and logger plumbing left out)."""
    keys = sorted(set().union(*(r.config for r in runs)))
    skip = ("paths.", "logger.", "hydra.", "callbacks.", "tags")
    return [k for k in keys if not k.startswith(skip) and len({repr(r.config.get(k)) for r in runs}) > 1]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.5g}"
    return str(value)


def markdown_table(runs: list[Run], metrics: list[str], config_keys: list[str]) -> str:
    header = ["run", *config_keys, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        final = run.final_metrics()
        name = f"{run.name} (FAILED)" if run.failed else run.name
        cells = [name, *(_fmt(run.config.get(k)) for k in config_keys), *(_fmt(final.get(m, "")) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs: list[Run], metrics: list[str], path: Path) -> Path | None:
    metrics = [m for m in metrics if any(m in r.curves for r in runs)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for run in runs:
            if metric in run.curves:
                steps, values = zip(*run.curves[metric])
                ax.plot(steps, values, label=run.name, marker="." if len(steps) < 30 else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_categories(runs: list[Run], metrics: list[str], path: Path) -> Path | None:
    """One bar chart per metric: each category's mean, one bar per run."""
    categories = sorted(set().union(*(r.per_category for r in runs)))
    metrics = [m for m in metrics if any(m in v for r in runs for v in r.per_category.values())]
    if not categories or not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4, 0.9 * len(categories) + 2) * len(metrics), 3.6),
                             squeeze=False)
    width = 0.8 / len(runs)
    for ax, metric in zip(axes[0], metrics):
        for i, run in enumerate(runs):
            values = [run.per_category.get(c, {}).get(metric, float("nan")) for c in categories]
            ax.bar([j + i * width for j in range(len(categories))], values, width, label=run.name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(categories))], categories, rotation=20)
        ax.set_title(f"{metric} per category")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_shape_rows(runs: list[Run], split: str) -> dict[str, list[dict]]:
    """Each evaluated run's ``eval/<split>/per_shape.csv`` rows (for the quality-vs-SION% picture)."""
    rows = {}
    for run in runs:
        path = run.path / "eval" / split / "per_shape.csv"
        if path.is_file():
            with path.open(newline="") as handle:
                rows[run.name] = list(csv.DictReader(handle))
    return rows


def _html(markdown_body: str, images: list[Path], view: str = "") -> str:
    rows = [line for line in markdown_body.splitlines() if line.startswith("|") and not line.startswith("|---")]
    table = "".join(
        "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{c.strip()}</{'th' if i == 0 else 'td'}>"
                         for c in row.strip("|").split("|")) + "</tr>"
        for i, row in enumerate(rows)
    )
    pictures = "".join(
        f'<p><img alt="{p.name}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"></p>'
        for p in images
    )
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>shapelab comparison</title><style>{style}</style></head>" \
           f"<body><h1>shapelab comparison</h1><table>{table}</table>{pictures}{view}</body></html>"


def compare(patterns: list[str], out_dir: Path, metrics: list[str] | None = None, split: str = "test") -> Path:
    """Write report.md, report.html and plots comparing the runs found by ``patterns``; returns report.md."""
    runs = [load_run(p, split) for p in find_run_dirs(patterns)]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # sweep jobs are numbered: qualify by the sweep folder
        for r in runs:
            r.name = f"{r.path.parent.name}/{r.path.name}"
    if metrics is None:
        metrics = sorted({m for r in runs for m in r.final_metrics() if m.startswith(("val/", "eval/"))})
        metrics = [m for m in metrics if m.removeprefix("eval/") not in SECONDARY_EVAL_METRICS]
    out_dir.mkdir(parents=True, exist_ok=True)
    config_keys = differing_config(runs)
    table = markdown_table(runs, metrics, config_keys)
    curve_metrics = [m for m in metrics if not m.startswith("eval/")] or ["train/loss"]
    eval_metrics = [m.removeprefix("eval/") for m in metrics if m.startswith("eval/")]
    images = [p for p in (
        plot_curves(runs, curve_metrics, out_dir / "curves.png"),
        plot_categories(runs, eval_metrics, out_dir / "categories.png"),
        quality_vs_sion(out_dir / "quality_vs_sion.png", per_shape_rows(runs, split)),
    ) if p is not None]
    body = f"# shapelab comparison\n\n{len(runs)} runs ({sum(r.failed for r in runs)} failed).\n\n{table}\n\n"
    body += "".join(f"![{p.stem}]({p.name})\n\n" for p in images)
    rows = compare_rows({r.name: r.path for r in runs}, split)
    if rows:
        body += f"3D view of {len(rows)} test shapes (ground truth and each run): report.html\n"
    view = f"<h2>3D view: ground truth and each run (drag to turn)</h2>{shape_view_div(rows)}" if rows else ""
    (out_dir / "report.md").write_text(body)
    (out_dir / "report.html").write_text(_html(table, images, view))
    return out_dir / "report.md"
