"""Shape metrics: Chamfer variants, F-score, IoU, normal consistency, EMD (plain functions + torchmetrics).

Definitions, frames and report scales: docs/metrics.md.
"""
from shapelab.metrics.batch_mean import BatchMean
from shapelab.metrics.chamfer import (
    ChamferDistance,
    chamfer_capnet,
    chamfer_deepsdf,
    chamfer_distance,
    chamfer_drwr,
    chamfer_occnet,
    normalise_capnet,
)
from shapelab.metrics.emd import earth_movers_distance, emd_capnet
from shapelab.metrics.fscore import FScore, fscore, fscore_torch
from shapelab.metrics.iou import OccupancyIoU, mesh_iou, occupancy_iou
from shapelab.metrics.nearest import PointMatches, match_points, nearest_neighbours
from shapelab.metrics.normal_consistency import normal_consistency

__all__ = [
    "BatchMean", "ChamferDistance", "FScore", "OccupancyIoU", "PointMatches", "chamfer_capnet",
    "chamfer_deepsdf", "chamfer_distance", "chamfer_drwr", "chamfer_occnet", "earth_movers_distance", "emd_capnet",
    "fscore", "fscore_torch", "match_points", "mesh_iou", "nearest_neighbours", "normal_consistency",
    "normalise_capnet", "occupancy_iou",
]
