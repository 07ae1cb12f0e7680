"""Ground truth of one shape for evaluation: every file that exists for it, read through
``datamodules.formats``, and its frame parameters (conversions: `geometry.frames`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapelab.datamodules.formats import deepsdf as deepsdf_format
from shapelab.datamodules.formats import occnet as occnet_format
from shapelab.geometry.frames import MissingFrame, ShapeFrames


class MissingGroundTruth(LookupError):
    """A metric's ground truth or frame parameters do not exist for this shape (the metric is skipped)."""


@dataclass
class ShapeGroundTruth:
    """Whatever ground truth exists for one shape (None where the dataset has no such file).

    pointcloud: occnet pointcloud.npz (points, normals (N,3) occnet frame, loc, scale);
    occupancy: occnet points.npz (points (T,3) occnet frame, occupancies (T,) bool, loc, scale);
    surface: DeepSDF SurfaceSamples (N,3) in original units; normalisation: DeepSDF (offset (3,), scale).
    """

    pointcloud: dict | None = None
    occupancy: dict | None = None
    surface: np.ndarray | None = None
    normalisation: tuple[np.ndarray, float] | None = None

    @property
    def frames(self) -> ShapeFrames:
        """The shape's frame parameters: occnet from pointcloud.npz or points.npz, deepsdf from NormalizationParameters."""
        occnet = next(((np.asarray(source["loc"], dtype=np.float64), float(source["scale"]))
                       for source in (self.pointcloud, self.occupancy) if source is not None), None)
        return ShapeFrames(deepsdf=self.normalisation, occnet=occnet)

    def convert(self, points: np.ndarray, source: str, target: str) -> np.ndarray:
        """(N,3) points from frame ``source`` to frame ``target`` (MissingGroundTruth without the parameters)."""
        try:
            return self.frames.convert(points, source, target)
        except MissingFrame as missing:
            raise MissingGroundTruth(str(missing)) from None


class GroundTruthSource:
    """Finds the ground truth files of (synset, model_id) under a datamodule's roots.

    Args:
        deepsdf_root: ``<data>/deepsdf`` (SurfaceSamples/NormalizationParameters ``/<dataset_name>/<synset>/<id>``) or None.
        occnet_root: ``<data>/occnet`` (``<synset>/<id>/{pointcloud,points}.npz``) or None.
        dataset_name: the DeepSDF dataset key.
    """

    def __init__(self, deepsdf_root: Path | None, occnet_root: Path | None, dataset_name: str):
        self.deepsdf_root = Path(deepsdf_root) if deepsdf_root is not None else None
        self.occnet_root = Path(occnet_root) if occnet_root is not None else None
        self.dataset_name = dataset_name

    @classmethod
    def from_datamodule(cls, datamodule) -> GroundTruthSource:
        return cls(
            getattr(datamodule, "deepsdf_root", None),
            getattr(datamodule, "occnet_root", None),
            getattr(datamodule, "dataset_name", ""),
        )

    def category_names(self) -> dict[str, str]:
        """synset -> category name from occnet metadata.yaml (empty when there is none)."""
        path = self.occnet_root / "metadata.yaml" if self.occnet_root is not None else None
        if path is None or not path.is_file():
            return {}
        return {synset: entry.get("name", synset) for synset, entry in occnet_format.read_metadata(path).items()}

    def load(self, synset: str, model_id: str) -> ShapeGroundTruth:
        """Read every ground-truth file that exists for the shape (a corrupt file raises ShapelabError)."""
        truth = ShapeGroundTruth()
        if self.occnet_root is not None:
            shape_dir = self.occnet_root / synset / model_id
            if (shape_dir / "pointcloud.npz").is_file():
                truth.pointcloud = occnet_format.read_pointcloud(shape_dir / "pointcloud.npz")
            if (shape_dir / "points.npz").is_file():
                truth.occupancy = occnet_format.read_points(shape_dir / "points.npz")
        if self.deepsdf_root is not None:
            surface = self.deepsdf_root / "SurfaceSamples" / self.dataset_name / synset / f"{model_id}.ply"
            normalisation = self.deepsdf_root / "NormalizationParameters" / self.dataset_name / synset / f"{model_id}.npz"
            if surface.is_file():
                truth.surface = deepsdf_format.read_surface_samples(surface)
            if normalisation.is_file():
                truth.normalisation = deepsdf_format.read_normalisation(normalisation)
        return truth
