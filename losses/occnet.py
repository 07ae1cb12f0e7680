"""Occupancy Networks objectives (Mescheder et al. 2019): occupancy BCE (Eq. 3), the KL term of
the generative model (Eq. 4) and the mesh-refinement objective (Eq. 5, 6).

Units: points in the occnet frame (unit cube); logits are unitless, occupancies in {0, 1}
(1 = inside); losses are nats.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def occupancy_bce(logits: torch.Tensor, occ: torch.Tensor) -> torch.Tensor:
    """Eq. 3 per shape: sum_j BCE(f_theta(p_j), o_j), the cross-entropy of the predicted occupancy
    sigma(logit) against the true occupancy, summed over the shape's sampled points (the paper's
    mini-batch loss is the mean of this over shapes).

    Args:
        logits: (B, T) predicted occupancy logits.
        occ: (B, T) true occupancies in {0, 1} (float).
    Returns:
        (B,) summed cross-entropy per shape, in nats.
    """
    return F.binary_cross_entropy_with_logits(logits, occ, reduction="none").sum(dim=-1)


def kl_to_standard_normal(mean: torch.Tensor, logstd: torch.Tensor) -> torch.Tensor:
    """The KL term of Eq. 4: KL(q(z | (p_j, o_j)_j) || N(0, I)) for a diagonal Gaussian q,
    = sum_d 0.5 * (sigma_d^2 + mu_d^2 - 1) - log sigma_d.

    Args:
        mean: (B, Z) means mu of q.
        logstd: (B, Z) log standard deviations log sigma of q.
    Returns:
        (B,) KL divergence per shape, in nats.
    """
    return (0.5 * (torch.exp(2.0 * logstd) + mean.pow(2) - 1.0) - logstd).sum(dim=-1)


def mesh_refinement_loss(
    face_logits: torch.Tensor,
    face_normals: torch.Tensor,
    field_gradients: torch.Tensor,
    threshold: float,
    normal_weight: float = 0.01,
) -> torch.Tensor:
    """Eq. 5 + lambda * Eq. 6: pull random points p_k on the mesh faces to the threshold level and
    align each face normal with the normalised negative gradient of the occupancy field:
    mean_k (sigma(f(p_k)) - tau)^2 + lambda * mean_k || n(p_k) - (-grad f(p_k) / ||grad f(p_k)||) ||^2.

    Args:
        face_logits: (F,) occupancy logits f(p_k) at one random point per face.
        face_normals: (F, 3) unit face normals n(p_k) of the current mesh.
        field_gradients: (F, 3) gradient of sigma(f) with respect to p_k.
        threshold: tau, the occupancy probability of the surface (0.2 in the paper).
        normal_weight: lambda (0.01 in the released code).
    Returns:
        () scalar loss.
    """
    level_term = (torch.sigmoid(face_logits) - threshold).pow(2).mean()
    target_normals = -field_gradients / (field_gradients.norm(dim=-1, keepdim=True) + 1e-10)
    normal_term = (face_normals - target_normals).pow(2).sum(dim=-1).mean()
    return level_term + normal_weight * normal_term


class OccupancyLoss(nn.Module):
    """Training objective of an occupancy network: mean over shapes of Eq. 3, plus
    ``kl_weight`` times the mean KL of Eq. 4 when the model has a latent z.

    forward(logits (B, T), occ (B, T), mean=None, logstd=None) ->
    {"loss": total, "bce": mean Eq. 3, "kl": mean Eq. 4 (only with a latent)}.
    """

    batch_format = "occupancy"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(self, kl_weight: float):
        super().__init__()
        self.kl_weight = kl_weight

    def forward(
        self,
        logits: torch.Tensor,
        occ: torch.Tensor,
        mean: torch.Tensor | None = None,
        logstd: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        terms = {"bce": occupancy_bce(logits, occ).mean()}
        total = terms["bce"]
        if mean is not None:
            terms["kl"] = kl_to_standard_normal(mean, logstd).mean()
            total = total + self.kl_weight * terms["kl"]
        return {"loss": total, **terms}
