"""stage=level_set_fit: a whole run on the tiny built-in set, resume keyed on settings + input, bad clouds."""
from __future__ import annotations

import json

import numpy as np
import pytest
from shapelab.stages.level_set import input_points, reuse_key

from shapelab.errors import ShapelabError
from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

FAST = [  # a few steps of every phase: exercises the schedule, not the quality
    "experiment=level_set_fit", "logger=csv", "stage.num_points=600", "stage.picture_every_moves=3",
    "model.resolution=16", "model.steps.surface_batch=128", "model.steps.domain_batch=128", "model.steps.input_batch=128",
    "guidance.num_points=150", "guidance.initialise.steps=3", "guidance.update_fit.steps=2",
    "guidance.update_refit.steps=2", "guidance.patience=[0,0,0]", "guidance.finetune.steps=3",
    "guidance.finetune_rounds=1", "data.categories=[chair]", "evaluate.groups=[occnet_surface,iou,sion]", "evaluate.occnet_points=2000",
    "evaluate.contact_sheet_shapes=0",
]


@pytest.mark.slow
def test_stage_fits_scores_and_resumes(tiny_synthetic, compose_cfg, tmp_path):
    from shapelab.cli.train import train

    overrides = [*FAST, *tiny_synthetic_overrides(tiny_synthetic)]
    out = tmp_path / "run"
    metrics = train(compose_run_cfg(compose_cfg, overrides, out))
    assert 0.0 <= metrics["eval/test/iou"] <= 1.0 and metrics["level_set/steps"] > 0
    fits = json.loads((out / "level_set" / "fits.json").read_text())["shapes"]
    assert len(fits) == 1 and all(row["fitted_now"] for row in fits)  # the tiny set's one test chair
    meshes = sorted((out / "level_set" / "meshes").rglob("*.ply"))
    assert len(meshes) == 1
    assert list((out / "level_set" / "fits").rglob("guides_*.png"))  # pictures of the guiding points
    assert (out / "eval" / "test" / "per_shape.csv").is_file() and (out / "eval" / "test" / "quality_vs_sion.png").is_file()
    stamps = [mesh.stat().st_mtime_ns for mesh in meshes]

    again = train(compose_run_cfg(compose_cfg, overrides, out))  # same settings, same files: nothing refitted
    assert not any(row["fitted_now"] for row in json.loads((out / "level_set" / "fits.json").read_text())["shapes"])
    assert [mesh.stat().st_mtime_ns for mesh in meshes] == stamps
    assert again["eval/test/iou"] == pytest.approx(metrics["eval/test/iou"])


def test_reuse_key_changes_with_settings_and_input_bytes(tmp_path):
    path = tmp_path / "pointcloud.npz"
    path.write_bytes(b"one")
    settings = {"model": {"hidden_dim": 128}, "guidance": {"num_points": 2000}, "input": {"noise": 0.0}}
    key = reuse_key(settings, path)
    assert reuse_key(json.loads(json.dumps(settings)), path) == key
    assert reuse_key({**settings, "guidance": {"num_points": 2001}}, path) != key
    path.write_bytes(b"two")
    assert reuse_key(settings, path) != key


def test_bad_clouds_are_one_line_naming_the_file(tmp_path):
    path = tmp_path / "02958343" / "abc" / "pointcloud.npz"
    good = np.random.default_rng(0).normal(size=(800, 3))
    assert input_points(good, path, 500, 0.0, 500, seed=0).shape == (500, 3)
    noisy = input_points(good, path, None, 0.01, 500, seed=0)
    assert 0.005 < np.abs(noisy - good).mean() < 0.02
    for points, words in ((np.zeros((0, 3)), "0 points"), (good[:100], "fewer than stage.min_points=500"),
                          (np.where(np.arange(800)[:, None] == 3, np.nan, good), "NaN")):
        with pytest.raises(ShapelabError) as error:
            input_points(points, path, 500, 0.0, 500, seed=0)
        message = str(error.value)
        assert str(path) in message and words in message and "\n" not in message


def test_a_nan_file_is_refused_by_the_reader_with_its_name(tmp_path):
    from shapelab.evaluation.ground_truth import GroundTruthSource

    path = tmp_path / "s" / "a" / "pointcloud.npz"
    path.parent.mkdir(parents=True)
    points = np.zeros((600, 3), np.float16)
    points[5] = np.nan
    np.savez(path, points=points, normals=points, loc=np.zeros(3), scale=np.float64(1.0))
    with pytest.raises(ShapelabError, match="pointcloud.npz"):
        GroundTruthSource(None, tmp_path, "").load("s", "a")
