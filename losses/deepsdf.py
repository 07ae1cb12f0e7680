"""DeepSDF objectives (Park et al. 2019): clamped L1 (Eq. 4) and the latent-code prior (Eq. 9, 10).

Units: signed distances and latents are in the deepsdf frame (unit sphere); losses are unitless
means of those distances.
"""
from __future__ import annotations

import torch
from torch import nn


def clamped_l1(pred_sdf: torch.Tensor, sdf: torch.Tensor, clamp: float) -> torch.Tensor:
    """Eq. 4: L(f, s) = |clamp(f, δ) − clamp(s, δ)|, clamp(x, δ) = min(δ, max(−δ, x)).

    Args:
        pred_sdf: (...) predicted signed distances.
        sdf: (...) ground-truth signed distances, same shape.
        clamp: δ > 0 (the paper uses 0.1).
    Returns:
        (...) element-wise loss (no reduction).
    """
    return (pred_sdf.clamp(-clamp, clamp) - sdf.clamp(-clamp, clamp)).abs()


def latent_norm(latents: torch.Tensor) -> torch.Tensor:
    """‖z‖₂ per code, the unsquared prior term that the released training code uses for Eq. 9.

    Args:
        latents: (B, L).
    Returns:
        (B,) Euclidean norms.
    """
    return latents.norm(dim=-1)


def regularisation_warmup(epoch: int, warmup_epochs: int) -> float:
    """Linear warm-up factor min(1, (epoch + 1) / warmup_epochs) of the code prior.

    The released code multiplies the prior by min(1, epoch / 100) with 1-based epochs; Lightning
    counts epochs from 0, hence the +1. ``warmup_epochs <= 0`` disables the warm-up.
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


def free_space_l1(pred_sdf: torch.Tensor, lower: torch.Tensor, clamp: float) -> torch.Tensor:
    """Eq. 4 for a sample known only to have SDF >= ``lower`` (free space seen from a depth camera, Sec. 6.3):
    max(0, clamp(lower, δ) − clamp(f, δ)), zero for any prediction at or above the bound.

    Args:
        pred_sdf: (...) predicted signed distances.
        lower: (...) lower bounds of the true signed distances (0: "outside"), same shape.
        clamp: δ > 0.
    Returns:
        (...) element-wise loss (no reduction).
    """
    return (lower.clamp(-clamp, clamp) - pred_sdf.clamp(-clamp, clamp)).clamp(min=0)


def latent_fitting_loss(
    pred_sdf: torch.Tensor,
    sdf: torch.Tensor,
    latents: torch.Tensor,
    clamp: float,
    latent_reg_weight: float,
    free_space: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 10 per shape, test-time latent optimisation with the decoder fixed.

    mean_j |clamp(f(z, x_j)) − clamp(s_j)| + λ·mean_l z_l² (released reconstruction code: λ = 1e-4); samples
    flagged ``free_space`` (partial observations, Sec. 6.3) contribute `free_space_l1` with s_j as the bound.

    Args:
        pred_sdf: (B, S) predictions f(z_b, x_bj).
        sdf: (B, S) observed signed distances (lower bounds where ``free_space``).
        latents: (B, L) codes being optimised.
        clamp: δ.
        latent_reg_weight: λ.
        free_space: optional (B, S) bool, the samples whose ``sdf`` is only a lower bound.
    Returns:
        (B,) loss of each shape; their sum has independent gradients per shape.
    """
    per_sample = clamped_l1(pred_sdf, sdf, clamp)
    if free_space is not None:
        per_sample = torch.where(free_space, free_space_l1(pred_sdf, sdf, clamp), per_sample)
    data_term = per_sample.mean(dim=-1)
    return data_term + latent_reg_weight * latents.pow(2).mean(dim=-1)


class DeepSDFLoss(nn.Module):
    """Auto-decoder training loss: clamped L1 over samples + λ·warm-up·mean ‖z‖ over shapes.

    Eq. 9 of the paper, as the released training code weighs it: the data term is the mean of
    Eq. 4 over all B·S samples; the prior is λ·min(1, epoch / warmup)·mean_b ‖z_b‖ (each sample's
    copy of its shape code counted once per sample, then divided by the sample count).

    Args:
        clamp: δ of Eq. 4 (0.1).
        latent_reg_weight: λ (1e-4).
        latent_reg_warmup_epochs: epochs of the linear warm-up of λ (100; 0 disables).
    """

    batch_format = "sdf"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(self, clamp: float, latent_reg_weight: float, latent_reg_warmup_epochs: int):
        super().__init__()
        if clamp <= 0:
            raise ValueError(f"loss.clamp must be > 0, got {clamp}")
        self.clamp = clamp
        self.latent_reg_weight = latent_reg_weight
        self.latent_reg_warmup_epochs = latent_reg_warmup_epochs

    def forward(
        self, pred_sdf: torch.Tensor, sdf: torch.Tensor, latents: torch.Tensor, epoch: int = 0
    ) -> dict[str, torch.Tensor]:
        """pred_sdf, sdf: (B, S); latents: (B, L) the codes of the batch's shapes; epoch: 0-based.

        Returns ``{"loss": total, "sdf_l1": data term, "latent_reg": weighted prior term}``.
        """
        sdf_l1 = clamped_l1(pred_sdf, sdf, self.clamp).mean()
        weight = self.latent_reg_weight * regularisation_warmup(epoch, self.latent_reg_warmup_epochs)
        latent_reg = weight * latent_norm(latents).mean()
        return {"loss": sdf_l1 + latent_reg, "sdf_l1": sdf_l1, "latent_reg": latent_reg}
