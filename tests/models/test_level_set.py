"""model=level_set: the SDF network, projection onto its zero level set, fits of a sphere and a torus."""
from __future__ import annotations

import dataclasses

import hydra
import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from shapelab.metrics.iou import mesh_iou
from shapelab.models.level_set import (
    FitBatch,
    FitFrame,
    project_to_zero_level_set,
    sdf_and_gradient,
)
from shapelab.models.level_set_guidance import GuidingPoints, NoGuidance

from shapelab.config import instantiate_group
from tests.conftest import REPO_ROOT
from tests.torch_threads import single_thread  # noqa: F401


def sdf_network(**settings):
    """model=level_set's network (hidden 128, 3 layers, Softplus beta 100, radius 0.5), ``settings`` replaced."""
    return instantiate_group("model/level_set.network", **settings)()

def load(group: str, name: str):
    return hydra.utils.instantiate(OmegaConf.load(REPO_ROOT / "conf" / group / f"{name}.yaml"), _convert_="partial")


def test_geometric_initialisation_is_a_sphere_of_the_init_radius():
    torch.manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    for frequencies in (0, 6):
        network = sdf_network(num_frequencies=frequencies)
        with torch.no_grad():
            inside, surface, outside = (network(radius * directions) for radius in (0.3, 0.5, 0.8))
        # approximately a sphere (the init is exact only for infinite width)
        assert (inside < 0).float().mean() > 0.95 and (outside > 0).all()
        assert surface.abs().mean() < 0.1
        _, gradient = sdf_and_gradient(network, 0.5 * directions, create_graph=False)
        assert torch.nn.functional.cosine_similarity(gradient, directions).mean() > 0.9


def test_softplus_beta_is_configurable_and_defaults_to_the_papers():
    assert sdf_network().activation.beta == 100.0
    assert load("model", "level_set").make_network().activation.beta == 100.0
    assert sdf_network(beta=10.0).activation.beta == 10.0


def test_projection_lands_on_the_zero_level_set():
    torch.manual_seed(0)
    network = sdf_network(init_radius=0.5)
    points = torch.randn(300, 3) * 0.4
    projected, normals = project_to_zero_level_set(network, points)
    assert len(projected) > 250
    sdf, _ = sdf_and_gradient(network, projected, create_graph=False)
    assert sdf.abs().max() < 1e-4
    assert torch.nn.functional.cosine_similarity(normals, projected).mean() > 0.9  # outward
    assert abs(float(projected.norm(dim=-1).mean()) - 0.5) < 0.1  # on the initial sphere


def test_nearest_surface_points_equal_brute_force():
    generator = torch.Generator().manual_seed(0)
    surface, samples = torch.rand(300, 3, generator=generator), torch.rand(200, 3, generator=generator) * 2 - 0.5
    batch = FitBatch(surface, None, surface, 0.1)
    distance, index = batch.nearest_surface(samples)
    expected_distance, expected_index = torch.cdist(samples, surface).min(dim=1)
    assert torch.equal(index, expected_index)
    torch.testing.assert_close(distance, expected_distance)


def test_fit_frame_round_trip():
    points = np.random.default_rng(0).normal(size=(100, 3)) * 3 + 7
    frame = FitFrame.of(points)
    fit = frame.to_fit(points)
    assert np.linalg.norm(fit, axis=1).max() == pytest.approx(1 / 1.2)
    np.testing.assert_allclose(frame.from_fit(fit), points)


def test_the_unguided_baseline_gets_the_guided_budget():
    guided, unguided = load("guidance", "guiding_points"), load("guidance", "none")
    assert isinstance(guided, GuidingPoints) and isinstance(unguided, NoGuidance)
    assert unguided.steps == guided.budget()
    assert unguided.finetune.weights == guided.finetune.weights  # same loss as the guided fine-tuning


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sphere", "torus"])
def test_sphere_and_torus_fit_from_2k_points(name):
    mesh = trimesh.creation.icosphere(4, radius=0.35) if name == "sphere" else trimesh.creation.torus(0.28, 0.1)
    points = np.asarray(trimesh.sample.sample_surface(mesh, 2000, seed=0)[0])
    model = load("model", "level_set")
    model.resolution = 64
    guidance = load("guidance", "guiding_points")
    fitted = model.fit(points, guidance, seed=0)
    queries = np.random.default_rng(0).uniform(-0.5, 0.5, (50000, 3))
    iou = mesh_iou(model.extract(fitted), queries, mesh.contains(queries))
    assert iou >= 0.95, iou
    assert fitted.steps <= guidance.budget()


class RecordingOptimiser:
    """Stands in for `Optimiser` in a schedule test: counts steps, no network."""

    observer = None
    steps_taken = 0

    def run(self, phase, batch, weights, steps, lr):
        self.steps_taken += steps


def schedule(guidance: GuidingPoints, guide_distance: float) -> list[tuple[str, float]]:
    """The (event, radius / spacing) sequence of `GuidingPoints.fit` with the SDF work stubbed out: the guiding
    points stay at ``guide_distance`` from a plane of input points (spacing 0.1)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 11)] * 2), -1).reshape(-1, 2)
    inputs = torch.tensor(np.column_stack([grid, np.zeros(len(grid))]), dtype=torch.float32)
    guides = inputs[:5] + torch.tensor([0.0, 0.0, guide_distance])
    events = []

    def update(optimiser, points, cloud, radius, rng):
        events.append(("update", radius / cloud.spacing))
        return points

    def move(optimiser, points, cloud, radius):
        events.append(("move", radius / cloud.spacing))
        return points

    guidance.initial_guides = lambda tree, radius, rng, device: (guides, guides)
    guidance.update_surface, guidance.move = update, move
    guidance.fine_tune = lambda optimiser, points, spacing: events.append(("finetune", 0.0))
    guidance.fit(RecordingOptimiser(), inputs, np.random.default_rng(0))
    return [(event, round(multiple, 6)) for event, multiple in events]


def test_the_loop_follows_the_released_schedule_when_no_level_is_reached():
    # released main.py: update; lower the radius after more than 5 / 10 / 200 moves at a level; move with the
    # (possibly lowered) radius; leave after the final level. Here patience 2 / 1 / 3.
    guidance = dataclasses.replace(load("guidance", "guiding_points"), num_points=5, patience=(2, 1, 3))
    events = schedule(guidance, guide_distance=5.0)
    moves = [radius for event, radius in events if event == "move"]
    updates = [radius for event, radius in events if event == "update"]
    assert moves == [4.0] * 3 + [2.0] * 3 + [1.0] * 5  # patience + 1 at the start, then + 2 (the lowering move)
    assert updates == [4.0] * 4 + [2.0] * 3 + [1.0] * 5  # patience + 2 updates per level
    assert events[-1] == ("finetune", 0.0) and events[-2][0] == "update"  # no move after the last update
    assert len(updates) == sum(p + 2 for p in guidance.patience)  # what budget() counts


def test_the_loop_lowers_the_radius_as_soon_as_a_level_is_reached():
    events = schedule(dataclasses.replace(load("guidance", "guiding_points"), num_points=5, patience=(5, 10, 200)),
                      guide_distance=0.0)
    assert events == [("update", 4.0), ("move", 2.0), ("update", 2.0), ("move", 1.0), ("update", 1.0), ("finetune", 0.0)]
