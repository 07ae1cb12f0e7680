"""The declarative node interface (Gould, Hartley & Campbell 2020, "Deep Declarative Networks", Sec. 4).

A node maps inputs x (one or more tensors) to P independent solutions, y: (P, m), where each row is

    y_p(x) ∈ argmin_u f_p(x, u)   subject to  h_p(x, u) = 0  and  g_p(x, u) <= 0.

``solve`` may be any solver, even a non-differentiable one (it runs under ``torch.no_grad``); the backward
pass comes from the implicit function theorem (`shapelab.declarative.function`). Problems must be
independent: f_p, h_p, g_p may depend on row p of y only (the shared inputs may be anything).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

SINGULAR_POLICIES = ("raise", "zero")


class DeclarativeNode(ABC):
    """Subclass and give `objective` and `solve` (+ constraints when there are any).

    Attributes:
        regularisation: ε >= 0 added to the Hessian's diagonal when it is not positive definite at the
            solution (0 = never). Documented per node where a node sets it.
        on_singular: what happens when the (regularised) Hessian is still not positive definite for
            some problems: "raise" (a `ShapelabError` naming the node) or "zero" (those problems get
            zero gradient, as the DDN reference code does for robust pooling with no inlier).
        dense_max_dim: solutions with m <= this get the dense Hessian (m Hessian-vector products, then
            Cholesky); larger ones use conjugate gradients on Hessian-vector products.
        cg_iterations, cg_tolerance: conjugate-gradient limits (relative residual).
        inequality_tolerance: an inequality g <= 0 counts as active (treated as an equality) when
            g > -inequality_tolerance at the solution (Gould et al. Sec. 4.4).
    """

    regularisation: float = 0.0
    on_singular: str = "raise"
    dense_max_dim: int = 64
    cg_iterations: int = 200
    cg_tolerance: float = 1e-10
    inequality_tolerance: float = 1e-6

    @abstractmethod
    def objective(self, inputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
        """f_p(x, y_p) for every problem: inputs as given to the node, y (P, m) -> (P,)."""

    @abstractmethod
    def solve(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """A minimiser y (P, m) of every problem (called without gradient tracking)."""

    def equality_constraints(self, inputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor | None:
        """h_p(x, y_p) = 0 constraints, (P, p), or None when there are none."""
        return None

    def inequality_constraints(self, inputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor | None:
        """g_p(x, y_p) <= 0 constraints, (P, q), or None when there are none."""
        return None

    def name(self) -> str:
        return type(self).__name__
