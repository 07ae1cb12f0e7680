"""Chamfer variants against brute-force references and hand-computed cases."""
import math

import numpy as np
import pytest
import torch
from shapelab.metrics.chamfer import (
    chamfer_capnet,
    chamfer_deepsdf,
    chamfer_distance,
    chamfer_drwr,
    chamfer_occnet,
    normalise_capnet,
)


def brute_nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unsquared distance from each row of a to its nearest row of b, by loops over a."""
    return np.array([min(np.linalg.norm(b - p, axis=1)) for p in a])


@pytest.fixture
def clouds():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 3)), rng.normal(size=(200, 3)) * 0.8 + 0.1


def test_torch_chamfer_matches_brute_force(clouds):
    pred, gt = clouds
    x, y = torch.tensor(pred)[None], torch.tensor(gt)[None]
    squared = (brute_nearest(pred, gt) ** 2).mean() + (brute_nearest(gt, pred) ** 2).mean()
    unsquared = brute_nearest(pred, gt).mean() + brute_nearest(gt, pred).mean()
    assert chamfer_distance(x, y).item() == pytest.approx(squared, rel=1e-10)
    assert chamfer_distance(x, y, squared=False).item() == pytest.approx(unsquared, rel=1e-10)


def test_torch_chamfer_batches_and_chunks(clouds, monkeypatch):
    pred, gt = clouds
    x = torch.tensor(np.stack([pred, pred * 2]))
    y = torch.tensor(np.stack([gt, gt]))
    whole = chamfer_distance(x, y)
    monkeypatch.setattr("shapelab.metrics.chamfer._CHUNK_ELEMENTS", 1000)  # many small chunks
    assert torch.allclose(chamfer_distance(x, y), whole)
    assert whole[0].item() == pytest.approx(chamfer_distance(x[:1], y[:1]).item())
    assert whole[0] != whole[1]


def test_torch_chamfer_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, squared=False), (x, y))


def test_torch_chamfer_identical_is_zero_with_finite_gradient():
    x = torch.rand(1, 50, 3, requires_grad=True)
    value = chamfer_distance(x, x.detach().clone(), squared=False)
    value.sum().backward()
    assert value.item() == 0.0
    assert torch.isfinite(x.grad).all()


def test_occnet_and_deepsdf_chamfer_match_brute_force(clouds):
    pred, gt = clouds
    acc, comp = brute_nearest(pred, gt), brute_nearest(gt, pred)
    occnet = chamfer_occnet(pred, gt)
    assert occnet["accuracy"] == pytest.approx(acc.mean())
    assert occnet["completeness"] == pytest.approx(comp.mean())
    assert occnet["chamfer_l1_occnet"] == pytest.approx(0.5 * (acc.mean() + comp.mean()))
    assert occnet["chamfer_l2_occnet"] == pytest.approx(0.5 * ((acc**2).mean() + (comp**2).mean()))
    assert chamfer_deepsdf(pred, gt) == pytest.approx((acc**2).mean() + (comp**2).mean())


def test_drwr_chamfer_is_unsquared_unnormalised_and_matches_brute_force(clouds):
    pred, gt = clouds
    expected = brute_nearest(pred, gt).mean() + brute_nearest(gt, pred).mean()  # DPC/DRWR eval: sum of the two means
    assert chamfer_drwr(pred, gt) == pytest.approx(expected, rel=1e-12)
    assert chamfer_drwr(2.0 * pred, 2.0 * gt) == pytest.approx(2.0 * expected, rel=1e-12)  # linear in scale: no normalising
    assert chamfer_drwr(np.zeros((0, 3)), gt) == pytest.approx(2 * math.sqrt(3))


def test_scaled_sphere_has_known_chamfer():
    # A sphere of radius 1.1 against the unit sphere along the same directions: each point's nearest
    # neighbour is its radial twin (the clouds are dense), at distance exactly 0.1.
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(4000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    inner, outer = directions, directions * 1.1  # same directions: nearest distance is exactly 0.1
    occnet = chamfer_occnet(outer, inner)
    assert occnet["chamfer_l1_occnet"] == pytest.approx(0.1, rel=1e-9)
    assert occnet["chamfer_l2_occnet"] == pytest.approx(0.01, rel=1e-9)
    assert chamfer_deepsdf(outer, inner) == pytest.approx(0.02, rel=1e-9)


def test_identical_clouds_are_zero(clouds):
    pred, _ = clouds
    assert chamfer_occnet(pred, pred)["chamfer_l1_occnet"] == 0.0
    assert chamfer_deepsdf(pred, pred) == 0.0
    assert chamfer_capnet(pred, pred) == 0.0


def test_empty_prediction_gets_occnet_penalty(clouds):
    _, gt = clouds
    empty = np.zeros((0, 3))
    occnet = chamfer_occnet(empty, gt)
    assert occnet["chamfer_l1_occnet"] == pytest.approx(math.sqrt(3))
    assert occnet["chamfer_l2_occnet"] == pytest.approx(3.0)
    assert chamfer_deepsdf(empty, gt) == pytest.approx(6.0)
    assert chamfer_capnet(empty, gt) == pytest.approx(6.0)


def test_capnet_normalisation_is_scale_and_offset_invariant(clouds):
    pred, gt = clouds
    normalised = normalise_capnet(pred)
    extent = normalised.max(axis=0) - normalised.min(axis=0)
    assert extent.max() == pytest.approx(1.0)
    assert np.allclose(normalised.max(axis=0) + normalised.min(axis=0), 0.0)
    assert chamfer_capnet(pred * 3.0 + 5.0, gt) == pytest.approx(chamfer_capnet(pred, gt))
    a, b = normalise_capnet(pred), normalise_capnet(gt)
    expected = (brute_nearest(a, b) ** 2).mean() + (brute_nearest(b, a) ** 2).mean()
    assert chamfer_capnet(pred, gt) == pytest.approx(expected)
