"""SdfDataModule: DeepSDF SdfSamples -> (B scenes x S samples) batches, half pos / half neg."""
from __future__ import annotations

import json

import hydra
import numpy as np
import pytest
import torch
from shapelab.datamodules import common
from shapelab.datamodules.sdf import SdfDataModule, sample_half_pos_half_neg

from shapelab.config import compose_group, instantiate_group
from shapelab.errors import ShapelabError
from tests.datamodules.conftest import corrupt, write_sdf_file


def make(data_dir, **kwargs) -> SdfDataModule:
    options = {"dataset_name": "tiny", "build": None, "batch_size": 2, "eval_batch_size": 1, "samples_per_scene": 64,
               "eval_samples": 40, "preload": False, "seed": 3}
    return instantiate_group("data/synthetic", data_dir=data_dir, **{**options, **kwargs})


def sample_file(data_dir, synset, model_id):
    return data_dir / "tiny" / "deepsdf" / "SdfSamples" / "tiny" / synset / f"{model_id}.npz"


def first_batches(datamodule, epochs=1):
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    return [next(iter(loader)) for _ in range(epochs)]


def test_train_batch_keys_shapes_dtypes(deepsdf_data):
    batch = first_batches(make(deepsdf_data))[0]
    assert set(batch) == {"index", "xyz", "sdf", "synset", "model_id"}
    assert batch["index"].dtype == torch.long and batch["index"].shape == (2,)
    assert batch["xyz"].shape == (2, 64, 3) and batch["xyz"].dtype == torch.float32
    assert batch["sdf"].shape == (2, 64) and batch["sdf"].dtype == torch.float32
    assert isinstance(batch["synset"], list) and isinstance(batch["model_id"][0], str)


def test_samples_are_half_pos_half_neg_from_the_indexed_shape(deepsdf_data):
    datamodule = make(deepsdf_data, batch_size=4)
    batch = first_batches(datamodule)[0]
    train = datamodule.dataset("train")
    for row, index in enumerate(batch["index"].tolist()):
        assert (batch["synset"][row], batch["model_id"][row]) == train.shapes[index]
        marker = ord(batch["model_id"][row]) - ord("a")
        assert torch.all(batch["xyz"][row, :, 0] == marker)  # every sample from that shape's file
        assert torch.all(batch["sdf"][row, :32] > 0) and torch.all(batch["sdf"][row, 32:] < 0)


def test_half_pos_half_neg_matches_a_loop_reference():
    rng_data = np.random.default_rng(1)
    pos, neg = rng_data.normal(size=(7, 4)), rng_data.normal(size=(5, 4))
    rows = sample_half_pos_half_neg(pos, neg, 11, np.random.default_rng(9))
    reference_rng = np.random.default_rng(9)
    pos_idx, neg_idx = reference_rng.integers(0, 7, 5), reference_rng.integers(0, 5, 6)
    expected = [pos[i] for i in pos_idx] + [neg[i] for i in neg_idx]
    np.testing.assert_array_equal(rows, np.array(expected))


def test_split_order_and_facts(deepsdf_data):
    datamodule = make(deepsdf_data)
    assert datamodule.facts() == {"num_shapes": 4}
    datamodule.setup("fit")
    assert datamodule.dataset("train").shapes == [("s1", "a"), ("s1", "b"), ("s1", "c"), ("s2", "d")]
    assert make(deepsdf_data, categories=["s2"]).facts() == {"num_shapes": 1}
    (deepsdf_data / "tiny" / "occnet").mkdir()
    (deepsdf_data / "tiny" / "occnet" / "metadata.yaml").write_text("s2: {id: s2, name: gizmo}\n")
    assert make(deepsdf_data, categories=["gizmo"]).facts() == {"num_shapes": 1}  # names from metadata.yaml
    assert datamodule.deepsdf_root == deepsdf_data / "tiny" / "deepsdf"
    assert datamodule.occnet_root == deepsdf_data / "tiny" / "occnet" and datamodule.dataset_name == "tiny"


def test_deterministic_given_seed_and_varies_with_epoch_and_seed(deepsdf_data):
    first, second = first_batches(make(deepsdf_data), epochs=2)
    again = first_batches(make(deepsdf_data))[0]
    other_seed = first_batches(make(deepsdf_data, seed=4))[0]
    assert torch.equal(first["xyz"], again["xyz"]) and first["model_id"] == again["model_id"]
    assert not torch.equal(first["xyz"], second["xyz"])
    assert not torch.equal(first["xyz"], other_seed["xyz"])


def test_same_batches_with_worker_processes_and_preload(deepsdf_data):
    reference = first_batches(make(deepsdf_data))[0]
    with_workers = first_batches(make(deepsdf_data, num_workers=1))[0]
    preloaded = first_batches(make(deepsdf_data, preload=True))[0]
    for batch in (with_workers, preloaded):
        assert torch.equal(batch["xyz"], reference["xyz"]) and torch.equal(batch["sdf"], reference["sdf"])


def test_test_loader_yields_fixed_samples_per_shape(deepsdf_data):
    datamodule = make(deepsdf_data)
    datamodule.setup("test")
    batches = list(datamodule.test_dataloader())
    assert [b["model_id"] for b in batches] == [["f"], ["g"]]
    assert [b["index"].item() for b in batches] == [0, 1]
    assert batches[0]["xyz"].shape == (1, 40, 3) and batches[0]["sdf"].shape == (1, 40)
    assert (batches[0]["sdf"][0, :20] > 0).all() and (batches[0]["sdf"][0, 20:] < 0).all()
    again = next(iter(datamodule.test_dataloader()))
    assert torch.equal(again["xyz"], batches[0]["xyz"])


def test_split_given_as_json_path_and_missing_val(deepsdf_data):
    split_dir = deepsdf_data / "tiny" / "deepsdf" / "splits"
    datamodule = make(deepsdf_data, train_split=str(split_dir / "tiny_test.json"), val_split=None)
    datamodule.setup("fit")
    assert datamodule.dataset("train").shapes == [("s1", "f"), ("s1", "g")]
    assert datamodule.val_dataloader() == []


def test_nan_rows_dropped_with_warning(deepsdf_data):
    path = sample_file(deepsdf_data, "s1", "a")
    with np.load(path) as data:
        pos, neg = data["pos"].copy(), data["neg"].copy()
    pos[::2, 3] = np.nan
    np.savez(path, pos=pos, neg=neg)
    datamodule = make(deepsdf_data, samples_per_scene=400)
    with pytest.warns(UserWarning, match="a.npz"):
        datamodule.setup("fit")
    assert torch.isfinite(datamodule.dataset("train")[0]["sdf"]).all()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.unlink(), "file not found"),
        (corrupt, "npz"),
        (lambda path: np.savez(path, pos=np.zeros((5, 3), np.float32), neg=np.zeros((5, 4), np.float32)), "shape"),
        (lambda path: np.savez(path, pos=np.zeros((5, 4), np.float32)), "neg"),
        (lambda path: np.savez(path, pos=np.zeros((5, 4), np.int32), neg=np.zeros((5, 4), np.float32)), "dtype"),
        (lambda path: write_sdf_file(path, 0.0, num_neg=0), "no finite samples"),
    ],
    ids=["missing", "corrupt", "wrong-shape", "missing-key", "wrong-dtype", "empty-neg"],
)
def test_bad_sample_file_fails_at_setup_naming_it(deepsdf_data, damage, message):
    path = sample_file(deepsdf_data, "s1", "b")
    damage(path)
    with pytest.raises(ShapelabError, match=message) as error:
        make(deepsdf_data).setup("fit")
    assert str(path) in str(error.value)


def test_bad_split_files_and_categories_fail_naming_the_file(deepsdf_data):
    split = deepsdf_data / "tiny" / "deepsdf" / "splits" / "tiny_train.json"
    with pytest.raises(ShapelabError, match="s9") as error:
        make(deepsdf_data, categories=["s9"]).setup("fit")
    assert str(split) in str(error.value)
    split.write_text("{not json")
    with pytest.raises(ShapelabError, match="JSON") as error:
        make(deepsdf_data).setup("fit")
    assert str(split) in str(error.value)
    split.unlink()
    with pytest.raises(ShapelabError) as error:
        make(deepsdf_data).facts()
    assert str(split) in str(error.value)
    split.write_text(json.dumps({"tiny": {"s1": ["a", "zz"]}}))
    with pytest.raises(ShapelabError, match="zz.npz"):
        make(deepsdf_data).setup("fit")


def test_prepare_data_builds_only_when_asked(deepsdf_data, monkeypatch):
    calls = []
    monkeypatch.setattr(common, "ensure_synthetic_dataset", lambda data_dir, **kwargs: calls.append((data_dir, kwargs)))
    make(deepsdf_data).prepare_data()
    assert calls == []
    make(deepsdf_data, build={"shapes_per_category": 6, "splits": [4, 1, 1]}).prepare_data()
    build = {**compose_group("data/synthetic").build, "shapes_per_category": 6, "splits": [4, 1, 1]}  # merged
    assert calls == [(deepsdf_data, {"name": "tiny", "formats": ["deepsdf", "occnet"], **build})]


def test_configs_instantiate_the_sdf_datamodule(compose_cfg, deepsdf_data, tmp_path):
    cfg = compose_cfg("train", [f"paths.data_dir={deepsdf_data}", "data.dataset_name=tiny", "data.build=null",
                                "data.samples_per_scene=8", "seed=5"])
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, SdfDataModule) and datamodule.seed == 5
    assert datamodule.data_dir == deepsdf_data and datamodule.facts() == {"num_shapes": 4}
    assert first_batches(datamodule)[0]["xyz"].shape[1] == 8
    assert compose_cfg("train")["data"]["build"]["shapes_per_category"] == 24  # default data builds the set
    real = compose_cfg("train", ["data=shapenet_sdf", f"paths.data_dir={tmp_path}",
                                 "data.train_split=/x/sv2_chairs_train.json", "data.test_split=test"])
    datamodule = hydra.utils.instantiate(real.data)
    assert datamodule.deepsdf_root is None and datamodule.split_file("test").name == "ShapeNetV2_test.json"


def test_without_validation_only_existence_is_checked_and_bad_files_still_fail_clearly(deepsdf_data):
    path = sample_file(deepsdf_data, "s1", "b")
    corrupt(path)
    datamodule = make(deepsdf_data, validate=False)
    datamodule.setup("fit")  # no read at setup
    with pytest.raises(ShapelabError, match="npz") as error:
        datamodule.dataset("train")[1]
    assert str(path) in str(error.value)


def test_eval_samples_none_gives_each_test_shape_its_whole_file(deepsdf_data):
    """data.eval_samples=null (DeepSDF's reconstruct.py reads the whole file): every pos row then every neg
    row of the shape's file, one shape per batch; a larger eval batch is refused in one line."""
    datamodule = make(deepsdf_data, eval_samples=None, eval_batch_size=1)
    datamodule.setup("test")
    batches = list(datamodule.test_dataloader())
    assert len(batches) == len(datamodule.dataset("test").shapes)
    for batch in batches:
        path = sample_file(deepsdf_data, batch["synset"][0], batch["model_id"][0])
        with np.load(path) as data:
            whole = np.concatenate([data["pos"], data["neg"]])
        np.testing.assert_array_equal(batch["xyz"][0].numpy(), whole[:, :3])
        np.testing.assert_array_equal(batch["sdf"][0].numpy(), whole[:, 3])
    with pytest.raises(ShapelabError, match="eval_batch_size=1"):
        make(deepsdf_data, eval_samples=None, eval_batch_size=2)
