"""OccupancyDataModule: OccNet points.npz + image / point cloud / voxel inputs, as OccNet's loader."""
from __future__ import annotations

import hydra
import numpy as np
import pytest
import torch
from shapelab.datamodules.occupancy import OccupancyDataModule

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.datamodules.conftest import NUM_VIEWS, corrupt, write_occnet_shape

INPUT_SHAPES = {"image": (3, 32, 32), "pointcloud": (300, 3), "voxels": (32, 32, 32)}


def make(data_dir, **kwargs) -> OccupancyDataModule:
    options = {"dataset_name": "tiny", "build": None, "input_type": "image", "batch_size": 2, "eval_batch_size": 1,
               "img_size": 32, "seed": 1}
    return instantiate_group("data/synthetic_occ", data_dir=data_dir, **{**options, **kwargs})


def shape_dir(data_dir, model_id):
    return data_dir / "tiny" / "occnet" / "s1" / model_id


def train_batch(datamodule):
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


@pytest.mark.parametrize("input_type", list(INPUT_SHAPES))
def test_train_batch_keys_shapes_dtypes(occnet_data, input_type):
    batch = train_batch(make(occnet_data, input_type=input_type))
    assert set(batch) == {"points", "occ", "inputs", "index", "synset", "model_id"}
    assert batch["points"].shape == (2, 2048, 3) and batch["points"].dtype == torch.float32
    assert batch["occ"].shape == (2, 2048) and batch["occ"].dtype == torch.float32
    assert set(batch["occ"].unique().tolist()) == {0.0, 1.0}
    assert batch["inputs"].shape == (2, *INPUT_SHAPES[input_type]) and batch["inputs"].dtype == torch.float32
    assert batch["index"].dtype == torch.long and batch["synset"] == ["s1", "s1"]


def test_occupancies_unpacked_and_matched_to_their_points(occnet_data):
    batch = train_batch(make(occnet_data, points_noise=0.0))
    # the fixture marks a point occupied iff x > 0 (|x| >= 0.02, far beyond the float16 noise)
    assert torch.equal(batch["occ"], (batch["points"][..., 0] > 0).float())
    with np.load(shape_dir(occnet_data, batch["model_id"][0]) / "points.npz") as data:
        stored = torch.from_numpy(data["points"].astype(np.float32))
    assert torch.isin(batch["points"][0, :, 0], stored[:, 0]).all()  # samples of the file, not new points


def test_float16_points_get_the_loader_noise(occnet_data):
    noisy = train_batch(make(occnet_data))
    clean = train_batch(make(occnet_data, points_noise=0.0))
    offset = noisy["points"] - clean["points"]
    assert 0.5e-4 < offset.std().item() < 2e-4


def test_eval_uses_all_points_and_view_zero_training_random_views(occnet_data):
    datamodule = make(occnet_data, points_noise=0.0)
    datamodule.setup("fit")
    val = next(iter(datamodule.val_dataloader()))
    assert val["points"].shape == (1, 1000, 3) and val["model_id"] == ["m3"]
    # view v of the fixture has a square of grey level 20 v: the darkest pixel tells the view
    assert val["inputs"][0].min().item() * 255 < 8

    def views_seen(split):
        dataset = datamodule.dataset(split)
        return {round(dataset[(0, seed)]["inputs"].min().item() * 255 / 20) for seed in range(30)}

    assert views_seen("val") == {0}
    assert len(views_seen("train")) >= 4 and views_seen("train") <= set(range(NUM_VIEWS))


def test_pointcloud_input_noise_matches_option(occnet_data):
    batch = train_batch(make(occnet_data, input_type="pointcloud", input_noise=0.005, batch_size=3))
    # the fixture's surface is the plane z = 0: the input's z is pure noise
    assert batch["inputs"][..., 2].std().item() == pytest.approx(0.005, rel=0.1)


def test_pointcloud_outliers_replace_the_configured_share(occnet_data):
    batch = train_batch(make(occnet_data, input_type="pointcloud", input_noise=0.0, input_outliers=0.2, batch_size=3))
    off_surface = batch["inputs"][..., 2].abs() > 1e-6  # the fixture's surface is the plane z = 0
    assert off_surface.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert batch["inputs"].abs().max().item() <= 0.55
    with pytest.raises(ShapelabError, match="data.input_outliers"):
        make(occnet_data, input_type="pointcloud", input_outliers=1.5)


def test_deterministic_given_seed(occnet_data):
    first = train_batch(make(occnet_data, input_type="pointcloud"))
    again = train_batch(make(occnet_data, input_type="pointcloud"))
    other = train_batch(make(occnet_data, input_type="pointcloud", seed=2))
    assert torch.equal(first["points"], again["points"]) and torch.equal(first["inputs"], again["inputs"])
    assert not torch.equal(first["points"], other["points"])


def test_roots_categories_by_name_and_test_loader(occnet_data):
    datamodule = make(occnet_data, categories=["widget"])
    datamodule.setup("test")
    assert [b["model_id"][0] for b in datamodule.test_dataloader()] == ["m4", "m5"]
    assert datamodule.occnet_root == occnet_data / "tiny" / "occnet" and datamodule.deepsdf_root is None
    with pytest.raises(ShapelabError, match="gadget"):
        make(occnet_data, categories=["gadget"]).setup("fit")


@pytest.mark.parametrize(
    "input_type, relative, damage, message",
    [
        ("image", "points.npz", lambda p: p.unlink(), "points.npz"),
        ("image", "points.npz", corrupt, "npz"),
        ("image", "points.npz", lambda p: np.savez(p, points=np.zeros((9, 2), np.float16),
                                                    occupancies=np.zeros(2, np.uint8), loc=np.zeros(3),
                                                    scale=np.float16(1)), "shape"),
        ("image", "points.npz", lambda p: np.savez(p, points=np.full((8, 3), np.nan, np.float16),
                                                    occupancies=np.zeros(1, np.uint8), loc=np.zeros(3),
                                                    scale=np.float16(1)), "NaN"),
        ("image", "img_choy2016/003.jpg", corrupt, "image"),
        ("pointcloud", "pointcloud.npz", lambda p: p.unlink(), "not found"),
        ("voxels", "voxels.npz", corrupt, "npz"),
    ],
    ids=["missing-points", "corrupt-points", "wrong-shape", "nan-points", "corrupt-view", "missing-pointcloud", "corrupt-voxels"],
)
def test_bad_files_fail_at_setup_naming_them(occnet_data, input_type, relative, damage, message):
    path = shape_dir(occnet_data, "m1") / relative
    damage(path)
    with pytest.raises(ShapelabError, match=message) as error:
        make(occnet_data, input_type=input_type).setup("fit")
    assert str(path) in str(error.value)


def test_bad_splits_and_options_fail_clearly(occnet_data):
    lst = occnet_data / "tiny" / "occnet" / "s1" / "val.lst"
    lst.write_text("m3\nghost\n")
    with pytest.raises(ShapelabError, match="ghost"):
        make(occnet_data).setup("fit")
    lst.unlink()
    with pytest.raises(ShapelabError, match="val.lst"):
        make(occnet_data).setup("fit")
    with pytest.raises(ShapelabError, match="input_type"):
        make(occnet_data, input_type="mesh")


def test_uneven_point_counts_need_eval_points(occnet_data):
    write_occnet_shape(shape_dir(occnet_data, "m6"), np.random.default_rng(1), num_points=500)
    (occnet_data / "tiny" / "occnet" / "s1" / "test.lst").write_text("m4\nm6\n")
    with pytest.raises(ShapelabError, match="eval_points"):
        make(occnet_data).setup("test")
    datamodule = make(occnet_data, eval_points=100, eval_batch_size=2)
    datamodule.setup("test")
    assert next(iter(datamodule.test_dataloader()))["points"].shape == (2, 100, 3)


def test_real_shapenet_without_points_npz_gives_a_clear_error(shared_data):
    root = shared_data / "shapenet_sample" / "ShapeNet"
    datamodule = make("unused", occnet_dir=root, train_split="*", val_split="*")
    with pytest.raises(ShapelabError, match="points.npz") as error:
        datamodule.setup("fit")
    assert str(root) in str(error.value) and "preprocess.py" in str(error.value)


def test_configs_instantiate_the_occupancy_datamodule(compose_cfg, occnet_data):
    cfg = compose_cfg("train", ["data=synthetic_occ", f"paths.data_dir={occnet_data}", "data.dataset_name=tiny",
                                "data.input_type=voxels", "data.build=null"])
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, OccupancyDataModule) and datamodule.input_type == "voxels"
    assert train_batch(datamodule)["inputs"].shape[1:] == (32, 32, 32)
    real = compose_cfg("train", ["data=shapenet_occ", f"paths.data_dir={occnet_data / 'tiny'}",
                                 "data.occnet_dir=${paths.data_dir}/occnet"])
    assert hydra.utils.instantiate(real.data).occnet_root == occnet_data / "tiny" / "occnet"
