"""Recovered vs known cameras: similarity alignment and pose errors.

SfM recovers cameras up to a similarity (Sim(3): scale, rotation, translation) of the world, so the
recovered camera centres are first aligned to the true ones, then each image's errors are measured:
- alignment: Umeyama (1991), the least-squares similarity ``dst ≈ s R src + t`` (his Eqs. 40-42), inside a
  RANSAC loop over 3-point samples with inliers closer than ``inlier_threshold`` x scene size, refitted on the
  largest inlier set (so a few badly registered cameras do not tilt the alignment);
- rotation error (degrees): the angle of ``R_est' R_true^T`` where ``R_est' = R_est R^T`` is the recovered
  world -> camera rotation expressed in the true world;
- centre error: ``|s R c_est + t - c_true| / scene_size``, with ``scene_size`` the median distance of the true
  centres from their centroid;
- AUC at 1/5/10 degrees: area under the recall-vs-rotation-error curve up to tau, over *all* images (an
  unregistered image counts as an infinite error), ``mean_i max(0, 1 - e_i / tau)``;
- registered ratio: registered images / images.
"""
from __future__ import annotations

import numpy as np
from shapelab.sfm.cameras_file import CaptureCameras

from shapelab.errors import ShapelabError

AUC_THRESHOLDS_DEG = (1.0, 5.0, 10.0)


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale s, rotation R (3, 3), translation t (3,)) with dst ≈ s R src + t, for
    corresponding points src, dst (N, 3), N >= 3 (Umeyama 1991, Eqs. 40-42; reflection-free)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mean_src, mean_dst = src.mean(0), dst.mean(0)
    centred_src, centred_dst = src - mean_src, dst - mean_dst
    covariance = centred_dst.T @ centred_src / len(src)
    U, singular, Vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        sign[2, 2] = -1.0
    rotation = U @ sign @ Vt
    variance_src = (centred_src**2).sum() / len(src)
    scale = float(np.trace(np.diag(singular) @ sign) / variance_src) if with_scale else 1.0
    return scale, rotation, mean_dst - scale * rotation @ mean_src


def robust_umeyama(src: np.ndarray, dst: np.ndarray, inlier_threshold: float, iterations: int = 500,
                   seed: int = 0) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """RANSAC around :func:`umeyama`: (s, R, t, inliers (N,) bool); an inlier lies within ``inlier_threshold``
    (units of dst) after alignment. Fewer than 3 points, or no sample with 3 inliers, is an error."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 3:
        raise ShapelabError(f"pose alignment needs at least 3 registered cameras with known poses, got {len(src)}")
    rng = np.random.default_rng(seed)
    best = np.zeros(len(src), bool)
    for _ in range(iterations):
        sample = rng.choice(len(src), 3, replace=False)
        scale, rotation, translation = umeyama(src[sample], dst[sample])
        inliers = np.linalg.norm(scale * src @ rotation.T + translation - dst, axis=1) < inlier_threshold
        if inliers.sum() > best.sum():
            best = inliers
    if best.sum() < 3:
        raise ShapelabError("pose alignment: no 3 cameras agree on a similarity; the reconstruction is degenerate")
    for _ in range(3):  # refit on the inliers, then re-select them with the refined transform
        scale, rotation, translation = umeyama(src[best], dst[best])
        refined = np.linalg.norm(scale * src @ rotation.T + translation - dst, axis=1) < inlier_threshold
        if refined.sum() < 3 or np.array_equal(refined, best):
            break
        best = refined
    return scale, rotation, translation, best


def rotation_angle_deg(rotations: np.ndarray) -> np.ndarray:
    """Angles (...,) in degrees of rotation matrices (..., 3, 3)."""
    cosine = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def pose_auc(errors_deg: np.ndarray, threshold_deg: float) -> float:
    """Area under the recall curve of ``errors_deg`` (inf = failed) up to ``threshold_deg``, in [0, 1]."""
    errors = np.asarray(errors_deg, np.float64)
    return float(np.mean(np.clip(1.0 - errors / threshold_deg, 0.0, 1.0))) if len(errors) else 0.0


def evaluate_poses(recovered: CaptureCameras, true: CaptureCameras, inlier_threshold: float = 0.1,
                   seed: int = 0) -> dict:
    """Errors of the ``recovered`` cameras against the ``true`` ones (matched by image name; the true set
    defines "all images"). Returns summary numbers and per-image rows (see the module docstring)."""
    registered = [name for name in true.names if name in set(recovered.names)]
    true_centres = true.centres()
    scene_size = float(np.median(np.linalg.norm(true_centres - true_centres.mean(0), axis=1)))
    est, ref = recovered.subset(registered), true.subset(registered)
    scale, rotation, translation, inliers = robust_umeyama(
        est.centres(), ref.centres(), inlier_threshold * scene_size, seed=seed)
    aligned_centres = scale * est.centres() @ rotation.T + translation
    centre_errors = np.linalg.norm(aligned_centres - ref.centres(), axis=1) / scene_size
    rotation_errors = rotation_angle_deg(est.Rt[:, :, :3] @ rotation.T @ ref.Rt[:, :, :3].transpose(0, 2, 1))
    all_errors = np.full(len(true.names), np.inf)
    all_errors[[true.index()[name] for name in registered]] = rotation_errors
    return {
        "registered_ratio": len(registered) / len(true.names),
        "rot_err_deg_median": float(np.median(rotation_errors)),
        "rot_err_deg_mean": float(np.mean(rotation_errors)),
        "center_err_rel_median": float(np.median(centre_errors)),
        **{f"auc_{int(tau)}deg": pose_auc(all_errors, tau) for tau in AUC_THRESHOLDS_DEG},
        "alignment_inliers": int(inliers.sum()),
        "alignment": {"scale": scale, "rotation": rotation.tolist(), "translation": translation.tolist()},
        "images": {name: {"rot_err_deg": float(r), "center_err_rel": float(c), "alignment_inlier": bool(i)}
                   for name, r, c, i in zip(registered, rotation_errors, centre_errors, inliers)},
        "not_registered": [name for name in true.names if name not in set(registered)],
    }
