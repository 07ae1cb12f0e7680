"""Loss terms of Small Steps and Level Sets against obvious references and finite differences."""
from __future__ import annotations

import math

import pytest
import torch
from shapelab.losses.level_set import (
    eikonal_loss,
    neural_pull_loss,
    normal_loss,
    offset_surface_loss,
    proximity_weights,
    relative_sdf_loss,
    signed_distance_targets,
    weighted_total,
    zero_level_set_loss,
)
from shapelab.models.level_set import sdf_and_gradient

from shapelab.config import instantiate_group
from tests.torch_threads import single_thread  # noqa: F401


def test_eikonal_matches_a_loop_and_is_zero_for_a_distance_field():
    gradients = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    weights = torch.tensor([1.0, 2.0, 0.5])
    reference = sum(w * abs(math.sqrt(float((g**2).sum())) - 1) for g, w in zip(gradients, weights)) / 3
    assert float(eikonal_loss(gradients, weights)) == pytest.approx(reference)
    points = torch.randn(50, 3, dtype=torch.float64)
    _, gradient = sdf_and_gradient(lambda p: p.norm(dim=-1) - 0.5, points)
    assert float(eikonal_loss(gradient.detach())) == pytest.approx(0.0, abs=1e-12)


def test_eikonal_through_the_network_gradchecks():
    """Second-order: the Eikonal term of ∇f is differentiated w.r.t. the points (float64 gradcheck)."""
    network = instantiate_group("model/level_set.network", hidden_dim=8, num_layers=2, beta=10.0, weight_norm=False)().double()
    points = (torch.randn(6, 3, dtype=torch.float64) * 0.5).requires_grad_(True)
    weights = torch.rand(6, dtype=torch.float64) + 0.5

    def term(p):
        sdf = network(p)
        (gradient,) = torch.autograd.grad(sdf.sum(), p, create_graph=True)
        return eikonal_loss(gradient, weights)

    assert torch.autograd.gradcheck(term, (points,))
    gradients = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: eikonal_loss(g, weights[:5]), (gradients,))


def test_surface_terms_and_their_gradients():
    sdf = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    assert float(zero_level_set_loss(sdf)) == pytest.approx(0.15)
    # input points should be >= r inside: f(x) + r clamped to [0, 1]
    assert float(offset_surface_loss(sdf, 0.1)) == pytest.approx((0.2 + 0.0 + 0.1 + 0.4) / 4)
    assert torch.autograd.gradcheck(lambda s: offset_surface_loss(s, 0.05), (sdf,))
    gradients = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert float(normal_loss(gradients, normals)) == pytest.approx((0.0 + 1.0) / 2)


def test_proximity_weights_and_sdf_targets():
    weights = proximity_weights(torch.tensor([0.05, 0.15, 0.3, 1.0]), radius=0.1)
    assert weights.tolist() == pytest.approx([1.3, 1.3, 1.0, 0.3])  # d < 2r, d < 2r, d < 5r, far
    samples = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, -1.0]])
    nearest = torch.zeros(2, 3)
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert signed_distance_targets(samples, nearest, normals).tolist() == [2.0, -1.0]


def test_relative_sdf_and_pull_match_loops_and_gradcheck():
    torch.manual_seed(0)
    samples = torch.randn(7, 3, dtype=torch.float64)
    nearest = torch.randn(7, 3, dtype=torch.float64)
    sdf = torch.randn(7, dtype=torch.float64, requires_grad=True)
    gradients = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    targets, weights = torch.randn(7, dtype=torch.float64), torch.rand(7, dtype=torch.float64) + 0.3
    expected_sdf = sum(w * abs(s - t) / min(max(max(abs(s), abs(t)), 1e-5), 10.0)
                       for s, t, w in zip(sdf.tolist(), targets.tolist(), weights.tolist())) / 7
    assert float(relative_sdf_loss(sdf, targets, weights)) == pytest.approx(expected_sdf)
    expected_pull = 0.0
    for p, s, g, y, w in zip(samples, sdf.detach(), gradients.detach(), nearest, weights):
        pulled = p - s * g / g.norm()
        expected_pull += float(w * (pulled - y).norm() / ((p - y).norm() + 1e-5))
    assert float(neural_pull_loss(samples, sdf, gradients, nearest, weights)) == pytest.approx(expected_pull / 7)
    # the denominators are constants: with |targets| > |sdf| the scale is |targets|, fixed under perturbation
    far_targets = 3.0 + targets.abs()
    assert torch.autograd.gradcheck(lambda s: relative_sdf_loss(s, far_targets, weights), (sdf,))
    assert torch.autograd.gradcheck(lambda s, g: neural_pull_loss(samples, s, g, nearest, weights), (sdf, gradients))


def test_weighted_total_uses_only_weighted_terms():
    terms = {"zls": torch.tensor(2.0), "pull": torch.tensor(5.0), "sdf": torch.tensor(7.0)}
    assert float(weighted_total(terms, {"zls": 3.0, "sdf": 0.0})) == 6.0
    with pytest.raises(ValueError):
        weighted_total(terms, {"normal": 1.0})
