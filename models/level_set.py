"""Small Steps and Level Sets (Koneputugodage et al., CVPR 2024): fit one neural SDF to one unoriented point cloud.

`SDFNetwork` is the field: an MLP with Softplus(β = 100) and geometric (sphere) initialisation, optionally on
a positional encoding of the input. `LevelSetModel` (``model=level_set``) fits a fresh network to one shape's
points: in the fitting frame (`FitFrame`) it runs a guidance schedule (``guidance=guiding_points`` — the
paper — or ``guidance=none``, the unguided baseline) whose steps minimise the loss terms of `losses.level_set`,
and extracts the zero level set with `geometry.extraction`. The guidance classes are in
`models.level_set_guidance`. No Lightning here: a per-shape optimisation is a plain loop (the stage
``stages/level_set.py`` wires data, dashboards and scoring).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from shapelab.geometry.extraction import extract_mesh
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
from shapelab.models.base import Monitor
from torch import nn

from shapelab.errors import ShapelabError

FIT_RADIUS = 1.0 / 1.2  # input points lie within this radius in the fitting frame (released code: max norm · 1.2)
DOMAIN_HALF_SIDE = 1.1  # domain samples and mesh extraction cover [-1.1, 1.1]^3 (released code: grid radius 1.1)


@dataclass(frozen=True)
class FitFrame:
    """The fitting frame of the released code: ``fit = (p - centre) / scale`` with centre the points' mean and
    scale = 1.2 × their largest distance from it, so the input lies within radius 1/1.2."""

    centre: np.ndarray
    scale: float

    @classmethod
    def of(cls, points: np.ndarray) -> FitFrame:
        centre = points.mean(axis=0)
        return cls(centre, float(np.linalg.norm(points - centre, axis=1).max() / FIT_RADIUS))

    def to_fit(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - self.centre) / self.scale

    def from_fit(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * self.scale + self.centre


class SDFNetwork(nn.Module):
    """f: (N, 3) -> (N,), an MLP ``num_layers`` × ``hidden_dim`` with Softplus(β) and geometric initialisation
    (Atzmon & Lipman's SAL / IDR): at initialisation f(p) ≈ ||p|| - ``init_radius``, a sphere.

    Input: p and, with ``num_frequencies`` > 0, sin/cos(2π·2^k·p) for k < num_frequencies (NeRF encoding,
    as the released field; its first-layer weights start at 0 so the initial field is still the sphere).
    The released field also feeds a dense multi-resolution feature grid (tiny-cuda-nn) to 2 × 256 layers; see
    docs/papers/small_steps.md for why there is no grid here. ``weight_norm`` as the released field.
    """

    def __init__(self, hidden_dim: int, num_layers: int, num_frequencies: int, beta: float, init_radius: float,
                 weight_norm: bool):
        super().__init__()
        if num_layers < 1 or hidden_dim < 1:
            raise ShapelabError(f"model.network: num_layers={num_layers}, hidden_dim={hidden_dim}; both must be >= 1")
        self.num_frequencies = num_frequencies
        dims = [3 + 6 * num_frequencies] + [hidden_dim] * num_layers + [1]
        layers = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
            layer = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                if index == len(dims) - 2:  # last layer: f ≈ ||p|| - r
                    nn.init.normal_(layer.weight, math.sqrt(math.pi) / math.sqrt(fan_in), 1e-4)
                    nn.init.constant_(layer.bias, -init_radius)
                else:
                    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(fan_out))
                    nn.init.zeros_(layer.bias)
                    if index == 0:
                        layer.weight[:, 3:] = 0.0  # encoding features start switched off
            if weight_norm:
                layer = nn.utils.parametrizations.weight_norm(layer)
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.activation = nn.Softplus(beta=beta)

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        if not self.num_frequencies:
            return points
        frequencies = 2.0 * math.pi * 2.0 ** torch.arange(self.num_frequencies, dtype=points.dtype, device=points.device)
        angles = (points[..., None] * frequencies).flatten(-2)
        return torch.cat([points, torch.sin(angles), torch.cos(angles)], dim=-1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = self.encode(points)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x).squeeze(-1)


def sdf_and_gradient(network: nn.Module, points: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """f(p) (N,) and ∇f(p) (N, 3) at points (N, 3); ``create_graph`` keeps the graph for losses on ∇f."""
    points = points.detach().requires_grad_(True)
    with torch.enable_grad():
        sdf = network(points)
        (gradient,) = torch.autograd.grad(sdf.sum(), points, create_graph=create_graph)
    return sdf, gradient


def project_to_zero_level_set(network: nn.Module, points: torch.Tensor, iterations: int = 50,
                              tolerance: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton-project points (M, 3) onto f = 0: p ← p - f(p)·∇f/||∇f|| until f changes by < ``tolerance``.

    Keeps the points that converged (|Δf| and |f| < tolerance, ||∇f|| > 0.5: not stuck at a saddle), as the
    released ``project_points_to_zls``. Returns (points (K, 3), outward unit normals (K, 3))."""
    previous = None
    for _ in range(iterations):
        sdf, gradient = sdf_and_gradient(network, points, create_graph=False)
        points = (points - sdf[:, None] * gradient / gradient.norm(dim=-1, keepdim=True).clamp_min(1e-12)).detach()
        if previous is not None and (sdf - previous).abs().max() < tolerance:
            previous = sdf
            break
        previous = sdf
    sdf, gradient = sdf_and_gradient(network, points, create_graph=False)
    norm = gradient.norm(dim=-1)
    keep = ((sdf - previous).abs() < tolerance) & (sdf.abs() < tolerance) & (norm > 0.5)
    return points[keep].detach(), (gradient[keep] / norm[keep, None]).detach()


def domain_samples(count: int, near: torch.Tensor, generator: torch.Generator, leaf: float = 2 * DOMAIN_HALF_SIDE / 64) -> torch.Tensor:
    """(count, 3) off-surface samples: half uniform in [-1.1, 1.1]^3, half uniform in cubes of side ``leaf``
    around random points of ``near`` (M, 3) — the released code's grid points and octree (depth 6) surface-leaf
    samples."""
    uniform = (torch.rand(count - count // 2, 3, generator=generator) * 2 - 1) * DOMAIN_HALF_SIDE
    centres = near[torch.randint(len(near), (count // 2,), generator=generator)]
    jitter = (torch.rand(count // 2, 3, generator=generator) - 0.5) * leaf
    return torch.cat([uniform.to(near), centres + jitter.to(near)])


@dataclass
class FitBatch:
    """What one optimisation phase fits to (fitting frame): ``surface`` points (M, 3) that should be on the zero
    level set with their outward ``normals`` (M, 3) or None, the input points ``inputs`` (N, 3) for the offset
    term, and the current level-set ``radius`` r."""

    surface: torch.Tensor
    normals: torch.Tensor | None
    inputs: torch.Tensor
    radius: float
    tree: cKDTree | None = field(default=None, init=False, repr=False)

    def nearest_surface(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance (K,) and index (K,) of the nearest ``surface`` point of each of points (K, 3), through a
        KD-tree of the surface built once per phase (the released code's k-NN per ``optimise_sdf`` call)."""
        if self.tree is None:
            self.tree = cKDTree(self.surface.detach().cpu().numpy())
        distance, index = self.tree.query(points.detach().cpu().numpy(), workers=-1)
        return (torch.as_tensor(distance, dtype=points.dtype, device=points.device),
                torch.as_tensor(index, dtype=torch.long, device=points.device))


@dataclass
class StepSettings:
    """Sample counts per optimisation step (the released code uses every surface point, 30k domain samples
    and all 100k input points per step on a GPU)."""

    surface_batch: int
    domain_batch: int
    input_batch: int


def loss_terms(network: nn.Module, batch: FitBatch, settings: StepSettings, generator: torch.Generator,
               weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Every loss term of `losses.level_set` with a non-zero weight, on one random batch."""
    choose = lambda tensor, count: torch.randint(len(tensor), (min(count, len(tensor)),), generator=generator)
    chosen = choose(batch.surface, settings.surface_batch)
    surface = batch.surface[chosen]
    sdf, gradient = sdf_and_gradient(network, surface)
    samples = domain_samples(settings.domain_batch, batch.surface, generator)
    domain_sdf, domain_gradient = sdf_and_gradient(network, samples)
    distance, nearest = batch.nearest_surface(samples)
    closeness = proximity_weights(distance, batch.radius)
    terms = {"zls": zero_level_set_loss(sdf), "zls_eikonal": eikonal_loss(gradient),
             "domain_eikonal": eikonal_loss(domain_gradient, closeness)}
    if weights.get("offset"):
        inputs = batch.inputs[choose(batch.inputs, settings.input_batch)]
        terms["offset"] = offset_surface_loss(network(inputs), batch.radius)
    if weights.get("normal") and batch.normals is not None:
        terms["normal"] = normal_loss(gradient, batch.normals[chosen])
    if weights.get("sdf") or weights.get("pull"):
        anchors = batch.surface[nearest]
        if batch.normals is not None:
            anchor_normals = batch.normals[nearest]
        else:  # the current field's normals at the guiding points (released code: detached ∇f)
            _, anchor_gradient = sdf_and_gradient(network, anchors, create_graph=False)
            anchor_normals = anchor_gradient / anchor_gradient.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        terms["sdf"] = relative_sdf_loss(domain_sdf, signed_distance_targets(samples, anchors, anchor_normals), closeness)
        terms["pull"] = neural_pull_loss(samples, domain_sdf, domain_gradient, anchors, closeness)
    return terms


Observer = Callable[[str, dict], None]
"""``observer(event, data)``: "step" {"phase", "step", "terms"}, "guides" {"step", "points", "radius"},
"level" {"step", "radius"}; the stage logs these to the dashboards."""


@dataclass
class Optimiser:
    """Adam over one network, with the learning rate set per phase; counts every step taken."""

    network: nn.Module
    settings: StepSettings
    generator: torch.Generator
    observer: Observer | None = None
    steps_taken: int = 0
    last_loss: float = float("nan")
    adam: torch.optim.Adam = field(init=False)

    def __post_init__(self):
        self.adam = torch.optim.Adam(self.network.parameters(), lr=1e-4)

    def run(self, phase: str, batch: FitBatch, weights: dict[str, float], steps: int, lr: float) -> dict[str, float]:
        """``steps`` Adam steps on the weighted terms; returns the last step's terms (floats, plus "loss")."""
        for group in self.adam.param_groups:
            group["lr"] = lr
        record: dict[str, float] = {}
        for _ in range(steps):
            terms = loss_terms(self.network, batch, self.settings, self.generator, weights)
            total = weighted_total(terms, weights)
            if not torch.isfinite(total):
                raise ShapelabError(f"level-set fit: the loss became {float(total)} in phase {phase!r} at step "
                                    f"{self.steps_taken}; lower the guidance learning rates")
            self.adam.zero_grad(set_to_none=True)
            total.backward()
            self.adam.step()
            self.steps_taken += 1
            record = {"loss": total.item(), **{name: value.item() for name, value in terms.items()}}
            self.last_loss = record["loss"]
            if self.observer is not None:
                self.observer("step", {"phase": phase, "step": self.steps_taken, "terms": record})
        return record


def in_input_frame(observer: Observer, frame: FitFrame) -> Observer:
    """An observer that also gets ``to_input_frame`` (fitting frame -> input frame) with the guiding points."""

    def relay(event: str, data: dict) -> None:
        observer(event, {**data, "to_input_frame": frame.from_fit} if event == "guides" else data)

    return relay


class LevelSetModel:
    """``model=level_set``: fits one SDF network per point cloud with a guidance schedule.

    Args:
        network: a callable making a fresh `SDFNetwork` (Hydra ``_partial_: true``).
        steps: `StepSettings` (samples per step).
        resolution: marching-cubes cells per axis over [-1.1, 1.1]^3 in the fitting frame.
        device: where the fit runs ("cpu", "cuda", or "auto" = CUDA when present).
    """

    monitor = Monitor("train/loss", "min")
    """No validation split: a sweep minimises the mean final fitting loss the stage reports as train/loss."""

    def __init__(self, network: Callable[[], nn.Module], steps: StepSettings, resolution: int, device: str):
        self.make_network, self.steps, self.resolution = network, steps, resolution
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)

    def fit(self, points: np.ndarray, guidance, seed: int = 0, observer: Observer | None = None) -> FittedShape:
        """Fit a fresh network to ``points`` (N, 3) (any frame) with ``guidance`` (see models.level_set_guidance)."""
        torch.manual_seed(seed)
        frame = FitFrame.of(points)
        network = self.make_network().to(self.device)
        generator = torch.Generator().manual_seed(seed)
        optimiser = Optimiser(network, self.steps, generator, None if observer is None else in_input_frame(observer, frame))
        inputs = torch.tensor(frame.to_fit(points), dtype=torch.float32, device=self.device)
        guidance.fit(optimiser, inputs, np.random.default_rng(seed))
        return FittedShape(network.eval(), frame, optimiser.steps_taken, optimiser.last_loss)

    def extract(self, fitted: FittedShape) -> trimesh.Trimesh:
        """The zero level set of a fitted shape, in the frame its points were given in."""
        mesh = extract_mesh(fitted.network, self.resolution, bounds=(-DOMAIN_HALF_SIDE, DOMAIN_HALF_SIDE),
                            device=self.device).mesh
        return trimesh.Trimesh(fitted.frame.from_fit(mesh.vertices), mesh.faces, process=False)


@dataclass
class FittedShape:
    """A fitted network, the frame it was fitted in, how many optimisation steps it took and its last loss."""

    network: nn.Module
    frame: FitFrame
    steps: int
    loss: float = float("nan")

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """f at points (N, 3) given in the input's frame, in that frame's units (N,)."""
        device = next(self.network.parameters()).device
        with torch.no_grad():
            fit = torch.tensor(self.frame.to_fit(points), dtype=torch.float32, device=device)
            return self.network(fit).cpu().numpy() * self.frame.scale
