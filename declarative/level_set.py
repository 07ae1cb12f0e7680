"""A point on a level set as a declarative node: MeshSDF's iso-surface gradient derived by the IFT.

    v(θ) = argmin_u ½‖u − v₀‖²   s.t.  f(u; θ) = level

v₀ is a marching-cubes vertex: marching cubes is the (non-differentiable) solver, v = v₀ and the
multiplier is 0, so the constrained IFT (Gould et al. 2020, Prop. 4.5) gives

    dv/dθ = −∇f (∇fᵀ∇f)⁻¹ ∂f/∂θ = −n ∂f/∂θ / ‖∇f‖,

the rule `geometry/isosurface.py` implements by hand in its "level_set" mode (and MeshSDF's Eq. 4,
dv/df = −n, where ‖∇f‖ = 1). One problem per vertex: y (V, 3).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from shapelab.declarative.function import declarative_output
from shapelab.declarative.node import DeclarativeNode


class LevelSetPointNode(DeclarativeNode):
    """``field(points (V, 3)) -> (V,)`` closes over the parameters θ that are passed as the node's inputs."""

    def __init__(self, field: Callable[[torch.Tensor], torch.Tensor], vertices: torch.Tensor, level: float = 0.0):
        self.field, self.vertices, self.level = field, vertices.detach(), level

    def objective(self, inputs, y):
        return 0.5 * ((y - self.vertices) ** 2).sum(dim=1)

    def equality_constraints(self, inputs, y):
        return self.field(y).reshape(-1, 1) - self.level

    def solve(self, inputs):
        return self.vertices.clone()


def declarative_vertices(field: Callable[[torch.Tensor], torch.Tensor], vertices: torch.Tensor,
                         parameters: Sequence[torch.Tensor], level: float = 0.0) -> torch.Tensor:
    """Vertices (V, 3) equal to ``vertices`` whose gradient reaches ``parameters`` (those ``field`` uses)."""
    return declarative_output(LevelSetPointNode(field, vertices, level), *parameters)
