"""geometry/axes.py: the v2 -> OccNet axes map and the rotated-prediction check."""

from __future__ import annotations

import numpy as np
from shapelab.geometry.axes import chamfer_under_y_rotations, rotation_warning, v2_to_occnet, y_rotation


def test_y_rotation_and_v2_to_occnet_axes():
    np.testing.assert_allclose(y_rotation(90) @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # right-handed about +y
    points = np.array([[1.0, 2.0, 3.0], [1.5, 2.2, 3.4]])  # bbox centre (1.25, 2.1, 3.2)
    np.testing.assert_allclose(v2_to_occnet(points), [[0.2, -0.1, -0.25], [-0.2, 0.1, 0.25]], atol=1e-12)


def test_rotated_predictions_are_named_with_the_fix():
    rng = np.random.default_rng(0)
    gt = rng.uniform(-0.5, 0.5, (2000, 3)) * [1.0, 0.3, 0.5]  # elongated along x: rotations are visible
    pred = gt[rng.permutation(2000)[:1500]] + rng.normal(0, 0.005, (1500, 3))
    assert rotation_warning(pred, gt) == ""
    in_v2_axes = pred @ y_rotation(90).T  # a prediction that needs R_y(-90°) to match
    chamfer = chamfer_under_y_rotations(in_v2_axes, gt)
    assert chamfer[-90.0] < 0.02 and chamfer[0.0] > 0.05
    warning = rotation_warning(in_v2_axes, gt)
    assert "-90° about y" in warning and "frame=occnet" in warning
