"""Occupancy network: it learns analytic shapes, meshes at the 0.2 threshold, VAE path, post-processing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import trimesh
from shapelab.metrics.iou import occupancy_iou
from shapelab.models.networks.encoders import LatentEncoder
from shapelab.models.networks.occnet_decoders import DecoderCBatchNorm, DecoderResnetFC
from shapelab.models.occnet import OccupancyNetwork, probability_to_logit, refine_mesh, simplify_mesh
from torch.utils.data import DataLoader, Dataset

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError

# (kind, centre, size): spheres by radius, boxes by half extents, all inside the unit cube
SHAPES = [
    ("sphere", (0.0, 0.0, 0.0), 0.35),
    ("sphere", (0.1, -0.1, 0.05), 0.25),
    ("box", (0.0, 0.0, 0.0), (0.3, 0.2, 0.25)),
    ("box", (-0.1, 0.1, 0.0), (0.18, 0.35, 0.15)),
]


def analytic_occupancy(shape, points: np.ndarray) -> np.ndarray:
    kind, centre, size = shape
    offset = points - np.asarray(centre)
    if kind == "sphere":
        return np.linalg.norm(offset, axis=-1) <= size
    return np.all(np.abs(offset) <= np.asarray(size), axis=-1)


def analytic_surface(shape, count: int, rng: np.random.Generator) -> np.ndarray:
    kind, centre, size = shape
    mesh = (
        trimesh.creation.icosphere(3, radius=size)
        if kind == "sphere"
        else trimesh.creation.box(2 * np.asarray(size))
    )
    points = trimesh.sample.sample_surface(mesh, count, seed=int(rng.integers(2**31)))[0]
    return points + np.asarray(centre)


class AnalyticShapes(Dataset):
    """Occupancy batches of SHAPES with a noisy 300-point cloud input (as OccNet's point-cloud task)."""

    def __init__(self, num_points: int, seed: int, length: int = 10_000):
        self.num_points, self.seed, self.length = num_points, seed, length

    def __len__(self):
        return self.length

    def __getitem__(self, item):
        rng = np.random.default_rng([self.seed, item])
        shape = SHAPES[item % len(SHAPES)]
        points = rng.uniform(-0.55, 0.55, (self.num_points, 3))
        cloud = analytic_surface(shape, 300, rng) + 0.005 * rng.standard_normal((300, 3))
        return {
            "points": torch.tensor(points, dtype=torch.float32),
            "occ": torch.tensor(analytic_occupancy(shape, points), dtype=torch.float32),
            "inputs": torch.tensor(cloud, dtype=torch.float32),
            "model_id": str(item % len(SHAPES)),
        }


def small_model(z_dim: int = 0, encoder: bool = True, **kwargs) -> OccupancyNetwork:
    c_dim = 32 if encoder else 0
    decoder = (
        DecoderCBatchNorm(c_dim=c_dim, z_dim=z_dim, hidden_dim=64)
        if encoder
        else DecoderResnetFC(z_dim=z_dim, hidden_dim=64)
    )
    return instantiate_group(
        "model/occnet",
        decoder=decoder,
        loss=instantiate_group("loss/occupancy_bce"),
        optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
        scheduler=lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[250], gamma=0.1),
        scheduler_interval="step",
        encoder=instantiate_group("model/encoder/pointnet", "model=occnet", c_dim=c_dim, hidden_dim=32) if encoder else None,
        latent_encoder=LatentEncoder(z_dim, c_dim=c_dim, hidden_dim=32) if z_dim else None,
        c_dim=c_dim,
        z_dim=z_dim,
        extraction={"resolution0": 16, "upsampling_steps": 1},
        **kwargs,
    )


def fit(model: OccupancyNetwork, steps: int, num_points: int = 1024) -> None:
    """A few hundred Adam steps; one torch thread (small layers: extra threads only contend on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loader = DataLoader(AnalyticShapes(num_points, seed=0), batch_size=4)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    try:
        trainer.fit(model, train_dataloaders=loader)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_model() -> OccupancyNetwork:
    torch.manual_seed(0)
    model = small_model()
    fit(model, steps=350)
    return model.eval()


@pytest.mark.slow  # > 60 s on 2 loaded cores (--durations)
def test_overfits_analytic_shapes_from_noisy_point_clouds(trained_model):
    batch = AnalyticShapes(20_000, seed=99)
    items = [batch[i] for i in range(len(SHAPES))]
    points = torch.stack([item["points"] for item in items])
    inputs = torch.stack([item["inputs"] for item in items])
    occ = torch.stack([item["occ"] for item in items]) > 0.5
    with torch.no_grad():
        logits = trained_model(points, inputs)
    iou = occupancy_iou(logits >= probability_to_logit(0.2), occ)
    assert iou.min() > 0.7, iou
    assert iou.mean() > 0.8, iou


@pytest.mark.slow  # needs the trained_model fixture (> 60 s on 2 loaded cores)
def test_reconstruct_returns_occnet_frame_meshes_close_to_the_shapes(trained_model):
    data = AnalyticShapes(16, seed=7)
    items = [data[i] for i in range(2)]  # the big sphere and the small one
    batch = {
        "inputs": torch.stack([it["inputs"] for it in items]),
        "model_id": [it["model_id"] for it in items],
    }
    recons = trained_model.reconstruct(batch)
    assert [r.frame for r in recons] == ["occnet", "occnet"]
    for recon, (_, centre, radius) in zip(recons, SHAPES[:2]):
        assert len(recon.mesh.faces) > 100
        distance = np.linalg.norm(recon.mesh.vertices - np.asarray(centre), axis=-1)
        assert abs(np.median(distance) - radius) < 0.05


class RadialField(torch.nn.Module):
    """Decoder stand-in: logit(p) = k * (r0 - |p|), so sigma = 0.2 on the sphere r0 + log(4) / k."""

    def __init__(self, r0=0.25, k=10.0):
        super().__init__()
        self.r0, self.k = r0, k
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, points, z, c):
        return self.k * (self.r0 - points.norm(dim=-1)) + 0 * self.dummy


def radial_model(**kwargs) -> OccupancyNetwork:
    model = instantiate_group(
        "model/occnet",
        decoder=RadialField(),
        loss=instantiate_group("loss/occupancy_bce"),
        optimizer=torch.optim.Adam,
        encoder=torch.nn.Flatten(),
        c_dim=3,
        extraction={"resolution0": 16, "upsampling_steps": 2},
        **kwargs,
    )
    return model


def test_mesh_is_extracted_at_the_threshold_probability_as_a_logit():
    model = radial_model(threshold=0.2)
    mesh = model.reconstruct({"inputs": torch.zeros(1, 3)})[0].mesh
    radius = np.linalg.norm(mesh.vertices, axis=-1)
    expected = 0.25 + math.log(4.0) / 10.0  # sigma(k (r0 - r)) = 0.2  <=>  r = r0 + log(4) / k
    assert abs(radius.mean() - expected) < 0.005
    assert mesh.is_watertight and mesh.volume > 0  # outward faces
    half = model.reconstruct({"inputs": torch.zeros(1, 3)}) and radial_model(threshold=0.5)
    assert (
        abs(
            np.linalg.norm(half.reconstruct({"inputs": torch.zeros(1, 3)})[0].mesh.vertices, axis=-1).mean()
            - 0.25
        )
        < 0.005
    )
    with pytest.raises(ShapelabError, match="threshold"):
        radial_model(threshold=1.0)


def test_refinement_moves_vertices_to_the_level_set():
    field = RadialField(r0=0.3, k=10.0)
    target = 0.3 + math.log(4.0) / 10.0
    mesh = trimesh.creation.icosphere(2, radius=0.3)
    refined = refine_mesh(
        mesh,
        lambda p: field(p, None, None),
        threshold=0.2,
        steps=60,
        lr=2e-3,
        generator=torch.Generator().manual_seed(0),
    )
    before = np.abs(np.linalg.norm(mesh.vertices, axis=-1) - target).mean()
    after = np.abs(np.linalg.norm(refined.vertices, axis=-1) - target).mean()
    assert after < 0.3 * before
    assert np.array_equal(refined.faces, mesh.faces)


def test_simplification_reduces_faces_and_keeps_the_shape():
    mesh = trimesh.creation.icosphere(4, radius=0.3)
    simple = simplify_mesh(mesh, 500)
    assert len(simple.faces) <= 520 < len(mesh.faces)
    assert np.abs(np.linalg.norm(simple.vertices, axis=-1) - 0.3).max() < 0.01


@pytest.mark.slow  # a training run: > 20 s on 2 loaded cores
def test_vae_trains_with_a_kl_term_and_samples_unconditional_meshes(tmp_path):
    torch.manual_seed(0)
    model = small_model(z_dim=4, encoder=False, samples={"num": 2, "resolution0": 8, "upsampling_steps": 1})
    data = AnalyticShapes(256, seed=1)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("points", "occ")}
    logged = {}
    model.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    model.training_step(batch, 0)
    assert {"train/loss", "train/bce", "train/kl"} <= set(logged)
    assert math.isclose(logged["train/loss"], logged["train/bce"] + logged["train/kl"], rel_tol=1e-5)
    recon = model.reconstruct({"model_id": ["a", "b"]})
    assert len(recon) == 2
    meshes = model.sample_meshes(2)
    assert len(meshes) == 2

    class FakeTrainer:
        default_root_dir, current_epoch, global_step, loggers = str(tmp_path), 3, 0, []

    model._trainer = FakeTrainer()
    path = model.log_unconditional_samples()
    assert path == tmp_path / "samples" / "epoch_0003.png" and path.stat().st_size > 1000


def test_config_errors():
    with pytest.raises(ShapelabError, match="latent_encoder"):
        instantiate_group("model/occnet", decoder=RadialField(), loss=instantiate_group("loss/occupancy_bce"),
                          optimizer=torch.optim.Adam, z_dim=3)
    with pytest.raises(ShapelabError, match="encoder"):
        instantiate_group("model/occnet", decoder=RadialField(), loss=instantiate_group("loss/occupancy_bce"),
                          optimizer=torch.optim.Adam, encoder=None)


# -- experiment configs, end to end on a tiny built-in dataset ---------------------------------------
TINY_BUILD = {
    "categories": ["chair"], "shapes_per_category": 4, "splits": [2, 1, 1], "seed": 0, "workers": 1,
    "sdf_samples": 2000, "sdf_source_points": 1000, "surface_samples": 500, "occ_points": 2000,
    "pointcloud_points": 1000, "voxel_resolution": 16, "views": 2, "image_size": 32,
}


@pytest.fixture(scope="module")
def tiny_occ_data(tmp_path_factory):
    from shapelab.datamodules.synthetic import ensure_synthetic_dataset

    data_dir = tmp_path_factory.mktemp("occ_data")
    ensure_synthetic_dataset(data_dir, name="tiny", **TINY_BUILD)
    return data_dir


@pytest.mark.slow  # a training run: > 20 s on 2 loaded cores
@pytest.mark.parametrize("experiment, evaluate", [
    ("occnet_pointcloud", True), ("occnet_svr", False), ("occnet_voxels", False), ("occnet_vae_chairs", False),
])
def test_experiment_smoke(experiment, evaluate, tiny_occ_data, compose_cfg, tmp_path):
    """Each OccNet experiment trains a few steps with trainer=smoke; one also evaluates its test split."""
    from omegaconf import open_dict

    from shapelab.cli.train import train

    overrides = [
        f"experiment={experiment}", "trainer=smoke", "logger=csv", "callbacks=none",
        f"paths.data_dir={tiny_occ_data}", f"paths.output_dir={tmp_path / 'run'}",
        "data.dataset_name=tiny", "data.build=null", "data.batch_size=2", "data.train_points=256",
        "data.eval_points=512", "data.img_size=32", "model.decoder.hidden_dim=16",
        "model.extraction.resolution0=8", "model.extraction.upsampling_steps=1",
        "evaluate.groups=[occnet_surface,iou]", "evaluate.occnet_points=2000", "evaluate.contact_sheet_shapes=0",
        f"evaluate_after_training={evaluate}",
    ]
    overrides += ["model.z_dim=8", "model.samples.num=2", "model.samples.resolution0=8"] if "vae" in experiment else ["model.c_dim=16"]
    if experiment == "occnet_voxels":
        overrides.append("model.encoder.resolution=16")
    cfg = compose_cfg("train", overrides)
    with open_dict(cfg):
        del cfg["hydra"]  # as under @hydra.main, where the run's config carries no hydra node
    metrics = train(cfg)

    assert metrics["train/bce"] > 0 and 0 <= metrics["val/iou"] <= 1
    if "vae" in experiment:
        assert metrics["train/kl"] >= 0
        assert (tmp_path / "run" / "samples" / "epoch_0000.png").is_file()
    if evaluate:
        assert metrics["eval/test/num_failed"] == 0 and 0 <= metrics["eval/test/iou"] <= 1


def test_svr_paper_preset_loads_imagenet_weights_or_stops_in_one_line(tiny_occ_data, compose_cfg, tmp_path,
                                                                       monkeypatch, capsys):
    """experiment=occnet_svr_paper: pretrained ResNet-18 from torchvision's cache; without the file the run
    stops with one line naming where to put it (never a silent random init); with a (fake) file it trains."""
    from omegaconf import open_dict
    from torchvision.models import resnet18

    from shapelab.cli.train import train
    from shapelab.runs import run_entry_point

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    overrides = [
        "experiment=occnet_svr_paper", "data=synthetic_occ", "trainer=smoke", "logger=csv", "callbacks=none",
        f"paths.data_dir={tiny_occ_data}", f"paths.output_dir={tmp_path / 'run'}", "data.dataset_name=tiny",
        "data.build=null", "data.batch_size=2", "data.train_points=256", "data.eval_points=512", "data.img_size=32",
        "model.decoder.hidden_dim=16", "model.c_dim=16", "evaluate_after_training=false",
    ]
    cfg = compose_cfg("train", overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    assert cfg.model.encoder.pretrained is True and "paper" in cfg.tags
    assert "random-init-encoder" in compose_cfg("train", ["experiment=occnet_svr"]).tags
    with pytest.raises(SystemExit):
        run_entry_point(train, cfg, multirun=False)
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "hub/checkpoints/resnet18-f37072fd.pth" in message
    cache = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cache.parent.mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), cache)
    assert train(cfg)["train/bce"] > 0
