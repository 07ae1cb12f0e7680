"""Linear least squares as a declarative node — a test oracle with a closed-form gradient.

    y(A, b) = argmin_u ½‖A u − b‖²,   A (P, k, m) with full column rank, b (P, k)  ->  y (P, m)
"""
from __future__ import annotations

import torch
from shapelab.declarative.node import DeclarativeNode


class LeastSquaresNode(DeclarativeNode):
    def objective(self, inputs, y):
        A, b = inputs
        return 0.5 * (((A @ y[..., None])[..., 0] - b) ** 2).sum(dim=1)

    def solve(self, inputs):
        A, b = inputs
        return torch.linalg.lstsq(A, b[..., None]).solution[..., 0]
