"""Step 3 of the evaluation: collect the per-shape rows in a CSV appended as shapes are scored (so a
killed evaluation resumes), and the per-category / overall summary computed from it."""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from shapelab.errors import ShapelabError

log = logging.getLogger("shapelab.evaluation")

KEY_COLUMNS = ["synset", "model_id", "category", "kind", "frame", "status"]
"""Identity columns before the metric columns; ``status`` is "ok" or "failed: <reason>"."""


OUTPUTS = ("per_shape.csv", "summary.json", "metrics.md", "contact_sheet.png", "reconstructions", "resume_key.json")
"""What an evaluation writes into its folder (moved aside together when the folder held another evaluation)."""


def resume_key(model: str, settings: dict, ground_truth: dict) -> dict:
    """What was scored: the prediction's identity (a hash of the weights or of the files), the settings that
    change numbers, and the ground truth (roots, dataset, the split's shapes); ``id`` hashes all three."""
    key = {"model": model, "settings": settings, "ground_truth": ground_truth}
    key["id"] = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return key


class ResultsFile:
    """``per_shape.csv``: one row per shape, appended and flushed as soon as the shape is scored.

    ``resume_key.json`` beside it says what the rows were scored from (`resume_key`). On start, rows of an
    earlier run with the same key and status "ok" are kept and their shapes skipped (``resume``); failed
    rows are dropped so those shapes are tried again. When the folder holds results of another key (another
    checkpoint, other settings or ground truth), they are moved to ``superseded/<their id>/`` and every
    shape is scored anew: results of different evaluations are never mixed, nor lost.
    """

    def __init__(self, path: Path, metric_columns: list[str], key: dict, resume: bool = True):
        self.path = Path(path)
        self.columns = KEY_COLUMNS + list(metric_columns)
        self.rows: dict[tuple[str, str], dict] = {}
        self.key = key
        key_file = self.path.parent / "resume_key.json"
        previous = json.loads(key_file.read_text()) if key_file.is_file() else None
        if self.path.is_file() and (previous or {}).get("id") != key["id"]:
            self._move_aside((previous or {}).get("id", "unkeyed"))
        elif resume and self.path.is_file():
            self._load_previous()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(json.dumps(key, indent=2, sort_keys=True, default=str) + "\n")
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(self.rows.values())

    def _move_aside(self, previous_id: str) -> None:
        folder = self.path.parent
        target = folder / "superseded" / previous_id
        suffix = 1
        while target.exists():
            target, suffix = folder / "superseded" / f"{previous_id}_{suffix}", suffix + 1
        target.mkdir(parents=True)
        for name in OUTPUTS:
            if (folder / name).exists():
                shutil.move(str(folder / name), str(target / name))
        log.warning("%s held the results of another evaluation (other checkpoint, settings or ground truth): "
                    "moved them to %s; scoring every shape anew", folder, target)

    def _load_previous(self) -> None:
        with self.path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != self.columns:
                raise ShapelabError(
                    f"{self.path}: written with other metric columns ({reader.fieldnames}); "
                    "delete it or choose another output folder (evaluate.py out_dir=...) to start over"
                )
            for row in reader:
                if row["status"] == "ok":
                    self.rows[(row["synset"], row["model_id"])] = row

    @property
    def done(self) -> set[tuple[str, str]]:
        return set(self.rows)

    def add(self, row: dict) -> None:
        """Append one shape's row (missing metric columns are written empty = not applicable)."""
        row = {column: _format(row.get(column)) for column in self.columns}
        self.rows[(row["synset"], row["model_id"])] = row
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow(row)


def _format(value) -> str:
    """CSV cell: floats at full precision (numpy scalars as plain numbers), None/NaN as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def summarise(rows: list[dict], metric_columns: list[str]) -> dict:
    """Means of each metric per category, over classes (mean of category means, OccNet's reporting)
    and over shapes, and the median over shapes (DeepSDF's tables); empty cells (metric not applicable) are left out of the means and
    ``shapes_per_metric`` counts the shapes each mean is over."""
    by_category: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            by_category[row["category"]].append(row)
    per_category = {}
    for category, members in sorted(by_category.items()):
        per_category[category] = {"num_shapes": len(members)}
        for column in metric_columns:
            values = [float(row[column]) for row in members if row[column] != ""]
            per_category[category][column] = _mean(values)
    ok_rows = [row for members in by_category.values() for row in members]
    by_column = {column: [float(row[column]) for row in ok_rows if row[column] != ""] for column in metric_columns}
    mean_over_shapes = {column: _mean(values) for column, values in by_column.items()}
    # DeepSDF's tables report the median beside the mean
    median_over_shapes = {column: _median(values) for column, values in by_column.items()}
    mean_over_classes = {
        column: _mean([stats[column] for stats in per_category.values() if not math.isnan(stats[column])])
        for column in metric_columns
    }
    applied = {column: sum(row[column] != "" for row in ok_rows) for column in metric_columns}
    failures = [f"{row['synset']}/{row['model_id']}: {row['status']}" for row in rows if row["status"] != "ok"]
    return {
        "num_shapes": len(rows),
        "num_scored": len(ok_rows),
        "num_failed": len(failures),
        "failures": failures,
        "shapes_per_metric": applied,
        "mean_over_classes": mean_over_classes,
        "mean_over_shapes": mean_over_shapes,
        "median_over_shapes": median_over_shapes,
        "per_category": per_category,
    }
