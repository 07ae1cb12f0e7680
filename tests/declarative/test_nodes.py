"""Declarative nodes: implicit gradients vs finite differences, closed forms and unrolled solvers."""
from __future__ import annotations

import pytest
import torch
from shapelab.declarative.function import declarative_output
from shapelab.declarative.least_squares import LeastSquaresNode
from shapelab.declarative.node import DeclarativeNode
from shapelab.declarative.projections import BallProjectionNode, SphereProjectionNode
from shapelab.declarative.robust_pooling import (
    CONVEX,
    PENALTIES,
    RobustPoolingNode,
    robust_penalty,
    robust_pool,
)
from torch.autograd import gradcheck

from shapelab.errors import ShapelabError

DOUBLE = torch.float64


def test_least_squares_gradient_equals_the_closed_form_and_finite_differences():
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(3, 6, 4, dtype=DOUBLE, generator=generator, requires_grad=True)
    b = torch.randn(3, 6, dtype=DOUBLE, generator=generator, requires_grad=True)
    node = LeastSquaresNode()
    assert gradcheck(lambda A_, b_: declarative_output(node, A_, b_), (A, b))
    weights = torch.randn(3, 4, dtype=DOUBLE, generator=generator)
    implicit = torch.autograd.grad((declarative_output(node, A, b) * weights).sum(), (A, b))
    normal = A.transpose(1, 2) @ A
    closed = torch.linalg.solve(normal, (A.transpose(1, 2) @ b[..., None]))[..., 0]
    reference = torch.autograd.grad((closed * weights).sum(), (A, b))
    for mine, theirs in zip(implicit, reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-10)


def test_conjugate_gradients_give_the_dense_answer():
    generator = torch.Generator().manual_seed(1)
    A = torch.randn(2, 9, 5, dtype=DOUBLE, generator=generator, requires_grad=True)
    b = torch.randn(2, 9, dtype=DOUBLE, generator=generator, requires_grad=True)
    dense, iterative = LeastSquaresNode(), LeastSquaresNode()
    iterative.dense_max_dim = 0
    weights = torch.randn(2, 5, dtype=DOUBLE, generator=generator)
    first = torch.autograd.grad((declarative_output(dense, A, b) * weights).sum(), (A, b))
    second = torch.autograd.grad((declarative_output(iterative, A, b) * weights).sum(), (A, b))
    for x, y in zip(first, second):
        torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-9)


def test_quadratic_penalty_pools_to_the_mean_with_gradient_one_over_n():
    x = torch.randn(4, 7, 3, dtype=DOUBLE, requires_grad=True)
    pooled = robust_pool(x, dim=1, penalty="quadratic")
    torch.testing.assert_close(pooled, x.mean(dim=1))
    (gradient,) = torch.autograd.grad(pooled.sum(), x)
    torch.testing.assert_close(gradient, torch.full_like(x, 1 / 7))


@pytest.mark.parametrize("penalty", PENALTIES)
def test_robust_pooling_gradcheck(penalty):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(5, 8, dtype=DOUBLE, generator=generator)
    x[:, 0] += 6.0  # an outlier per row
    x.requires_grad_(True)
    assert gradcheck(lambda v: robust_pool(v, dim=1, penalty=penalty, alpha=0.7), (x,), eps=1e-7, atol=1e-5)


def test_robust_pooling_solution_is_a_minimum_of_the_brute_force_objective():
    """Convex penalties: the global minimum on a fine grid; non-convex ones: a local minimum."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 11, dtype=DOUBLE, generator=generator)
    x[:, :3] += 8.0
    grid = torch.linspace(-4, 12, 160001, dtype=DOUBLE)
    for penalty in PENALTIES:
        node = RobustPoolingNode(penalty, 1.0)
        y = robust_pool(x, dim=1, penalty=penalty, alpha=1.0)
        if penalty in CONVEX:
            values = robust_penalty(grid[None, :, None] - x[:, None, :], penalty, 1.0).sum(-1)
            torch.testing.assert_close(y, grid[values.argmin(dim=1)], atol=2e-4, rtol=0)
        at_y = node.objective((x,), y[:, None])
        for step in (-1e-3, 1e-3):
            assert (at_y <= node.objective((x,), y[:, None] + step)).all(), penalty


def test_implicit_gradient_equals_the_gradient_through_an_unrolled_solver():
    """pseudo-Huber pooling: differentiate 300 unrolled IRLS steps from the mean, compare."""
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 9, dtype=DOUBLE, generator=generator)
    x[:, 0] += 5.0
    x.requires_grad_(True)
    y = x.mean(dim=1, keepdim=True)
    for _ in range(300):
        weight = torch.rsqrt(1 + (y - x) ** 2)
        y = (weight * x).sum(1, keepdim=True) / weight.sum(1, keepdim=True)
    (unrolled,) = torch.autograd.grad(y.sum(), x)
    (implicit,) = torch.autograd.grad(robust_pool(x, 1, "pseudo_huber", 1.0).sum(), x)
    torch.testing.assert_close(implicit, unrolled, rtol=1e-8, atol=1e-10)


class MedianNewtonNode(DeclarativeNode):
    """Pseudo-Huber mean solved by a sort (median) and Newton steps under no_grad: nothing differentiable."""

    def objective(self, inputs, y):
        (x,) = inputs
        return robust_penalty(y - x, "pseudo_huber", 1.0).sum(1)

    def solve(self, inputs):
        (x,) = inputs
        y = x.sort(dim=1).values[:, x.shape[1] // 2 : x.shape[1] // 2 + 1]
        for _ in range(50):
            z = y - x
            first = (z / torch.sqrt(1 + z**2)).sum(1, keepdim=True)
            second = ((1 + z**2) ** -1.5).sum(1, keepdim=True)
            y = y - first / second
        return y


def test_non_differentiable_forward_still_gets_correct_gradients():
    x = torch.randn(3, 6, dtype=DOUBLE, requires_grad=True)
    assert gradcheck(lambda v: declarative_output(MedianNewtonNode(), v), (x,))


def test_sphere_projection_matches_its_closed_form_jacobian():
    x = torch.randn(4, 3, dtype=DOUBLE, requires_grad=True)
    node = SphereProjectionNode(radius=2.0)
    assert gradcheck(lambda v: declarative_output(node, v), (x,))
    weights = torch.randn(4, 3, dtype=DOUBLE)
    (implicit,) = torch.autograd.grad((declarative_output(node, x) * weights).sum(), x)
    (closed,) = torch.autograd.grad((2.0 * x / x.norm(dim=1, keepdim=True) * weights).sum(), x)
    torch.testing.assert_close(implicit, closed)


def test_ball_projection_is_identity_inside_and_the_sphere_outside():
    x = torch.tensor([[0.1, 0.2, -0.3], [2.0, -1.0, 0.5]], dtype=DOUBLE, requires_grad=True)
    node = BallProjectionNode(radius=1.0)
    y = declarative_output(node, x)
    torch.testing.assert_close(y[0], x[0].detach())
    torch.testing.assert_close(y[1].norm(), torch.tensor(1.0, dtype=DOUBLE))
    assert gradcheck(lambda v: declarative_output(node, v), (x,))
    (gradient,) = torch.autograd.grad(y[0].sum(), x)
    torch.testing.assert_close(gradient[0], torch.ones(3, dtype=DOUBLE))


def test_float32_batched_pooling_matches_float64():
    x = torch.randn(2, 50, 16) * 0.5
    x[:, :10] += 4.0
    x32 = x.clone().requires_grad_(True)
    x64 = x.double().requires_grad_(True)
    (g32,) = torch.autograd.grad(robust_pool(x32, 1, "welsch", 0.5).pow(2).sum(), x32)
    (g64,) = torch.autograd.grad(robust_pool(x64, 1, "welsch", 0.5).pow(2).sum(), x64)
    torch.testing.assert_close(g32, g64.float(), rtol=1e-3, atol=1e-4)


def test_flat_objective_takes_the_documented_path():
    """Truncated quadratic with every value beyond alpha of the solution: H = 0 at the solution."""
    x = torch.tensor([[0.0, 10.0]], dtype=DOUBLE, requires_grad=True)
    node = RobustPoolingNode("truncated_quadratic", alpha=1.0)
    node.solve = lambda inputs: torch.full((1, 1), 5.0, dtype=DOUBLE)  # a point of the flat region
    (gradient,) = torch.autograd.grad(declarative_output(node, x).sum(), x)
    assert torch.equal(gradient, torch.zeros_like(x))  # on_singular="zero", as the DDN reference code
    node.on_singular = "raise"
    with pytest.raises(ShapelabError, match="not positive definite.*1 of 1 problems.*regularisation"):
        torch.autograd.grad(declarative_output(node, x).sum(), x)
    node.regularisation = 1e-3  # documented regularisation: (H + εI) is positive definite
    (gradient,) = torch.autograd.grad(declarative_output(node, x).sum(), x)
    assert torch.isfinite(gradient).all()
