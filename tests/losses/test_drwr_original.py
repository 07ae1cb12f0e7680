"""loss=drwr_original (DRWR's released losses): distance image, ring sampling, potential, total; loops and gradcheck."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from shapelab.losses.drwr_original import (
    drwr_distance_image,
    drwr_original_repulsion,
    ring_sample,
    subsample_to_grid,
)

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def square_mask(size: int, low: int, high: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.float64)
    mask[low:high, low:high] = 1.0
    return mask


def test_distance_image_is_the_released_formula_on_the_128_px_render():
    mask = square_mask(128, 40, 90)
    dist = torch.from_numpy(ndimage.distance_transform_edt(mask.numpy() < 0.5))
    image = drwr_distance_image(mask, dist, render_size=128)
    for (i, j) in [(50, 50), (39, 60), (0, 0), (100, 127)]:
        if mask[i, j]:
            assert image[i, j] == 1.0
        else:  # the released sdf(): 220 - (255 / (64 sqrt 2)) * min distance to a white pixel, then / 255
            d = min(math.hypot(i - k, j - l) for k in range(40, 90) for l in range(40, 90))
            assert image[i, j].item() == pytest.approx((220 - 255 / (64 * math.sqrt(2)) * d) / 255, rel=1e-12)
    # the same silhouette at 64 px measures its distances in 128-px pixels: d doubles
    half = drwr_distance_image(mask[::2, ::2], dist[::2, ::2] / 2, render_size=128)
    assert torch.allclose(half, image[::2, ::2])
    # TF1 bilinear resizing by an integer factor takes every k-th pixel from 0
    assert torch.equal(subsample_to_grid(image, 32), image[::4, ::4])
    with pytest.raises(ShapelabError, match="mask_size=100"):
        subsample_to_grid(torch.zeros(100, 100), 32)


def ring_loop(image: np.ndarray, x: float, y: float, r: int) -> float:
    """DRWR bilinear_sampler for one point and one ring r, written out with scalars."""
    height, width = image.shape

    def clip(value, limit):
        return min(max(value, 0.0), limit - 1.0)

    x0, x1 = clip(math.floor(x - r), width), clip(math.floor(x + r) + 1, width)
    y0, y1 = clip(math.floor(y - r), height), clip(math.floor(y + r) + 1, height)
    wx0, wx1 = x1 - clip(x + r, width), clip(x - r, width) - x0
    wy0, wy1 = y1 - clip(y + r, height), clip(y - r, height) - y0
    return (wx0 * wy0 * image[int(y0), int(x0)] + wx0 * wy1 * image[int(y1), int(x0)]
            + wx1 * wy0 * image[int(y0), int(x1)] + wx1 * wy1 * image[int(y1), int(x1)])


def test_ring_sample_matches_loop_and_ring_zero_is_bilinear():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(9, 11))
    xy = rng.uniform(-2, 12, size=(1, 30, 2))
    ours = ring_sample(torch.from_numpy(image)[None], torch.from_numpy(xy), 4)[0].numpy()
    expected = [[ring_loop(image, x, y, r) for r in range(4)] for x, y in xy[0]]
    assert np.allclose(ours, expected, atol=1e-12)
    inner = torch.tensor([[[3.25, 4.5]]], dtype=torch.float64)
    manual = 0.75 * 0.5 * image[4, 3] + 0.25 * 0.5 * image[4, 4] + 0.75 * 0.5 * image[5, 3] + 0.25 * 0.5 * image[5, 4]
    assert ring_sample(torch.from_numpy(image)[None], inner, 1).item() == pytest.approx(manual, rel=1e-12)


def test_repulsion_matches_pair_loop():
    rng = np.random.default_rng(1)
    xy, w, b = rng.uniform(0, 6, (2, 7, 2)), rng.uniform(0, 1, (2, 7)), rng.uniform(3, 4.5, (2, 7))
    ours = drwr_original_repulsion(torch.from_numpy(xy), torch.from_numpy(w), torch.from_numpy(b), 5.0).numpy()
    for m in range(2):
        expected = np.mean([w[m, i] * np.mean([math.exp(-np.sum((xy[m, i] - xy[m, j]) ** 2) / 5.0 + b[m, i]) * w[m, j]
                                               for j in range(7)]) for i in range(7)])
        assert ours[m] == pytest.approx(expected, rel=1e-12)


def views_batch(size: int = 64):
    """One shape, two views of a centred square silhouette, in mask pixels."""
    masks = torch.stack([square_mask(size, 16, 48), square_mask(size, 20, 44)])[None]
    dist = torch.from_numpy(np.stack([ndimage.distance_transform_edt(m < 0.5) for m in masks[0].numpy()]))[None]
    return {"masks": masks, "dist": dist}


def test_total_loss_gradcheck_and_weights():
    batch = views_batch()
    gen = torch.Generator().manual_seed(0)
    uv = (torch.rand(1, 2, 12, 2, generator=gen, dtype=torch.float64) * 50 + 7).requires_grad_()
    loss = instantiate_group("loss/drwr_original")
    terms = loss(None, {"uv": uv}, batch)
    assert terms["loss"].item() == pytest.approx(terms["unary"].item() + 3 * terms["repulsion"].item(), rel=1e-12)
    assert terms["repulsion"].item() > 0 and terms["unary"].item() > 0
    assert torch.autograd.gradcheck(lambda p: loss(None, {"uv": p}, batch)["loss"], (uv,))


def test_unary_pulls_outside_points_in_and_repulsion_spreads_inside_points():
    batch = views_batch()
    outside = torch.tensor([[[[60.0, 32.0]], [[60.0, 32.0]]]], dtype=torch.float64, requires_grad=True)
    instantiate_group("loss/drwr_original", repulsion_weight=0.0)(None, {"uv": outside}, batch)["loss"].backward()
    assert (outside.grad[..., 0] > 0).all()  # descent moves u down, toward the squares
    pair = torch.tensor([[[[31.0, 32.0], [33.0, 32.0]]] * 2], dtype=torch.float64, requires_grad=True)
    instantiate_group("loss/drwr_original", unary_weight=0.0)(None, {"uv": pair}, batch)["loss"].backward()
    assert pair.grad[0, 0, 0, 0] > 0 > pair.grad[0, 0, 1, 0]  # descent pushes the two points apart
