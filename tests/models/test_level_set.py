"""model=level_set: the SDF network, projection onto its zero level set, fits of a sphere and a torus."""
from __future__ import annotations

import hydra
import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from shapelab.metrics.iou import mesh_iou
from shapelab.models.level_set import (
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
