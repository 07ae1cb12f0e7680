"""Normal consistency, F-score, IoU and EMD against brute-force references and hand cases."""
import itertools

import numpy as np
import pytest
import torch
import trimesh
from shapelab.metrics.emd import earth_movers_distance, emd_capnet
from shapelab.metrics.fscore import fscore
from shapelab.metrics.iou import mesh_iou, occupancy_iou
from shapelab.metrics.normal_consistency import normal_consistency


def brute_nearest_index(a, b):
    return np.array([np.argmin(np.linalg.norm(b - p, axis=1)) for p in a])


@pytest.fixture
def oriented_clouds():
    rng = np.random.default_rng(3)
    pred, gt = rng.normal(size=(150, 3)), rng.normal(size=(120, 3))
    return pred, rng.normal(size=(150, 3)), gt, rng.normal(size=(120, 3))


def test_normal_consistency_matches_brute_force(oriented_clouds):
    pred, pred_n, gt, gt_n = oriented_clouds
    unit = lambda n: n / np.linalg.norm(n, axis=1, keepdims=True)
    i, j = brute_nearest_index(pred, gt), brute_nearest_index(gt, pred)
    expected = 0.5 * (np.abs((unit(pred_n) * unit(gt_n)[i]).sum(1)).mean()
                      + np.abs((unit(gt_n) * unit(pred_n)[j]).sum(1)).mean())
    assert normal_consistency(pred, pred_n, gt, gt_n) == pytest.approx(expected)


def test_normal_consistency_hand_cases():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    points, normals = sphere.vertices, sphere.vertex_normals
    assert normal_consistency(points, normals, points, normals) == pytest.approx(1.0)
    assert normal_consistency(points, -normals * 5, points, normals) == pytest.approx(1.0)  # |dot|, unit
    tangent = np.cross(normals, np.array([0.0, 0.0, 1.0]) + 1e-3)
    assert normal_consistency(points, tangent, points, normals) == pytest.approx(0.0, abs=1e-6)
    assert normal_consistency(np.zeros((0, 3)), np.zeros((0, 3)), points, normals) == -1.0


def test_fscore_matches_brute_force(oriented_clouds):
    pred, _, gt, _ = oriented_clouds
    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    precision, recall = (d.min(1) < 0.3).mean(), (d.min(0) < 0.3).mean()
    result = fscore(pred, gt, 0.3)
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["fscore"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_fscore_hand_cases():
    gt = np.array([[0.0, 0, 0], [1, 0, 0]])
    pred = np.array([[0.0, 0, 0.005], [5, 5, 5]])  # one close point, one far
    result = fscore(pred, gt, 0.01)
    assert (result["precision"], result["recall"]) == (0.5, 0.5)
    assert result["fscore"] == pytest.approx(0.5)
    assert fscore(np.zeros((0, 3)), gt, 0.01)["fscore"] == 0.0


def test_occupancy_iou_hand_and_batched():
    pred = np.array([1, 1, 0, 0, 1], bool)
    gt = np.array([1, 0, 0, 1, 1], bool)
    assert occupancy_iou(pred, gt) == pytest.approx(2 / 4)
    assert occupancy_iou(np.zeros(3, bool), np.zeros(3, bool)) == 0.0
    logits = torch.tensor([[3.0, 3.0, -3.0, -3.0, 3.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
    occ = torch.tensor(np.stack([gt, np.ones(5, bool)]), dtype=torch.float32)
    assert torch.allclose(occupancy_iou(logits > 0, occ > 0.5), torch.tensor([0.5, 1.0]))


def test_mesh_iou_of_box_against_analytic_occupancy():
    rng = np.random.default_rng(4)
    points = rng.uniform(-0.55, 0.55, size=(20000, 3))
    inside_half_box = np.all(np.abs(points) <= 0.25, axis=1)
    box = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    assert mesh_iou(box, points, inside_half_box) == pytest.approx(1.0, abs=1e-3)
    shifted = box.copy().apply_translation((0.25, 0, 0))  # overlaps half: IoU = 1/3
    assert mesh_iou(shifted, points, inside_half_box) == pytest.approx(1 / 3, abs=0.02)
    assert mesh_iou(None, points, inside_half_box) == 0.0
    assert mesh_iou(trimesh.Trimesh(), points, inside_half_box) == 0.0


def test_emd_matches_brute_force_permutations():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    best = min(np.linalg.norm(x - y[list(p)], axis=1).mean() for p in itertools.permutations(range(6)))
    assert earth_movers_distance(x, y) == pytest.approx(best)
    best_sq = min((np.linalg.norm(x - y[list(p)], axis=1) ** 2).mean() for p in itertools.permutations(range(6)))
    assert earth_movers_distance(x, y, squared=True) == pytest.approx(best_sq)


def test_emd_hand_cases_and_split_bound():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(600, 3))
    assert earth_movers_distance(x, x[rng.permutation(600)]) == 0.0
    assert earth_movers_distance(x, x + [0.3, 0.4, 0.0]) == pytest.approx(0.5)  # translation: |t|
    y = rng.normal(size=(600, 3))
    exact = earth_movers_distance(x, y)
    approx = earth_movers_distance(x, y, max_exact=200)
    assert exact <= approx < 1.5 * exact
    assert emd_capnet(x * 2 + 1, y) == pytest.approx(emd_capnet(x, y))
    assert earth_movers_distance(np.zeros((0, 3)), np.zeros((0, 3))) == pytest.approx(np.sqrt(3))
    with pytest.raises(ValueError, match="equal point counts"):
        earth_movers_distance(x, y[:10])
