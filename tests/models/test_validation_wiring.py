"""Pins the wiring of validation metrics and reconstruction that a one-line change could silently alter:
OccNet val/iou at the configured threshold, DeepSDF val/sdf_l1 on held-out samples, OccNet reconstructions
with the prior mean z."""
from __future__ import annotations

import math

import pytest
import torch
import trimesh
from torch import nn

from shapelab.config import instantiate_group


class ConstantLogits(nn.Module):
    """Occupancy logits of probability ``p`` everywhere, whatever z and c are."""

    def __init__(self, p: float):
        super().__init__()
        self.logit = math.log(p / (1 - p))
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, points, z, c):
        return torch.full(points.shape[:2], self.logit) + self.weight


class ZeroEncoder(nn.Module):
    def forward(self, inputs):
        return torch.zeros(inputs.shape[0], 4)


def _logged(model, step) -> dict[str, float]:
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value.detach()))
    step()
    return logged


def test_occnet_val_iou_uses_the_configured_threshold(compose_cfg):
    assert compose_cfg("train", ["experiment=occnet_pointcloud"]).model.threshold == 0.2  # OccNet's evaluation value
    model = instantiate_group("model/occnet", decoder=ConstantLogits(0.3), loss=instantiate_group("loss/occupancy_bce"),
                              optimizer=torch.optim.Adam, encoder=ZeroEncoder(), c_dim=4, threshold=0.2)
    batch = {"points": torch.rand(2, 50, 3), "occ": torch.ones(2, 50), "inputs": torch.rand(2, 10, 3)}
    # p = 0.3 everywhere: inside at threshold 0.2 (IoU 1 with all-inside ground truth), outside at 0.5 (IoU 0)
    assert _logged(model, lambda: model.validation_step(batch, 0))["val/iou"] == pytest.approx(1.0)


class ZeroSdf(nn.Module):
    """SDF 0 everywhere (still a function of the latents, so latent fitting runs)."""

    latent_size = 3

    def forward(self, latents, xyz):
        return latents[:, None, :1].sum(-1) * 0 + xyz[..., 0] * 0


def test_deepsdf_val_sdf_l1_is_measured_on_the_held_out_half():
    fit = instantiate_group("model/deepsdf_paper.reconstruction", num_iterations=2, num_samples=8)
    model = instantiate_group(
        "model/deepsdf", decoder=ZeroSdf(), loss=instantiate_group("loss/sdf_clamped_l1"), optimizer=torch.optim.Adam,
        decoder_lr=instantiate_group("model/deepsdf_paper.decoder_lr", initial=1e-3),
        latent_lr=instantiate_group("model/deepsdf_paper.latent_lr", initial=1e-3), reconstruction=fit,
        extract_mesh=None, num_shapes=2, val_fit=fit, mesh_every_n_epochs=0)
    sdf = torch.zeros(2, 40)
    sdf[:, 1::2] = 0.05  # the held-out (odd) samples; the code is fitted on the even ones, where the SDF is 0
    batch = {"xyz": torch.rand(2, 40, 3), "sdf": sdf, "index": torch.tensor([0, 1])}
    assert _logged(model, lambda: model.validation_step(batch, 0))["val/sdf_l1"] == pytest.approx(0.05)


def test_occnet_reconstructs_with_the_prior_mean_z():
    model = instantiate_group("model/occnet", decoder=ConstantLogits(0.3), loss=instantiate_group("loss/occupancy_bce"),
                              optimizer=torch.optim.Adam, encoder=None, latent_encoder=nn.Identity(), c_dim=0, z_dim=5)
    used = []
    model.generate_mesh = lambda z, c: used.append(z) or trimesh.creation.box()
    model.reconstruct({"model_id": ["a", "b"], "synset": ["s", "s"]})
    assert len(used) == 2 and all(torch.equal(z, torch.zeros(1, 5)) for z in used)
