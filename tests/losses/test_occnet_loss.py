"""Occupancy Networks losses against slow, obvious references and finite differences."""
from __future__ import annotations

import math

import torch
from shapelab.losses.occnet import OccupancyLoss, kl_to_standard_normal, mesh_refinement_loss, occupancy_bce
from torch.autograd import gradcheck

from shapelab.config import instantiate_group


def _bce_reference(logits, occ):
    out = []
    for row_logits, row_occ in zip(logits.tolist(), occ.tolist()):
        total = 0.0
        for x, o in zip(row_logits, row_occ):
            p = 1.0 / (1.0 + math.exp(-x))
            total += -(o * math.log(p) + (1 - o) * math.log(1 - p))
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_occupancy_bce_matches_a_loop_over_points():
    torch.manual_seed(0)
    logits = torch.randn(3, 17, dtype=torch.float64) * 3
    occ = (torch.rand(3, 17) > 0.5).double()
    torch.testing.assert_close(occupancy_bce(logits, occ), _bce_reference(logits, occ))


def test_occupancy_bce_is_stable_for_large_logits():
    logits = torch.tensor([[80.0, -80.0]])
    assert occupancy_bce(logits, torch.tensor([[1.0, 0.0]])).item() < 1e-6
    assert math.isclose(occupancy_bce(logits, torch.tensor([[0.0, 1.0]])).item(), 160.0, rel_tol=1e-5)


def test_kl_matches_monte_carlo_and_torch_distributions():
    torch.manual_seed(0)
    mean = torch.randn(4, 3, dtype=torch.float64)
    logstd = torch.randn(4, 3, dtype=torch.float64) * 0.3
    ours = kl_to_standard_normal(mean, logstd)
    for b in range(4):
        expected = 0.0
        for d in range(3):
            q = torch.distributions.Normal(mean[b, d], logstd[b, d].exp())
            expected += torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).item()
        assert math.isclose(ours[b].item(), expected, rel_tol=1e-10)
    # Monte Carlo estimate of E_q[log q - log p] for the first shape
    q = torch.distributions.Normal(mean[0], logstd[0].exp())
    z = q.sample((200000,))
    mc = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    assert abs(mc.item() - ours[0].item()) < 0.05
    assert kl_to_standard_normal(torch.zeros(1, 5), torch.zeros(1, 5)).item() == 0.0


def test_refinement_loss_matches_per_face_loop():
    torch.manual_seed(0)
    logits = torch.randn(6, dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=-1)
    grads = torch.randn(6, 3, dtype=torch.float64)
    level, normal = 0.0, 0.0
    for k in range(6):
        p = 1 / (1 + math.exp(-logits[k].item()))
        level += (p - 0.2) ** 2 / 6
        target = -grads[k] / grads[k].norm()
        normal += sum((normals[k, i].item() - target[i].item()) ** 2 for i in range(3)) / 6
    ours = mesh_refinement_loss(logits, normals, grads, threshold=0.2, normal_weight=0.5)
    assert math.isclose(ours.item(), level + 0.5 * normal, rel_tol=1e-8)


def test_losses_gradcheck_float64():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    occ = (torch.rand(2, 5) > 0.5).double()
    assert gradcheck(lambda x: occupancy_bce(x, occ), (logits,))
    mean = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    logstd = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(kl_to_standard_normal, (mean, logstd))
    face_logits = torch.randn(4, dtype=torch.float64, requires_grad=True)
    normals = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    grads = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b, c: mesh_refinement_loss(a, b, c, 0.2), (face_logits, normals, grads))


def test_loss_module_reports_terms_and_weights_the_kl():
    torch.manual_seed(0)
    logits, occ = torch.randn(2, 8), (torch.rand(2, 8) > 0.5).float()
    plain = instantiate_group("loss/occupancy_bce")(logits, occ)
    assert set(plain) == {"loss", "bce"}
    torch.testing.assert_close(plain["loss"], occupancy_bce(logits, occ).mean())
    mean, logstd = torch.randn(2, 4), torch.randn(2, 4)
    vae = OccupancyLoss(kl_weight=0.5)(logits, occ, mean, logstd)
    assert set(vae) == {"loss", "bce", "kl"}
    torch.testing.assert_close(vae["loss"], vae["bce"] + 0.5 * kl_to_standard_normal(mean, logstd).mean())
