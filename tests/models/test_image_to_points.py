"""ImageToPoints: wiring of encoder/decoder/renderer/loss, learning, reconstruct(), pictures, experiment smoke."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from shapelab.losses.chamfer3d import Chamfer3dLoss
from shapelab.models.image_to_points import point_cloud_picture
from shapelab.models.networks.encoders import ConvImageEncoder
from shapelab.renderers.point_projection import PointProjection

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def small_model(loss, renderer=None, num_points=128, lr=1e-3):
    return instantiate_group(
        "model/image_to_points", encoder=ConvImageEncoder(32, channels=(8, 16, 32)),
        decoder=instantiate_group("model/image_to_points.decoder", c_dim=32, num_points=num_points, hidden=[64]),
        loss=loss, renderer=renderer, optimizer=lambda params: torch.optim.Adam(params, lr=lr), log_images=False,
    )


def two_box_batch(size: int = 24) -> dict:
    """Two different boxes, each with an input image (its view-0 mask as RGB) and 4 views of masks."""
    from tests.losses.test_capnet import box_views

    views = []
    for seed, scale in ((0, 1.0), (1, 0.6)):
        batch, points = box_views(4, size, torch.Generator().manual_seed(seed))
        if scale != 1.0:  # a smaller box: shrink the masks' geometry by re-rendering scaled points
            batch, points = scaled_box_views(points * scale, batch, size)
        views.append((batch, points))
    out = {key: torch.cat([b[key] for b, _ in views]).float() for key in ("masks", "dist", "K", "Rt")}
    out["points_gt"] = torch.stack([p for _, p in views]).float()
    out["image"] = out["masks"][:, 0:1].expand(-1, 3, -1, -1).clone()
    return out


def scaled_box_views(points: torch.Tensor, batch: dict, size: int):
    """Masks (closed to fill the gaps between the sparse points) and distance maps of ``points`` in ``batch``'s views."""
    from scipy import ndimage
    from shapelab.renderers.point_projection import project_points

    uv, _ = project_points(points[None], batch["K"], batch["Rt"])
    masks = torch.zeros_like(batch["masks"])
    col, row = uv[0].floor().long().clamp(0, size - 1).unbind(-1)
    for v in range(masks.shape[1]):
        masks[0, v, row[v], col[v]] = 1.0
    masks = torch.from_numpy(ndimage.binary_closing(masks.numpy() > 0.5, np.ones((1, 1, 3, 3))).astype(np.float64))
    dist = torch.from_numpy(np.stack([ndimage.distance_transform_edt(m < 0.5) for m in masks[0].numpy()]))[None]
    return {**batch, "masks": masks, "dist": dist}, points


def test_forward_reconstruct_and_frame():
    model = small_model(Chamfer3dLoss())
    batch = two_box_batch()
    points = model(batch["image"])
    assert points.shape == (2, 128, 3) and points.abs().max() <= 0.5
    recons = model.reconstruct(batch)
    assert [r.frame for r in recons] == ["occnet", "occnet"]
    assert np.allclose(recons[0].points, points[0].detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("loss, renderer", [("capnet_projection", PointProjection()), ("capnet_projection", None),
                                            ("drwr", None)])
def test_loss_without_the_renderer_it_needs_names_the_config_key(loss, renderer):
    with pytest.raises(ShapelabError, match="renderer="):
        small_model(instantiate_group(f"loss/{loss}"), renderer)


@pytest.mark.parametrize("loss, renderer, terms, ratio", [
    ("capnet_projection", "gaussian_projection", {"bce", "affinity"}, 0.5),
    # DRWR spreads points over the silhouettes' inside (a volume), so its surface Chamfer drops less
    ("drwr", "point_projection", {"unary", "repulsion"}, 0.7),
    ("chamfer3d", None, {"chamfer3d"}, 0.5),
])
def test_training_fits_two_shapes_from_their_images(loss, renderer, terms, ratio):
    """A hundred steps on two boxes: the network's clouds get much closer to each box (and the terms log)."""
    from shapelab.metrics.chamfer import chamfer_distance

    loss, renderer = instantiate_group(f"loss/{loss}"), renderer and instantiate_group(f"renderer/{renderer}")
    torch.manual_seed(0)
    model = small_model(loss, renderer, lr=3e-3)
    batch = two_box_batch()
    optimizer = model.configure_optimizers()
    before = chamfer_distance(model(batch["image"]).detach(), batch["points_gt"]).mean().item()
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    for _ in range(100):
        optimizer.zero_grad()
        model.training_step(batch, 0).backward()
        optimizer.step()
    after = chamfer_distance(model(batch["image"]).detach(), batch["points_gt"]).mean().item()
    assert after < ratio * before, (before, after)
    assert {f"train/{t}" for t in terms | {"loss"}} == set(logged)


def test_validation_logs_capnet_chamfer_a_picture_and_3d_clouds():
    model = small_model(Chamfer3dLoss())
    model.log_images = True
    batch = two_box_batch()
    logged, pictures, objects = {}, [], {}

    class ImageLogger:  # W&B-like
        def log_image(self, key, images, step):
            pictures.append((key, images[0]))

        def log_metrics(self, metrics, step):
            objects.update(metrics)

    model.log = lambda name, value, **kwargs: logged.__setitem__(name, (value, kwargs.get("sync_dist")))
    type(model).loggers = property(lambda self: [ImageLogger()])
    try:
        model.validation_step(batch, 0)
    finally:
        del type(model).loggers
    from shapelab.metrics.chamfer import chamfer_capnet

    points = model(batch["image"]).detach().numpy()
    expected = np.mean([chamfer_capnet(p, g) for p, g in zip(points, batch["points_gt"].numpy())])
    assert logged["val/chamfer_capnet"] == (pytest.approx(expected, rel=1e-5), True)
    (key, picture), = pictures
    assert key == "val/point_cloud" and picture.dtype == np.uint8 and picture.ndim == 3
    assert sorted(objects) == [f"val/shapes/shape{i}/{kind}" for i in (0, 1) for kind in ("ground_truth", "prediction")]


def test_picture_shows_projected_points_on_the_mask():
    mask = np.zeros((16, 16))
    mask[4:12, 4:12] = 1
    uv = np.array([[8.0, 8.0]] * 10)
    picture = point_cloud_picture(np.ones((16, 16, 3)), mask, uv, np.zeros((10, 3)), np.ones((5, 3)) * 0.1)
    red = (picture[..., 0] > 180) & (picture[..., 1] < 120) & (picture[..., 2] < 120)
    assert red.sum() > 0


@pytest.mark.slow  # a training run: > 20 s on 2 loaded cores
@pytest.mark.parametrize("experiment, category, evaluate", [
    ("capnet", "chairs", True), ("drwr", "tables", False), ("points_chamfer3d", "chairs", False),
])  # the tiny set has chairs and tables; every experiment x category composes in tests/test_configs.py
def test_experiment_smoke(experiment, category, evaluate, tiny_synthetic, compose_cfg, tmp_path):
    """Each image->points experiment trains a few steps with trainer=smoke on the tiny built-in set."""
    from shapelab.cli.train import train
    from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

    overrides = [
        f"experiment={experiment}", f"category={category}", "trainer=smoke", "logger=csv", "callbacks=none", *tiny_synthetic_overrides(tiny_synthetic),
        "data.batch_size=2", "data.eval_batch_size=2", "data.surface_points=2048", "data.gt_points=256",
        "model.decoder.num_points=256", "trainer.check_val_every_n_epoch=1", "evaluate.contact_sheet_shapes=0", f"evaluate_after_training={evaluate}",
    ]
    if evaluate:
        overrides.append("evaluate.groups=[capnet]")
    metrics = train(compose_run_cfg(compose_cfg, overrides, tmp_path / "run"))
    assert metrics["train/loss"] > 0 and np.isfinite(metrics["val/chamfer_capnet"])
    if evaluate:
        assert np.isfinite(metrics["eval/test/chamfer_capnet"]) and np.isfinite(metrics["eval/test/emd_capnet"])


def test_validation_and_test_scoring_agree_on_the_same_shapes(tiny_synthetic, compose_cfg, tmp_path):
    """val/chamfer_capnet (training) equals the evaluation pipeline's chamfer_capnet on the same split: both use
    the FPS ground-truth points and average the clouds predicted from every input view."""
    import hydra

    from shapelab.evaluation import evaluate_model
    from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

    cfg = compose_run_cfg(compose_cfg, [
        "experiment=capnet", *tiny_synthetic_overrides(tiny_synthetic), "data.eval_batch_size=4",
        "data.gt_points=256", "model.decoder.num_points=256", "data.eval_input_views=3",
        "evaluate.split=val", "evaluate.groups=[capnet,drwr]", "evaluate.capnet_points=256",
        "evaluate.contact_sheet_shapes=0",
    ], tmp_path / "run")
    torch.manual_seed(0)
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    datamodule.setup("validate")
    model.log_images = False
    logged = []
    model.log = lambda name, value, **kwargs: logged.append((name, value, kwargs["batch_size"]))
    batches = list(datamodule.val_dataloader())
    assert batches[0]["images"].shape[1] == 3 and torch.equal(batches[0]["images"][:, 0], batches[0]["image"])
    for index, batch in enumerate(batches):
        model.validation_step(batch, index)
    values = [(value, size) for name, value, size in logged if name == "val/chamfer_capnet"]
    validation = sum(value * size for value, size in values) / sum(size for _, size in values)
    # one val shape per category in the tiny set: the class mean of evaluation is the shape mean
    scores = evaluate_model(model, datamodule, cfg.evaluate, tmp_path / "eval")
    assert scores["eval/val/chamfer_capnet"] == pytest.approx(validation, rel=1e-5)
    assert scores["eval/val/chamfer_drwr_best"] <= scores["eval/val/chamfer_drwr"]


@pytest.mark.parametrize("experiment", ["capnet", "drwr"])
def test_cpu_recipe_opens_the_untrained_clump_within_five_steps(experiment, tiny_synthetic, compose_cfg, tmp_path):
    """The CPU recipe's untrained network predicts a clump ~3 px wide (the same cloud for every image); its
    learning rate must spread it over the silhouettes within a few steps (at Adam 1e-4 DRWR needed ~100 steps on the
    built-in chairs, which left the 120-step benchmark at the untrained network's Chamfer; bench/RESULTS.md)."""
    import hydra

    from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

    cfg = compose_run_cfg(compose_cfg, [
        f"experiment={experiment}", "category=chairs", *tiny_synthetic_overrides(tiny_synthetic), "data.batch_size=1",
        "model.decoder.num_points=256",
    ], tmp_path / "run")
    torch.manual_seed(0)
    datamodule, model = hydra.utils.instantiate(cfg.data), hydra.utils.instantiate(cfg.model)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    optimizer = model.configure_optimizers()
    spread_before = model(batch["image"]).detach().std(dim=1).mean().item()
    for _ in range(5):
        optimizer.zero_grad()
        model.supervision(model(batch["image"]), batch)["loss"].backward()
        optimizer.step()
    spread_after = model(batch["image"]).detach().std(dim=1).mean().item()
    assert spread_before < 0.02 and spread_after > 3 * spread_before, (spread_before, spread_after)
