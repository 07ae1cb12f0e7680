"""The built-in synthetic dataset: watertight, varied, deterministic meshes, and ensure_synthetic_dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapelab.datamodules import synthetic
from shapelab.datamodules.formats import deepsdf, occnet

from shapelab.errors import ShapelabError

TINY = {
    "sdf_samples": 2000,
    "sdf_source_points": 1000,
    "surface_samples": 500,
    "occ_points": 2000,
    "pointcloud_points": 1000,
    "voxel_resolution": 8,
    "views": 2,
    "image_size": 32,
}


@pytest.mark.parametrize("synset", list(synthetic.CATEGORIES))
def test_every_generated_mesh_is_watertight_and_normalised(synset):
    for index in range(6):
        mesh = synthetic.generate_shape(synset, index, seed=0)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0, (synset, index)
        low, high = mesh.bounds
        np.testing.assert_allclose((low + high) / 2, 0, atol=1e-9)
        assert np.linalg.norm(high - low) == pytest.approx(1.0)


@pytest.mark.parametrize("synset", list(synthetic.CATEGORIES))
def test_shapes_vary_within_a_category(synset):
    meshes = [synthetic.generate_shape(synset, index, seed=0) for index in range(6)]
    volumes = {round(mesh.volume, 6) for mesh in meshes}
    face_counts = {len(mesh.faces) for mesh in meshes}
    assert len(volumes) == 6 and len(face_counts) >= 2  # different sizes and different structure


def test_generation_is_deterministic(tmp_path):
    first = synthetic.write_raw_dataset(tmp_path / "a", ["03001627", "02691156"], 2, seed=3)
    second = synthetic.write_raw_dataset(tmp_path / "b", ["03001627", "02691156"], 2, seed=3)
    other = synthetic.write_raw_dataset(tmp_path / "c", ["03001627"], 1, seed=4)
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    assert first[0].read_bytes() != other[0].read_bytes()
    assert first[0].parts[-4:] == (
        "03001627",
        synthetic.model_id("03001627", 0, 3),
        "models",
        "model_normalized.obj",
    )
    assert len(synthetic.model_id("03001627", 0, 3)) == 32


def test_ensure_synthetic_dataset_builds_once_and_checks_parameters(tmp_path):
    kwargs = {
        "categories": ["chair", "02958343"],
        "shapes_per_category": 3,
        "splits": (1, 1, 1),
        "workers": 1,
    }
    root = synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", **kwargs, **TINY)
    assert root == tmp_path / "tiny"
    marker = root / synthetic.COMPLETE_MARKER
    assert json.loads(marker.read_text())["categories"] == ["03001627", "02958343"]

    train = deepsdf.read_split(root / "deepsdf" / "splits" / "tiny_train.json")
    assert len(train) == 2 and {synset for synset, _ in train} == {"03001627", "02958343"}
    synset, model_id = train[0]
    pos, neg = deepsdf.read_sdf_samples(root / "deepsdf" / "SdfSamples" / "tiny" / synset / f"{model_id}.npz")
    assert len(pos) + len(neg) == TINY["sdf_samples"] and len(neg) > 0
    points = occnet.read_points(root / "occnet" / synset / model_id / "points.npz")
    assert points["points"].shape == (TINY["occ_points"], 3) and 0 < points["occupancies"].mean() < 0.5
    assert len(occnet.read_cameras(root / "occnet" / synset / model_id / "img_choy2016" / "cameras.npz")) == 2
    assert occnet.read_metadata(root / "occnet" / "metadata.yaml")["02958343"]["name"] == "car"
    lists = [
        occnet.read_split_lst(root / "occnet" / synset / f"{split}.lst") for split in ("train", "val", "test")
    ]
    assert sorted(model for ids in lists for model in ids) == sorted(
        synthetic.model_id(synset, i, 0) for i in range(3)
    )

    stamp = marker.stat().st_mtime_ns
    assert synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", **kwargs, **TINY) == root
    assert marker.stat().st_mtime_ns == stamp  # reused, not rebuilt

    with pytest.raises(ShapelabError, match="other parameters") as info:
        synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", **{**kwargs, "seed": 1}, **TINY)
    assert "data.dataset_name" in str(info.value)


def test_bad_synthetic_parameters_raise_clear_errors(tmp_path):
    with pytest.raises(ShapelabError, match="unknown synthetic category 'sofa'"):
        synthetic.ensure_synthetic_dataset(tmp_path, categories=["sofa"])
    with pytest.raises(ShapelabError, match="must add up to"):
        synthetic.ensure_synthetic_dataset(tmp_path, shapes_per_category=10, splits=(16, 4, 4))
    assert not (tmp_path / "synthetic").exists()


def test_only_the_formats_asked_for_are_built_and_later_ones_are_added(tmp_path):
    kwargs = {"categories": ["car"], "shapes_per_category": 2, "splits": (1, 0, 1), "workers": 1, **TINY}
    root = synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", formats=["deepsdf", "occnet"], **kwargs)
    marker = root / synthetic.COMPLETE_MARKER
    shape = root / "occnet" / "02958343" / synthetic.model_id("02958343", 0, 0)
    assert (shape / "points.npz").is_file() and not (shape / "img_choy2016").exists()
    assert json.loads(marker.read_text())["preprocess"]["formats"] == ["deepsdf", "occnet"]
    points = (shape / "points.npz").read_bytes()

    stamp = marker.stat().st_mtime_ns
    synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", formats=["occnet"], **kwargs)
    assert marker.stat().st_mtime_ns == stamp  # a subset of what is built: nothing to do

    synthetic.ensure_synthetic_dataset(tmp_path, name="tiny", formats=["occnet", "renderings"], **kwargs)
    assert len(occnet.read_cameras(shape / "img_choy2016" / "cameras.npz")) == TINY["views"]
    assert (shape / "points.npz").read_bytes() == points  # the built formats are kept, not redone
    assert json.loads(marker.read_text())["preprocess"]["formats"] == ["deepsdf", "occnet", "renderings"]


def test_each_datamodule_asks_for_the_formats_it_reads(compose_cfg):
    import hydra.utils

    def formats(*overrides):
        return hydra.utils.instantiate(compose_cfg("train", list(overrides)).data).built_formats()

    assert formats() == ["deepsdf", "occnet"]  # the default DeepSDF job: no renderings
    assert formats("data=synthetic_completion") == ["deepsdf", "occnet", "renderings"]
    assert formats("experiment=occnet_svr") == ["deepsdf", "occnet", "renderings"]
    assert formats("experiment=occnet_pointcloud") == ["deepsdf", "occnet"]
    assert formats("experiment=capnet") == ["deepsdf", "occnet", "renderings"]
