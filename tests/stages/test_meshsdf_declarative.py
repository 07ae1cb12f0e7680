"""stage.gradient=declarative: the refinement step through the declarative node equals the hand-written rule."""
from __future__ import annotations

import pytest
import torch
from shapelab.losses.meshsdf import MeshSDFLoss
from shapelab.stages.meshsdf import refine_latent

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError


class NearSphereDecoder(torch.nn.Module):
    """A DeepSDF decoder plus the SDF of a sphere of radius 0.5: a near-SDF whose level set exists."""

    def __init__(self):
        super().__init__()
        self.network = instantiate_group("model/deepsdf.decoder", latent_size=4, hidden_dim=32, num_layers=3, skip_layers=(), dropout=0.0)

    def forward(self, latents, xyz):
        return 0.1 * self.network(latents, xyz) + xyz.norm(dim=-1) - 0.5


INITIAL_LATENT = 0.05 * torch.randn(4, generator=torch.Generator().manual_seed(0))


def _refine(gradient: str, optimise_decoder: bool):
    torch.manual_seed(0)
    decoder = NearSphereDecoder()
    latent = INITIAL_LATENT.clone()
    targets = {"points": torch.nn.functional.normalize(torch.randn(500, 3), dim=1) * 0.4}
    schedule = instantiate_group("stage/meshsdf.refine", iterations=3, lr=1e-2, resolution=16, band_cells=0,
                                 optimise_decoder=optimise_decoder)
    loss = MeshSDFLoss(chamfer_weight=1.0, silhouette_weight=0.0, latent_weight=0.0, num_samples=400, renderer=None)
    refined, history = refine_latent(decoder, latent, loss, targets, schedule,
                                     generator=torch.Generator().manual_seed(0), gradient=gradient)
    return refined, history, decoder


@pytest.mark.parametrize("optimise_decoder", [False, True])
def test_declarative_and_isosurface_gradients_refine_alike(optimise_decoder):
    by_hand, history_a, _ = _refine("isosurface", optimise_decoder)
    declarative, history_b, _ = _refine("declarative", optimise_decoder)
    assert len(history_a) == len(history_b) == 3
    moved = (by_hand - INITIAL_LATENT).norm()
    assert moved > 1e-3  # the refinement did change the code
    assert [h["loss"] for h in history_b] == pytest.approx([h["loss"] for h in history_a], rel=0.02)
    # the two rules differ by the factor 1/‖∇f‖ (= 1 for an exact SDF): close on this near-SDF decoder
    assert (declarative - by_hand).norm() < 0.05 * moved


def test_unknown_gradient_is_a_config_error():
    with pytest.raises(ShapelabError, match="stage.gradient"):
        _refine("finite_differences", False)
