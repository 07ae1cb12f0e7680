"""Shape completion data (data.completion): the test split observed through one depth view, nothing behind the
observed surface, training / validation unchanged, and one-line errors for bad depth files."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from shapelab.datamodules.formats.deepsdf import read_normalisation
from shapelab.datamodules.formats.occnet import read_cameras, read_depth
from shapelab.datamodules.sdf import SdfDataModule
from shapelab.geometry.frames import deepsdf_to_original
from shapelab.renderers.cameras import project, to_camera

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def datamodule(data_dir, view: int = 0, **overrides) -> SdfDataModule:
    settings = {"dataset_name": "tiny", "build": None, "eval_batch_size": 2, "eval_samples": 1000,
                "samples_per_scene": 256, "completion": {"view": view, "num_samples": 2000}, **overrides}
    return instantiate_group("data/synthetic_completion", data_dir=data_dir, **settings)


def test_test_shapes_are_seen_only_through_their_depth_view(tiny_synthetic):
    dm = datamodule(tiny_synthetic, view=5)
    dm.setup("test")
    dataset = dm.dataset("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["xyz"].shape == (2, 2000, 3) and batch["free_space"].dtype == torch.bool
    assert batch["free_space"].float().mean() == 0.5 and torch.all(batch["sdf"] == 0)
    for i, files in enumerate(dataset.files[:2]):
        depth = read_depth(files.depth)
        assert files.depth.name == "005.npz"
        K, Rt = read_cameras(files.cameras)[5]
        points = deepsdf_to_original(batch["xyz"][i].numpy(), *read_normalisation(files.normalisation))
        col, row = np.floor(project(points, K, Rt)).astype(int).T
        seen = depth[row, col]
        z = to_camera(points, Rt)[:, 2]
        # every sample projects onto an object pixel and lies on or in front of what that pixel saw: nothing
        # behind the observed surface (one pixel's footprint of slack: samples sit on rays through pixel centres)
        assert np.all(np.isfinite(seen))
        assert np.all(z <= seen + 0.01)
        surface = ~batch["free_space"][i].numpy()
        assert np.median(np.abs(z[surface] - seen[surface])) < 1e-4
    again = next(iter(dm.test_dataloader()))
    assert torch.equal(batch["xyz"], again["xyz"])  # evaluation sees the same samples every time
    assert dm.observation("test") == {"depth_view": 5, "num_samples": 2000, "free_space_fraction": 0.5}


def test_training_and_validation_keep_the_sdf_samples(tiny_synthetic):
    dm = datamodule(tiny_synthetic)
    dm.setup("fit")
    val = next(iter(dm.val_dataloader()))
    assert "free_space" not in val and val["xyz"].shape[1] == 1000 and (val["sdf"] < 0).any()
    assert dm.observation("val") == {} and datamodule(tiny_synthetic, completion=None).observation("test") == {}


@pytest.fixture
def tiny_copy(tiny_synthetic, tmp_path):
    """A writable copy of the tiny dataset's DeepSDF and OccNet folders."""
    for folder in ("deepsdf", "occnet"):
        shutil.copytree(tiny_synthetic / "tiny" / folder, tmp_path / "tiny" / folder)
    return tmp_path


def first_test_depth(data_dir, view: int = 0):
    dm = datamodule(data_dir, view=view, validate=False)
    return dm, dm.dataset("test").files[0].depth


@pytest.mark.parametrize("problem, message", [
    ("nan", "contains NaN"),
    ("empty", "no object pixels.*data.completion.view"),
    ("negative", "<= 0"),
])
def test_a_bad_depth_file_is_named_in_one_line(problem, message, tiny_copy):
    _, path = first_test_depth(tiny_copy)
    depth = read_depth(path)
    if problem == "nan":
        depth[np.isfinite(depth).nonzero()[0][0], np.isfinite(depth).nonzero()[1][0]] = np.nan
    elif problem == "empty":
        depth[:] = np.inf
    else:
        depth[np.isfinite(depth)] *= -1
    np.savez_compressed(path, depth=depth)
    with pytest.raises(ShapelabError, match=message) as caught:
        datamodule(tiny_copy).setup("test")  # validation at set-up (train.py sets up the test split first)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_depth_view_is_named(tiny_copy):
    _, path = first_test_depth(tiny_copy)
    path.unlink()
    with pytest.raises(ShapelabError, match="file not found.*data.completion.view") as caught:
        datamodule(tiny_copy).setup("test")
    assert str(path) in str(caught.value)
    with pytest.raises(ShapelabError, match="depth/024.npz: file not found"):
        datamodule(tiny_copy, view=24).setup("test")  # 24 renders: views 0-23
