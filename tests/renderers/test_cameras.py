"""Camera conventions (renderers/cameras.py) checked on real OccNet / 3D-R2N2 data and on our own renderings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from shapelab.datamodules.formats.occnet import read_cameras, read_pointcloud
from shapelab.geometry.raycast import render_view
from shapelab.renderers import cameras

from shapelab.errors import ShapelabError

SHAPES = ["04379243/1a00aa6b75362cc5b324368d54a7416f", "02828884/1a40eaf5919b1b3f3eaa2b95b99dae6"]


def pixel_hits(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Share of projected points that land on ``mask`` pixels (points outside the image count as misses)."""
    cells = np.floor(pixels).astype(int)
    inside = ((cells >= 0) & (cells < mask.shape[::-1])).all(axis=1)
    hits = np.zeros(len(cells), dtype=bool)
    hits[inside] = mask[cells[inside, 1], cells[inside, 0]]
    return float(hits.mean())


@pytest.mark.parametrize("shape", SHAPES)
def test_occnet_cameras_project_pointcloud_onto_the_object(shared_data, shape):
    shape_dir = shared_data / "shapenet_sample" / "ShapeNet" / shape
    cloud = read_pointcloud(shape_dir / "pointcloud.npz")
    original = cloud["points"][::20] * cloud["scale"] + cloud["loc"]  # cameras map the original frame
    for index, (K, Rt) in enumerate(read_cameras(shape_dir / "img_choy2016" / "cameras.npz")):
        foreground = (
            np.asarray(Image.open(shape_dir / "img_choy2016" / f"{index:03d}.jpg").convert("L")) < 240
        )
        assert pixel_hits(cameras.project(original, K, Rt), foreground) > 0.99
        # the same pixels from the normalised (unit-cube) frame
        Rt_unit = cameras.extrinsics_for_normalised_frame(Rt, cloud["loc"], cloud["scale"])
        np.testing.assert_allclose(
            cameras.project(cloud["points"][::20], K, Rt_unit), cameras.project(original, K, Rt), atol=1e-3
        )


def test_occnet_cameras_fail_with_a_wrong_convention(shared_data):
    """The check above can fail: flipping y (OpenGL-style) puts most points off the object."""
    shape_dir = shared_data / "shapenet_sample" / "ShapeNet" / SHAPES[0]
    cloud = read_pointcloud(shape_dir / "pointcloud.npz")
    original = cloud["points"][::20] * cloud["scale"] + cloud["loc"]
    K, Rt = read_cameras(shape_dir / "img_choy2016" / "cameras.npz")[0]
    foreground = np.asarray(Image.open(shape_dir / "img_choy2016" / "000.jpg").convert("L")) < 240
    flipped = K.copy()
    flipped[1, 1] *= -1  # image y up instead of down
    assert pixel_hits(cameras.project(original, flipped, Rt), foreground) < 0.8


def test_choy2016_placement_matches_real_renderings(shared_data):
    """3D-R2N2's rendering_metadata.txt (azimuth, elevation, distance ratio) + our placement put the chair's
    voxels on the rendered silhouettes; a mirrored azimuth convention does not."""
    root = shared_data / "shapenet_sample" / "ShapeNetRendering_chair"
    voxels = trimesh.load(root / "model.binvox").points
    voxels -= (voxels.max(axis=0) + voxels.min(axis=0)) / 2
    metadata = np.loadtxt(root / "rendering" / "rendering_metadata.txt")
    K = cameras.choy2016_intrinsics()
    ours, mirrored = [], []
    for index, (azimuth, elevation, _, ratio, _) in enumerate(metadata):
        alpha = np.asarray(Image.open(root / "rendering" / f"{index:02d}.png"))[..., 3] > 0
        distance = ratio * cameras.CHOY2016_MAX_CAMERA_DISTANCE
        ours.append(
            pixel_hits(
                cameras.project(voxels, K, cameras.choy2016_extrinsics(azimuth, elevation, distance)), alpha
            )
        )
        mirrored.append(
            pixel_hits(
                cameras.project(voxels, K, cameras.choy2016_extrinsics(-azimuth, elevation, distance)), alpha
            )
        )
    assert np.mean(ours) > 0.95 and np.mean(mirrored) < 0.8


def test_projection_lands_on_rendered_mask_and_depth():
    mesh = trimesh.creation.box(extents=[0.5, 0.3, 0.4])
    K = cameras.choy2016_intrinsics(96)
    Rt = cameras.choy2016_extrinsics(37.0, 28.0, 1.4)
    view = render_view(mesh, K, Rt, 96, 96)
    corners = cameras.project(mesh.vertices, K, Rt)
    assert pixel_hits(cameras.project(mesh.sample(2000), K, Rt), view.mask) > 0.97
    # the mask's bounding box is the projected corners' bounding box
    rows, cols = np.nonzero(view.mask)
    np.testing.assert_allclose([cols.min(), rows.min()], np.floor(corners.min(axis=0)), atol=1)
    np.testing.assert_allclose([cols.max(), rows.max()], np.floor(corners.max(axis=0)), atol=1)
    # depth is camera z of the first hit: a visible corner's depth equals its camera z
    camera_points = cameras.to_camera(mesh.vertices, Rt)
    nearest = np.argmin(camera_points[:, 2])
    col, row = np.clip(np.floor(corners[nearest]).astype(int), 0, 95)
    assert view.depth[row, col] == pytest.approx(camera_points[nearest, 2], abs=0.02)
    assert np.isinf(view.depth[~view.mask]).all() and (view.rgb[~view.mask] == 255).all()


def test_choy2016_extrinsics_geometry():
    Rt = cameras.choy2016_extrinsics(30.0, 25.0, 1.5)
    rotation, translation = Rt[:, :3], Rt[:, 3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    centre = -rotation.T @ translation
    a, e = np.radians(30.0), np.radians(25.0)
    np.testing.assert_allclose(
        centre, 1.5 * np.array([np.cos(e) * np.cos(a), np.sin(e), np.cos(e) * np.sin(a)])
    )
    np.testing.assert_allclose(
        cameras.to_camera(np.zeros((1, 3)), Rt), [[0, 0, 1.5]], atol=1e-12
    )  # looks at origin
    up = cameras.to_camera(np.array([[0.0, 0.1, 0.0]]), Rt)
    assert up[0, 1] < 0  # world up is image up (y down)


def test_occnet_opencv_round_trip_and_validation():
    K, Rt = cameras.choy2016_intrinsics(), cameras.choy2016_extrinsics(10, 27, 1.3)
    camera_mat, world_mat = cameras.opencv_to_occnet(K, Rt)
    K2, Rt2 = cameras.occnet_to_opencv(camera_mat, np.vstack([world_mat, [0, 0, 0, 1]]))
    np.testing.assert_array_equal(K2, K)
    np.testing.assert_array_equal(Rt2, Rt)
    with pytest.raises(ShapelabError, match="expected"):
        cameras.occnet_to_opencv(np.eye(4), Rt)


def test_project_torch_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.3, 0.3, size=(2, 5, 3))
    K = np.stack([cameras.choy2016_intrinsics()] * 2)
    Rt = np.stack([cameras.choy2016_extrinsics(a, 27, 1.4) for a in (10.0, 200.0)])
    expected = cameras.project(points, K, Rt)
    # reference: one point at a time
    for b in range(2):
        for n in range(5):
            h = K[b] @ (Rt[b, :, :3] @ points[b, n] + Rt[b, :, 3])
            np.testing.assert_allclose(expected[b, n], h[:2] / h[2])
    tensor = torch.tensor(points, requires_grad=True)
    got = cameras.project(tensor, torch.tensor(K), torch.tensor(Rt))
    np.testing.assert_allclose(got.detach().numpy(), expected)
    assert torch.autograd.gradcheck(
        lambda p: cameras.project(p, torch.tensor(K), torch.tensor(Rt)), (tensor,)
    )
