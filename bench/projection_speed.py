"""CAPNet Gaussian projection: separable (ours) vs the dense per-point-per-pixel splat (the released code's way).

Both compute M̂ = tanh(Σ_k φ(u_k - col) φ(v_k - row)) exactly; the dense way materialises a (views, N, H, W)
kernel tensor, ours two (views, N, W) and (views, N, H) tables and one batched matmul. Timed forward +
backward on CAPNet's sizes (batch 8 × 4 views, 1024 points, 64×64), same inputs, same run.

    python bench/projection_speed.py [--quick]

Last line: ``projection_speed separable_ms=<> dense_ms=<> speedup=<> separable_mb=<> dense_mb=<> max_abs_diff=<>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shapelab.renderers.gaussian_projection import gaussian_splat


def dense_splat(uv: torch.Tensor, height: int, width: int, sigma_sq: float = 0.5) -> torch.Tensor:
    """Reference: every point's kernel evaluated on every pixel, (..., N, H, W), then summed."""
    cols = torch.arange(width, dtype=uv.dtype) + 0.5
    rows = torch.arange(height, dtype=uv.dtype) + 0.5
    du = uv[..., 0, None, None] - cols[None, :]
    dv = uv[..., 1, None, None] - rows[:, None]
    return torch.tanh(torch.exp(-(du**2 + dv**2) / (2.0 * sigma_sq)).sum(dim=-3))


def time_fwd_bwd(fn, uv: torch.Tensor, size: int, repeats: int) -> tuple[float, torch.Tensor]:
    best = float("inf")
    for _ in range(repeats):
        points = uv.clone().requires_grad_()
        start = time.perf_counter()
        mask = fn(points, size, size)
        mask.square().sum().backward()
        best = min(best, time.perf_counter() - start)
    return best * 1e3, mask.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    views, points, size = 32, 1024, 64
    uv = torch.rand(views, points, 2, generator=torch.Generator().manual_seed(0)) * (size - 8) + 4
    repeats = 2 if args.quick else 5
    separable_ms, separable = time_fwd_bwd(gaussian_splat, uv, size, repeats)
    dense_ms, dense = time_fwd_bwd(dense_splat, uv, size, repeats)
    separable_mb = views * points * 2 * size * 4 / 2**20  # the two kernel tables, float32
    dense_mb = views * points * size * size * 4 / 2**20  # the (views, N, H, W) kernel tensor
    diff = (separable - dense).abs().max().item()
    print(f"{views} views x {points} points on {size}x{size}, fwd+bwd, best of {repeats}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  separable (ours): {separable_ms:9.1f} ms   kernel tables {separable_mb:8.1f} MB")
    print(f"  dense reference : {dense_ms:9.1f} ms   kernel tensor {dense_mb:8.1f} MB")
    print(f"projection_speed separable_ms={separable_ms:.1f} dense_ms={dense_ms:.1f} "
          f"speedup={dense_ms / separable_ms:.1f} separable_mb={separable_mb:.1f} dense_mb={dense_mb:.1f} "
          f"max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
