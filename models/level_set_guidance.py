"""Guidance schedules of a level-set fit (``guidance=`` config group): how the SDF is led to the input points.

- `GuidingPoints` (``guidance=guiding_points``, the paper): guiding points start on the unit sphere, are
  marched to the input dilated by 16 × spacing, then in a loop the SDF is fitted to them, they are
  re-projected onto its zero level set and resampled, and they take one small capped step toward the input;
  the dilation radius halves (4 → 2 → 1 × spacing) whenever every guiding point is within it (+1e-2) of the
  input or after a set number of moves; finally the SDF is fine-tuned on the input points.
- `NoGuidance` (``guidance=none``): the fine-tuning phase alone (zero level set on the input points +
  Eikonal), for as many steps as the guided schedule's budget — the unguided baseline of the comparison.

Phase weights and learning rates are the released code's (``pgsdf.py``: initialisation, update_estimated_surface,
finetune); step counts and point counts are scaled down for CPUs in conf/guidance/*.yaml.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from shapelab.geometry.guiding_points import (
    even_subset,
    exterior_offset_points,
    guide_step,
    point_spacing,
    sphere_samples,
)
from shapelab.models.level_set import FitBatch, Optimiser, project_to_zero_level_set, sdf_and_gradient

log = logging.getLogger("shapelab.level_set")


@dataclass
class Phase:
    """One optimisation phase: Adam ``steps`` at ``lr`` on the terms with these ``weights``."""

    steps: int
    lr: float
    weights: dict[str, float]


@dataclass
class NoGuidance:
    """Unguided baseline: ``finetune`` on the input points for ``steps`` steps (radius r = 1 × spacing)."""

    steps: int
    finetune: Phase

    def fit(self, optimiser: Optimiser, inputs: torch.Tensor, rng: np.random.Generator) -> None:
        spacing = point_spacing(inputs.cpu().numpy())
        optimiser.run("finetune", FitBatch(inputs, None, inputs, spacing), self.finetune.weights, self.steps, self.finetune.lr)


@dataclass
class InputCloud:
    """The input points of one fit (fitting frame): ``points`` (N, 3), their KD-tree and point ``spacing``."""

    points: torch.Tensor
    tree: cKDTree
    spacing: float

    @classmethod
    def of(cls, points: torch.Tensor) -> InputCloud:
        array = points.detach().cpu().numpy().astype(np.float64)
        return cls(points, cKDTree(array), point_spacing(array))

    def distance(self, points: torch.Tensor) -> np.ndarray:
        """Distance (K,) of each of points (K, 3) to its nearest input point."""
        return self.tree.query(points.detach().cpu().numpy(), workers=-1)[0]


@dataclass
class GuidingPoints:
    """The paper's guidance; every value in conf/guidance/guiding_points.yaml (CPU counts; the released code's
    constants in its comments and below).

    Args:
        num_points: guiding points M (released: 30 000).
        radius_multipliers: (initial, start of the loop, final) multiples of the point spacing (16, 4, 1); the
            loop halves the radius from the start value down to the final one.
        max_initial_radius: cap on the initial dilation (fitting frame; ours, not the released code's: 16 ×
            the spacing of a sparse cloud would dilate past the domain; 0.2 ≈ the released value at 100k points).
        patience: (start radius, intermediate radii, final radius): the loop lowers the radius when every
            guiding point is within it (+ ``stop_tolerance``) of the input, or once more than this many moves
            were made since the radius last changed (released: 5, 10, 200).
        stop_tolerance: a level is reached when every guiding point is within radius + this of an input point.
        cone_cos, step_cap: inward cone and the floor of the step cap of `geometry.guiding_points.guide_step`.
        initialise, update_fit, update_refit, finetune: phases (weights, learning rates, steps); the
            initialisation runs its phase twice (second time at ``initialise_second_lr``), finetune
            ``finetune_rounds`` times.
        log_every_move: report the guiding points to the observer every this many moves.
    """

    num_points: int
    radius_multipliers: tuple[float, float, float]
    patience: tuple[int, int, int]
    max_initial_radius: float
    stop_tolerance: float
    cone_cos: float
    step_cap: float
    initialise: Phase
    initialise_second_lr: float
    update_fit: Phase
    update_refit: Phase
    finetune: Phase
    finetune_rounds: int
    log_every_move: int = 1

    def budget(self) -> int:
        """Most optimisation steps the schedule can take (what `NoGuidance` should get for a fair comparison)."""
        updates = sum(self.patience_at(level) + 2 for level in range(len(self.level_multipliers())))
        return (2 * self.initialise.steps + updates * (self.update_fit.steps + self.update_refit.steps)
                + self.finetune_rounds * self.finetune.steps)

    def level_multipliers(self) -> list[float]:
        """The loop's radii as multiples of the spacing: the start one halved down to the final one (4, 2, 1)."""
        start, final = self.radius_multipliers[1], self.radius_multipliers[2]
        levels = [start]
        while levels[-1] / 2 >= final:
            levels.append(levels[-1] / 2)
        return levels

    def patience_at(self, level: int) -> int:
        start, middle, final = self.patience
        return start if level == 0 else final if level == len(self.level_multipliers()) - 1 else middle

    # -- the schedule ------------------------------------------------------------------------------
    def fit(self, optimiser: Optimiser, inputs: torch.Tensor, rng: np.random.Generator) -> None:
        """The released main loop: initialise on the dilated input; then repeat {update the surface; lower the
        radius if the level is reached or its patience is spent (leave after the final one); move the guiding
        points one capped step with the current radius}; then fine-tune on the input."""
        cloud = InputCloud.of(inputs)
        radius = self.initial_radius(cloud.spacing)
        guides, normals = self.initial_guides(cloud.tree, radius, rng, inputs.device)
        self.report(optimiser, guides, radius)
        for lr in (self.initialise.lr, self.initialise_second_lr):
            optimiser.run("initialise", FitBatch(guides, normals, inputs, radius), self.initialise.weights,
                          self.initialise.steps, lr)
        levels = self.level_multipliers()
        level, since_lowered, moves = 0, 0, 0
        radius = self.enter_level(optimiser, levels[0] * cloud.spacing)
        while True:
            guides = self.update_surface(optimiser, guides, cloud, radius, rng)
            if len(guides) == 0:
                log.warning("level-set fit: every guiding point was lost at radius %.4g; fine-tuning from here", radius)
                break
            reached = float(cloud.distance(guides).max()) < radius + self.stop_tolerance
            if reached or since_lowered > self.patience_at(level):
                level, since_lowered = level + 1, 0
                if level == len(levels):
                    break
                radius = self.enter_level(optimiser, levels[level] * cloud.spacing)
            else:
                since_lowered += 1
            guides = self.move(optimiser, guides, cloud, radius)
            if len(guides) == 0:
                log.warning("level-set fit: no guiding point could move at radius %.4g; fine-tuning from here", radius)
                break
            moves += 1
            if moves % self.log_every_move == 0:
                self.report(optimiser, guides, radius)
        self.fine_tune(optimiser, inputs, cloud.spacing)

    @staticmethod
    def enter_level(optimiser: Optimiser, radius: float) -> float:
        if optimiser.observer is not None:
            optimiser.observer("level", {"step": optimiser.steps_taken, "radius": radius})
        return radius

    def initial_radius(self, spacing: float) -> float:
        return min(self.radius_multipliers[0] * spacing, self.max_initial_radius)

    def initial_guides(self, tree: cKDTree, radius: float, rng: np.random.Generator, device: torch.device):
        """M guiding points on the input dilated by ``radius``, from 3M unit-sphere samples (see
        `geometry.guiding_points.exterior_offset_points`), thinned evenly."""
        guides, normals = exterior_offset_points(sphere_samples(3 * self.num_points, 1.0, rng), tree, radius, rng)
        if len(guides) == 0:  # nothing arrived (a degenerate cloud): start on the sphere around the points
            guides = sphere_samples(self.num_points, float(np.linalg.norm(tree.data, axis=1).max()) + radius, rng)
            normals = guides / np.linalg.norm(guides, axis=1, keepdims=True)
        chosen = even_subset(guides, self.num_points, rng)
        as_tensor = lambda array: torch.tensor(array[chosen], dtype=torch.float32, device=device)
        return as_tensor(guides), as_tensor(normals)

    def update_surface(self, optimiser: Optimiser, guides: torch.Tensor, cloud: InputCloud, radius: float,
                       rng: np.random.Generator) -> torch.Tensor:
        """Fit the SDF to the guiding points, project them onto its zero level set, refit, resample."""
        optimiser.run("update_fit", FitBatch(guides, None, cloud.points, radius), self.update_fit.weights,
                      self.update_fit.steps, self.update_fit.lr)
        projected, _ = project_to_zero_level_set(optimiser.network, guides)
        if len(projected):
            guides = projected
        optimiser.run("update_refit", FitBatch(guides, None, cloud.points, radius), self.update_refit.weights,
                      self.update_refit.steps, self.update_refit.lr)
        return self.resample(optimiser, guides, cloud, rng)

    def resample(self, optimiser: Optimiser, guides: torch.Tensor, cloud: InputCloud,
                 rng: np.random.Generator) -> torch.Tensor:
        """Spread the guiding points evenly over the zero level set again (released ``resample_zls``):
        M/20 seeds, 30 jittered copies each (σ 0.05) projected back, thinned to M minus the critical share;
        then the M/30 points farthest from the input get 10 jittered copies each (σ 0.01), projected back."""
        generator = optimiser.generator
        seeds = guides[torch.as_tensor(even_subset(guides.cpu().numpy(), max(1, self.num_points // 20), rng))]
        jitter = lambda centres, copies, sigma: (centres[:, None] + (sigma * torch.randn(len(centres), copies, 3, generator=generator)
                                                                        .clamp(-1, 1)).to(centres)).reshape(-1, 3)
        spread, _ = project_to_zero_level_set(optimiser.network, jitter(seeds, 30, 0.05))
        if len(spread) == 0:
            return guides
        critical_count = max(1, self.num_points // 30)
        spread = spread[torch.as_tensor(even_subset(spread.cpu().numpy(), self.num_points - 10 * critical_count, rng))]
        distance = torch.as_tensor(cloud.distance(spread), device=spread.device)
        critical = spread[distance.argsort()[-critical_count:]]
        extra, _ = project_to_zero_level_set(optimiser.network, jitter(critical, 10, 0.01))
        return torch.cat([spread, extra])

    def move(self, optimiser: Optimiser, guides: torch.Tensor, cloud: InputCloud, radius: float) -> torch.Tensor:
        """One small step of every guiding point along its (current field's) inward normal toward the input;
        a point that ends outside the current surface after a long step (it closed a hole) is dropped."""
        _, gradient = sdf_and_gradient(optimiser.network, guides, create_graph=False)
        normals = gradient / gradient.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        step = guide_step(guides, normals, cloud.points, radius, cloud.spacing, self.cone_cos, self.step_cap, cloud.tree)
        with torch.no_grad():
            inside = (optimiser.network(step.points) <= 1e-3) | (step.steps < 1e-2)
        return step.points[inside].detach()

    def fine_tune(self, optimiser: Optimiser, inputs: torch.Tensor, spacing: float) -> None:
        for _ in range(self.finetune_rounds):
            optimiser.run("finetune", FitBatch(inputs, None, inputs, spacing), self.finetune.weights,
                          self.finetune.steps, self.finetune.lr)

    @staticmethod
    def report(optimiser: Optimiser, guides: torch.Tensor, radius: float) -> None:
        if optimiser.observer is not None:
            optimiser.observer("guides", {"step": optimiser.steps_taken, "points": guides.detach().cpu().numpy(),
                                          "radius": radius})
