"""MeshSDF refinement objectives (Remelli et al. 2020, Sec. 4) on meshes with differentiable vertices.

The vertices come from `geometry.isosurface.differentiable_vertices`, so each loss here reaches the
latent code (and decoder weights) through dL/ds = -(dL/dv)·n. Units: deepsdf frame (unit sphere)
for 3D distances, pixels / mask values in [0, 1] for images.
"""
from __future__ import annotations

import torch
from shapelab.geometry.isosurface import differentiable_surface_samples
from shapelab.metrics.chamfer import chamfer_distance
from torch import nn


def surface_chamfer(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    target_points: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Surface-to-surface Chamfer (MeshSDF Sec. 4.1, the squared Chamfer of DeepSDF):
    ``mean_s min_t |s - t|^2 + mean_t min_s |s - t|^2`` between ``num_samples`` area-uniform samples s
    of the mesh (vertices (V, 3), faces (F, 3)) and the target cloud t (N, 3). Returns a scalar."""
    samples = differentiable_surface_samples(vertices, faces, num_samples, generator)
    return chamfer_distance(samples[None], target_points[None].to(samples))[0]


def silhouette_l1(rendered: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Silhouette loss (MeshSDF Sec. 4.2): mean |S_rendered - S_target| over views and pixels;
    rendered, target (V, H, W) in [0, 1]. Returns a scalar."""
    return (rendered - target.to(rendered)).abs().mean()


def latent_prior(latent: torch.Tensor) -> torch.Tensor:
    """|z|^2 of the code (DeepSDF Eq. 10's prior, kept during refinement); latent (L,) or (B, L) -> scalar."""
    return latent.pow(2).sum()


class MeshSDFLoss(nn.Module):
    """Weighted MeshSDF objective; ``forward`` returns ``{"loss", "chamfer", "silhouette", "latent"}``
    (a term is present when its target is given).

    Args:
        chamfer_weight, silhouette_weight, latent_weight: term weights.
        num_samples: mesh samples per Chamfer evaluation.
        renderer: ``renderer(vertices, faces, K, Rt, image_size) -> (V, H, W)`` for silhouettes
            (renderers/soft_silhouette.SoftSilhouette).
    """

    def __init__(self, chamfer_weight: float, silhouette_weight: float, latent_weight: float, num_samples: int,
                 renderer: nn.Module | None):
        super().__init__()
        self.chamfer_weight, self.silhouette_weight, self.latent_weight = chamfer_weight, silhouette_weight, latent_weight
        self.num_samples = num_samples
        self.renderer = renderer

    def forward(self, vertices: torch.Tensor, faces: torch.Tensor, latent: torch.Tensor, targets: dict,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """targets: ``points`` (N, 3) and/or ``masks`` (V, H, W) with ``K`` (V, 3, 3), ``Rt`` (V, 3, 4)."""
        terms = {"latent": latent_prior(latent)}
        total = self.latent_weight * terms["latent"]
        if targets.get("points") is not None:
            terms["chamfer"] = surface_chamfer(vertices, faces, targets["points"], self.num_samples, generator)
            total = total + self.chamfer_weight * terms["chamfer"]
        if targets.get("masks") is not None:
            if self.renderer is None:
                raise ValueError("MeshSDFLoss: silhouette targets need a renderer")
            masks = targets["masks"]
            rendered = self.renderer(vertices, faces, targets["K"], targets["Rt"], tuple(masks.shape[-2:]))
            terms["silhouette"] = silhouette_l1(rendered, masks)
            total = total + self.silhouette_weight * terms["silhouette"]
        terms["loss"] = total
        return terms
