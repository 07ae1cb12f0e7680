"""Robust pooling as a declarative node (Gould et al. 2020, Sec. 5.1; penalties of their Table 1).

    y(x) = argmin_u Σ_i φ(u − x_i; α)

over a set of values x_1..x_N, one problem per pooled feature. φ(z; α) (α > 0, the scale in the units of x):
    quadratic            ½ z²                                   (y = mean: the test oracle)
    pseudo_huber         α² (√(1 + (z/α)²) − 1)
    huber                ½ z² for |z| <= α, else α (|z| − ½ α)
    welsch               1 − exp(−z² / (2 α²))
    truncated_quadratic  ½ z² for |z| <= α, else ½ α²
The forward pass is iteratively reweighted least squares (half-quadratic minimisation, monotone for all five
penalties) from the mean, and for the non-convex penalties also from the median (the non-differentiable sort),
keeping the lower objective — the starts of the DDN reference code, which then runs L-BFGS. The backward is
the implicit gradient; a problem with no residual inside the quadratic region (flat objective, H = 0) gets zero
gradient, as in the reference code (``on_singular="zero"``). Unlike the reference code, Welsch gradients are
not clipped to ±1.
"""
from __future__ import annotations

import torch
from shapelab.declarative.function import declarative_output
from shapelab.declarative.node import DeclarativeNode

from shapelab.errors import ShapelabError

PENALTIES = ("quadratic", "pseudo_huber", "huber", "welsch", "truncated_quadratic")
CONVEX = {"quadratic", "pseudo_huber", "huber"}


def robust_penalty(z: torch.Tensor, penalty: str, alpha: float) -> torch.Tensor:
    """φ(z; α) elementwise (same shape as z)."""
    if penalty == "quadratic":
        return 0.5 * z**2
    if penalty == "pseudo_huber":
        return alpha**2 * (torch.sqrt(1 + (z / alpha) ** 2) - 1)
    if penalty == "huber":
        return torch.where(z.abs() <= alpha, 0.5 * z**2, alpha * (z.abs() - 0.5 * alpha))
    if penalty == "welsch":
        return 1 - torch.exp(-(z**2) / (2 * alpha**2))
    if penalty == "truncated_quadratic":
        return torch.where(z.abs() <= alpha, 0.5 * z**2, torch.full_like(z, 0.5 * alpha**2))
    raise ShapelabError(f"robust pooling penalty {penalty!r} unknown; use one of {PENALTIES}")


def _irls_weight(z: torch.Tensor, penalty: str, alpha: float) -> torch.Tensor:
    """φ'(z)/z, the weight of residual z in the half-quadratic (IRLS) step."""
    if penalty == "quadratic":
        return torch.ones_like(z)
    if penalty == "pseudo_huber":
        return torch.rsqrt(1 + (z / alpha) ** 2)
    if penalty == "huber":
        return alpha / z.abs().clamp_min(alpha)
    if penalty == "welsch":
        return torch.exp(-(z**2) / (2 * alpha**2)) / alpha**2
    return (z.abs() <= alpha).to(z.dtype)


class RobustPoolingNode(DeclarativeNode):
    """inputs: (x (P, N),) -> y (P, 1), the robust average of each row."""

    on_singular = "zero"

    def __init__(self, penalty: str = "pseudo_huber", alpha: float = 1.0, iterations: int = 200):
        if penalty not in PENALTIES:
            raise ShapelabError(f"robust pooling penalty {penalty!r} unknown; use one of {PENALTIES}")
        if not alpha > 0:
            raise ShapelabError(f"robust pooling alpha must be > 0, got {alpha}")
        self.penalty, self.alpha, self.iterations = penalty, float(alpha), iterations

    def objective(self, inputs, y):
        (x,) = inputs
        return robust_penalty(y - x, self.penalty, self.alpha).sum(dim=1)

    def _irls(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        tolerance = 1e-12 if x.dtype == torch.float64 else 1e-6
        for _ in range(self.iterations):
            weight = _irls_weight(y - x, self.penalty, self.alpha)
            total = weight.sum(dim=1, keepdim=True)
            updated = torch.where(total > 0, (weight * x).sum(dim=1, keepdim=True) / total.clamp_min(1e-30), y)
            converged = bool(((updated - y).abs() <= tolerance * (1 + y.abs())).all())
            y = updated
            if converged:
                break
        return y

    def solve(self, inputs):
        (x,) = inputs
        y = self._irls(x, x.mean(dim=1, keepdim=True))
        if self.penalty in CONVEX:
            return y
        from_median = self._irls(x, x.median(dim=1, keepdim=True).values)
        better = self.objective(inputs, from_median) < self.objective(inputs, y)
        return torch.where(better[:, None], from_median, y)

    def name(self) -> str:
        return f"RobustPoolingNode({self.penalty}, alpha={self.alpha})"


def robust_pool(x: torch.Tensor, dim: int, penalty: str = "pseudo_huber", alpha: float = 1.0) -> torch.Tensor:
    """Robust pooling of ``x`` over ``dim`` (e.g. points (B, N, C), dim=1 -> (B, C)), differentiable."""
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    pooled = declarative_output(RobustPoolingNode(penalty, alpha), rows)
    return pooled.reshape(moved.shape[:-1])
