"""MeshSDF iso-surface gradients against analytic derivatives and finite differences of re-extracted meshes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapelab.geometry.extraction import extract_mesh
from shapelab.geometry.isosurface import (
    SurfaceTracker,
    differentiable_surface_samples,
    differentiable_vertices,
)

RESOLUTION = 64


def sphere_family(z: torch.Tensor):
    """SDF of the sphere with centre z[:3] and radius z[3]."""
    return lambda p: (p - z[:3].to(p)).norm(dim=-1) - z[3].to(p)


def box_family(z: torch.Tensor, rounding: float = 0.1):
    """SDF of the box with half sizes z (3,) at the origin, edges rounded (smooth on the surface)."""

    def sdf(p):
        q = p.abs() - z.to(p) + rounding
        return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0) - rounding

    return sdf


def surface_loss(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted integral of g(x) = |x - t|^2 + x_y over the mesh: continuous under
    re-triangulation, so finite differences of re-extracted meshes are meaningful."""
    corners = vertices[faces]
    area = 0.5 * torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).norm(dim=-1)
    centroid = corners.mean(dim=1)
    target = torch.tensor([0.3, -0.2, 0.1], dtype=vertices.dtype)
    g = ((centroid - target) ** 2).sum(-1) + centroid[:, 1]
    return (area * g).sum()


def loss_of_extracted(family, z: torch.Tensor) -> float:
    mesh = extract_mesh(family(z), RESOLUTION).mesh
    v = torch.tensor(mesh.vertices, dtype=torch.float64)
    return float(surface_loss(v, torch.tensor(mesh.faces)))


def meshsdf_gradient(family, z: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    field = family(z)
    mesh = extract_mesh(field, RESOLUTION).mesh
    vertices = differentiable_vertices(lambda p: field(p.double()), torch.tensor(mesh.vertices))
    surface_loss(vertices, torch.tensor(mesh.faces)).backward()
    return z.grad


@pytest.mark.parametrize(
    ("family", "z"),
    [(sphere_family, [0.05, -0.1, 0.02, 0.55]), (box_family, [0.5, 0.35, 0.25])],
    ids=["sphere", "box"],
)
def test_gradient_matches_finite_differences_of_reextracted_meshes(family, z):
    z = torch.tensor(z, dtype=torch.float64)
    grad = meshsdf_gradient(family, z)
    eps = 1e-3
    numeric = torch.stack([
        torch.tensor((loss_of_extracted(family, z + eps * e) - loss_of_extracted(family, z - eps * e)) / (2 * eps),
                     dtype=torch.float64)
        for e in torch.eye(len(z), dtype=torch.float64)
    ])
    scale = numeric.abs().max()
    assert scale > 0.1
    assert torch.allclose(grad, numeric, atol=0.02 * scale), (grad, numeric)


def test_sphere_vertex_derivative_is_minus_normal():
    """d v / d s(v) = -n: with s = |p| - r, dv/dr = +n = v / |v| exactly."""
    r = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    mesh = extract_mesh(lambda p: p.norm(dim=-1) - 0.6, 32).mesh
    vertices = differentiable_vertices(lambda p: p.norm(dim=-1) - r, torch.tensor(mesh.vertices))
    weights = torch.randn(vertices.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (vertices * weights).sum().backward()
    normals = torch.tensor(mesh.vertices) / torch.tensor(mesh.vertices).norm(dim=-1, keepdim=True)
    assert torch.allclose(r.grad, (weights * normals).sum(), rtol=1e-10, atol=0)


def test_level_set_mode_for_occupancy_logits():
    """f = k (r - |p|), level 0: dv/dr = n needs -grad f / |grad f|^2, the SDF rule is off by k."""
    k = 7.0
    mesh = extract_mesh(lambda p: k * (0.5 - p.norm(dim=-1)), 32, inside="above").mesh
    normals = torch.tensor(mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True))
    weights = torch.randn(normals.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode, expected_factor in (("level_set", 1.0), ("sdf", k)):
        r = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        vertices = differentiable_vertices(lambda p, r=r: k * (r - p.norm(dim=-1)), torch.tensor(mesh.vertices), mode)
        (vertices * weights).sum().backward()
        assert r.grad.item() == pytest.approx(expected_factor * (weights * normals).sum().item(), rel=1e-9)


def test_gradient_reaches_network_weights_and_latent():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Softplus(beta=10), torch.nn.Linear(32, 1))
    latent = torch.zeros(2, requires_grad=True)

    def field(p):
        return p.norm(dim=-1) - 0.5 + 0.05 * net(torch.cat([p, latent.expand(len(p), 2)], -1))[:, 0]

    mesh = extract_mesh(field, 32).mesh
    vertices = differentiable_vertices(field, torch.tensor(mesh.vertices, dtype=torch.float32))
    vertices.norm(dim=-1).sum().backward()
    assert latent.grad.abs().sum() > 0 and net[0].weight.grad.abs().sum() > 0


def test_surface_samples_lie_on_the_mesh_and_carry_gradients():
    mesh = extract_mesh(lambda p: p.norm(dim=-1) - 0.5, 32).mesh
    vertices = torch.tensor(mesh.vertices, requires_grad=True)
    points = differentiable_surface_samples(vertices, torch.tensor(mesh.faces), 5000, torch.Generator().manual_seed(1))
    assert points.shape == (5000, 3)
    assert (points.norm(dim=-1) - 0.5).abs().max() < 5e-3
    assert points.mean(0).abs().max() < 0.03  # area-uniform
    points.sum().backward()
    assert vertices.grad.sum().item() == pytest.approx(3 * 5000)


def test_fast_mode_matches_full_extraction_and_evaluates_less():
    def sphere(radius):
        return lambda p: p.norm(dim=-1) - radius

    tracker = SurfaceTracker(RESOLUTION, band_cells=2, refresh_every=100)
    tracker.extract(sphere(0.5))
    full_cost = tracker.num_queries
    for radius in (0.51, 0.52, 0.8):  # small moves stay in the band; the jump forces a full pass
        before = tracker.num_queries
        mesh = tracker.extract(sphere(radius))
        full = extract_mesh(sphere(radius), RESOLUTION).mesh
        assert np.array_equal(mesh.faces, full.faces)
        assert np.abs(mesh.vertices - full.vertices).max() < 1e-6
        if radius < 0.6:
            assert tracker.num_queries - before < 0.7 * full_cost
    assert tracker.num_full == 2
    assert math.isclose(mesh.volume, 4 / 3 * math.pi * 0.8**3, rel_tol=5e-3)
