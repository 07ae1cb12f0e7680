"""The interactive 3D view of the HTML reports (shapelab/evaluation/shape_view.py), checked in a real browser."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from shapelab.evaluation.shape_view import (
    MAX_SCENES,
    compare_rows,
    shape_view_figure,
    write_evaluation_view,
)
from tests.shapelab.test_compare import _fake_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader"]  # software WebGL (no GPU); without it Chromium refuses WebGL and says so
BENIGN_CONSOLE = re.compile(r"GL Driver Message \(OpenGL, Performance|Canvas2D: Multiple readback operations")
"""Console lines allowed on a good page: performance notes of SwiftShader (ReadPixels stalls) and of Chromium about
plotly.js's canvas reads; anything else (an exception, a failed load, an error message) fails the test."""


def test_figure_has_one_scene_per_cell_meshes_decimated_and_clouds_as_points():
    sphere = trimesh.creation.icosphere(5)  # 20480 faces
    rows = {"a": {"ground truth": sphere.sample(5000), "run": sphere}, "b": {"ground truth": np.zeros((10, 3))}}
    fig = shape_view_figure(rows)
    kinds = [trace.type for trace in fig.data]
    assert kinds == ["scatter3d", "mesh3d", "scatter3d"]
    assert len(fig.data[0].x) == 2048 and len(fig.data[1].i) <= 2000
    assert sum(key.startswith("scene") for key in fig.layout) == 4  # 2 shapes x 2 columns
    many = {f"s{i}": {"ground truth": np.zeros((3, 3)), "run": np.zeros((3, 3))} for i in range(20)}
    assert sum(key.startswith("scene") for key in shape_view_figure(many).layout) == MAX_SCENES


def fake_evaluated_run(root: Path, name: str, radius: float) -> Path:
    """A run directory whose evaluation wrote two reconstructions, the 3D view and its ground truth."""
    run = _fake_run(root, name, 1e-3 * radius, [1.0, 0.5], 0.5)
    out = run / "eval" / "test"
    pairs = {}
    for synset, model_id, shape in (("03001627", "chair0", trimesh.creation.icosphere(3, radius)),
                                    ("04379243", "table0", trimesh.creation.box([radius, 0.2, radius]))):
        target = out / "reconstructions" / synset / f"{model_id}.ply"
        target.parent.mkdir(parents=True, exist_ok=True)
        shape.export(target)
        pairs.setdefault(synset, []).append((model_id, shape.sample(3000), shape.sample(100), shape))
    assert write_evaluation_view(out, pairs, {"chair0": "03001627", "table0": "04379243"}) == out / "shapes_3d.html"
    return run


def test_evaluation_view_saves_ground_truth_that_compare_puts_beside_each_run(tmp_path):
    runs = {name: fake_evaluated_run(tmp_path / "sweep", name, radius) for name, radius in (("0", 0.5), ("1", 0.3))}
    assert (runs["0"] / "eval" / "test" / "ground_truth" / "03001627" / "chair0.ply").is_file()
    rows = compare_rows(runs, "test")
    assert list(rows) == ["03001627 chair0", "04379243 table0"]
    assert list(rows["03001627 chair0"]) == ["ground truth", "0", "1"]
    cells = rows["03001627 chair0"]
    assert cells["ground truth"].shape == (2048, 3)
    assert np.linalg.norm(cells["0"].vertices, axis=1).max() == pytest.approx(0.5)
    assert np.linalg.norm(cells["1"].vertices, axis=1).max() == pytest.approx(0.3)


def render(page: Path, tmp_path: Path, size=(1100, 1500)) -> tuple[np.ndarray, list[str]]:
    """Load ``page`` in headless Chromium: (screenshot RGB, console messages)."""
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=15000", f"--screenshot={shot}",
         page.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=240,
    )
    console = re.findall(r":CONSOLE[:(]\d+\)?\] (.*)", result.stderr)
    assert shot.is_file(), result.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB")).astype(int), console


def reconstruction_pixels(picture: np.ndarray) -> int:
    """Pixels with the hue of the first reconstruction colour (#4361ee, hue 229°, whatever the shading); the
    matplotlib plots of the page (tab:blue, hue 205°) do not count."""
    hsv = np.asarray(Image.fromarray(picture.astype(np.uint8)).convert("HSV")).astype(int)
    hue = hsv[..., 0] * 360 / 255
    return int(((hue > 220) & (hue < 240) & (hsv[..., 1] > 100) & (hsv[..., 2] > 40)).sum())


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_compare_report_loads_without_console_errors_and_renders_the_3d_view(tmp_path):
    from shapelab.compare import compare

    for name, radius in (("0", 0.5), ("1", 0.3)):
        fake_evaluated_run(tmp_path / "sweep", name, radius)
    compare([str(tmp_path / "sweep")], tmp_path / "report")
    page = tmp_path / "report" / "report.html"
    assert page.stat().st_size < 8e6  # plotly.js (4.6 MB) once + decimated shapes
    picture, console = render(page, tmp_path)
    errors = [line for line in console if not BENIGN_CONSOLE.search(line)]
    assert errors == []
    assert reconstruction_pixels(picture) > 2000, "the 3D view is blank"
