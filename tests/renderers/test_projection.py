"""CAPNet Gaussian projection and DRWR point projection against brute force, gradcheck and real masks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapelab.renderers.cameras import extrinsics_for_normalised_frame, occnet_to_opencv
from shapelab.renderers.gaussian_projection import GaussianProjection, gaussian_splat
from shapelab.renderers.point_projection import PointProjection, project_points

from tests.torch_threads import single_thread  # noqa: F401  (autouse: one torch thread)


def random_cameras(batch: int, views: int, generator: torch.Generator, dtype=torch.float64):
    """Cameras at distance ~2 looking at the origin from random directions (OpenCV), 32x32 px."""
    K = torch.tensor([[40.0, 0, 16.0], [0, 40.0, 16.0], [0, 0, 1]], dtype=dtype).expand(batch, views, 3, 3)
    R = torch.linalg.qr(torch.randn(batch, views, 3, 3, generator=generator, dtype=dtype)).Q
    R = R * torch.linalg.det(R)[..., None, None]  # proper rotations
    t = torch.tensor([0.0, 0.0, 2.0], dtype=dtype).expand(batch, views, 3)
    return K.contiguous(), torch.cat([R, t[..., None]], dim=-1)


def test_project_points_matches_per_point_loop():
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2, 7, 3, generator=gen, dtype=torch.float64) - 0.5
    K, Rt = random_cameras(2, 3, gen)
    uv, depth = project_points(points, K, Rt)
    for b in range(2):
        for v in range(3):
            for n in range(7):
                x = Rt[b, v, :, :3] @ points[b, n] + Rt[b, v, :, 3]
                u = K[b, v, 0, 0] * x[0] / x[2] + K[b, v, 0, 2]
                w = K[b, v, 1, 1] * x[1] / x[2] + K[b, v, 1, 2]
                assert torch.allclose(uv[b, v, n], torch.stack([u, w]))
                assert torch.isclose(depth[b, v, n], x[2])


def test_gaussian_splat_matches_loop_over_points_and_pixels():
    gen = torch.Generator().manual_seed(1)
    uv = torch.rand(2, 5, 2, generator=gen, dtype=torch.float64) * torch.tensor([9.0, 6.0])
    sigma_sq = 0.7
    mask = gaussian_splat(uv, 6, 9, sigma_sq)
    assert mask.shape == (2, 6, 9)
    for b in range(2):
        for row in range(6):
            for col in range(9):
                total = sum(
                    math.exp(-((uv[b, k, 0] - col - 0.5) ** 2) / (2 * sigma_sq))
                    * math.exp(-((uv[b, k, 1] - row - 0.5) ** 2) / (2 * sigma_sq))
                    for k in range(5)
                )
                assert mask[b, row, col].item() == pytest.approx(math.tanh(total), abs=1e-12)


def test_single_point_peaks_at_its_pixel_row_major():
    # u = column 6, v = row 2 (centre 6.5, 2.5): a transposed grid would peak at (6, 2) instead
    mask = gaussian_splat(torch.tensor([[6.5, 2.5]]), 8, 10)
    assert divmod(int(mask.argmax()), 10) == (2, 6)
    assert mask.max().item() == pytest.approx(math.tanh(1.0))


def test_projection_gradients_pass_gradcheck():
    gen = torch.Generator().manual_seed(2)
    points = (0.3 * torch.randn(1, 4, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    K, Rt = random_cameras(1, 2, gen)

    def render(p):
        return GaussianProjection(sigma_sq=2.0)(p, K, Rt, (12, 12))["mask"]

    assert torch.autograd.gradcheck(render, (points,))
    assert torch.autograd.gradcheck(lambda p: PointProjection()(p, K, Rt, (12, 12))["uv"], (points,))


def test_splat_memory_is_per_axis_not_dense():
    # 20k points on a 128x128 grid: dense (N,H,W) would be 1.3 GB in float32; separable is ~20 MB
    uv = torch.rand(20_000, 2) * 128
    mask = gaussian_splat(uv, 128, 128)
    assert mask.shape == (128, 128) and mask.max() > 0.99


def shared_views(shapenet_dir, view_ids):
    """Surface points (occnet frame) and, per view, OpenCV K / Rt acting on them and the mask."""
    from PIL import Image

    cloud = np.load(shapenet_dir / "pointcloud.npz")
    scale, loc = float(cloud["scale"]), cloud["loc"].astype(np.float64)
    cams = np.load(shapenet_dir / "img_choy2016" / "cameras.npz")
    Ks, Rts, masks = [], [], []
    for i in view_ids:
        K, Rt = occnet_to_opencv(cams[f"camera_mat_{i}"], cams[f"world_mat_{i}"])
        Ks.append(K)
        Rts.append(extrinsics_for_normalised_frame(Rt, loc, scale))
        image = np.asarray(Image.open(shapenet_dir / "img_choy2016" / f"{i:03d}.jpg").convert("L"))
        masks.append(image < 245)  # white background
    return cloud["points"].astype(np.float64), np.stack(Ks), np.stack(Rts), np.stack(masks)


def test_surface_points_reproduce_real_masks(shared_data):
    shape = shared_data / "shapenet_sample" / "ShapeNet" / "04379243" / "1a00aa6b75362cc5b324368d54a7416f"
    points, K, Rt, masks = shared_views(shape, range(0, 24, 4))
    sample = np.random.default_rng(0).choice(len(points), 8192, replace=False)
    rendered = GaussianProjection(sigma_sq=0.5)(
        torch.from_numpy(points[sample])[None], torch.from_numpy(K)[None], torch.from_numpy(Rt)[None], masks.shape[-2:]
    )["mask"][0].numpy() > 0.5
    iou = (rendered & masks).sum(axis=(1, 2)) / (rendered | masks).sum(axis=(1, 2))
    assert iou.mean() >= 0.9 and iou.min() >= 0.85, iou
    # a wrong camera convention (transposed image axes) must fail the same check
    transposed = (rendered.transpose(0, 2, 1) & masks).sum(axis=(1, 2)) / (rendered.transpose(0, 2, 1) | masks).sum(axis=(1, 2))
    assert transposed.mean() < 0.8
