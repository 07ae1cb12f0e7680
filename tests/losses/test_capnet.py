"""CAPNet BCE (Eq. 3) and affinity (Eq. 4) against loops over pixels; gradcheck; fitting a cloud to masks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from shapelab.losses.capnet import (
    capnet_affinity,
    capnet_bce,
    soft_support_distance,
    squared_distance_transform,
)
from shapelab.renderers.gaussian_projection import GaussianProjection, gaussian_splat

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def brute_background_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the nearest foreground pixel, by looping over all pixel pairs."""
    fg = np.argwhere(mask)
    out = np.zeros(mask.shape)
    for i, j in np.ndindex(mask.shape):
        out[i, j] = min(math.hypot(i - k, j - l) for k, l in fg)
    return out


def brute_affinity(pred: np.ndarray, gt: np.ndarray, threshold: float, support_weight: float) -> float:
    """Eq. 4 by loops over pixel pairs; the second term with the soft support cost β·max(0, log τ - log M̂)."""
    gt_fg = np.argwhere(gt > 0.5)
    first = sum(pred[i, j] * min((i - k) ** 2 + (j - l) ** 2 for k, l in gt_fg) for i, j in np.ndindex(gt.shape))
    cost = support_weight * np.maximum(0.0, math.log(threshold) - np.log(np.maximum(pred, 1e-30)))
    second = sum(min((i - k) ** 2 + (j - l) ** 2 + cost[k, l] for k, l in np.ndindex(gt.shape)) for i, j in gt_fg)
    return first + second


def random_masks(seed: int, size: int = 9):
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size))
    gt[2:6, 3:8] = 1
    gt[7, 1] = 1
    pred = rng.uniform(0.0, 1.0, (size, size)) * (rng.uniform(size=(size, size)) < 0.3)
    return pred, gt


def test_bce_matches_pixel_loop():
    pred, gt = random_masks(0)
    pred = np.clip(pred, 0.05, 0.95)
    expected = np.mean([-g * math.log(p) - (1 - g) * math.log(1 - p) for p, g in zip(pred.ravel(), gt.ravel())])
    assert capnet_bce(torch.from_numpy(pred), torch.from_numpy(gt)).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed, threshold, support_weight", [(1, 0.5, 9.0), (2, 0.2, 1.0), (3, 0.9, 100.0)])
def test_affinity_matches_pixel_pair_loop(seed, threshold, support_weight):
    pred, gt = random_masks(seed)
    dist = brute_background_distance(gt > 0.5)
    ours = capnet_affinity(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], torch.from_numpy(dist)[None],
                           threshold, support_weight).item()
    assert ours == pytest.approx(brute_affinity(pred, gt, threshold, support_weight), rel=1e-12)


def test_distance_transform_matches_brute_force_on_a_non_square_image():
    cost = torch.from_numpy(np.random.default_rng(0).uniform(0, 30, (2, 5, 7)))
    expected = torch.tensor([[[min((i - k) ** 2 + (j - l) ** 2 + c[k, l].item() for k, l in np.ndindex(5, 7))
                               for j in range(7)] for i in range(5)] for c in cost], dtype=torch.float64)
    assert torch.equal(squared_distance_transform(cost), expected)


def half_covered_rectangle(size: int = 32):
    """A 16 x 20 px rectangle mask and a real Gaussian splat of points on a 1-px grid over its left half only."""
    gt = torch.zeros(size, size, dtype=torch.float64)
    gt[8:24, 6:26] = 1.0
    rows, cols = torch.meshgrid(torch.arange(8, 24), torch.arange(6, 16), indexing="ij")
    uv = (torch.stack([cols.flatten(), rows.flatten()], -1) + 0.5).double()  # pixel centres, u = column
    dist = torch.from_numpy(ndimage.distance_transform_edt(gt.numpy() < 0.5))
    return gt, uv, dist


def test_uncovered_half_of_the_mask_is_penalised_and_pulls_points_into_it():
    gt, uv, dist = half_covered_rectangle()
    full_uv = torch.cat([uv, uv + torch.tensor([10.0, 0.0], dtype=torch.float64)])  # both halves covered
    full_gt_to_pred = (gt * soft_support_distance(gaussian_splat(full_uv, 32, 32), 0.5, 9.0)).sum().item()
    full = capnet_affinity(gaussian_splat(full_uv, 32, 32), gt, dist).item()
    uv = uv.clone().requires_grad_()
    half = capnet_affinity(gaussian_splat(uv, 32, 32), gt, dist)
    # 16 rows x 10 uncovered columns at 1..10 px from the covered half: D ~ 0.9 g^2 summed is thousands of px^2
    assert full_gt_to_pred == 0.0 and half.item() > 3000 and half.item() > 50 * full, (half.item(), full)
    half.backward()
    rightmost = uv.detach()[:, 0] > 15
    assert (-uv.grad[rightmost, 0] > 0).all()  # descent moves the border column into the uncovered half
    # a few descent steps on the affinity alone: points enter the uncovered half, and the term falls
    points = uv.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([points], lr=0.3)
    for _ in range(30):
        optimizer.zero_grad()
        loss = capnet_affinity(gaussian_splat(points, 32, 32), gt, dist)
        loss.backward()
        optimizer.step()
    moved = (points.detach()[:, 0] > 16).sum().item()
    assert moved > 20 and loss.item() < 0.5 * half.item(), (moved, loss.item())


def test_tau_zero_support_would_be_inert_on_a_splat():
    """Why the support is soft: with τ → 0 every pixel reached by a Gaussian tail counts as predicted."""
    gt, uv, _ = half_covered_rectangle()
    mask = gaussian_splat(uv, 32, 32)
    assert (mask[gt > 0] > 0).all()  # no uncovered pixel has M̂ = 0: each is its own nearest "predicted" pixel
    assert soft_support_distance(mask, 1e-300, 9.0).max().item() == 0.0


def test_loss_total_adds_the_weighted_affinity_and_reductions_match_the_code_and_paper():
    gt, uv, dist = half_covered_rectangle()
    batch = {"masks": gt.expand(2, 3, 32, 32), "dist": dist.expand(2, 3, 32, 32)}
    rendered = {"mask": gaussian_splat(uv, 32, 32).expand(2, 3, 32, 32)}
    mean = instantiate_group("loss/capnet_projection", affinity_weight=1e-2, reduction="mean")(None, rendered, batch)
    summed = instantiate_group("loss/capnet_projection", affinity_weight=1e-2, reduction="sum")(None, rendered, batch)
    per_view = capnet_affinity(rendered["mask"][0, 0], gt, dist)
    assert mean["affinity"].item() == pytest.approx(per_view.item() / 32**2, rel=1e-12)  # pixel mean, views averaged
    assert summed["affinity"].item() == pytest.approx(3 * per_view.item(), rel=1e-12)  # pixel sum, views summed
    assert summed["bce"].item() == pytest.approx(3 * mean["bce"].item(), rel=1e-12)
    for terms in (mean, summed):  # the affinity is part of the optimised total
        assert terms["affinity"].item() > 0
        assert terms["loss"].item() == pytest.approx(terms["bce"].item() + 1e-2 * terms["affinity"].item(), rel=1e-12)
    with pytest.raises(ShapelabError, match="loss.reduction"):
        instantiate_group("loss/capnet_projection", reduction="median")


def test_affinity_uses_distances_not_same_pixel_overlap():
    # the released code's bug compares both masks at the same pixel only; the paper's term grows with distance
    gt = torch.zeros(1, 16, 16)
    gt[0, 4:8, 4:8] = 1
    dist = torch.from_numpy(brute_background_distance(gt[0].numpy() > 0.5))[None].float()
    near, far = torch.zeros(1, 16, 16), torch.zeros(1, 16, 16)
    near[0, 4:8, 9] = 1  # one column right of the square
    far[0, 4:8, 14] = 1  # six columns right
    near_loss, far_loss = capnet_affinity(near, gt, dist).item(), capnet_affinity(far, gt, dist).item()
    assert 0 < near_loss and far_loss > 4 * near_loss


def test_losses_pass_gradcheck():
    pred, gt = random_masks(4)
    pred = torch.from_numpy(np.where(pred > 0, 0.4 + 0.5 * pred, 0.05)).requires_grad_()
    gt_t = torch.from_numpy(gt)
    dist = torch.from_numpy(brute_background_distance(gt > 0.5))

    def total(p):
        return capnet_bce(p, gt_t) + 1e-2 * capnet_affinity(p, gt_t, dist, pred_threshold=0.5, support_weight=2.0)

    assert torch.autograd.gradcheck(total, (pred,))


def box_views(num_views: int, size: int, generator: torch.Generator):
    """A box's masks seen by cameras around it (occnet frame), plus surface samples of the box."""
    from shapelab.renderers.cameras import look_at_origin

    K = torch.tensor([[1.6 * size, 0, size / 2], [0, 1.6 * size, size / 2], [0, 0, 1]], dtype=torch.float64)
    angles = torch.linspace(0, 2 * math.pi, num_views + 1)[:-1]
    Rt = torch.stack([
        torch.from_numpy(look_at_origin(np.array([2.0 * math.cos(a), 0.8, 2.0 * math.sin(a)]))) for a in angles.tolist()
    ])
    half = torch.tensor([0.35, 0.15, 0.25], dtype=torch.float64)
    points = (torch.rand(20_000, 3, generator=generator, dtype=torch.float64) * 2 - 1) * half
    face = torch.randint(0, 3, (20_000,), generator=generator)
    points[torch.arange(20_000), face] = half[face] * torch.sign(points[torch.arange(20_000), face])
    from shapelab.renderers.point_projection import project_points

    uv, _ = project_points(points[None], K.expand(1, num_views, 3, 3), Rt[None])
    masks = torch.zeros(num_views, size, size, dtype=torch.float64)
    col, row = uv[0].floor().long().unbind(-1)
    for v in range(num_views):
        masks[v, row[v], col[v]] = 1.0
    dist = torch.stack([torch.from_numpy(ndimage.distance_transform_edt(m.numpy() < 0.5)) for m in masks])
    batch = {"masks": masks[None], "dist": dist[None], "K": K.expand(1, num_views, 3, 3), "Rt": Rt[None]}
    return batch, points[::40]


def fit_free_cloud(loss: torch.nn.Module, renderer: torch.nn.Module, batch: dict, steps: int, lr: float,
                   init_std: float = 0.05, num_points: int = 128):
    """Optimise a free point cloud (no network) against the views; return it before and after."""
    gen = torch.Generator().manual_seed(5)
    points = (init_std * torch.randn(1, num_points, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    start = points.detach().clone()
    optimizer = torch.optim.Adam([points], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        rendered = renderer(points, batch["K"], batch["Rt"], tuple(batch["masks"].shape[-2:]))
        loss(points, rendered, batch)["loss"].backward()
        optimizer.step()
    return start, points.detach()


def test_capnet_loss_fits_a_cloud_to_the_masks():
    from shapelab.metrics.chamfer import chamfer_distance

    batch, target = box_views(num_views=4, size=24, generator=torch.Generator().manual_seed(0))
    loss = instantiate_group("loss/capnet_projection")
    start, fitted = fit_free_cloud(loss, GaussianProjection(sigma_sq=0.5), batch, steps=150, lr=0.01)
    before = chamfer_distance(start, target[None]).item()
    after = chamfer_distance(fitted, target[None]).item()
    print(f'chamfer before {before:.4f} after {after:.4f}')
    assert after < 0.25 * before, (before, after)
    terms = loss(fitted, instantiate_group("renderer/gaussian_projection")(fitted, batch["K"], batch["Rt"], (24, 24)), batch)
    assert set(terms) == {"loss", "bce", "affinity"}
