"""Euclidean projections as declarative nodes (Gould et al. 2020, Sec. 5.2):

    sphere:  y(x) = argmin_u ½‖u − x‖²  s.t. ‖u‖² = r²    (closed form r x / ‖x‖)
    ball:    y(x) = argmin_u ½‖u − x‖²  s.t. ‖u‖² <= r²   (x inside, r x / ‖x‖ outside)

inputs: (x (P, m),) -> y (P, m). The ball's inequality is active (an equality in the backward) only for
points outside, so the Jacobian is the identity inside and the sphere's (r/‖x‖)(I − x̂x̂ᵀ) outside.
"""
from __future__ import annotations

import torch
from shapelab.declarative.node import DeclarativeNode


class _ProjectionNode(DeclarativeNode):
    def __init__(self, radius: float = 1.0):
        self.radius = float(radius)

    def objective(self, inputs, y):
        (x,) = inputs
        return 0.5 * ((y - x) ** 2).sum(dim=1)

    def _constraint(self, y: torch.Tensor) -> torch.Tensor:
        return (y**2).sum(dim=1, keepdim=True) - self.radius**2


class SphereProjectionNode(_ProjectionNode):
    """Nearest point of the sphere of ``radius`` about the origin."""

    def solve(self, inputs):
        (x,) = inputs
        return self.radius * x / x.norm(dim=1, keepdim=True)

    def equality_constraints(self, inputs, y):
        return self._constraint(y)


class BallProjectionNode(_ProjectionNode):
    """Nearest point of the closed ball of ``radius`` about the origin."""

    def solve(self, inputs):
        (x,) = inputs
        norm = x.norm(dim=1, keepdim=True)
        return torch.where(norm > self.radius, self.radius * x / norm, x)

    def inequality_constraints(self, inputs, y):
        return self._constraint(y)
