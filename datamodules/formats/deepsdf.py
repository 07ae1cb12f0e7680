"""DeepSDF on-disk formats (Park et al. 2019, released preprocessing), read and written exactly.

- ``SdfSamples/<dataset>/<synset>/<id>.npz``: ``pos``, ``neg`` float32 (N, 4) rows (x, y, z, sdf) in the
  unit-sphere ("deepsdf") frame; sdf > 0 outside (pos), sdf <= 0 inside (neg).
- ``NormalizationParameters/<dataset>/<synset>/<id>.npz``: ``offset`` (3,), ``scale`` (1,);
  normalised = (original + offset) * scale.
- ``SurfaceSamples/<dataset>/<synset>/<id>.ply``: surface points in original units (vertices only).
- split JSON ``{"<dataset>": {"<synset>": [ids]}}``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import trimesh
from shapelab.datamodules.formats.validation import (
    atomic_write,
    check_array,
    check_points,
    fail,
    load_npz,
    require_file,
    save_npz,
)

from shapelab.errors import ShapelabError


def write_sdf_samples(path: str | Path, pos: np.ndarray, neg: np.ndarray) -> Path:
    """Write ``pos``/``neg`` (N, 4) float32 rows (x, y, z, sdf) to an SdfSamples npz."""
    pos = check_points("pos", pos, columns=4).astype(np.float32)
    neg = check_points("neg", neg, columns=4).astype(np.float32)
    return save_npz(path, pos=pos, neg=neg)


def _drop_nan_rows(path: Path, key: str, rows: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        warnings.warn(
            f"{path}: dropped {int(bad.sum())} non-finite rows of '{key}' (as DeepSDF's loader does)"
        )
    return rows[~bad]


def read_sdf_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SdfSamples npz -> (pos (P, 4), neg (Q, 4)) float32. Rows with NaN are dropped with a
    warning, as DeepSDF's ``remove_nans``; a file with no finite sample at all is an error."""
    arrays = load_npz(path, ("pos", "neg"))
    pos, neg = (
        _drop_nan_rows(Path(path), key, check_array(path, key, arrays[key], (None, 4), finite=False))
        for key in ("pos", "neg")
    )
    if len(pos) + len(neg) == 0:
        raise fail(path, "contains no finite SDF sample")
    return pos.astype(np.float32), neg.astype(np.float32)


def write_normalisation(path: str | Path, offset: np.ndarray, scale: float) -> Path:
    """Write NormalizationParameters: ``offset`` (3,), ``scale`` (1,), float32 as the original."""
    offset = np.asarray(offset, dtype=np.float32).reshape(3)
    scale_array = np.asarray([scale], dtype=np.float32)
    if not (np.isfinite(offset).all() and np.isfinite(scale_array).all() and scale_array[0] > 0):
        raise ShapelabError(
            f"{path}: normalisation offset/scale must be finite with scale > 0; fix the caller"
        )
    return save_npz(path, offset=offset, scale=scale_array)


def read_normalisation(path: str | Path) -> tuple[np.ndarray, float]:
    """Read NormalizationParameters -> (offset (3,) float64, scale float)."""
    arrays = load_npz(path, ("offset", "scale"))
    offset = check_array(path, "offset", arrays["offset"].reshape(-1), (3,))
    scale = check_array(path, "scale", arrays["scale"].reshape(-1), (1,))
    if scale[0] <= 0:
        raise fail(path, f"'scale' is {scale[0]}, expected > 0")
    return offset.astype(np.float64), float(scale[0])


def write_surface_samples(path: str | Path, points: np.ndarray) -> Path:
    """Write surface points (N, 3), original units, as a vertex-only binary PLY."""
    points = check_points("surface points", points).astype(np.float32)
    return atomic_write(path, lambda tmp: trimesh.PointCloud(points).export(tmp, file_type="ply"))


def read_surface_samples(path: str | Path) -> np.ndarray:
    """Read a SurfaceSamples PLY -> (N, 3) float32 points in original units."""
    path = require_file(path)
    try:
        loaded = trimesh.load(path, file_type="ply", process=False)
    except Exception as err:  # noqa: BLE001 - trimesh raises many exception types for corrupt files
        raise fail(path, f"not a readable PLY file ({type(err).__name__}: {err})") from None
    points = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float32)
    if len(points) == 0:
        raise fail(path, "contains no points")
    return check_array(path, "vertices", points, (None, 3))


def write_split(path: str | Path, name: str, split: dict[str, list[str]]) -> Path:
    """Write a DeepSDF split JSON ``{name: {synset: [ids]}}``."""
    content = {name: {synset: list(ids) for synset, ids in split.items()}}
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(content, indent=2) + "\n"))


def read_split(path: str | Path) -> list[tuple[str, str]]:
    """Read a DeepSDF split JSON -> [(synset, id)] in file order (datasets, then synsets, then ids)."""
    path = require_file(path, "check the split path in the data config")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise fail(path, f"not valid JSON ({err})", "fix or regenerate the split file") from None
    layout = 'expected {"<dataset>": {"<synset>": ["<id>", ...]}}'
    if not isinstance(content, dict):
        raise fail(path, f"top level is {type(content).__name__}", layout)
    entries = []
    for synsets in content.values():
        if not isinstance(synsets, dict):
            raise fail(path, "a dataset entry is not a mapping", layout)
        for synset, ids in synsets.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise fail(path, f"synset {synset!r} does not map to a list of id strings", layout)
            entries.extend((synset, model_id) for model_id in ids)
    return entries
