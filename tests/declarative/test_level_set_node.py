"""MeshSDF's iso-surface gradient as a declarative node equals geometry/isosurface.py's hand-written rule."""
from __future__ import annotations

import torch
from shapelab.declarative.function import declarative_output
from shapelab.declarative.level_set import LevelSetPointNode, declarative_vertices
from shapelab.geometry.extraction import extract_mesh
from shapelab.geometry.isosurface import differentiable_vertices
from torch.autograd import gradcheck


def _sphere_vertices(resolution: int = 20) -> torch.Tensor:
    mesh = extract_mesh(lambda p: p.norm(dim=-1) - 0.5, resolution, method="dense").mesh
    return torch.tensor(mesh.vertices, dtype=torch.float64)


def _gradients(field_of, vertices_fn, parameters, weights):
    vertices = vertices_fn(field_of(parameters))
    return torch.autograd.grad((vertices * weights).sum(), parameters)


def _compare(field_of, mode: str):
    vertices = _sphere_vertices()
    weights = torch.randn(vertices.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    centre = torch.tensor([0.05, -0.02, 0.01], dtype=torch.float64, requires_grad=True)
    radius = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    parameters = [centre, radius]
    by_hand = _gradients(field_of, lambda field: differentiable_vertices(field, vertices, mode), parameters, weights)
    declarative = _gradients(field_of, lambda field: declarative_vertices(field, vertices, parameters),
                             parameters, weights)
    for mine, theirs in zip(declarative, by_hand):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)


def test_equals_the_sdf_rule_on_an_exact_sdf():
    """‖∇f‖ = 1: the declarative gradient is MeshSDF's dv/ds = −n."""
    _compare(lambda p: (lambda x: (x - p[0]).norm(dim=-1) - p[1]), "sdf")


def test_equals_the_level_set_rule_on_a_field_that_is_not_an_sdf():
    """f = ‖x − c‖² − r²: ‖∇f‖ ≠ 1, the general rule −∇f/‖∇f‖² ∂f/∂θ."""
    _compare(lambda p: (lambda x: ((x - p[0]) ** 2).sum(dim=-1) - p[1] ** 2), "level_set")


def test_a_network_field_gets_the_same_latent_and_weight_gradients():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(7, 32), torch.nn.Softplus(beta=10), torch.nn.Linear(32, 1)).double()
    latent = (0.1 * torch.randn(4, dtype=torch.float64)).requires_grad_(True)

    def field(x):
        return network(torch.cat([latent.expand(len(x), 4), x], dim=1))[:, 0] + x.norm(dim=-1) - 0.5

    vertices = torch.tensor(extract_mesh(lambda p: field(p.double()).detach(), 20, method="dense").mesh.vertices,
                            dtype=torch.float64)
    parameters = [latent, *network.parameters()]
    weights = torch.randn(vertices.shape, dtype=torch.float64)
    by_hand = torch.autograd.grad((differentiable_vertices(field, vertices, "level_set") * weights).sum(), parameters)
    mine = torch.autograd.grad((declarative_vertices(field, vertices, parameters) * weights).sum(), parameters)
    for a, b in zip(mine, by_hand):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


class NearestSpherePointNode(LevelSetPointNode):
    """The same problem solved exactly for a sphere (centre c, radius r): u* = c + r (v0 − c)/‖v0 − c‖."""

    def solve(self, inputs):
        centre, radius = inputs
        offset = self.vertices - centre
        return centre + radius * offset / offset.norm(dim=1, keepdim=True)


def test_constrained_gradient_matches_finite_differences_of_the_exact_projection():
    """Off the surface (λ ≠ 0) the full constrained IFT formula, curvature terms included, is checked."""
    generator = torch.Generator().manual_seed(5)
    vertices = torch.randn(6, 3, dtype=torch.float64, generator=generator)  # not on the sphere
    centre = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64, requires_grad=True)
    radius = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def project(c, r):
        node = NearestSpherePointNode(lambda x: (x - c).norm(dim=-1) - r, vertices)
        return declarative_output(node, c, r)

    assert gradcheck(project, (centre, radius))
