"""experiment=capnet_paper / drwr_paper: the papers' networks, parameter for parameter, and a smoke run of each."""
from __future__ import annotations

import hydra
import numpy as np
import pytest


def conv(c_in: int, c_out: int, kernel: int) -> int:
    return kernel * kernel * c_in * c_out + c_out


def fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# the originals' layer lists, counted as TensorFlow would (kernels + biases)
CAPNET_RECON_NET_LARGE = (  # val-iisc/capnet src/net.py, 64 x 64 input, bottleneck 128, 1024 points
    conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + 2 * conv(64, 64, 3) + conv(64, 128, 3) + 2 * conv(128, 128, 3)
    + conv(128, 256, 3) + 2 * conv(256, 256, 3) + conv(256, 512, 5)
    + fc(4 * 4 * 512, 128) + fc(128, 256) + fc(256, 256) + fc(256, 1024 * 3)
)
DRWR_DPC = (  # chenchao15/drwr networks/encoder.py + decoder.py (xyz head), 128 px, f_dim 16, fc/z 1024, 2000 points
    conv(3, 16, 5) + sum(conv(c, 2 * c, 3) + conv(2 * c, 2 * c, 3) for c in (16, 32, 64, 128))
    + fc(4 * 4 * 256, 1024) + 2 * fc(1024, 1024) + fc(1024, 2000 * 3)
)


@pytest.mark.parametrize("experiment, expected, approx_millions", [
    ("capnet_paper", CAPNET_RECON_NET_LARGE, 7.16), ("drwr_paper", DRWR_DPC, 13.6),
])
def test_paper_networks_have_the_originals_parameter_counts(experiment, expected, approx_millions, compose_cfg):
    cfg = compose_cfg("train", [f"experiment={experiment}"])
    model = hydra.utils.instantiate(cfg.model)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected and round(count / 1e6, 2 if approx_millions < 10 else 1) == approx_millions


def test_paper_presets_use_the_papers_settings(compose_cfg):
    capnet = compose_cfg("train", ["experiment=capnet_paper"])
    assert (capnet.model.optimizer.lr, capnet.data.batch_size, capnet.data.num_views, capnet.data.image_size) == (
        5e-5, 1, 4, 64)
    assert (capnet.loss.reduction, capnet.loss.affinity_weight, capnet.data.eval_input_views) == ("mean", 1e-4, None)
    drwr = compose_cfg("train", ["experiment=drwr_paper"])
    assert (drwr.model.optimizer.lr, drwr.model.optimizer.weight_decay, drwr.data.num_views, drwr.data.image_size,
            drwr.model.decoder.num_points) == (1e-4, 1e-3, 5, 128, 2000)
    assert drwr.loss._target_.endswith("DrwrOriginalLoss") and drwr.loss.repulsion_weight == 3.0


@pytest.mark.slow  # a training run: > 20 s on 2 loaded cores
@pytest.mark.parametrize("experiment", ["capnet_paper", "drwr_paper"])
def test_paper_preset_smoke(experiment, tiny_synthetic, compose_cfg, tmp_path):
    """Each paper preset trains two steps with trainer=smoke on the tiny built-in set."""
    from shapelab.cli.train import train
    from tests.conftest import compose_run_cfg, tiny_synthetic_overrides

    overrides = [
        f"experiment={experiment}", "trainer=smoke", "logger=csv", "callbacks=none",
        *tiny_synthetic_overrides(tiny_synthetic), "data.surface_points=2048", "data.gt_points=256",
        "data.eval_input_views=2", "trainer.check_val_every_n_epoch=1", "evaluate_after_training=false",
    ]
    metrics = train(compose_run_cfg(compose_cfg, overrides, tmp_path / "run"))
    assert metrics["train/loss"] > 0 and np.isfinite(metrics["val/chamfer_capnet"])
