"""Score one reconstruction against its ground truth with every metric whose ground truth exists.

The metric columns (names, frames, report scales) are listed in ``METRICS`` and docs/metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from shapelab.errors import ShapelabError
from shapelab.evaluation.ground_truth import MissingGroundTruth, ShapeGroundTruth
from shapelab.geometry.axes import rotation_warning
from shapelab.geometry.farthest_points import capnet_reference_points
from shapelab.geometry.sampling import sample_surface
from shapelab.metrics.chamfer import chamfer_capnet, chamfer_deepsdf, chamfer_drwr, chamfer_occnet
from shapelab.metrics.emd import emd_capnet
from shapelab.metrics.fscore import fscore
from shapelab.metrics.iou import INSIDE_TESTS, mesh_iou
from shapelab.metrics.nearest import match_points
from shapelab.metrics.normal_consistency import normal_consistency
from shapelab.metrics.sion import sion_percent
from shapelab.models.base import Reconstruction


@dataclass(frozen=True)
class MetricInfo:
    """How a metric column reads: its frame, the factor papers report it with, and its direction."""

    frame: str
    report_scale: float
    higher_is_better: bool
    definition: str


METRICS: dict[str, MetricInfo] = {
    "chamfer_l1_occnet": MetricInfo("occnet", 10, False, "0.5*(accuracy+completeness), unsquared, 100k vs 100k points"),
    "chamfer_l2_occnet": MetricInfo("occnet", 1, False, "0.5*(mean d^2 pred->gt + mean d^2 gt->pred)"),
    "accuracy_occnet": MetricInfo("occnet", 1, False, "mean d(pred->gt), unsquared"),
    "completeness_occnet": MetricInfo("occnet", 1, False, "mean d(gt->pred), unsquared"),
    "normal_consistency": MetricInfo("occnet", 1, True, "0.5*(mean |n.n'| both ways), meshes only"),
    "iou": MetricInfo("occnet", 1, True, "volumetric IoU on points.npz, meshes only"),
    "chamfer_deepsdf": MetricInfo("original", 1e3, False, "mean d^2 both ways summed, 30k vs 30k points"),
    "chamfer_capnet": MetricInfo("capnet", 1, False, "mean d^2 both ways summed, 1024 vs 1024 FPS GT points, "
                                 "bbox-cube normalised, mean over input views"),
    "emd_capnet": MetricInfo("capnet", 1, False, "mean squared matched distance, 1024 vs 1024 FPS GT points, "
                             "bbox-cube normalised, mean over input views"),
    "chamfer_drwr": MetricInfo("occnet", 100, False, "mean d both ways summed, unsquared, vs the dense GT, "
                               "no normalisation, mean over input views"),
    "chamfer_drwr_best": MetricInfo("occnet", 100, False, "chamfer_drwr of the best input view (DRWR's tables)"),
    "sion_percent": MetricInfo("occnet", 1, False, "the ground truth's SION%: share of pointcloud.npz points whose "
                               "outward normal ray meets the surface again (0.01 / 0.02, unit cube; metrics/sion.py)"),
}


EMPTY_POLICIES = ("penalty", "occnet")
"""What an empty or degenerate prediction scores. ``penalty``: every distance its worst value (√3 per one-way
unsquared term), IoU 0 also when neither prediction nor ground truth holds a point. ``occnet``: as OccNet's
table, no Chamfer/EMD value at all (NaN: left out of the means, see ``shapes_per_metric``), accuracy and
completeness √3, normal consistency -1, IoU 0 for an empty mesh and NaN when the union is empty."""
NO_VALUE_WHEN_EMPTY = ("chamfer_l1_occnet", "chamfer_l2_occnet", "chamfer_deepsdf", "chamfer_capnet", "emd_capnet")
"""Columns without a value for an empty prediction under ``empty_policy=occnet``."""


def fscore_columns(thresholds: dict[str, float]) -> dict[str, MetricInfo]:
    """``fscore_<name>``, ``precision_<name>``, ``recall_<name>`` for each threshold (fraction of the bbox side)."""
    columns = {}
    for name, fraction in thresholds.items():
        for kind in ("fscore", "precision", "recall"):
            columns[f"{kind}_{name}"] = MetricInfo(
                "occnet", 1, True, f"{kind} at {fraction:g} x the ground truth's longest bbox edge"
            )
    return columns


@dataclass
class ScoringSettings:
    """Sample counts of each protocol, the F-score thresholds (fractions of the GT's longest box edge), the
    IoU inside test (`metrics.iou.mesh_contains`) and what an empty prediction scores (`EMPTY_POLICIES`)."""

    occnet_points: int = 100_000
    deepsdf_points: int = 30_000
    capnet_points: int = 1024
    fscore_thresholds: dict[str, float] = field(default_factory=lambda: {"1pct": 0.01, "2pct": 0.02})
    seed: int = 0
    iou_inside: str = "occnet"
    empty_policy: str = "penalty"

    def __post_init__(self):
        if self.iou_inside not in INSIDE_TESTS:
            raise ShapelabError(f"evaluate.iou_inside={self.iou_inside!r}: choose one of {list(INSIDE_TESTS)}")
        if self.empty_policy not in EMPTY_POLICIES:
            raise ShapelabError(f"evaluate.empty_policy={self.empty_policy!r}: choose one of {list(EMPTY_POLICIES)}")

    @classmethod
    def from_config(cls, cfg) -> ScoringSettings:
        """The settings of an ``evaluate`` config (conf/evaluation/default.yaml)."""
        return cls(occnet_points=cfg.occnet_points, deepsdf_points=cfg.deepsdf_points,
                   capnet_points=cfg.capnet_points, fscore_thresholds=dict(cfg.fscore_thresholds), seed=cfg.seed,
                   iou_inside=cfg.iou_inside, empty_policy=cfg.empty_policy)

    def columns(self) -> dict[str, MetricInfo]:
        return {**METRICS, **fscore_columns(self.fscore_thresholds)}

    @staticmethod
    def checked_groups(groups) -> list[str]:
        """``evaluate.groups`` as a list, refusing unknown names in one line."""
        groups = list(groups)
        unknown = sorted(set(groups) - set(METRIC_GROUPS))
        if unknown:
            raise ShapelabError(f"evaluate.groups: unknown {unknown}; choose from {sorted(METRIC_GROUPS)}")
        return groups


def is_empty(recon: Reconstruction) -> bool:
    """True for an empty or degenerate prediction (no faces, zero area, non-finite vertices, no points)."""
    if recon.mesh is not None:
        mesh = recon.mesh
        return len(mesh.faces) == 0 or not np.isfinite(mesh.vertices).all() or not mesh.area > 0
    return not np.isfinite(recon.points).all(axis=1).any()


def prediction_samples(recon: Reconstruction, count: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and face normals) of a prediction in its own frame: ``count`` uniform samples on a mesh
    (OccNet/DeepSDF protocol), or the finite points of a point cloud as given (normals None)."""
    if is_empty(recon):
        return np.zeros((0, 3)), np.zeros((0, 3)) if recon.mesh is not None else None
    if recon.mesh is not None:
        return sample_surface(recon.mesh, count, np.random.default_rng(seed))
    points = np.asarray(recon.points, dtype=np.float64)
    return points[np.isfinite(points).all(axis=1)], None


def axes_warning(recon: Reconstruction, truth: ShapeGroundTruth, count: int = 2000) -> str:
    """'' or one line when the prediction fits the ground-truth surface (pointcloud.npz) much better turned
    ±90° about y (geometry/axes.py ``rotation_warning``: ShapeNet v2 vs OccNet axes); '' without that ground
    truth or frame, or for an empty prediction."""
    if truth.pointcloud is None or is_empty(recon):
        return ""
    points, _ = prediction_samples(recon, count, seed=0)
    try:
        points = truth.convert(points, recon.frame, "occnet")
    except MissingGroundTruth:
        return ""
    return rotation_warning(points, _choose(truth.pointcloud["points"], count, np.random.default_rng(0)))


def _choose(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of ``points`` (without replacement when there are enough)."""
    if len(points) == 0:
        return points
    return points[rng.choice(len(points), count, replace=len(points) < count)]


def _occnet_surface(recon, truth, settings) -> dict[str, float]:
    if truth.pointcloud is None:
        raise MissingGroundTruth("no occnet pointcloud.npz")
    gt, gt_normals = truth.pointcloud["points"], truth.pointcloud["normals"]
    points, normals = prediction_samples(recon, settings.occnet_points, settings.seed)
    points = truth.convert(points, recon.frame, "occnet") if len(points) else points
    matches = match_points(points, gt) if len(points) else None
    occnet = chamfer_occnet(points, gt, matches)
    values = {
        "chamfer_l1_occnet": occnet["chamfer_l1_occnet"], "chamfer_l2_occnet": occnet["chamfer_l2_occnet"],
        "accuracy_occnet": occnet["accuracy"], "completeness_occnet": occnet["completeness"],
    }
    if normals is not None:
        values["normal_consistency"] = normal_consistency(points, normals, gt, gt_normals, matches)
    side = float((gt.max(axis=0) - gt.min(axis=0)).max())
    for name, fraction in settings.fscore_thresholds.items():
        result = fscore(points, gt, fraction * side, matches)
        values.update({f"{kind}_{name}": result[kind] for kind in ("fscore", "precision", "recall")})
    return values


def _iou(recon, truth, settings) -> dict[str, float]:
    if truth.occupancy is None:
        raise MissingGroundTruth("no occnet points.npz")
    if recon.mesh is None:
        raise MissingGroundTruth("IoU needs a mesh, the prediction is a point cloud")
    if is_empty(recon):
        return {"iou": 0.0}
    mesh = recon.mesh.copy()
    mesh.vertices = truth.convert(mesh.vertices, recon.frame, "occnet")
    empty_union = math.nan if settings.empty_policy == "occnet" else 0.0
    return {"iou": mesh_iou(mesh, truth.occupancy["points"], truth.occupancy["occupancies"], settings.iou_inside,
                            empty_union)}


def _deepsdf(recon, truth, settings) -> dict[str, float]:
    if truth.surface is None:
        raise MissingGroundTruth("no DeepSDF SurfaceSamples")
    points, _ = prediction_samples(recon, settings.deepsdf_points, settings.seed)
    points = truth.convert(points, recon.frame, "original") if len(points) else points
    return {"chamfer_deepsdf": chamfer_deepsdf(points, truth.surface)}


def _view_clouds(recon: Reconstruction, count: int, seed: int) -> list[np.ndarray]:
    """The prediction of each input view (``recon.views``; finite points only), or the one prediction's samples."""
    if recon.views is None:
        return [prediction_samples(recon, count, seed)[0]]
    return [cloud[np.isfinite(cloud).all(axis=1)] for cloud in np.asarray(recon.views, dtype=np.float64)]


def _capnet(recon, truth, settings) -> dict[str, float]:
    # each cloud is normalised on its own, so the ground truth's frame does not matter; the ground truth is the
    # same FPS reduction as the multi-view datamodule's points_gt (validation), CAPNet's evaluation
    gt = truth.pointcloud["points"] if truth.pointcloud is not None else truth.surface
    if gt is None:
        raise MissingGroundTruth("no occnet pointcloud.npz or DeepSDF SurfaceSamples")
    gt = capnet_reference_points(gt, settings.capnet_points)
    rng = np.random.default_rng(settings.seed)
    scores = []
    for points in _view_clouds(recon, settings.capnet_points, settings.seed):
        pred = _choose(points, settings.capnet_points, rng)
        scores.append((chamfer_capnet(pred, gt), emd_capnet(pred, gt)))
    chamfer, emd = np.mean(scores, axis=0)
    return {"chamfer_capnet": float(chamfer), "emd_capnet": float(emd)}


def _drwr(recon, truth, settings) -> dict[str, float]:
    if truth.pointcloud is None:
        raise MissingGroundTruth("no occnet pointcloud.npz")
    gt = truth.pointcloud["points"]
    values = [chamfer_drwr(truth.convert(points, recon.frame, "occnet") if len(points) else points, gt)
              for points in _view_clouds(recon, settings.capnet_points, settings.seed)]
    return {"chamfer_drwr": float(np.mean(values)), "chamfer_drwr_best": float(np.min(values))}


def _sion(recon, truth, settings) -> dict[str, float]:
    # a property of the ground truth (how hard the shape is), beside every prediction's scores
    if truth.pointcloud is None:
        raise MissingGroundTruth("no occnet pointcloud.npz")
    return {"sion_percent": sion_percent(truth.pointcloud["points"], truth.pointcloud["normals"], seed=settings.seed)}


METRIC_GROUPS = {"occnet_surface": _occnet_surface, "iou": _iou, "deepsdf": _deepsdf, "capnet": _capnet, "drwr": _drwr,
                 "sion": _sion}
"""Groups of metrics computed together; each needs its own ground truth."""


def score_shape(
    recon: Reconstruction, truth: ShapeGroundTruth, settings: ScoringSettings, groups: list[str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Every metric of ``groups`` that applies: (values by column, reason by skipped group)."""
    values, skipped = {}, {}
    for group in groups:
        try:
            values.update(METRIC_GROUPS[group](recon, truth, settings))
        except MissingGroundTruth as reason:
            skipped[group] = str(reason)
    if settings.empty_policy == "occnet" and is_empty(recon):
        values.update({column: math.nan for column in NO_VALUE_WHEN_EMPTY if column in values})
    return values, skipped
