"""The three coordinate frames of DEVELOPING.md and the one implementation of the conversions between them.

- "original": the raw mesh's units.
- "deepsdf": unit sphere, ``deepsdf = (original + offset) * scale`` (NormalizationParameters npz).
- "occnet": unit cube [-0.5, 0.5]^3, ``occnet = (original - loc) / scale`` (loc/scale of points.npz).

Every conversion in the framework (ground truth, predictions, preprocessing, stages) goes through these
functions; the parameters themselves come from `geometry.normalisation` (computed) or the data files (read).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAMES = ("original", "deepsdf", "occnet")


class MissingFrame(LookupError):
    """The parameters of a frame are not known for this shape (e.g. no NormalizationParameters file)."""


def deepsdf_to_original(points: np.ndarray, offset: np.ndarray, scale: float) -> np.ndarray:
    """(..., 3) deepsdf-frame points -> original units: ``points / scale - offset``."""
    return np.asarray(points, dtype=np.float64) / float(scale) - np.asarray(offset, dtype=np.float64)


def original_to_deepsdf(points: np.ndarray, offset: np.ndarray, scale: float) -> np.ndarray:
    """(..., 3) original-unit points -> deepsdf frame: ``(points + offset) * scale``."""
    return (np.asarray(points, dtype=np.float64) + np.asarray(offset, dtype=np.float64)) * float(scale)


def occnet_to_original(points: np.ndarray, loc: np.ndarray, scale: float) -> np.ndarray:
    """(..., 3) occnet-frame points -> original units: ``points * scale + loc``."""
    return np.asarray(points, dtype=np.float64) * float(scale) + np.asarray(loc, dtype=np.float64)


def original_to_occnet(points: np.ndarray, loc: np.ndarray, scale: float) -> np.ndarray:
    """(..., 3) original-unit points -> occnet frame: ``(points - loc) / scale``."""
    return (np.asarray(points, dtype=np.float64) - np.asarray(loc, dtype=np.float64)) / float(scale)


@dataclass(frozen=True)
class ShapeFrames:
    """The frame parameters known for one shape: ``deepsdf = (offset (3,), scale)``, ``occnet = (loc (3,), scale)``
    (None where unknown; converting to or from that frame raises `MissingFrame`)."""

    deepsdf: tuple[np.ndarray, float] | None = None
    occnet: tuple[np.ndarray, float] | None = None

    def _parameters(self, frame: str) -> tuple[np.ndarray, float]:
        if frame not in FRAMES:
            raise ValueError(f"unknown frame {frame!r}; one of {FRAMES}")
        parameters = getattr(self, frame)
        if parameters is None:
            raise MissingFrame(f"no {frame} frame parameters for this shape")
        return parameters

    def to_original(self, points: np.ndarray, frame: str) -> np.ndarray:
        """(N, 3) points of ``frame`` in original units."""
        if frame == "original":
            return np.asarray(points, dtype=np.float64)
        to_original = deepsdf_to_original if frame == "deepsdf" else occnet_to_original
        return to_original(points, *self._parameters(frame))

    def from_original(self, points: np.ndarray, frame: str) -> np.ndarray:
        """(N, 3) original-unit points in ``frame``."""
        if frame == "original":
            return np.asarray(points, dtype=np.float64)
        from_original = original_to_deepsdf if frame == "deepsdf" else original_to_occnet
        return from_original(points, *self._parameters(frame))

    def convert(self, points: np.ndarray, source: str, target: str) -> np.ndarray:
        """(N, 3) points from frame ``source`` to frame ``target`` (through original units)."""
        if source == target:
            return np.asarray(points, dtype=np.float64)
        return self.from_original(self.to_original(points, source), target)
