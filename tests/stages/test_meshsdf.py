"""MeshSDF stage: refinement recovers analytic shapes from point clouds and silhouettes; stage wiring."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from shapelab.datamodules.formats.deepsdf import write_normalisation, write_surface_samples
from shapelab.datamodules.formats.occnet import write_points
from shapelab.stages.base import StageRun
from shapelab.stages.meshsdf import (
    ShapeTarget,
    load_deepsdf_checkpoint,
    observation_targets,
    refine_latent,
    render_masks,
    ring_cameras,
    visual_hull_sdf_samples,
)
from torch import nn

from shapelab.config import compose_group, instantiate_group
from shapelab.errors import ShapelabError
from shapelab.evaluation import evaluate_predictions
from tests.conftest import event_tags


class SphereDecoder(nn.Module):
    """SDF of a sphere of radius 0.4 + z[0] (+ a weight that must stay frozen)."""

    latent_size = 1

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, latents, xyz):
        return xyz.norm(dim=-1) - 0.4 - latents[:, :1] - self.offset


def sphere_target(radius: float) -> ShapeTarget:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    return ShapeTarget(("s", "sphere"), mesh, mesh.sample(5000, seed=0))


SCHEDULE = instantiate_group("stage/meshsdf.refine", iterations=30, lr=0.02, resolution=24, band_cells=2)


def test_pointcloud_refinement_recovers_the_radius():
    decoder = SphereDecoder()
    targets = observation_targets(sphere_target(0.6), "pointcloud", 1000, 0, 0, np.random.default_rng(0))
    latent, history = refine_latent(
        decoder,
        torch.zeros(1),
        instantiate_group("stage/meshsdf.loss", num_samples=1000),
        targets,
        SCHEDULE,
        generator=torch.Generator().manual_seed(0),
    )
    assert latent.item() == pytest.approx(0.2, abs=0.02)
    assert history[-1]["chamfer"] < 0.1 * history[0]["chamfer"]
    assert decoder.offset.item() == 0.0 and decoder.offset.requires_grad  # frozen during, restored after


def test_silhouette_refinement_recovers_the_radius():
    """Masks of 2 views at 48 px (1 px = 0.045 in radius): the radius comes within ~1 px of the truth."""
    decoder = SphereDecoder()
    targets = observation_targets(sphere_target(0.6), "silhouette", 0, 2, 48, np.random.default_rng(0))
    loss = instantiate_group("stage/meshsdf.loss", chamfer_weight=0.0)
    schedule = instantiate_group("stage/meshsdf.refine", iterations=20, lr=0.015, resolution=20)
    latent, history = refine_latent(decoder, torch.zeros(1), loss, targets, schedule)
    assert latent.item() == pytest.approx(0.2, abs=0.06)
    assert history[-1]["silhouette"] < 0.3 * history[0]["silhouette"]


def test_decoder_is_optimised_when_asked():
    decoder = SphereDecoder()
    targets = observation_targets(sphere_target(0.6), "pointcloud", 500, 0, 0, np.random.default_rng(0))
    schedule = instantiate_group("stage/meshsdf.refine", iterations=3, lr=0.01, resolution=16, optimise_decoder=True,
                                 decoder_lr=0.01)
    refine_latent(decoder, torch.zeros(1), instantiate_group("stage/meshsdf.loss", num_samples=500), targets, schedule)
    assert decoder.offset.item() > 0.005  # radius 0.4 + z + offset grows towards 0.6


def test_masks_and_visual_hull_of_a_sphere():
    K, Rt = ring_cameras(4, 48)
    masks = render_masks(sphere_target(0.5).mesh, K, Rt, 48)
    radius_px = K[0, 0, 0].item() * 0.5 / np.sqrt(2.5**2 - 0.5**2)
    assert masks[0].sum().item() == pytest.approx(np.pi * radius_px**2, rel=0.06)
    points, sdf = visual_hull_sdf_samples(masks, K, Rt, 20000, 0.1, torch.Generator().manual_seed(0))
    norms = points.norm(dim=-1)
    assert torch.all(sdf[norms < 0.47] == -0.1)  # the hull contains the shape
    assert torch.all(sdf[norms > 0.9] == 0.1)  # 4 views carve away the far corners


def test_unknown_task_and_missing_checkpoint_are_clear_errors(tmp_path):
    with pytest.raises(ShapelabError, match="stage.task"):
        observation_targets(sphere_target(0.5), "depth", 10, 1, 8, np.random.default_rng(0))
    with pytest.raises(ShapelabError, match="stage.checkpoint"):
        load_deepsdf_checkpoint(tmp_path / "missing.ckpt")


def small_decoder_cfg():
    """The decoder config a small DeepSDF run saves: model=deepsdf's, with a tiny network."""
    small = {"latent_size": 4, "hidden_dim": 32, "num_layers": 3, "skip_layers": [2], "dropout": 0.0}
    return OmegaConf.merge(compose_group("model/deepsdf.decoder"), small)


def write_sphere_run(run_dir) -> Path:
    """A DeepSDF-like run directory whose decoder is fitted to a sphere of radius 0.5."""
    torch.manual_seed(0)
    decoder = hydra.utils.instantiate(small_decoder_cfg())
    latents = torch.zeros(2, 4)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    for _ in range(100):
        xyz = torch.rand(1, 2048, 3) * 2 - 1
        loss = (decoder(latents[:1], xyz) - (xyz.norm(dim=-1) - 0.5)).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    state = {f"decoder.{k}": v for k, v in decoder.state_dict().items()} | {"latents.weight": latents}
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save({"model": {"decoder": small_decoder_cfg()}}, run_dir / ".hydra" / "config.yaml")
    torch.save({"state_dict": state}, run_dir / "checkpoints" / "last.ckpt")
    return run_dir / "checkpoints" / "last.ckpt"


class TinySdfData:
    """The part of SdfDataModule the stage reads: one sphere in the processed layout."""

    dataset_name = "tiny"

    def __init__(self, root):
        self.dataset_root = root / "tiny"
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.25)
        raw = self.dataset_root / "raw" / "s" / "a" / "models" / "model_normalized.obj"
        raw.parent.mkdir(parents=True)
        mesh.export(raw)
        deepsdf = self.format_dir("deepsdf")
        write_normalisation(deepsdf / "NormalizationParameters" / "tiny" / "s" / "a.npz", np.zeros(3), 2.0)
        write_surface_samples(deepsdf / "SurfaceSamples" / "tiny" / "s" / "a.ply", mesh.sample(2000, seed=0))
        query = np.random.default_rng(0).uniform(-0.55, 0.55, (20000, 3))  # occnet frame: original / 0.5
        write_points(self.format_dir("occnet") / "s" / "a" / "points.npz", query, np.linalg.norm(query, axis=1) < 0.5,
                     np.zeros(3), 0.5)

    def split_shapes(self, split):
        return [("s", "a")]

    def format_dir(self, name):
        return self.dataset_root / name

    @property
    def deepsdf_root(self):  # where the evaluation's GroundTruthSource reads SurfaceSamples and NormalizationParameters
        return self.format_dir("deepsdf")

    @property
    def occnet_root(self):  # ... and points.npz (the iou column)
        return self.format_dir("occnet")


@pytest.mark.slow  # a refinement run with loggers: > 20 s on 2 loaded cores
def test_stage_runs_from_a_checkpoint_and_logs_meshes(tmp_path):
    ckpt = write_sphere_run(tmp_path / "run")
    decoder, latents = load_deepsdf_checkpoint(ckpt)
    assert latents.shape == (2, 4) and decoder.latent_size == 4
    stage = instantiate_group(
        "stage/meshsdf",
        checkpoint=str(ckpt),
        task="silhouette",
        baseline={"num_iterations": 20, "num_samples": 500},
        refine={"iterations": 3, "lr": 5e-3, "resolution": 16},
        num_views=2,
        image_size=24,
        log_every=2,
        seed=0,
    )
    evaluate_cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "evaluation" / "default.yaml")
    evaluate_cfg.deepsdf_points, evaluate_cfg.occnet_points, evaluate_cfg.contact_sheet_shapes = 5000, 5000, 0
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "out")}, "model": {"decoder": None},
                            "evaluate": evaluate_cfg})
    data = TinySdfData(tmp_path / "data")
    tensorboard = TensorBoardLogger(str(tmp_path / "out"), name="tensorboard", version="")
    metrics = stage.run(StageRun(cfg, data, [tensorboard], tmp_path / "out"))
    assert metrics["meshsdf/iou_after"] > 0.5  # the fitted sphere, radius 0.5 in the deepsdf frame
    out = tmp_path / "out" / "meshsdf"
    # the stage's numbers are evaluate.py's documented columns on the same meshes (issue 13 #1)
    for label in ("before", "after"):
        files = evaluate_predictions(out / label, "deepsdf", data, evaluate_cfg, tmp_path / f"evaluate_{label}",
                                     shapes=[("s", "a")])
        for column in ("chamfer_deepsdf", "iou", "chamfer_capnet"):
            assert metrics[f"meshsdf/{column}_{label}"] == files[f"eval/test/{column}"]
    assert json.loads((out / "results.json").read_text())["mean_over_classes"] == metrics
    assert {p.name for p in (out / "s_a").iterdir()} >= {"iter_0000.ply", "iter_0002.ply"}
    tags = event_tags(tmp_path / "out" / "tensorboard")  # the run's logger, not a writer of the stage's own
    assert {"meshsdf/s_a/mesh_VERTEX", "meshsdf/s_a/mesh_FACE", "meshsdf/s_a/silhouette_vs_target"} <= tags["tensors"] | tags[
        "images"]
    assert "meshsdf/iou_after" in tags["scalars"]
