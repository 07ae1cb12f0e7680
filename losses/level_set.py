"""Loss terms of Small Steps and Level Sets (Koneputugodage et al., CVPR 2024; PG-SDF), as plain functions.

The paper fits an SDF network f to a moving set of guiding points Y (with outward normals n_Y), then to the
input points X. Its optimisation (``optimise_sdf`` in the released ``pgsdf.py``) sums these terms; the names
follow that code, the definitions are re-derived here (the paper's Sec. 3 "SDF fitting" losses):

- zero level set  L_zls  = mean_y |f(y)|                                           (guiding / input points)
- offset surface  L_off  = mean_x clamp(f(x) + r, 0, 1)        input points lie >= r inside the dilated surface
- Eikonal         L_eik  = mean_p w(p) · | ||∇f(p)|| - 1 |      on surface points (w = 1) and domain samples
- normal          L_n    = mean_y 1 - cos(∇f(y), n_y)
- relative SDF    L_sdf  = mean_p w(p) · |f(p) - s(p)| / max(|f(p)|, |s(p)|)       s: signed distance to Y
- Neural-Pull     L_pull = mean_p w(p) · ||p - f(p)·∇f/||∇f|| - y*(p)|| / ||p - y*(p)||   (Ma et al. 2021)

w(p) = 0.3 + 0.7·[d(p, Y) < 5r] + 0.3·[d(p, Y) < 2r] weights domain samples near the current level set
(r: the current level-set radius). The denominators of L_sdf and L_pull are treated as constants (no
gradient), as in the released code, so both are relative errors. Units: the fitting frame (see
`models.level_set.FitFrame`: input centred, max radius 1/1.2); every loss is a scalar tensor.
The weights of each phase live in conf/guidance/*.yaml.
"""
from __future__ import annotations

import torch

TERMS = ("zls", "offset", "zls_eikonal", "domain_eikonal", "normal", "sdf", "pull")


def zero_level_set_loss(sdf: torch.Tensor) -> torch.Tensor:
    """L_zls = mean |f(y)|: the surface points ``sdf`` (N,) = f(y) should lie on the zero level set."""
    return sdf.abs().mean()


def offset_surface_loss(sdf: torch.Tensor, radius: float) -> torch.Tensor:
    """L_off = mean clamp(f(x) + r, 0, 1) over input points x (``sdf`` (N,) = f(x)).

    While the zero level set is the surface dilated by ``radius`` r, every input point should have
    f(x) <= -r (be at least r inside); points that do not are pushed down (code: ``mnfld_term``)."""
    return (sdf + radius).clamp(0.0, 1.0).mean()


def eikonal_loss(gradients: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L_eik = mean w · | ||∇f|| - 1 | (L1 Eikonal, as the released code) for ``gradients`` (N, 3) = ∇f(p);
    ``weights`` (N,) (None = 1)."""
    residual = (gradients.norm(dim=-1) - 1.0).abs()
    return (residual if weights is None else residual * weights).mean()


def normal_loss(gradients: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """L_n = mean 1 - cos(∇f(y), n_y): gradients (N, 3) align with the guiding points' outward normals (N, 3)."""
    return (1.0 - torch.nn.functional.cosine_similarity(gradients, normals, dim=-1)).mean()


def proximity_weights(distances: torch.Tensor, radius: float) -> torch.Tensor:
    """w = 0.3 + 0.7·[d < 5r] + 0.3·[d < 2r] for domain samples at ``distances`` (N,) from the guiding points."""
    return 0.3 + 0.7 * (distances < 5 * radius).to(distances) + 0.3 * (distances < 2 * radius).to(distances)


def signed_distance_targets(samples: torch.Tensor, nearest: torch.Tensor, nearest_normals: torch.Tensor) -> torch.Tensor:
    """s(p) = ||p - y*|| · sign((p - y*)·n_{y*}) (N,): the distance of each sample (N, 3) to its nearest guiding
    point y* (N, 3), positive on the side its outward normal (N, 3) points to."""
    offset = samples - nearest
    return offset.norm(dim=-1) * torch.sign((offset * nearest_normals).sum(-1))


def relative_sdf_loss(sdf: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L_sdf = mean w · |f(p) - s(p)| / clamp(max(|f(p)|, |s(p)|), 1e-5, 10); the denominator is a constant.

    sdf, targets, weights: (N,). A relative error, so samples far from the surface count as much as near ones."""
    scale = torch.maximum(sdf.abs(), targets.abs()).clamp(1e-5, 10.0).detach()
    return ((sdf - targets).abs() * weights / scale).mean()


def neural_pull_loss(samples: torch.Tensor, sdf: torch.Tensor, gradients: torch.Tensor, nearest: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """L_pull = mean w · ||p - f(p)·∇f(p)/||∇f(p)|| - y*|| / (||p - y*|| + 1e-5) (Neural-Pull, relative).

    samples, nearest (N, 3): domain samples and their nearest guiding points; sdf (N,), gradients (N, 3):
    f and ∇f at the samples; weights (N,). Pulling a sample along -∇f by f(p) should land on y*."""
    pulled = samples - gradients / gradients.norm(dim=-1, keepdim=True).clamp_min(1e-12) * sdf[:, None]
    scale = (samples - nearest).detach().norm(dim=-1) + 1e-5
    return ((pulled - nearest).norm(dim=-1) * weights / scale).mean()


def weighted_total(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k weights[k] · terms[k] over the terms that have a non-zero weight (a missing weight is 0)."""
    used = [weights[name] * value for name, value in terms.items() if weights.get(name, 0.0)]
    if not used:
        raise ValueError(f"no term of {sorted(terms)} has a non-zero weight in {weights}")
    return torch.stack(used).sum()
