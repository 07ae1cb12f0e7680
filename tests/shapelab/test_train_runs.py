"""train() wiring: every sensible model/data pair trains without an experiment file, bad configs and bad data
stop before training, last.ckpt is the last epoch's state."""
from __future__ import annotations

import shutil

import pytest
import torch

from shapelab.errors import ShapelabError
from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

QUIET = ["logger=csv", "trainer.enable_progress_bar=false", "evaluate_after_training=false"]
NO_MESHES = ["model.mesh_every_n_epochs=1000", "model.val_fit.num_iterations=2", "data.eval_samples=512",
             "data.samples_per_scene=256"]
PAIRS = {
    "deepsdf": ["model=deepsdf", "loss=sdf_clamped_l1", "data=synthetic", *NO_MESHES],
    "occnet_pointcloud": ["model=occnet", "loss=occupancy_bce", "data=synthetic_occ"],
    "occnet_image": ["model=occnet", "model/encoder=conv", "loss=occupancy_bce", "data=synthetic_occ",
                     "data.input_type=image", "data.img_size=64"],
    "occnet_voxels": ["model=occnet", "model/encoder=voxel", "loss=occupancy_bce", "data=synthetic_occ",
                      "data.input_type=voxels"],
    "capnet": ["model=image_to_points", "loss=capnet_projection", "renderer=gaussian_projection", "data=synthetic_views"],
    "drwr": ["model=image_to_points", "loss=drwr", "renderer=point_projection", "data=synthetic_views"],
    "chamfer3d": ["model=image_to_points", "loss=chamfer3d", "data=synthetic_views"],
}


@pytest.mark.slow
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_every_sensible_pair_trains_without_an_experiment(pair, tiny_synthetic, compose_cfg, tmp_path):
    from shapelab.cli.train import train

    overrides = [*PAIRS[pair], "trainer=smoke", *QUIET, *tiny_synthetic_overrides(tiny_synthetic)]
    cfg = compose_run_cfg(compose_cfg, overrides, tmp_path)
    metrics = train(cfg)
    assert cfg.monitor.metric in metrics and torch.isfinite(torch.tensor(metrics[cfg.monitor.metric]))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=occnet"], "model=occnet does not fit data=synthetic"),
    (["trainer.max_epochs=abc"], "'trainer.max_epochs'='abc'"),
    (["+data.batch_sise=8"], "'data.batch_sise'"),
])
def test_bad_configs_stop_before_any_data_work(overrides, message, compose_cfg, tmp_path):
    """The data folder is empty and nothing may be built: reaching the data would raise another error."""
    from shapelab.cli.train import train

    empty = tmp_path / "no_data"
    cfg = compose_run_cfg(compose_cfg, [*overrides, *QUIET, f"paths.data_dir={empty}", "data.build=null"], tmp_path / "run")
    with pytest.raises(ShapelabError, match=message):
        train(cfg)
    assert not empty.exists()


def test_a_bad_test_file_stops_the_run_before_training(tiny_synthetic, compose_cfg, tmp_path):
    from shapelab.datamodules.formats.deepsdf import read_split

    from shapelab.cli.train import train

    data_dir = tmp_path / "data"
    shutil.copytree(tiny_synthetic / "tiny", data_dir / "tiny")
    synset, model_id = read_split(data_dir / "tiny" / "deepsdf" / "splits" / "tiny_test.json")[0]
    bad = data_dir / "tiny" / "deepsdf" / "SdfSamples" / "tiny" / synset / f"{model_id}.npz"
    bad.write_bytes(b"not an npz")
    overrides = [*tiny_synthetic_overrides(data_dir), "trainer=smoke", *QUIET, *NO_MESHES, "evaluate_after_training=true"]
    with pytest.raises(ShapelabError, match=str(bad)):
        train(compose_run_cfg(compose_cfg, overrides, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # found at start-up, not after training


def test_last_checkpoint_is_the_last_epoch_even_with_sparse_validation(tiny_synthetic, compose_cfg, tmp_path):
    from shapelab.cli.train import train

    overrides = [*tiny_synthetic_overrides(tiny_synthetic), *QUIET, *NO_MESHES, "trainer=cpu", "data.batch_size=2",
                 "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]
    train(compose_run_cfg(compose_cfg, overrides, tmp_path))
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3  # 2 training shapes, batch 2: one step per epoch
    assert best["epoch"] == 1  # the only validation (val/sdf_l1) ran after epoch 1
    assert last["model_class"] == "shapelab.models.deepsdf.DeepSDF"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
