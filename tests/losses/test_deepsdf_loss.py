"""DeepSDF losses against loop references (the released code's formulation) and finite differences."""
from __future__ import annotations

import pytest
import torch
from shapelab.losses.deepsdf import (
    DeepSDFLoss,
    clamped_l1,
    free_space_l1,
    latent_fitting_loss,
    latent_norm,
    regularisation_warmup,
)

from shapelab.config import instantiate_group


def clamp_scalar(value: float, delta: float) -> float:
    return min(delta, max(-delta, value))


def test_clamped_l1_matches_loop_reference():
    torch.manual_seed(0)
    pred, sdf = torch.randn(3, 7) * 0.2, torch.randn(3, 7) * 0.2
    expected = torch.tensor(
        [[abs(clamp_scalar(p, 0.1) - clamp_scalar(s, 0.1)) for p, s in zip(prow, srow)]
         for prow, srow in zip(pred.tolist(), sdf.tolist())]
    )
    torch.testing.assert_close(clamped_l1(pred, sdf, 0.1), expected)


def test_clamped_l1_ignores_errors_beyond_the_clamp():
    pred = torch.tensor([0.5, -0.3, 0.05])
    sdf = torch.tensor([0.9, -0.7, -0.05])
    torch.testing.assert_close(clamped_l1(pred, sdf, 0.1), torch.tensor([0.0, 0.0, 0.1]))


def test_gradients_match_finite_differences():
    torch.manual_seed(1)
    # keep values away from the clamp kinks and from pred == sdf, where |.| is not differentiable
    pred = (torch.rand(2, 5, dtype=torch.float64) * 0.16 - 0.08).requires_grad_(True)
    sdf = pred.detach() + torch.where(torch.rand(2, 5) > 0.5, 0.01, -0.01).double()
    assert torch.autograd.gradcheck(lambda p: clamped_l1(p, sdf, 0.1), (pred,))
    latents = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(latent_norm, (latents,))
    assert torch.autograd.gradcheck(
        lambda p, z: latent_fitting_loss(p, sdf, z, 0.1, 1e-2), (pred, latents)
    )


def test_latent_norm_is_unsquared_euclidean_norm():
    latents = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    torch.testing.assert_close(latent_norm(latents), torch.tensor([5.0, 2.0]))


@pytest.mark.parametrize("epoch, expected", [(0, 0.01), (49, 0.5), (99, 1.0), (500, 1.0)])
def test_regularisation_warmup_is_linear_then_one(epoch, expected):
    assert regularisation_warmup(epoch, 100) == pytest.approx(expected)
    assert regularisation_warmup(epoch, 0) == 1.0


def test_training_loss_matches_released_code_formulation():
    """The released code repeats each shape's code per sample: λ·w·Σ_samples ‖z‖ / #samples + L1 sum / #samples."""
    torch.manual_seed(2)
    batch, samples, clamp, lam, epoch = 3, 6, 0.1, 1e-2, 19
    pred, sdf, latents = torch.randn(batch, samples) * 0.1, torch.randn(batch, samples) * 0.1, torch.randn(batch, 5)
    per_sample_latents = latents.repeat_interleave(samples, dim=0)  # (B*S, L) as the released code's batch_vecs
    l1_sum = sum(abs(clamp_scalar(p, clamp) - clamp_scalar(s, clamp))
                 for p, s in zip(pred.flatten().tolist(), sdf.flatten().tolist()))
    reg_sum = sum(float(z.norm()) for z in per_sample_latents)
    warm = min(1.0, (epoch + 1) / 100)
    expected_l1 = l1_sum / (batch * samples)
    expected_reg = lam * warm * reg_sum / (batch * samples)

    terms = DeepSDFLoss(clamp, lam, 100)(pred, sdf, latents, epoch=epoch)

    assert set(terms) == {"loss", "sdf_l1", "latent_reg"}
    assert float(terms["sdf_l1"]) == pytest.approx(expected_l1, rel=1e-5)
    assert float(terms["latent_reg"]) == pytest.approx(expected_reg, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(expected_l1 + expected_reg, rel=1e-5)


def test_latent_fitting_loss_matches_loop_reference():
    torch.manual_seed(3)
    pred, sdf, latents = torch.randn(2, 4) * 0.1, torch.randn(2, 4) * 0.1, torch.randn(2, 3)
    expected = [
        sum(abs(clamp_scalar(p, 0.1) - clamp_scalar(s, 0.1)) for p, s in zip(prow, srow)) / 4
        + 1e-4 * sum(z * z for z in zrow) / 3
        for prow, srow, zrow in zip(pred.tolist(), sdf.tolist(), latents.tolist())
    ]
    torch.testing.assert_close(latent_fitting_loss(pred, sdf, latents, 0.1, 1e-4), torch.tensor(expected))


def test_free_space_l1_matches_loop_reference_and_is_one_sided():
    torch.manual_seed(4)
    pred, lower = torch.randn(3, 9) * 0.15, torch.randn(3, 9) * 0.05
    expected = torch.tensor(
        [[max(0.0, clamp_scalar(s, 0.1) - clamp_scalar(p, 0.1)) for p, s in zip(prow, srow)]
         for prow, srow in zip(pred.tolist(), lower.tolist())]
    )
    torch.testing.assert_close(free_space_l1(pred, lower, 0.1), expected)
    # "outside" (bound 0): any positive prediction is free, a negative one costs |f| up to the clamp
    outside = torch.zeros(4)
    torch.testing.assert_close(free_space_l1(torch.tensor([0.3, 0.01, -0.04, -0.5]), outside, 0.1),
                               torch.tensor([0.0, 0.0, 0.04, 0.1]))


def test_latent_fitting_loss_uses_the_bound_only_on_free_space_samples():
    torch.manual_seed(5)
    pred, sdf, latents = torch.randn(2, 6) * 0.1, torch.randn(2, 6) * 0.1, torch.randn(2, 3)
    free = torch.rand(2, 6) > 0.5
    expected = [
        sum(max(0.0, clamp_scalar(s, 0.1) - clamp_scalar(p, 0.1)) if f else abs(clamp_scalar(p, 0.1) - clamp_scalar(s, 0.1))
            for p, s, f in zip(prow, srow, frow)) / 6
        + 1e-4 * sum(z * z for z in zrow) / 3
        for prow, srow, frow, zrow in zip(pred.tolist(), sdf.tolist(), free.tolist(), latents.tolist())
    ]
    torch.testing.assert_close(latent_fitting_loss(pred, sdf, latents, 0.1, 1e-4, free_space=free), torch.tensor(expected))
    pred64 = (torch.rand(2, 6, dtype=torch.float64) * 0.16 - 0.08).requires_grad_(True)
    lower = pred64.detach() + torch.where(torch.rand(2, 6) > 0.5, 0.01, -0.01).double()
    assert torch.autograd.gradcheck(lambda p: free_space_l1(p, lower, 0.1), (pred64,))
    assert torch.autograd.gradcheck(
        lambda p: latent_fitting_loss(p, lower, latents.double(), 0.1, 1e-2, free_space=free), (pred64,)
    )


def test_bad_clamp_is_rejected():
    with pytest.raises(ValueError, match="clamp"):
        instantiate_group("loss/sdf_clamped_l1", clamp=0.0)
