"""shapelab/dashboards.py: pictures and 3D shapes to W&B / TensorBoard, and every model using it at validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from matplotlib.figure import Figure

from shapelab.dashboards import decimate, figure_to_rgb, log_image, log_shapes, shows_pictures
from tests.conftest import compose_run_cfg, event_tags, tiny_synthetic_overrides


class WandbLike:
    def __init__(self):
        self.images, self.metrics = [], {}

    def log_image(self, key, images, step):
        self.images.append((key, images[0].shape, step))

    def log_metrics(self, metrics, step):
        self.metrics.update({key: (value, step) for key, value in metrics.items()})


class Writer:
    def __init__(self):
        self.calls = []

    def add_image(self, key, image, step, dataformats):
        self.calls.append(("image", key, image.shape, dataformats))

    def add_mesh(self, tag, vertices, faces=None, global_step=None):
        self.calls.append(("mesh", tag, vertices.shape, None if faces is None else faces.shape))


class TensorBoardLike:
    def __init__(self):
        self.experiment = Writer()


class CsvLike:
    experiment = object()


def test_figure_to_rgb_gives_the_figure_pixels():
    fig = Figure(figsize=(2.5, 1.2), dpi=40, facecolor=(1.0, 0.0, 0.0))
    picture = figure_to_rgb(fig)
    assert picture.shape == (48, 100, 3) and picture.dtype == np.uint8
    assert (picture == [255, 0, 0]).all()


def test_log_image_reaches_every_image_logger_and_skips_the_others():
    wandb, tensorboard = WandbLike(), TensorBoardLike()
    picture = np.zeros((8, 5, 3), np.uint8)
    assert shows_pictures([CsvLike(), wandb]) and not shows_pictures([CsvLike()])
    log_image([CsvLike(), wandb, tensorboard], "val/x", picture, 7)
    assert wandb.images == [("val/x", (8, 5, 3), 7)]
    assert tensorboard.experiment.calls == [("image", "val/x", (8, 5, 3), "HWC")]


def test_decimate_caps_faces_and_points_and_keeps_small_shapes():
    sphere = trimesh.creation.icosphere(4)  # 5120 faces
    light = decimate(sphere, max_faces=500)
    assert 0 < len(light.faces) <= 500
    assert np.abs(np.linalg.norm(light.vertices, axis=1) - 1).max() < 0.05  # still the unit sphere
    assert decimate(light, max_faces=500) is light
    cloud = np.arange(30, dtype=np.float32).reshape(10, 3)
    assert np.array_equal(decimate(cloud, max_points=20), cloud)
    kept = decimate(cloud, max_points=4)
    assert len(kept) == 4 and np.array_equal(kept[[0, -1]], cloud[[0, -1]])


def test_log_shapes_sends_meshes_and_clouds_to_wandb_and_tensorboard():
    wandb, tensorboard = WandbLike(), TensorBoardLike()
    shapes = {"a/mesh": trimesh.creation.icosphere(4), "a/points": np.random.default_rng(0).random((5000, 3)),
              "empty": np.zeros((0, 3))}
    log_shapes([CsvLike(), wandb, tensorboard], "val/shapes", shapes, 3, max_faces=300, max_points=100)
    assert sorted(wandb.metrics) == ["val/shapes/a/mesh", "val/shapes/a/points"]
    assert all(step == 3 and type(value).__name__ == "Object3D" for value, step in wandb.metrics.values())
    (mesh_call, points_call) = tensorboard.experiment.calls
    assert mesh_call[:2] == ("mesh", "val/shapes/a/mesh") and mesh_call[3][1] <= 300
    assert points_call == ("mesh", "val/shapes/a/points", (1, 100, 3), None)


MODELS = {
    "deepsdf": ["model.mesh_every_n_epochs=1", "model.extract_mesh.resolution=16", "model.val_fit.num_iterations=2",
                "data.samples_per_scene=256", "data.batch_size=2"],
    "occnet": ["experiment=occnet_pointcloud", "model.c_dim=16", "model.decoder.hidden_dim=16",
               "model.encoder.hidden_dim=16", "model.samples.resolution0=8", "data.train_points=256",
               "data.eval_points=512", "data.batch_size=2"],
    "image_to_points": ["experiment=capnet", "trainer.check_val_every_n_epoch=1", "model.decoder.num_points=256", "data.batch_size=2",
                        "data.surface_points=2048", "data.gt_points=256"],
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_training_logs_3d_reconstructions_at_validation(model, tiny_synthetic, compose_cfg, tmp_path, monkeypatch):
    """A W&B offline run holds 3D objects from the validation epochs; TensorBoard events hold mesh summaries."""
    from shapelab.cli.train import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    overrides = [*MODELS[model], "trainer=smoke", "logger=many", "callbacks=none", "evaluate_after_training=false",
                 *tiny_synthetic_overrides(tiny_synthetic)]
    import wandb

    try:
        train(compose_run_cfg(compose_cfg, overrides, tmp_path / "run"))
    finally:
        wandb.finish()  # Lightning leaves the run open; the next test would reuse it

    objects = list(Path(tmp_path / "run" / "wandb").glob("offline-run-*/files/media/object3D/val/shapes/*"))
    assert objects, "no W&B 3D object from validation"
    tags = event_tags(tmp_path / "run" / "tensorboard")["tensors"]
    assert any(tag.startswith("val/shapes/") and tag.endswith("_VERTEX") for tag in tags), tags
