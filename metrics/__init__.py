"""Shape metrics: Chamfer variants, F-score, IoU, normal consistency, EMD (plain functions + torchmetrics)."""
from metrics.chamfer import (
    ChamferDistance,
    chamfer_capnet,
    chamfer_deepsdf,
    chamfer_distance,
    chamfer_occnet,
    normalise_capnet,
)
from metrics.nearest import PointMatches, match_points, nearest_neighbours

__all__ = [
    "ChamferDistance", "PointMatches", "chamfer_capnet", "chamfer_deepsdf", "chamfer_distance",
    "chamfer_occnet", "match_points", "nearest_neighbours", "normalise_capnet",
]
