"""Test-time reconstruction of DeepSDF: fit a fresh latent per unseen shape, decoder frozen.

Park et al. 2019, Eq. 10: ẑ = argmin_z Σ_j L(f_θ(z, x_j), s_j) + λ‖z‖². The schedule defaults
are the released reconstruction code's (ANCHORS.md): 800 Adam steps, lr 5e-3 divided by 10 at
half the steps, 8000 random samples per step, init N(0, 0.01²), penalty 1e-4·mean(z²).
Several shapes are fitted at once (one code per shape, the loss summed over shapes so each code
gets exactly its own gradient). ``balanced`` draws each step half from the positive (sdf > 0) and half
from the other samples, as the released ``unpack_sdf_samples_from_ram`` (4000 + 4000 from the whole file). A boolean ``observed`` mask restricts the fit to a subset of the
samples (partial observations, e.g. one side of the shape); ``free_space`` marks samples whose SDF is only a
lower bound (free space seen by a depth camera: DeepSDF's shape completion, Sec. 6.3, geometry/depth_observation.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from shapelab.losses.deepsdf import latent_fitting_loss
from torch import nn
from tqdm.auto import tqdm


@dataclass
class LatentFitSchedule:
    """Hyper-parameters of the test-time latent optimisation (values: the YAML's; the paper's in
    conf/model/deepsdf_paper.yaml ``reconstruction``)."""

    num_iterations: int
    lr: float
    lr_drop_factor: float
    num_samples: int
    latent_reg_weight: float
    init_std: float
    clamp: float
    balanced: bool = False  # the released code: True (half pos / half neg per step); here the pool is 50/50

    def lr_at(self, iteration: int) -> float:
        """Learning rate of step ``iteration`` (0-based): divided by the drop factor at half-way."""
        drops = iteration // max(1, self.num_iterations // 2)
        return self.lr / self.lr_drop_factor ** min(drops, 1)


def half_space_mask(xyz: torch.Tensor, direction: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """Samples on one side of a plane, a partial observation for shape completion.

    Args:
        xyz: (B, S, 3) sample points.
        direction: (3,) plane normal; kept are points with x·direction > offset.
    Returns:
        (B, S) bool mask of the kept samples.
    """
    return xyz @ direction.to(xyz) > offset


def _sample_indices(weights: torch.Tensor, num_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B, num_samples) sample indices drawn with replacement, proportional to weights (B, S)."""
    return torch.multinomial(weights, num_samples, replacement=True, generator=generator)


def _balanced_indices(
    weights: torch.Tensor, sdf: torch.Tensor, num_samples: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, num_samples): the first half drawn among samples with sdf > 0, the rest among sdf <= 0 (DeepSDF's
    pos / neg files), each with replacement and proportional to ``weights``; a shape without one class
    draws that half from all its samples."""
    halves = []
    for count, in_class in ((num_samples // 2, sdf > 0), (num_samples - num_samples // 2, sdf <= 0)):
        class_weights = weights * in_class
        class_weights = torch.where(class_weights.sum(-1, keepdim=True) > 0, class_weights, weights)
        halves.append(_sample_indices(class_weights, count, generator))
    return torch.cat(halves, dim=1)


def best_candidate_codes(
    decoder: nn.Module,
    candidates: torch.Tensor,
    xyz: torch.Tensor,
    sdf: torch.Tensor,
    schedule: LatentFitSchedule,
    num_samples: int,
    observed: torch.Tensor | None = None,
    free_space: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 64,
) -> torch.Tensor:
    """A warm start for Eq. 10: per shape, the candidate code (e.g. the learnt training codes) with the lowest
    fitting loss (``latent_fitting_loss``: clamped L1 + λ·mean z²) on ``num_samples`` of its samples.

    Args:
        decoder: as ``fit_latents``.
        candidates: (K, L) codes to choose from.
        xyz, sdf, observed, free_space: as ``fit_latents`` ((B, S, 3), (B, S), optional (B, S) bool masks).
        schedule: its ``clamp`` and ``latent_reg_weight`` are used.
        num_samples: samples drawn (with replacement) per shape to rank the candidates.
        generator: optional torch.Generator for the sample draw.
        chunk: candidates decoded at once (memory: chunk × num_samples points).
    Returns:
        (B, L) the chosen candidate of each shape.
    """
    weights = torch.ones_like(sdf) if observed is None else observed.to(sdf)
    index = _sample_indices(weights, num_samples, generator)
    xyz = torch.gather(xyz, 1, index[..., None].expand(-1, -1, 3))
    sdf = torch.gather(sdf, 1, index)
    free = None if free_space is None else torch.gather(free_space, 1, index)
    chosen, was_training = [], decoder.training
    decoder.eval()
    try:
        with torch.no_grad():
            for b in range(len(sdf)):
                losses = []
                for codes in candidates.split(chunk):
                    count = len(codes)
                    pred = decoder(codes, xyz[b].expand(count, -1, -1))
                    losses.append(latent_fitting_loss(
                        pred, sdf[b].expand(count, -1), codes, schedule.clamp, schedule.latent_reg_weight,
                        free_space=None if free is None else free[b].expand(count, -1),
                    ))
                chosen.append(candidates[torch.cat(losses).argmin()])
    finally:
        decoder.train(was_training)
    return torch.stack(chosen)


def fit_latents(
    decoder: nn.Module,
    xyz: torch.Tensor,
    sdf: torch.Tensor,
    schedule: LatentFitSchedule,
    observed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    init: torch.Tensor | None = None,
    free_space: torch.Tensor | None = None,
) -> torch.Tensor:
    """Optimise one latent code per shape against its SDF samples, decoder frozen.

    Args:
        decoder: ``decoder(latents (B, L), xyz (B, n, 3)) -> (B, n)`` with attribute ``latent_size``.
        xyz: (B, S, 3) sample points, deepsdf frame.
        sdf: (B, S) their signed distances.
        schedule: iterations, learning rate and its drop, samples per step, λ, init std, clamp δ.
        observed: optional (B, S) bool mask of the samples that may be used (partial observation).
        generator: optional torch.Generator on xyz's device, for the code init and the sample draws.
        progress: show a progress bar over the iterations.
        init: optional (B, L) starting codes (warm start); default N(0, init_std²).
        free_space: optional (B, S) bool, samples whose ``sdf`` is a lower bound (``losses.deepsdf.free_space_l1``).
    Returns:
        (B, L) fitted codes (detached).

    Works under ``torch.no_grad``/``torch.inference_mode`` callers (validation, evaluation): the
    optimisation runs with gradients enabled on copies of the inputs; the decoder's parameters get
    no gradients (``torch.autograd.grad`` w.r.t. the codes only) and its train/eval mode is restored.
    """
    if observed is not None and not bool(observed.any(dim=-1).all()):
        raise ValueError("fit_latents: every shape needs at least one observed sample")
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            xyz, sdf = xyz.detach().clone(), sdf.detach().clone()
            free = None if free_space is None else free_space.detach().clone()
            batch, num_available = sdf.shape
            weights = torch.ones_like(sdf) if observed is None else observed.detach().clone().to(sdf)
            use_all = observed is None and not schedule.balanced and num_available <= schedule.num_samples
            if init is None:
                noise = torch.randn(batch, decoder.latent_size, generator=generator, device=xyz.device)
                init = noise.to(xyz.dtype) * schedule.init_std
            latents = init.detach().clone().to(xyz).requires_grad_(True)
            optimiser = torch.optim.Adam([latents], lr=schedule.lr)
            for iteration in tqdm(range(schedule.num_iterations), disable=not progress, desc="fit latents"):
                for group in optimiser.param_groups:
                    group["lr"] = schedule.lr_at(iteration)
                if use_all:
                    step_xyz, step_sdf, step_free = xyz, sdf, free
                else:
                    if schedule.balanced:
                        index = _balanced_indices(weights, sdf, schedule.num_samples, generator)
                    else:
                        index = _sample_indices(weights, schedule.num_samples, generator)
                    step_xyz = torch.gather(xyz, 1, index[..., None].expand(-1, -1, 3))
                    step_sdf = torch.gather(sdf, 1, index)
                    step_free = None if free is None else torch.gather(free, 1, index)
                pred = decoder(latents, step_xyz)
                loss = latent_fitting_loss(
                    pred, step_sdf, latents, schedule.clamp, schedule.latent_reg_weight, free_space=step_free
                )
                (latents.grad,) = torch.autograd.grad(loss.sum(), latents)
                optimiser.step()
            return latents.detach()
    finally:
        decoder.train(was_training)
