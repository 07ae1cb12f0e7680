"""COLMAP <-> OpenCV <-> OccNet camera conventions round-trip, and pycolmap projects like renderers/cameras."""
from __future__ import annotations

import numpy as np
import pytest
from shapelab.renderers.cameras import (
    COLMAP_MODEL_PARAMS,
    colmap_to_opencv_intrinsics,
    look_at_origin,
    occnet_to_opencv,
    opencv_to_colmap_intrinsics,
    opencv_to_occnet,
    project,
)
from shapelab.sfm.cameras_file import CaptureCameras, read_capture_cameras, write_capture_cameras

from shapelab.errors import ShapelabError

pycolmap = pytest.importorskip("pycolmap")


def random_camera(rng):
    K = np.array([[rng.uniform(200, 400), 0, rng.uniform(100, 140)], [0, rng.uniform(200, 400), rng.uniform(90, 130)],
                  [0, 0, 1.0]])
    return K, look_at_origin(rng.normal(size=3) * 0.3 + np.array([0.0, 0.8, 2.0]))


@pytest.mark.parametrize("model", sorted(COLMAP_MODEL_PARAMS))
def test_pycolmap_projection_equals_ours(model):
    """A pycolmap camera built from our K, with the pose as cam_from_world, puts points on our pixels."""
    rng = np.random.default_rng(1)
    K, Rt = random_camera(rng)
    params = opencv_to_colmap_intrinsics(K, model)
    camera = pycolmap.Camera.create_from_model_name(1, model, 1.0, 256, 240)
    camera.params = params
    points = rng.uniform(-0.4, 0.4, (50, 3))
    cam_from_world = pycolmap.Rigid3d(Rt)
    theirs = camera.img_from_cam(points @ cam_from_world.matrix()[:, :3].T + cam_from_world.matrix()[:, 3])
    single = K.copy()  # single-focal models keep the mean focal length
    if model.startswith("SIMPLE"):
        single[0, 0] = single[1, 1] = 0.5 * (K[0, 0] + K[1, 1])
    np.testing.assert_allclose(theirs, project(points, single, Rt), atol=1e-9)
    K_back, distortion = colmap_to_opencv_intrinsics(model, camera.params)
    np.testing.assert_allclose(K_back, single, atol=1e-12)
    np.testing.assert_array_equal(distortion, 0.0)


def test_colmap_distortion_matches_opencv_polynomial():
    """OPENCV params k1, k2, p1, p2 mean the same in COLMAP as in OpenCV (distort normalised coordinates)."""
    K = np.array([[300.0, 0, 128], [0, 310.0, 120], [0, 0, 1]])
    k1, k2, p1, p2 = 0.1, -0.05, 0.002, -0.001
    camera = pycolmap.Camera.create_from_model_name(1, "OPENCV", 1.0, 256, 240)
    camera.params = opencv_to_colmap_intrinsics(K, "OPENCV", (k1, k2, p1, p2))
    xy = np.random.default_rng(0).uniform(-0.3, 0.3, (20, 2))
    x, y = xy.T
    r2 = x**2 + y**2
    radial = 1 + k1 * r2 + k2 * r2**2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x**2)
    yd = y * radial + p1 * (r2 + 2 * y**2) + 2 * p2 * x * y
    expected = np.stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], 1)
    np.testing.assert_allclose(camera.img_from_cam(np.column_stack([xy, np.ones(20)])), expected, atol=1e-9)
    np.testing.assert_allclose(colmap_to_opencv_intrinsics("OPENCV", camera.params)[1], [k1, k2, p1, p2])


def test_round_trip_colmap_opencv_occnet_file(tmp_path):
    """K, Rt -> COLMAP model on disk (pycolmap) -> read back -> cameras.npz (OccNet keys) -> read back: unchanged."""
    rng = np.random.default_rng(2)
    reconstruction = pycolmap.Reconstruction()
    cameras = [random_camera(rng) for _ in range(3)]
    for index, (K, Rt) in enumerate(cameras, start=1):
        camera = pycolmap.Camera.create_from_model_name(index, "PINHOLE", 1.0, 256, 240)
        camera.params = opencv_to_colmap_intrinsics(K, "PINHOLE")
        reconstruction.add_camera_with_trivial_rig(camera)
        image = pycolmap.Image(name=f"{index:03d}.png", camera_id=index, image_id=index)
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(Rt))
    reconstruction.write(tmp_path)
    from shapelab.sfm.outputs import model_cameras

    loaded = model_cameras(pycolmap.Reconstruction(tmp_path))
    assert loaded.names == ["001.png", "002.png", "003.png"]
    for (K, Rt), K_back, Rt_back in zip(cameras, loaded.K, loaded.Rt):
        np.testing.assert_allclose(K_back, K, atol=1e-9)
        np.testing.assert_allclose(Rt_back, Rt, atol=1e-9)
        np.testing.assert_allclose(occnet_to_opencv(*opencv_to_occnet(K_back, Rt_back))[1], Rt, atol=1e-9)
    write_capture_cameras(tmp_path / "cameras.npz", loaded)
    again = read_capture_cameras(tmp_path / "cameras.npz")
    np.testing.assert_allclose(again.K, loaded.K)
    np.testing.assert_allclose(again.Rt, loaded.Rt)
    assert again.names == loaded.names and list(again.width) == [256] * 3 and list(again.height) == [240] * 3
    with np.load(tmp_path / "cameras.npz", allow_pickle=False) as arrays:
        np.testing.assert_allclose(arrays["world_mat_1"], cameras[1][1], atol=1e-9)


def test_wrong_parameter_count_and_unrepresentable_distortion_are_clear_errors():
    with pytest.raises(ShapelabError, match="takes 4 parameters"):
        colmap_to_opencv_intrinsics("PINHOLE", [1.0, 2.0, 3.0])
    with pytest.raises(ShapelabError, match="use OPENCV"):
        opencv_to_colmap_intrinsics(np.eye(3), "SIMPLE_RADIAL", (0.1, 0.2, 0.0, 0.0))
    with pytest.raises(ShapelabError, match="not supported"):
        colmap_to_opencv_intrinsics("FISHEYE", [1.0])


def test_capture_cameras_centres():
    Rt = look_at_origin(np.array([0.3, 1.0, 2.0]))
    cameras = CaptureCameras(["a"], np.eye(3)[None], Rt[None], np.array([1]), np.array([1]))
    np.testing.assert_allclose(cameras.centres()[0], [0.3, 1.0, 2.0], atol=1e-12)
