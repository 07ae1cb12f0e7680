"""DRWR unary (Eq. 2) and structure-aware repulsion (Eq. 3) against loops; gradcheck; fitting a cloud."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapelab.losses.drwr import (
    crowded,
    drwr_repulsion,
    drwr_unary,
    inside_silhouette,
    sample_bilinear,
)
from shapelab.renderers.point_projection import PointProjection

from shapelab.config import instantiate_group
from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def bilinear_loop(image: np.ndarray, u: float, v: float) -> float:
    """Bilinear interpolation between pixel centres (c + 0.5, r + 0.5), clamped to the border centres."""
    height, width = image.shape
    x = min(max(u - 0.5, 0.0), width - 1.0)
    y = min(max(v - 0.5, 0.0), height - 1.0)
    c0, r0 = min(int(x), width - 2), min(int(y), height - 2)
    fx, fy = x - c0, y - r0
    return ((1 - fx) * (1 - fy) * image[r0, c0] + fx * (1 - fy) * image[r0, c0 + 1]
            + (1 - fx) * fy * image[r0 + 1, c0] + fx * fy * image[r0 + 1, c0 + 1])


def test_sample_bilinear_matches_loop():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(5, 7))
    uv = rng.uniform(-2, 9, size=(40, 2))
    ours = sample_bilinear(torch.from_numpy(image), torch.from_numpy(uv)).numpy()
    assert np.allclose(ours, [bilinear_loop(image, u, v) for u, v in uv])


def test_unary_matches_loop_and_pulls_from_outside_the_image():
    rng = np.random.default_rng(1)
    dist = rng.uniform(0, 5, size=(1, 2, 6, 8))
    uv = rng.uniform(-3, 10, size=(1, 2, 9, 2))
    ours = drwr_unary(torch.from_numpy(uv), torch.from_numpy(dist), decay_px=4.0).numpy()
    for v in range(2):
        expected = []
        for u, w in uv[0, v]:
            outside = math.hypot(u - min(max(u, 0.5), 7.5), w - min(max(w, 0.5), 5.5))
            expected.append((bilinear_loop(dist[0, v], u, w) + outside) / 4.0)
        assert ours[0, v] == pytest.approx(np.mean(expected), rel=1e-10)


def test_inside_silhouette_uses_the_pixel_containing_the_point():
    mask = torch.zeros(1, 1, 4, 5)
    mask[0, 0, 1, 3] = 1
    uv = torch.tensor([[[[3.2, 1.9], [3.9, 1.1], [2.9, 1.5], [3.5, 2.1], [-0.5, 1.5], [3.5, 9.0]]]])
    assert inside_silhouette(uv, mask).tolist() == [[[True, True, False, False, False, False]]]


def repulsion_loop(uv: np.ndarray, inside: np.ndarray, h: float, cutoff: float) -> float:
    n = len(uv)
    total = 0.0
    for i in range(n):
        for j in range(n):
            d2 = ((uv[i] - uv[j]) ** 2).sum()
            if i != j and inside[i] and inside[j] and d2 < (cutoff * h) ** 2:
                total += math.exp(-d2 / h**2)
    return total / n


@pytest.mark.parametrize("cutoff", [100.0, 3.0, 1.0])
def test_repulsion_matches_pair_loop_only_inside_pairs(cutoff):
    rng = np.random.default_rng(2)
    uv = rng.uniform(0, 6, size=(2, 3, 15, 2))
    inside = rng.uniform(size=(2, 3, 15)) < 0.6
    ours = drwr_repulsion(torch.from_numpy(uv), torch.from_numpy(inside), 1.5, cutoff).numpy()
    expected = np.array([[repulsion_loop(uv[b, v], inside[b, v], 1.5, cutoff) for v in range(3)] for b in range(2)])
    assert np.allclose(ours, expected, rtol=1e-12)
    if cutoff == 3.0:  # the neighbour cut changes the all-pairs value by < exp(-9) per pair
        all_pairs = drwr_repulsion(torch.from_numpy(uv), torch.from_numpy(inside), 1.5, 100.0).numpy()
        assert np.allclose(ours, all_pairs, atol=15 * math.exp(-9))


@pytest.mark.parametrize("spread, dense", [(0.5, True), (40.0, False)])
def test_repulsion_dense_and_neighbour_paths_match_the_loop(spread, dense):
    """A clump (the untrained network's) takes the dense N x N kernel, spread points the KD-tree pairs; same values."""
    rng = np.random.default_rng(4)
    uv = 30 + spread * rng.uniform(size=(1, 2, 60, 2))
    inside = rng.uniform(size=(1, 2, 60)) < 0.8
    assert crowded(torch.from_numpy(uv[0]), torch.from_numpy(inside[0]), 3.0) == dense
    ours = drwr_repulsion(torch.from_numpy(uv), torch.from_numpy(inside), 1.0).numpy()
    expected = [repulsion_loop(uv[0, v], inside[0, v], 1.0, 3.0) for v in range(2)]
    assert np.allclose(ours[0], expected, rtol=1e-12) and min(expected) > 0


def test_drwr_terms_pass_gradcheck():
    rng = np.random.default_rng(3)
    uv = torch.from_numpy(rng.uniform(0.7, 5.3, size=(1, 2, 6, 2))).requires_grad_()
    uv_off = torch.from_numpy(rng.uniform(-3, 9, size=(1, 2, 6, 2))).requires_grad_()
    dist = torch.from_numpy(rng.uniform(0, 3, size=(1, 2, 6, 6)))
    inside = torch.from_numpy(rng.uniform(size=(1, 2, 6)) < 0.7)
    assert torch.autograd.gradcheck(lambda p: drwr_repulsion(p, inside, 1.2), (uv,))
    assert torch.autograd.gradcheck(lambda p: drwr_unary(p, dist, 3.0), (uv,))
    # away from pixel centres so the piecewise-bilinear kinks are not hit by the finite differences
    uv_off = (uv_off.detach().floor() + 0.5 + 0.3 * torch.rand_like(uv_off) + 0.05).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: drwr_unary(p, dist, 3.0), (uv_off,))


def silhouette_coverage(points: torch.Tensor, batch: dict) -> float:
    """Mean share of silhouette pixels that contain at least one projected point."""
    uv = PointProjection()(points, batch["K"], batch["Rt"], None)["uv"]
    masks = batch["masks"][0]
    covered = torch.zeros_like(masks)
    col, row = uv[0].floor().long().clamp(0, masks.shape[-1] - 1).unbind(-1)
    for v in range(len(masks)):
        covered[v, row[v], col[v]] = 1.0
    return ((covered * masks).sum() / masks.sum()).item()


def test_drwr_loss_fits_a_cloud_to_the_masks():
    from shapelab.metrics.chamfer import chamfer_distance

    from tests.losses.test_capnet import box_views, fit_free_cloud

    batch, target = box_views(num_views=4, size=24, generator=torch.Generator().manual_seed(0))
    start, fitted = fit_free_cloud(instantiate_group("loss/drwr"), PointProjection(), batch, steps=150, lr=0.01, init_std=0.3)
    before = chamfer_distance(start, target[None]).item()
    after = chamfer_distance(fitted, target[None]).item()
    assert after < 0.4 * before, (before, after)


def test_drwr_repulsion_spreads_points_over_the_silhouettes():
    from tests.losses.test_capnet import box_views, fit_free_cloud

    batch, _ = box_views(num_views=4, size=24, generator=torch.Generator().manual_seed(0))
    # a clump inside every silhouette: the unary term alone has nothing to do
    start, spread = fit_free_cloud(instantiate_group("loss/drwr"), PointProjection(), batch, steps=100, lr=0.01, init_std=0.02)
    _, unary_only = fit_free_cloud(instantiate_group("loss/drwr", repulsion_weight=0.0), PointProjection(), batch, 100, 0.01, init_std=0.02)
    coverage = [silhouette_coverage(p, batch) for p in (start, unary_only, spread)]
    uv = PointProjection()(spread, batch["K"], batch["Rt"], None)["uv"]
    inside_every_view = inside_silhouette(uv, batch["masks"]).all(dim=1).double().mean().item()
    print("coverage start / unary only / drwr", coverage, "inside every silhouette", inside_every_view)
    assert coverage[2] > 2 * coverage[1] and coverage[1] == coverage[0]
    # the default weights keep the spread points inside (with repulsion_weight=3 only 56 % stay inside)
    assert inside_every_view > 0.9
