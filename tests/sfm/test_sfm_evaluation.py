"""Pose evaluation: Umeyama / robust Sim(3) alignment, rotation and centre errors, AUC; the object frame."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from shapelab.renderers.cameras import look_at_origin
from shapelab.sfm.cameras_file import CaptureCameras
from shapelab.sfm.evaluation import evaluate_poses, pose_auc, robust_umeyama, rotation_angle_deg, umeyama
from shapelab.sfm.frame import object_frame, up_direction, up_rotation

from shapelab.errors import ShapelabError


def known_similarity(seed=0):
    rotation = Rotation.random(random_state=seed).as_matrix()
    return 2.7, rotation, np.array([0.4, -1.2, 3.0])


def test_umeyama_recovers_a_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    scale, rotation, translation = known_similarity()
    s, R, t = umeyama(src, scale * src @ rotation.T + translation)
    assert s == pytest.approx(scale, rel=1e-10)
    np.testing.assert_allclose(R, rotation, atol=1e-10)
    np.testing.assert_allclose(t, translation, atol=1e-10)


def test_umeyama_never_returns_a_reflection():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    _, R, _ = umeyama(src, src * [1, 1, -1])  # a mirror image: the best rotation, not the mirror
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_robust_alignment_ignores_outliers_that_break_plain_umeyama():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(40, 3))
    scale, rotation, translation = known_similarity(3)
    dst = scale * src @ rotation.T + translation + rng.normal(scale=1e-3, size=src.shape)
    outliers = rng.choice(40, 10, replace=False)
    dst[outliers] += rng.normal(scale=5.0, size=(10, 3))
    _, R_plain, _ = umeyama(src, dst)
    assert rotation_angle_deg(R_plain @ rotation.T) > 1.0  # the outliers do tilt the plain fit
    s, R, t, inliers = robust_umeyama(src, dst, inlier_threshold=0.05)
    assert s == pytest.approx(scale, rel=1e-3)
    assert rotation_angle_deg(R @ rotation.T) < 0.05
    np.testing.assert_allclose(t, translation, atol=5e-3)
    assert not inliers[outliers].any() and inliers.sum() == 30


def test_robust_alignment_needs_three_points():
    with pytest.raises(ShapelabError, match="at least 3"):
        robust_umeyama(np.zeros((2, 3)), np.zeros((2, 3)), 0.1)


def test_auc_is_the_area_under_the_recall_curve():
    errors = np.array([0.0, 0.5, 2.0, np.inf])
    assert pose_auc(errors, 1.0) == pytest.approx((1.0 + 0.5 + 0.0 + 0.0) / 4)
    thresholds = np.linspace(0, 5.0, 200001)  # brute force: mean recall over [0, tau]
    recall = (errors[None] <= thresholds[:, None]).mean(1)
    assert pose_auc(errors, 5.0) == pytest.approx(np.trapezoid(recall, thresholds) / 5.0, abs=1e-4)


def ring(count=12, seed=0):
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    positions = np.stack([2 * np.sin(angles), 0.8 + 0.2 * rng.normal(size=count), 2 * np.cos(angles)], 1)
    Rts = np.stack([look_at_origin(p) for p in positions])
    return CaptureCameras([f"{i:03d}.png" for i in range(count)], np.repeat(np.eye(3)[None], count, 0), Rts,
                          np.full(count, 64), np.full(count, 64))


def transformed(cameras: CaptureCameras, scale, rotation, translation) -> CaptureCameras:
    """The same cameras in a world p' = s R p + t: Rt' = [R_c R^T | s t_c - R_c R^T t]."""
    Rts = []
    for Rt in cameras.Rt:
        R_new = Rt[:, :3] @ rotation.T
        Rts.append(np.concatenate([R_new, (scale * Rt[:, 3] - R_new @ translation)[:, None]], 1))
    return CaptureCameras(cameras.names, cameras.K, np.stack(Rts), cameras.width, cameras.height)


def test_evaluate_poses_is_invariant_to_the_gauge_and_measures_perturbations():
    true = ring()
    scale, rotation, translation = known_similarity(4)
    recovered = transformed(true, scale, rotation, translation)
    perturbed = recovered.Rt.copy()
    centre = recovered.centres()[3]
    perturbed[3, :, :3] = Rotation.from_rotvec([0, 0, np.radians(2.0)]).as_matrix() @ perturbed[3, :, :3]
    perturbed[3, :, 3] = -perturbed[3, :, :3] @ centre  # same centre, turned by 2 degrees
    recovered = CaptureCameras(recovered.names[:-1], recovered.K[:-1], perturbed[:-1], recovered.width[:-1],
                               recovered.height[:-1])  # the last image is not registered
    result = evaluate_poses(recovered, true)
    assert result["registered_ratio"] == pytest.approx(11 / 12)
    assert result["images"]["003.png"]["rot_err_deg"] == pytest.approx(2.0, abs=1e-6)
    assert result["images"]["000.png"]["rot_err_deg"] < 1e-6
    assert result["rot_err_deg_median"] < 1e-6 and result["center_err_rel_median"] < 1e-6
    assert result["not_registered"] == ["011.png"]
    assert result["auc_1deg"] == pytest.approx(10 / 12, abs=1e-6)  # 10 perfect, one at 2 deg, one missing
    assert result["auc_5deg"] == pytest.approx((10 + 0.6) / 12, abs=1e-6)


def test_object_frame_puts_up_on_y_the_first_camera_on_z_and_the_object_in_the_unit_cube():
    true = ring()
    rng = np.random.default_rng(5)
    box = rng.uniform([-0.3, -0.1, -0.2], [0.3, 0.1, 0.2], (500, 3))
    scale, rotation, translation = known_similarity(6)
    gauge = transformed(true, scale, rotation, translation)
    s, R, t = object_frame(scale * box @ rotation.T + translation, gauge.Rt)
    moved_points = s * (scale * box @ rotation.T + translation) @ R.T + t
    assert np.ptp(moved_points, axis=0).max() == pytest.approx(1.0)
    np.testing.assert_allclose((moved_points.max(0) + moved_points.min(0)) / 2, 0.0, atol=1e-9)
    first = s * R @ gauge.centres()[0] + t
    assert first[0] == pytest.approx(moved_points[:, 0].mean(), abs=1e-9) and first[2] > moved_points[:, 2].mean()
    back = transformed(gauge, s, R, t)
    ups = -back.Rt[:, 1, :3]
    assert np.mean(ups, 0) @ [0, 1, 0] > 0.9 * np.linalg.norm(np.mean(ups, 0))


@pytest.mark.parametrize("span_deg", [360.0, 90.0])
def test_up_direction_of_cameras_looking_down_from_a_ring_or_an_arc(span_deg):
    """Upright cameras 35 degrees above the object, around it or on a 90-degree arc, in a tilted world."""
    angles = np.radians(np.linspace(0, span_deg, 9))
    elevation = np.radians(35.0)
    positions = 2 * np.stack([np.cos(elevation) * np.sin(angles), np.full(9, np.sin(elevation)),
                              np.cos(elevation) * np.cos(angles)], 1)
    tilt = Rotation.from_rotvec([0.4, -0.2, 0.3]).as_matrix()
    cameras = transformed(CaptureCameras([str(i) for i in range(9)], np.repeat(np.eye(3)[None], 9, 0),
                                         np.stack([look_at_origin(p) for p in positions]), np.ones(9), np.ones(9)),
                          1.0, tilt, np.zeros(3))
    np.testing.assert_allclose(up_direction(cameras.Rt), tilt @ [0, 1, 0], atol=1e-9)
    mean_up = -cameras.Rt[:, 1, :3].mean(0)
    tilted_by = np.degrees(np.arccos(mean_up @ tilt @ [0, 1, 0] / np.linalg.norm(mean_up)))
    assert (tilted_by > 5) == (span_deg < 360)  # the plain mean is only right around the whole object


def test_up_rotation_maps_any_direction_to_y():
    for up in ([0, 1, 0], [0, -1, 0], [1, 0, 0], [0.3, -0.2, 0.9]):
        R = up_rotation(np.array(up, float))
        np.testing.assert_allclose(R @ (np.array(up) / np.linalg.norm(up)), [0, 1, 0], atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
