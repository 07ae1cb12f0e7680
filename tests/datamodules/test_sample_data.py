"""The committed real-layout sample (tests/data/sample, made by tests/data/make_sample.py from generated shapes)
read by every format reader and by the real-data configs (data=shapenet_sdf / shapenet_occ / shapenet_views),
so the real-data paths are tested on a fresh clone, without ../shared/data."""
from __future__ import annotations

import hydra
import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.ndimage import binary_dilation
from shapelab.datamodules.formats import deepsdf, occnet
from shapelab.renderers.cameras import project

from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "tests" / "data" / "sample"
CHAIR, TABLE = "03001627", "04379243"


def shapes(split: str) -> list[tuple[str, str]]:
    return deepsdf.read_split(SAMPLE / "deepsdf" / "splits" / f"sample_{split}.json")


def test_sample_has_every_split_in_both_layouts():
    for split in ("train", "val", "test"):
        ids = shapes(split)
        assert sorted(synset for synset, _ in ids) == [CHAIR, TABLE]
        for synset, model_id in ids:
            assert model_id in occnet.read_split_lst(SAMPLE / "occnet" / synset / f"{split}.lst")
            assert (SAMPLE / "raw" / synset / model_id / "models" / "model_normalized.obj").is_file()
    assert {k: v["name"] for k, v in occnet.read_metadata(SAMPLE / "occnet" / "metadata.yaml").items()} == {
        CHAIR: "chair", TABLE: "table"}


@pytest.mark.parametrize("synset, model_id", shapes("train") + shapes("test"))
def test_deepsdf_files_agree_with_the_raw_mesh(synset, model_id):
    mesh = trimesh.load(SAMPLE / "raw" / synset / model_id / "models" / "model_normalized.obj", force="mesh")
    offset, scale = deepsdf.read_normalisation(SAMPLE / "deepsdf" / "NormalizationParameters" / "sample" / synset /
                                               f"{model_id}.npz")
    unit = (mesh.vertices + offset) * scale
    assert np.linalg.norm(unit, axis=1).max() == pytest.approx(1 / 1.03, rel=1e-3)  # DeepSDF's unit sphere
    surface = deepsdf.read_surface_samples(SAMPLE / "deepsdf" / "SurfaceSamples" / "sample" / synset / f"{model_id}.ply")
    assert surface.shape == (1000, 3)
    assert np.abs(surface.min(0) - mesh.bounds[0]).max() < 0.05  # original units, on the mesh
    pos, neg = deepsdf.read_sdf_samples(SAMPLE / "deepsdf" / "SdfSamples" / "sample" / synset / f"{model_id}.npz")
    assert len(pos) + len(neg) == 2000 and (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all()
    inside = mesh.contains(neg[:, :3] / scale - offset)  # samples are in the unit-sphere frame
    assert inside[neg[:, 3] < -0.01].mean() > 0.9


@pytest.mark.parametrize("synset, model_id", shapes("train"))
def test_occnet_files_agree_with_each_other(synset, model_id):
    folder = SAMPLE / "occnet" / synset / model_id
    points, cloud = occnet.read_points(folder / "points.npz"), occnet.read_pointcloud(folder / "pointcloud.npz")
    assert points["points"].shape == (2000, 3) and np.abs(points["points"]).max() <= 0.55 + 1e-3  # box of side 1.1
    assert 0 < points["occupancies"].mean() < 1
    assert cloud["points"].shape == cloud["normals"].shape == (2000, 3) and np.abs(cloud["points"]).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(points["loc"], cloud["loc"])
    np.testing.assert_allclose(points["scale"], cloud["scale"])
    assert occnet.read_voxels(folder / "voxels.npz").shape == (32, 32, 32)
    cameras = occnet.read_cameras(folder / "img_choy2016" / "cameras.npz")
    assert len(cameras) == 3
    for index, (K, Rt) in enumerate(cameras):  # the surface projects inside its own mask (OpenCV convention)
        mask = np.asarray(Image.open(folder / "img_choy2016" / "mask" / f"{index:03d}.png")).astype(bool)
        mask = binary_dilation(mask)  # a point on a 64-px silhouette's edge may fall one pixel out
        original = cloud["points"][::10] * cloud["scale"] + cloud["loc"]
        pixels = np.floor(project(original, K, Rt)).astype(int)
        assert mask[pixels[:, 1], pixels[:, 0]].mean() > 0.99


@pytest.mark.parametrize("config, overrides, keys", [
    ("shapenet_sdf", ["data.deepsdf_dir={root}/deepsdf", "data.dataset_name=sample",
                      "data.train_split={root}/deepsdf/splits/sample_train.json",
                      "data.test_split={root}/deepsdf/splits/sample_test.json", "data.samples_per_scene=256"],
     {"xyz": (2, 256, 3), "sdf": (2, 256)}),
    ("shapenet_occ", ["data.occnet_dir={root}/occnet", "data.input_type=pointcloud", "data.train_points=128"],
     {"points": (2, 128, 3), "inputs": (2, 300, 3)}),
    ("shapenet_views", ["data.occnet_dir={root}/occnet", "data.num_views=2", "data.surface_points=500",
                        "data.gt_points=100"],
     {"image": (2, 3, 64, 64), "masks": (2, 2, 64, 64), "points_gt": (2, 100, 3)}),
])
def test_real_data_configs_read_the_sample(config, overrides, keys, compose_cfg):
    cfg = compose_cfg("train", [f"data={config}", "data.batch_size=2", "data.num_workers=0",
                                *(o.format(root=SAMPLE) for o in overrides)])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert {key: tuple(batch[key].shape) for key in keys} == keys
    assert sorted(batch["synset"]) == [CHAIR, TABLE]
