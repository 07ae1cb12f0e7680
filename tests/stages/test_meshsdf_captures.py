"""The MeshSDF silhouette stage on data=colmap_views: a capture's own masks and cameras instead of ring cameras
around a ground-truth mesh; scored when the capture has a true surface, one warning when it has none."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from shapelab.sfm.cameras_file import read_capture_cameras, write_capture_cameras
from shapelab.sfm.captures import ViewSet, write_capture
from shapelab.stages.base import StageRun
from shapelab.stages.meshsdf import MeshSDFStage, render_masks

from shapelab.cli.sfm import builtin_shape
from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.conftest import REPO_ROOT, compose_run_cfg
from tests.sfm.test_pipeline import colmap_views
from tests.stages.test_meshsdf import write_sphere_run

VIEWS = ViewSet(azimuths=6, elevations=[30.0], image_size=96)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A built-in textured capture (car 0, 6 views at 96 px) with its TRUE cameras as the capture's cameras."""
    folder = write_capture(tmp_path_factory.mktemp("car_capture"), builtin_shape("car", 0), views=VIEWS, progress=False)
    shutil.copy(folder / "cameras_true.npz", folder / "cameras.npz")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_sphere_run(tmp_path_factory.mktemp("sphere_run"))


def small_stage(checkpoint, **overrides) -> MeshSDFStage:
    settings = {"task": "silhouette", "num_views": 4, "image_size": 48, "log_every": 100, "seed": 0}
    return instantiate_group("stage/meshsdf", checkpoint=str(checkpoint), loss={"chamfer_weight": 0.0},
                             baseline={"num_iterations": 20, "num_samples": 500},
                             refine={"iterations": 4, "lr": 0.01, "resolution": 20}, **{**settings, **overrides})


def stage_cfg(out):
    evaluate = OmegaConf.load(REPO_ROOT / "conf" / "evaluation" / "default.yaml")
    evaluate.deepsdf_points, evaluate.occnet_points, evaluate.contact_sheet_shapes = 5000, 5000, 0
    return OmegaConf.create({"paths": {"output_dir": str(out)}, "model": {"decoder": None}, "evaluate": evaluate})


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 0.5) & (b > 0.5)).sum() / ((a > 0.5) | (b > 0.5)).sum())


def test_observed_masks_are_what_ring_rendering_gives_for_the_same_cameras(capture, tmp_path):
    """The stage's targets from the capture (masks at their 96 px, cameras moved into the deepsdf frame) equal
    the masks the ring-camera path (`render_masks` of the true mesh in the deepsdf frame) renders for those
    cameras; without the frame change they do not."""
    datamodule = colmap_views([str(capture)])
    datamodule.setup("fit")
    views = StageRun(stage_cfg(tmp_path), datamodule, [], tmp_path).observed_views(("capture", capture.name), 4, 96)
    assert views.names == ["000.png", "001.png", "003.png", "004.png"]  # 4 of 6 spread evenly
    targets = views.in_frame("deepsdf")
    mesh = trimesh.load(capture / "mesh.ply", process=False)
    in_deepsdf = trimesh.Trimesh(views.frames.from_original(mesh.vertices, "deepsdf"), mesh.faces, process=False)
    assert np.abs(in_deepsdf.vertices).max() < 1.0 / 1.03 + 1e-3  # DeepSDF's unit sphere (from the capture's points)
    rendered = render_masks(in_deepsdf, targets["K"], targets["Rt"], 96)
    agreement = [iou(rendered[v], targets["masks"][v]) for v in range(4)]
    assert min(agreement) > 0.995, agreement  # the same rays: equal up to grazing pixels
    unmoved = render_masks(in_deepsdf, targets["K"], views.Rt, 96)  # the capture's frame taken as the deepsdf one
    assert max(iou(unmoved[v], targets["masks"][v]) for v in range(4)) < 0.8


def test_stage_on_a_capture_is_scored_through_the_evaluation(capture, checkpoint, tmp_path):
    """Refining from the capture's views (the same observation as the ring path's, test above) is scored through
    the shared evaluation against the capture's true surface (written by the datamodule), and raises IoU."""
    datamodule = colmap_views([str(capture)], ground_truth_dir=str(tmp_path / "truth"))
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert (tmp_path / "truth" / "occnet" / "capture" / capture.name / "points.npz").is_file()
    metrics = small_stage(checkpoint).run(StageRun(stage_cfg(tmp_path / "out"), datamodule, [], tmp_path / "out"))
    for column in ("iou", "chamfer_deepsdf", "chamfer_capnet", "chamfer_l1_occnet"):
        assert np.isfinite(metrics[f"meshsdf/{column}_before"]) and np.isfinite(metrics[f"meshsdf/{column}_after"])
    assert metrics["meshsdf/iou_before"] > 0.3, metrics  # the visual hull of the right masks in the right frame
    assert metrics["meshsdf/iou_after"] > metrics["meshsdf/iou_before"], metrics


def test_capture_without_ground_truth_is_refined_and_not_scored(capture, checkpoint, tmp_path, caplog):
    """Real photos: no pointcloud.npz, only the sparse points -> meshes written, scoring skipped in one warning."""
    photos = tmp_path / "photos"
    shutil.copytree(capture, photos)
    points = np.load(photos / "pointcloud.npz")["points"][:500]
    trimesh.PointCloud(points).export(photos / "points.ply")
    (photos / "pointcloud.npz").unlink()
    (photos / "mesh.ply").unlink()
    datamodule = colmap_views([str(photos)], ground_truth_dir=str(tmp_path / "truth"))
    datamodule.prepare_data()
    datamodule.setup("fit")
    with caplog.at_level(logging.WARNING, logger="shapelab.meshsdf"):
        metrics = small_stage(checkpoint, num_views=2, image_size=24).run(
            StageRun(stage_cfg(tmp_path / "out"), datamodule, [], tmp_path / "out"))
    assert metrics == {}
    assert [r.message for r in caplog.records if "not scored" in r.message] != []
    assert (tmp_path / "out" / "meshsdf" / "after" / "capture" / "photos.ply").is_file()


def test_pointcloud_task_on_captures_is_one_line(capture, checkpoint, tmp_path):
    datamodule = colmap_views([str(capture)])
    datamodule.setup("fit")
    with pytest.raises(ShapelabError, match="stage.task=pointcloud: the data gives silhouettes"):
        small_stage(checkpoint, task="pointcloud").run(StageRun(stage_cfg(tmp_path), datamodule, [], tmp_path))


def stage_overrides(capture, checkpoint) -> list[str]:
    return ["stage=meshsdf", "data=colmap_views", "trainer=smoke", "logger=csv", f"data.captures=[{capture}]",
            f"stage.checkpoint={checkpoint}", "data.ground_truth_dir=${paths.output_dir}/ground_truth", "stage.num_views=2", "stage.image_size=24",
            "stage.baseline.num_iterations=5", "stage.refine.iterations=2", "stage.refine.resolution=16",
            "evaluate.deepsdf_points=2000", "evaluate.occnet_points=2000", "evaluate.contact_sheet_shapes=0"]


def test_train_runs_the_stage_on_colmap_views(compose_cfg, capture, checkpoint, tmp_path):
    """``python train.py stage=meshsdf data=colmap_views trainer=smoke``: the config composes and passes the
    start-up checks (no model/data pairing for a stage), the stage refines and scores the built-in capture."""
    from shapelab.cli.train import train

    cfg = compose_run_cfg(compose_cfg, stage_overrides(capture, checkpoint), tmp_path / "run")
    metrics = train(cfg)
    assert 0.0 <= metrics["meshsdf/iou_after"] <= 1.0 and "meshsdf/chamfer_deepsdf_before" in metrics
    assert (tmp_path / "run" / "ground_truth" / "deepsdf" / "SurfaceSamples" / "colmap_views" / "capture").is_dir()


def test_capture_without_masks_is_one_line(compose_cfg, capture, checkpoint, tmp_path):
    no_masks = tmp_path / "no_masks"
    no_masks.mkdir()
    cameras = read_capture_cameras(capture / "cameras.npz")
    cameras.mask_dir = None
    write_capture_cameras(no_masks / "cameras.npz", cameras)
    from shapelab.cli.train import train

    cfg = compose_run_cfg(compose_cfg, stage_overrides(no_masks, checkpoint), tmp_path / "run")
    with pytest.raises(ShapelabError, match=r"cameras.npz: this capture has no masks; re-run sfm.py with masks_dir"):
        train(cfg)
