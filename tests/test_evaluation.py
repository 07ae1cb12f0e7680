"""End-to-end evaluation: a stub model whose reconstructions are known spheres, scored against ground
truth written in the documented formats (DeepSDF + OccNet) in a tmp dir."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from shapelab.datamodules.formats import deepsdf as deepsdf_format
from shapelab.datamodules.formats import occnet as occnet_format
from shapelab.datamodules.occupancy import OccupancyDataModule
from shapelab.models.base import Reconstruction, ShapeModel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from shapelab.checkpoints import load_weights
from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from shapelab.evaluation import evaluate_model, evaluate_predictions
from shapelab.evaluation.ground_truth import ShapeGroundTruth
from shapelab.evaluation.scoring import METRIC_GROUPS, ScoringSettings, score_shape

GT_RADIUS, PRED_RADIUS = 0.3, 0.33  # occnet frame
LOC, OCC_SCALE = np.array([0.1, 0.0, -0.2]), 2.0  # original = occnet * 2 + loc
OFFSET, SDF_SCALE = -LOC, 1.0 / (2.0 * GT_RADIUS * 1.03)  # deepsdf = (original + offset) * scale
SHAPES = [("02691156", "plane_a"), ("02691156", "plane_empty"), ("03001627", "chair_a"), ("03001627", "chair_fails")]
POINTS = 20000


def sphere_points(radius: float, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    directions = np.random.default_rng(seed).normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * radius, directions


def occnet_datamodule(data_dir: Path) -> OccupancyDataModule:
    """The real OccNet datamodule on dataset "tiny": its split lists, loaders (batch 1) and roots."""
    return instantiate_group("data/synthetic_occ", data_dir=data_dir, build=None, dataset_name="tiny",
                             input_type="pointcloud", eval_batch_size=1, train_split=None, val_split=None)


class SphereModel(ShapeModel):
    """Reconstructs every shape as a sphere of PRED_RADIUS (occnet units) in the deepsdf frame."""

    def __init__(self, interrupt_at: str | None = None):
        super().__init__()
        self.interrupt_at = interrupt_at  # send Ctrl-C (SIGINT) while reconstructing this shape
        self.layer = torch.nn.Linear(2, 3)
        for parameter in self.layer.parameters():  # the same weights in every instance: one "checkpoint"
            torch.nn.init.constant_(parameter, 0.5)
        self.calls: list[str] = []

    def reconstruct(self, batch):
        model_id = batch["model_id"][0]
        self.calls.append(model_id)
        if model_id == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        if model_id == "chair_fails":
            raise RuntimeError("decoder diverged")
        if model_id == "plane_empty":
            return [Reconstruction("occnet", mesh=trimesh.Trimesh())]
        mesh = trimesh.creation.icosphere(subdivisions=5, radius=PRED_RADIUS)
        original = mesh.vertices * OCC_SCALE + LOC
        mesh.vertices = (original + OFFSET) * SDF_SCALE
        return [Reconstruction("deepsdf", mesh=mesh)]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """A data_dir holding dataset "tiny" in both formats (DEVELOPING.md layout)."""
    data_dir = tmp_path_factory.mktemp("data")
    root = data_dir / "tiny"
    for synset in {synset for synset, _ in SHAPES}:
        occnet_format.write_split_lst(root / "occnet" / synset / "test.lst",
                                      [model_id for s, model_id in SHAPES if s == synset])
    occnet_format.write_metadata(root / "occnet" / "metadata.yaml", {"02691156": "airplane", "03001627": "chair"})
    rng = np.random.default_rng(0)
    for index, (synset, model_id) in enumerate(SHAPES):
        points, normals = sphere_points(GT_RADIUS, POINTS, seed=index)
        shape_dir = root / "occnet" / synset / model_id
        occnet_format.write_pointcloud(shape_dir / "pointcloud.npz", points, normals, LOC, OCC_SCALE)
        query = rng.uniform(-0.55, 0.55, size=(POINTS, 3))
        occnet_format.write_points(shape_dir / "points.npz", query, np.linalg.norm(query, axis=1) < GT_RADIUS,
                                   LOC, OCC_SCALE)
        surface, _ = sphere_points(GT_RADIUS, 5000, seed=100 + index)
        deepsdf_format.write_surface_samples(
            root / "deepsdf" / "SurfaceSamples" / "tiny" / synset / f"{model_id}.ply", surface * OCC_SCALE + LOC)
        deepsdf_format.write_normalisation(
            root / "deepsdf" / "NormalizationParameters" / "tiny" / synset / f"{model_id}.npz", OFFSET, SDF_SCALE)
    return data_dir


@pytest.fixture
def eval_cfg():
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "evaluation" / "default.yaml")
    cfg.occnet_points, cfg.deepsdf_points = POINTS, 5000
    return cfg


def read_rows(path: Path) -> dict[str, dict]:
    with path.open() as handle:
        return {row["model_id"]: row for row in csv.DictReader(handle)}


def test_evaluate_model_writes_known_values(dataset_root, eval_cfg, tmp_path):
    out = tmp_path / "eval"
    overall = evaluate_model(SphereModel(), occnet_datamodule(dataset_root), eval_cfg, out)
    rows = read_rows(out / "per_shape.csv")
    good = rows["plane_a"]
    assert good["status"] == "ok" and good["category"] == "airplane" and good["frame"] == "deepsdf"
    # concentric spheres 0.03 apart (occnet units), dense samples: d is 0.03 plus a little sampling noise
    assert float(good["chamfer_l1_occnet"]) == pytest.approx(0.03, rel=0.05)
    assert float(good["normal_consistency"]) == pytest.approx(1.0, abs=0.01)
    assert float(good["iou"]) == pytest.approx((GT_RADIUS / PRED_RADIUS) ** 3, abs=0.02)
    assert float(good["fscore_1pct"]) == 0.0 and float(good["fscore_2pct"]) == 0.0  # thresholds 0.006/0.012 < 0.03
    # DeepSDF Chamfer in original units: 0.03 * 2 = 0.06 each way, squared, summed
    assert float(good["chamfer_deepsdf"]) == pytest.approx(2 * 0.06**2, rel=0.1)
    assert float(good["chamfer_capnet"]) < 5e-3  # same shape up to scale (1024-point sampling noise only)

    empty = rows["plane_empty"]
    assert float(empty["chamfer_l1_occnet"]) == pytest.approx(math.sqrt(3))
    assert float(empty["iou"]) == 0.0 and float(empty["normal_consistency"]) == -1.0
    assert rows["chair_fails"]["status"] == "failed: RuntimeError: decoder diverged"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_shapes"] == 4 and summary["num_failed"] == 1 and summary["num_scored"] == 3
    airplane = (float(good["chamfer_l1_occnet"]) + math.sqrt(3)) / 2
    chair = float(rows["chair_a"]["chamfer_l1_occnet"])
    assert summary["mean_over_classes"]["chamfer_l1_occnet"] == pytest.approx((airplane + chair) / 2)
    assert summary["mean_over_shapes"]["chamfer_l1_occnet"] == pytest.approx((2 * airplane + chair) / 3)
    shape_values = sorted([float(good["chamfer_l1_occnet"]), math.sqrt(3), chair])
    assert summary["median_over_shapes"]["chamfer_l1_occnet"] == pytest.approx(shape_values[1])
    assert overall["eval/test/chamfer_l1_occnet"] == pytest.approx(summary["mean_over_classes"]["chamfer_l1_occnet"])
    assert summary["definitions"]["chamfer_deepsdf"]["report_scale"] == 1e3
    table = (out / "metrics.md").read_text()
    assert "mean/classes" in table and "| median/shapes | 3 |" in table
    assert (out / "contact_sheet.png").stat().st_size > 1000
    assert (out / "reconstructions" / "02691156" / "plane_a.ply").is_file()


def test_resume_skips_scored_shapes_and_retries_failed(dataset_root, eval_cfg, tmp_path):
    out = tmp_path / "eval"
    eval_cfg.contact_sheet_shapes = 0
    evaluate_model(SphereModel(), occnet_datamodule(dataset_root), eval_cfg, out)
    before = read_rows(out / "per_shape.csv")
    again = SphereModel()
    evaluate_model(again, occnet_datamodule(dataset_root), eval_cfg, out)
    assert again.calls == ["chair_fails"]  # only the failed shape is tried again
    after = read_rows(out / "per_shape.csv")
    assert len(after) == 4 and after["plane_a"] == before["plane_a"]


@pytest.mark.parametrize("change", ["checkpoint", "settings", "ground_truth"])
def test_another_checkpoint_settings_or_ground_truth_is_scored_anew(dataset_root, eval_cfg, tmp_path, change):
    """Resume is keyed on what was scored: the same folder never returns an earlier evaluation's rows."""
    out = tmp_path / "eval"
    eval_cfg.contact_sheet_shapes = 0
    evaluate_model(SphereModel(), occnet_datamodule(dataset_root), eval_cfg, out)
    first = json.loads((out / "summary.json").read_text())["resume_key"]
    model, datamodule = SphereModel(), occnet_datamodule(dataset_root)
    if change == "checkpoint":
        torch.nn.init.constant_(model.layer.weight, 0.25)
    elif change == "settings":
        eval_cfg.occnet_points = POINTS // 2
    else:
        datamodule = occnet_datamodule(Path(shutil.copytree(dataset_root, tmp_path / "copy")))  # other files
    evaluate_model(model, datamodule, eval_cfg, out)
    assert sorted(model.calls) == sorted(model_id for _, model_id in SHAPES)  # every shape scored again
    second = json.loads((out / "summary.json").read_text())["resume_key"]
    assert second["id"] != first["id"] and (second["model"] == first["model"]) == (change != "checkpoint")
    superseded = out / "superseded" / first["id"]
    assert read_rows(superseded / "per_shape.csv")["plane_a"]["status"] == "ok"  # kept, not mixed in
    assert json.loads((superseded / "resume_key.json").read_text()) == first


def test_pred_dir_scores_files_like_the_model(dataset_root, eval_cfg, tmp_path):
    eval_cfg.contact_sheet_shapes = 0
    evaluate_model(SphereModel(), occnet_datamodule(dataset_root), eval_cfg, tmp_path / "model")
    pred_dir = tmp_path / "model" / "reconstructions"
    (pred_dir / "02691156" / "plane_empty.ply").unlink()  # a missing file is a counted failure
    points, _ = sphere_points(PRED_RADIUS, 3000, seed=7)
    np.savez(pred_dir / "03001627" / "chair_fails.npz", points=points)  # an occnet-frame point cloud...
    eval_cfg.contact_sheet_shapes = 1
    loggers = [CSVLogger(tmp_path / "csv", name="", version=""), TensorBoardLogger(tmp_path / "tb", name="", version=""),
               WandbLogger(save_dir=str(tmp_path), mode="disabled")]  # W&B path runs (no files when disabled)
    overall = evaluate_predictions(pred_dir, "deepsdf", occnet_datamodule(dataset_root), eval_cfg, tmp_path / "files", loggers=loggers)
    model_rows, file_rows = read_rows(tmp_path / "model" / "per_shape.csv"), read_rows(tmp_path / "files" / "per_shape.csv")
    for column in ("chamfer_l1_occnet", "iou", "chamfer_deepsdf", "normal_consistency"):
        assert float(file_rows["plane_a"][column]) == pytest.approx(float(model_rows["plane_a"][column]), rel=1e-4)
    assert file_rows["plane_empty"]["status"].startswith("failed: FileNotFoundError")
    chair = file_rows["chair_fails"]  # ...read in the wrong frame (deepsdf): scored, no IoU/NC for points
    assert chair["status"] == "ok" and chair["kind"] == "points" and chair["iou"] == "" and chair["normal_consistency"] == ""
    assert overall["eval/test/num_failed"] == 1
    summary = json.loads((tmp_path / "files" / "summary.json").read_text())
    assert summary["shapes_per_metric"]["iou"] == 2 and summary["shapes_per_metric"]["chamfer_l1_occnet"] == 3
    with (tmp_path / "csv" / "metrics.csv").open() as handle:
        logged = next(csv.DictReader(handle))
    assert float(logged["eval/test/iou"]) == pytest.approx(overall["eval/test/iou"])
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert "eval/test/contact_sheet" in events.Tags()["images"]
    assert "eval/test/chamfer_l1_occnet" in events.Tags()["scalars"]


def test_corrupt_and_mismatched_checkpoints_give_one_line_errors(tmp_path):
    model = SphereModel()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ShapelabError, match="broken.ckpt: not a loadable checkpoint"):
        load_weights(model, broken)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(5, 5), "layer.bias": torch.zeros(3)}}, other)
    with pytest.raises(ShapelabError, match="weights do not fit SphereModel"):
        load_weights(model, other)
    good = tmp_path / "good.ckpt"
    expected = {key: value + 1 for key, value in SphereModel().state_dict().items()}
    torch.save({"state_dict": expected, "epoch": 3}, good)
    load_weights(model, good)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in expected.items())


def test_evaluate_cli_config_rejects_corrupt_checkpoint(compose_cfg, tmp_path):
    from hydra.core.hydra_config import HydraConfig

    from shapelab.cli.evaluate import evaluate

    def compose(overrides):
        cfg = compose_cfg("evaluate", [f"paths.output_dir={tmp_path}", *overrides])
        HydraConfig.instance().set_config(cfg)
        return cfg

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create({"model": {"_target_": "shapelab.models.base.ShapeModel"}}), run_dir / ".hydra" / "config.yaml")
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"\x00" * 10)
    with pytest.raises(ShapelabError, match="last.ckpt: not a loadable checkpoint"):
        evaluate(compose([f"ckpt_path={run_dir}"]))
    with pytest.raises(ShapelabError, match="nothing to evaluate"):
        evaluate(compose([]))
    with pytest.raises(ShapelabError, match="data=<name>"):
        evaluate(compose([f"pred_dir={tmp_path}"]))


@pytest.mark.parametrize("recon", [
    Reconstruction("occnet", mesh=trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]])),  # zero area
    Reconstruction("occnet", mesh=trimesh.Trimesh([[np.nan, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])),
    Reconstruction("occnet", points=np.full((10, 3), np.nan)),
])
def test_degenerate_predictions_get_penalties(recon):
    points, normals = sphere_points(GT_RADIUS, 2000, seed=0)
    occupancy = {"points": points, "occupancies": np.ones(len(points), bool), "loc": LOC, "scale": OCC_SCALE}
    truth = ShapeGroundTruth(pointcloud={"points": points, "normals": normals, "loc": LOC, "scale": OCC_SCALE},
                             occupancy=occupancy, surface=points)
    values, skipped = score_shape(recon, truth, ScoringSettings(occnet_points=2000), list(METRIC_GROUPS))
    assert values["chamfer_l1_occnet"] == pytest.approx(math.sqrt(3))
    assert values["chamfer_deepsdf"] == values["chamfer_capnet"] == pytest.approx(6.0)
    assert values["fscore_1pct"] == 0.0
    if recon.mesh is not None:
        assert values["iou"] == 0.0 and values["normal_consistency"] == -1.0
    else:
        assert set(skipped) == {"iou"} and "normal_consistency" not in values


def open_mesh(radius: float) -> trimesh.Trimesh:
    """A sphere (occnet frame) with a cap cut away and a loose sheet inside: ray-parity answers depend on the
    ray direction, so trimesh's random re-casts made its IoU change from run to run."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    sphere.update_faces(sphere.triangles_center[:, 0] < 0.8 * radius)
    sheet = trimesh.Trimesh([[-0.25, -0.25, 0.02], [0.25, -0.2, -0.02], [0.0, 0.3, 0.05]], [[0, 1, 2]])
    return trimesh.util.concatenate([sphere, sheet])


@pytest.mark.parametrize("iou_inside", ["occnet", "trimesh"])
def test_two_evaluations_write_identical_csv(dataset_root, eval_cfg, tmp_path, iou_inside):
    pred_dir = tmp_path / "pred"
    for synset, model_id in SHAPES:
        (pred_dir / synset).mkdir(parents=True, exist_ok=True)
        open_mesh(PRED_RADIUS).export(pred_dir / synset / f"{model_id}.ply")
    eval_cfg.contact_sheet_shapes, eval_cfg.save_reconstructions, eval_cfg.iou_inside = 0, False, iou_inside
    for out in ("first", "second"):
        evaluate_predictions(pred_dir, "occnet", occnet_datamodule(dataset_root), eval_cfg, tmp_path / out)
    first, second = ((tmp_path / out / "per_shape.csv").read_text() for out in ("first", "second"))
    assert first == second and "failed" not in first


def test_broken_prediction_files_fail_with_their_reason(dataset_root, eval_cfg, tmp_path, monkeypatch):
    pred_dir = tmp_path / "pred"
    for synset, _ in SHAPES:
        (pred_dir / synset).mkdir(parents=True, exist_ok=True)
    trimesh.creation.icosphere(subdivisions=3, radius=PRED_RADIUS).export(pred_dir / "02691156" / "plane_a.obj")
    (pred_dir / "02691156" / "plane_empty.ply").write_bytes(np.random.default_rng(0).bytes(4000))
    nan_mesh = trimesh.creation.icosphere(subdivisions=1)
    nan_mesh.vertices[0] = np.nan
    nan_mesh.export(pred_dir / "03001627" / "chair_a.obj")
    (pred_dir / "03001627" / "chair_fails.npz").write_bytes(b"PK not really a zip")
    trimesh.creation.box().export(pred_dir / "03001627" / "not_in_split.ply")

    def broken_sheet(*args, **kwargs):
        raise ValueError("plotting failed")

    monkeypatch.setattr("shapelab.evaluation.report.contact_sheet", broken_sheet)
    eval_cfg.contact_sheet_shapes = 1
    overall = evaluate_predictions(pred_dir, "occnet", occnet_datamodule(dataset_root), eval_cfg, tmp_path / "out")
    rows = read_rows(tmp_path / "out" / "per_shape.csv")
    assert rows["plane_a"]["status"] == "ok"
    assert rows["plane_empty"]["status"] == "failed: BadPrediction: " + str(pred_dir / "02691156" / "plane_empty.ply") \
        + ": not a PLY file" + rows["plane_empty"]["status"].split("not a PLY file")[1]
    assert rows["chair_a"]["status"].endswith("chair_a.obj: non-finite (NaN or inf) coordinates")
    assert rows["chair_fails"]["status"].startswith("failed: ") and "chair_fails.npz" in rows["chair_fails"]["status"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["num_scored"], summary["num_failed"], overall["eval/test/num_failed"]) == (1, 3, 3)
    assert summary["unmatched_files"] == ["03001627/not_in_split.ply"] and summary["num_unmatched_files"] == 1
    assert summary["pictures"].startswith("skipped: ValueError: plotting failed")


def test_ctrl_c_stops_after_the_current_shape_with_the_resume_hint(dataset_root, eval_cfg, tmp_path):
    eval_cfg.contact_sheet_shapes = 0
    out = tmp_path / "eval"
    try:
        with pytest.raises(ShapelabError, match="interrupted after 2 of 4 shapes.*run the same command again to resume"):
            evaluate_model(SphereModel(interrupt_at="plane_empty"), occnet_datamodule(dataset_root), eval_cfg, out)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the evaluation as a KeyboardInterrupt")
    assert set(read_rows(out / "per_shape.csv")) == {"plane_a", "plane_empty"}  # the current shape finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    model = SphereModel()
    evaluate_model(model, occnet_datamodule(dataset_root), eval_cfg, out)
    assert model.calls == ["chair_a", "chair_fails"]


def empty_case_truth() -> ShapeGroundTruth:
    points, normals = sphere_points(GT_RADIUS, 2000, seed=0)
    far = np.full((50, 3), 0.5)  # ground-truth occupancy: nothing inside
    return ShapeGroundTruth(pointcloud={"points": points, "normals": normals, "loc": LOC, "scale": OCC_SCALE},
                            occupancy={"points": far, "occupancies": np.zeros(50, bool), "loc": LOC, "scale": OCC_SCALE},
                            surface=points)


def test_empty_policy_occnet_leaves_chamfer_out_and_empty_union_iou_nan():
    truth, empty = empty_case_truth(), Reconstruction("occnet", mesh=trimesh.Trimesh())
    occnet, _ = score_shape(empty, truth, ScoringSettings(occnet_points=2000, empty_policy="occnet"), list(METRIC_GROUPS))
    for column in ("chamfer_l1_occnet", "chamfer_l2_occnet", "chamfer_deepsdf", "chamfer_capnet", "emd_capnet"):
        assert math.isnan(occnet[column])
    assert occnet["accuracy_occnet"] == occnet["completeness_occnet"] == pytest.approx(math.sqrt(3))
    assert occnet["normal_consistency"] == -1.0 and occnet["iou"] == 0.0 and occnet["fscore_1pct"] == 0.0
    small = Reconstruction("occnet", mesh=trimesh.creation.icosphere(radius=0.1))  # contains none of the points
    for policy, expected in (("occnet", math.nan), ("penalty", 0.0)):
        values, _ = score_shape(small, truth, ScoringSettings(occnet_points=2000, empty_policy=policy), ["iou"])
        assert values["iou"] == pytest.approx(expected, nan_ok=True)
    with pytest.raises(ShapelabError, match="evaluate.empty_policy"):
        ScoringSettings(empty_policy="occnett")


def test_empty_policy_default_is_penalty_and_documented(eval_cfg):
    assert eval_cfg.empty_policy == "penalty" and ScoringSettings().empty_policy == "penalty"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    assert "`evaluate.empty_policy=penalty` (default)" in docs and "`evaluate.empty_policy=occnet`" in docs


@pytest.mark.parametrize("gt_radius, gap, expected", [(5.0, 0.05, 1.0), (0.05, 0.005, 0.0)])
def test_fscore_threshold_is_a_fraction_of_the_ground_truth_box(gt_radius, gap, expected):
    """τ = fraction × the GT's longest box edge: a 0.05 gap is within 1 % of a 10-wide shape (τ = 0.1) and a
    0.005 gap is not within 1 % of a 0.1-wide one (τ = 0.001); an unscaled τ = 0.01 gives the opposite."""
    points, normals = sphere_points(gt_radius, 4000, seed=0)
    truth = ShapeGroundTruth(pointcloud={"points": points, "normals": normals, "loc": LOC, "scale": OCC_SCALE})
    pred = Reconstruction("occnet", points=sphere_points(gt_radius + gap, 4000, seed=0)[0])  # gap along each normal
    values, _ = score_shape(pred, truth, ScoringSettings(fscore_thresholds={"1pct": 0.01}), ["occnet_surface"])
    assert values["fscore_1pct"] == expected


def test_markdown_table_shows_the_papers_report_scales(tmp_path):
    """metrics.md shows chamfer_l1_occnet ×10 and chamfer_deepsdf ×10³ (the CSV/JSON keep unscaled values)."""
    from shapelab.evaluation.report import write_markdown_table

    columns = ScoringSettings().columns()
    values = {name: math.nan for name in columns} | {"chamfer_l1_occnet": 0.0123, "chamfer_deepsdf": 0.000456}
    summary = {"per_category": {"chair": {"num_shapes": 1, **values}}, "mean_over_classes": values,
               "mean_over_shapes": values, "num_scored": 1, "num_failed": 0, "num_shapes": 1}
    write_markdown_table(tmp_path / "metrics.md", summary, columns)
    header, _, chair = (tmp_path / "metrics.md").read_text().splitlines()[:3]
    cells = dict(zip([cell.strip() for cell in header.split("|")], [cell.strip() for cell in chair.split("|")]))
    assert cells["chamfer_l1_occnet ×10 ↓"] == "0.123" and cells["chamfer_deepsdf ×1000 ↓"] == "0.456"
