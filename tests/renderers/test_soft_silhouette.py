"""Soft silhouette rasteriser against a loop reference, a hard rasteriser and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from shapelab.renderers.cameras import look_at_origin
from shapelab.renderers.soft_silhouette import SoftSilhouette, rasterise_soft_silhouette, soft_silhouette


def point_segment_distance(p, a, b):
    e = b - a
    t = min(1.0, max(0.0, float(np.dot(p - a, e) / np.dot(e, e))))
    return float(np.linalg.norm(p - a - t * e))


def reference_silhouette(triangles: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """SoftRas Eq. 1-2 with plain loops over pixels and faces, no culling."""
    image = np.zeros((height, width))
    for row in range(height):
        for col in range(width):
            p = np.array([col + 0.5, row + 0.5])
            transmission = 1.0
            for tri in triangles:
                d = min(point_segment_distance(p, tri[k], tri[(k + 1) % 3]) for k in range(3))
                sides = [np.cross(tri[(k + 1) % 3] - tri[k], p - tri[k]) for k in range(3)]
                inside = all(s > 0 for s in sides) or all(s < 0 for s in sides)
                transmission *= 1.0 - 1.0 / (1.0 + math.exp(-(1 if inside else -1) * d * d / sigma))
            image[row, col] = 1.0 - transmission
    return image


def hard_silhouette(triangles: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies in any triangle (brute force, either winding)."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    p = np.stack([u, v], -1)
    mask = np.zeros((height, width), dtype=bool)
    for tri in triangles:
        sides = [np.cross(tri[(k + 1) % 3] - tri[k], p - tri[k]) for k in range(3)]
        mask |= np.all([s > 0 for s in sides], 0) | np.all([s < 0 for s in sides], 0)
    return mask


def random_triangles(count: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, 2, generator=g, dtype=torch.float64) * size


def sphere_views(image_size: int = 64, subdivisions: int = 3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.5)
    K = torch.tensor([[60.0, 0, image_size / 2], [0, 60.0, image_size / 2], [0, 0, 1]], dtype=torch.float64)
    Rts = [look_at_origin(2.0 * np.array(d) / np.linalg.norm(d)) for d in ([1, 0.5, 0.3], [-0.2, 1, 0.8])]
    return mesh, K.expand(2, 3, 3), torch.tensor(np.stack(Rts))


def test_matches_loop_reference_including_culling_and_chunking():
    triangles = random_triangles(4, 12, seed=0)
    for sigma in (0.5, 3.0):
        ours = rasterise_soft_silhouette(triangles, 12, 12, sigma=sigma, max_pairs=50)
        reference = reference_silhouette(triangles.numpy(), 12, 12, sigma)
        assert np.abs(ours.numpy() - reference).max() < 1e-5


def test_chunks_do_not_change_the_image():
    triangles = random_triangles(30, 40, seed=1)
    a = rasterise_soft_silhouette(triangles, 40, 40, sigma=1.0, max_pairs=1 << 22)
    b = rasterise_soft_silhouette(triangles, 40, 40, sigma=1.0, max_pairs=777)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("cull_backfaces", "aggregation"), [(False, "softras"), (True, "softras"), (True, "nearest_outside")]
)
def test_high_sharpness_matches_hard_rasterisation(cull_backfaces, aggregation):
    mesh, K, Rt = sphere_views()
    vertices, faces = torch.tensor(mesh.vertices), torch.tensor(mesh.faces)
    soft = soft_silhouette(
        vertices, faces, K, Rt, (64, 64), sigma=1e-3, cull_backfaces=cull_backfaces, aggregation=aggregation
    )
    uv = (torch.tensor(mesh.vertices)[None] @ Rt[:, :, :3].mT + Rt[:, None, :, 3]) @ K.mT
    uv = (uv[..., :2] / uv[..., 2:]).numpy()
    for view in range(2):
        hard = hard_silhouette(uv[view][mesh.faces], 64, 64)
        pred = soft[view].numpy() > 0.5
        iou = (pred & hard).sum() / (pred | hard).sum()
        assert hard.sum() > 300 and iou >= 0.98


@pytest.mark.parametrize("aggregation", ["softras", "nearest_outside"])
def test_gradients_match_finite_differences(aggregation):
    triangles = random_triangles(2, 8, seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: rasterise_soft_silhouette(t, 8, 8, sigma=2.0, max_pairs=50, aggregation=aggregation),
        (triangles,),
        eps=1e-6,
        atol=1e-6,
        fast_mode=True,
    )


def test_nearest_outside_is_unbiased_where_the_union_bloats():
    """Fitting the scale of a dense sphere mesh to its own hard silhouette with the L1 loss: the SoftRas
    union at sigma = 1 px^2 bloats the contour (its minimum is a smaller sphere); the nearest-face rule
    outside keeps the minimum at the true scale."""
    mesh, K, Rt = sphere_views(32, subdivisions=4)
    K = K[:1].clone()
    K[:, :2, 2], K[:, 0, 0], K[:, 1, 1] = 16.0, 30.0, 30.0
    vertices, faces = torch.tensor(mesh.vertices), torch.tensor(mesh.faces)
    uv = (vertices[None] @ Rt[:1, :, :3].mT + Rt[:1, None, :, 3]) @ K.mT
    hard = torch.tensor(hard_silhouette((uv[0, :, :2] / uv[0, :, 2:]).numpy()[mesh.faces], 32, 32), dtype=torch.float64)
    scales = [0.85, 0.9, 0.95, 1.0, 1.05]
    best = {}
    for aggregation in ("softras", "nearest_outside"):
        losses = [
            (soft_silhouette(scale * vertices, faces, K, Rt[:1], (32, 32), sigma=1.0, cull_backfaces=True,
                             aggregation=aggregation)[0] - hard).abs().mean().item()
            for scale in scales
        ]
        best[aggregation] = scales[int(np.argmin(losses))]
    assert best["softras"] <= 0.9
    assert best["nearest_outside"] == 1.0


def test_gradients_move_the_mesh_towards_a_larger_target():
    """The silhouette L1 to a larger disk pushes the sphere's vertices outward."""
    mesh, K, Rt = sphere_views(32, subdivisions=2)
    K = K.clone()
    K[:, :2, 2] = 16.0
    K[:, 0, 0] = K[:, 1, 1] = 30.0
    vertices = torch.tensor(mesh.vertices, requires_grad=True)
    renderer = SoftSilhouette(sigma=1.0, cull_backfaces=False, aggregation="softras")
    bigger = renderer(1.3 * vertices.detach(), torch.tensor(mesh.faces), K, Rt, (32, 32))
    loss = (renderer(vertices, torch.tensor(mesh.faces), K, Rt, (32, 32)) - bigger).abs().mean()
    loss.backward()
    radial = (vertices.grad * vertices.detach()).sum(-1)
    assert radial.sum() < 0  # descent direction is outward


def test_empty_mesh_renders_background():
    image = rasterise_soft_silhouette(torch.zeros(0, 3, 2), 5, 6)
    assert image.shape == (5, 6) and image.abs().sum() == 0


@pytest.mark.parametrize("sigma", [0.1, 1.0])
def test_far_from_mesh_is_background(sigma):
    triangle = torch.tensor([[[2.0, 2.0], [6.0, 2.0], [2.0, 6.0]]])
    image = rasterise_soft_silhouette(triangle, 32, 32, sigma=sigma)
    assert image[20:, 20:].max() < 1e-6 and image[2, 2] > 0.3
