"""Frame conversions (geometry/frames.py): the documented formulas, round trips, missing parameters."""
from __future__ import annotations

import numpy as np
import pytest
from shapelab.geometry.frames import MissingFrame, ShapeFrames, original_to_deepsdf, original_to_occnet

OFFSET, DEEPSDF_SCALE = np.array([0.1, -0.2, 0.3]), 1.7
LOC, OCCNET_SCALE = np.array([0.5, 0.0, -0.5]), 2.0


def test_formulas_match_developing_md():
    points = np.random.default_rng(0).normal(size=(50, 3))
    assert np.allclose(original_to_deepsdf(points, OFFSET, DEEPSDF_SCALE), (points + OFFSET) * DEEPSDF_SCALE)
    assert np.allclose(original_to_occnet(points, LOC, OCCNET_SCALE), (points - LOC) / OCCNET_SCALE)


def test_convert_goes_through_original_units_and_back():
    frames = ShapeFrames(deepsdf=(OFFSET, DEEPSDF_SCALE), occnet=(LOC, OCCNET_SCALE))
    points = np.random.default_rng(1).normal(size=(50, 3))
    occnet = frames.convert(points, "deepsdf", "occnet")
    assert np.allclose(occnet, ((points / DEEPSDF_SCALE - OFFSET) - LOC) / OCCNET_SCALE)
    assert np.allclose(frames.convert(occnet, "occnet", "deepsdf"), points)
    assert np.allclose(frames.convert(points, "original", "original"), points)


def test_unknown_parameters_raise_missing_frame():
    with pytest.raises(MissingFrame, match="deepsdf"):
        ShapeFrames(occnet=(LOC, OCCNET_SCALE)).convert(np.zeros((1, 3)), "occnet", "deepsdf")
