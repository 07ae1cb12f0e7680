"""Shape metrics as plain functions: Chamfer variants, F-score, IoU, normal consistency, EMD.

Definitions, frames and report scales: docs/metrics.md. Validation metrics are these functions logged with
``self.log(..., batch_size=B, sync_dist=True)``: Lightning's batch-size-weighted epoch mean, reduced across
DDP processes, is the mean over shapes.
"""
from shapelab.metrics.chamfer import (
    chamfer_capnet,
    chamfer_deepsdf,
    chamfer_distance,
    chamfer_drwr,
    chamfer_occnet,
    normalise_capnet,
)
from shapelab.metrics.emd import earth_movers_distance, emd_capnet
from shapelab.metrics.fscore import fscore
from shapelab.metrics.iou import INSIDE_TESTS, mesh_contains, mesh_iou, occupancy_iou
from shapelab.metrics.nearest import PointMatches, match_points, nearest_neighbours
from shapelab.metrics.normal_consistency import normal_consistency

__all__ = [
    "INSIDE_TESTS", "PointMatches", "chamfer_capnet", "chamfer_deepsdf", "chamfer_distance", "chamfer_drwr",
    "chamfer_occnet", "earth_movers_distance", "emd_capnet", "fscore", "match_points", "mesh_contains", "mesh_iou",
    "nearest_neighbours", "normal_consistency", "normalise_capnet", "occupancy_iou",
]
