"""evaluate.py pred_dir inputs: a warning when the predictions look turned ±90° about y against the ground truth
(ShapeNet v2 axes vs OccNet's; geometry/axes.py); an unreadable npz is one line without unpickling advice."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import trimesh
from omegaconf import OmegaConf
from shapelab.datamodules.formats import occnet as occnet_format
from shapelab.geometry.axes import y_rotation

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from shapelab.evaluation import evaluate_predictions
from shapelab.evaluation.reconstruct import load_prediction
from tests.conftest import REPO_ROOT

EXTENTS = np.array([0.9, 0.3, 0.5])  # occnet frame; elongated along x so a quarter turn shows


def write_box_dataset(data_dir, ids):
    root = data_dir / "tiny" / "occnet"
    occnet_format.write_split_lst(root / "c" / "test.lst", ids)
    occnet_format.write_metadata(root / "metadata.yaml", {"c": "box"})
    box = trimesh.creation.box(extents=EXTENTS)
    for index, model_id in enumerate(ids):
        points, faces = trimesh.sample.sample_surface(box, 5000, seed=index)
        occnet_format.write_pointcloud(root / "c" / model_id / "pointcloud.npz", points, box.face_normals[faces],
                                       np.zeros(3), 1.0)  # fmt: skip
        query = np.random.default_rng(index).uniform(-0.55, 0.55, (2000, 3))
        occnet_format.write_points(root / "c" / model_id / "points.npz", query,
                                   (np.abs(query) < EXTENTS / 2).all(axis=1), np.zeros(3), 1.0)  # fmt: skip


def test_pred_dir_in_turned_axes_gets_one_warning_naming_the_fix(tmp_path, caplog):
    ids = ["a", "b"]
    write_box_dataset(tmp_path / "data", ids)
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "evaluation" / "default.yaml")
    cfg.contact_sheet_shapes, cfg.occnet_points, cfg.deepsdf_points = 0, 3000, 1000
    for name, degrees in (("same", 0.0), ("turned", 90.0)):
        for model_id in ids:
            box = trimesh.creation.box(extents=EXTENTS)
            box.vertices = box.vertices @ y_rotation(degrees).T
            (tmp_path / name / "c").mkdir(parents=True, exist_ok=True)
            box.export(tmp_path / name / "c" / f"{model_id}.ply")
    datamodule = instantiate_group("data/synthetic_occ", data_dir=tmp_path / "data", build=None, dataset_name="tiny",
                                   input_type="pointcloud", eval_batch_size=1, train_split=None, val_split=None)
    with caplog.at_level(logging.WARNING, logger="shapelab.evaluation"):
        evaluate_predictions(tmp_path / "same", "occnet", datamodule, cfg, tmp_path / "eval_same")
    assert "about y" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="shapelab.evaluation"):
        evaluate_predictions(tmp_path / "turned", "occnet", datamodule, cfg, tmp_path / "eval_turned")
    warnings = [record.getMessage() for record in caplog.records if "about y" in record.getMessage()]
    assert len(warnings) == 1
    assert re.search(r"c/a: predictions match the ground truth much better turned by [+-]90° about y", warnings[0])
    assert "frame=occnet" in warnings[0]


def test_unreadable_npz_prediction_never_suggests_unpickling(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ShapelabError, match=r"x\.npz: not a readable npz file") as caught:
        load_prediction(path, "occnet")
    assert "allow_pickle" not in str(caught.value) and "re-export the prediction" in str(caught.value)
