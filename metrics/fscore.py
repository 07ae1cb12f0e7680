"""F-score at a distance threshold (Tatarchenko et al. 2019, "What do single-view 3D reconstruction
networks learn?", Sec. 3 eq. 1-3), on KD-tree nearest-neighbour matches."""
from __future__ import annotations

import numpy as np
from shapelab.metrics.nearest import PointMatches, match_points


def fscore(
    pred: np.ndarray, gt: np.ndarray, threshold: float, matches: PointMatches | None = None
) -> dict[str, float]:
    """Precision, recall and F-score of a predicted surface at distance ``threshold``.

    precision = share of pred points within ``threshold`` of gt, recall = share of gt points within
    ``threshold`` of pred, ``F = 2 P R / (P + R)`` (0 when both are 0).

    Args:
        pred: (N,3), gt: (M,3) surface points in one frame; ``threshold`` in that frame's units.
        shapelab's ``fscore_1pct`` / ``fscore_2pct`` use 1% / 2% of the side of the ground truth's
        bounding cube (its longest box edge) in the occnet frame.
    Returns:
        dict ``precision``, ``recall``, ``fscore`` in [0, 1]; an empty prediction gives all zeros.
    """
    if len(pred) == 0:
        return {"precision": 0.0, "recall": 0.0, "fscore": 0.0}
    matches = matches or match_points(pred, gt)
    precision = float((matches.pred_to_gt < threshold).mean())
    recall = float((matches.gt_to_pred < threshold).mean())
    total = precision + recall
    return {"precision": precision, "recall": recall, "fscore": 2 * precision * recall / total if total else 0.0}
