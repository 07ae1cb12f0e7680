"""The two normalised frames of DESIGN.md, computed exactly as the original preprocessing does.

- DeepSDF (``NormalizeMeshToUnitSphere``): ``normalised = (original + offset) * scale`` with ``offset`` = minus the
  bounding-box centre of the vertices and ``scale = 1 / (1.03 * max_i |v_i - centre|)``.
- OccNet (``sample_mesh.py``, bbox padding 0): ``normalised = (original - loc) / scale`` with ``loc`` the
  bounding-box centre and ``scale`` its longest side, so the shape fits the unit cube [-0.5, 0.5]^3.
"""

from __future__ import annotations

import numpy as np

DEEPSDF_BUFFER = 1.03


def deepsdf_normalisation(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """vertices (V, 3) -> (offset (3,), scale) of the DeepSDF unit-sphere frame."""
    vertices = np.asarray(vertices, dtype=np.float64)
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    radius = np.linalg.norm(vertices - centre, axis=1).max() * DEEPSDF_BUFFER
    return -centre, float(1.0 / radius)


def occnet_normalisation(vertices: np.ndarray, padding: float = 0.0) -> tuple[np.ndarray, float]:
    """vertices (V, 3) -> (loc (3,), scale) of the OccNet unit-cube frame (``padding`` as OccNet's bbox_padding)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    return (low + high) / 2.0, float((high - low).max() / (1.0 - padding))
