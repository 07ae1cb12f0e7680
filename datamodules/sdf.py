"""DeepSDF data (Park et al. 2019): SdfSamples of a split JSON, subsampled half positive / half negative.

Batch (DEVELOPING.md "Batches"): ``index`` (B,) long = row of the shape in its split (= latent index),
``xyz`` (B, S, 3) float32 and ``sdf`` (B, S) float32 in the deepsdf (unit sphere) frame, ``synset`` and
``model_id`` lists. The first S/2 samples of a scene come from ``pos``, the rest from ``neg``, drawn
uniformly with replacement (as DeepSDF's ``unpack_sdf_samples``).

Training batches are B scenes x ``samples_per_scene``; val/test batches carry, per shape, the fixed
``eval_samples`` samples that test-time latent optimisation draws its per-step subsets from, or with
``eval_samples=None`` the whole file (pos rows, then neg; as DeepSDF's reconstruction, one shape per batch).
With ``completion`` set, the test split is observed through one depth view per shape instead
(datamodules/depth_completion.py: shape completion).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from shapelab.datamodules.common import (
    ShapeDataModule,
    ShapeDataset,
    keep_categories,
    require_files,
    validate_each,
)
from shapelab.datamodules.depth_completion import DepthCompletion, DepthViewDataset, depth_view_files
from shapelab.datamodules.formats.deepsdf import read_sdf_samples, read_split

from shapelab.errors import ShapelabError


def sample_half_pos_half_neg(
    pos: np.ndarray, neg: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` rows (x, y, z, sdf): ``count // 2`` drawn from ``pos`` (P, 4), the rest from ``neg`` (Q, 4),
    uniformly with replacement; pos rows first."""
    half = count // 2
    return np.concatenate([pos[rng.integers(0, len(pos), half)], neg[rng.integers(0, len(neg), count - half)]])


class SdfSamplesDataset(ShapeDataset):
    """SdfSamples files of one split; item = ``num_samples`` samples of one scene (see module docstring).

    ``arrays``: preloaded (pos, neg) per shape, or None to read each file when it is needed.
    """

    def __init__(
        self,
        files: Sequence[Path],
        shapes: Sequence[tuple[str, str]],
        num_samples: int | None,
        seed: int,
        train: bool,
        arrays: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        super().__init__(shapes, seed, train)
        self.files, self.num_samples, self.arrays = list(files), num_samples, arrays

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        pos, neg = self.arrays[index] if self.arrays is not None else check_sdf_samples(self.files[index])
        if self.num_samples is None:
            rows = torch.from_numpy(np.concatenate([pos, neg]))
        else:
            rows = torch.from_numpy(sample_half_pos_half_neg(pos, neg, self.num_samples, rng))
        return {"xyz": rows[:, :3], "sdf": rows[:, 3]}


def check_sdf_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one SdfSamples file: both halves must keep at least one finite row."""
    pos, neg = read_sdf_samples(path)
    for key, rows in (("pos", pos), ("neg", neg)):
        if len(rows) == 0:
            raise ShapelabError(
                f"{path}: '{key}' has no finite samples, so half-{key} sampling is impossible; "
                "re-run preprocess.py for this shape or remove it from the split"
            )
    return pos, neg


class SdfDataModule(ShapeDataModule):
    """DeepSDF-format data: ``<deepsdf_dir>/SdfSamples/<dataset_name>/<synset>/<id>.npz`` listed by
    split JSONs ``<deepsdf_dir>/splits/<dataset_name>_<split>.json``.

    Args (beyond ``ShapeDataModule``'s):
        samples_per_scene: S of a training batch (DeepSDF: 16384).
        eval_samples: samples per shape in val/test batches (pool for test-time latent optimisation);
            None = every sample of the file (needs ``eval_batch_size`` 1: files differ in length).
        preload: keep every split's samples in RAM (DeepSDF's ``load_ram``); workers share it on fork.
        completion: shape completion: the test split's batches come from one depth view per shape
            (`DepthCompletion`); training and validation keep the SdfSamples. None = full observation.
        A split may be a name or a path to a split JSON (e.g. DeepSDF's ``examples/splits/sv2_chairs_train.json``).
    """

    batch_format = "sdf"  # DEVELOPING.md "Batches"; train.py matches it with the model's

    def __init__(
        self,
        data_dir: str | Path,
        *,
        samples_per_scene: int,
        eval_samples: int | None,
        preload: bool,
        completion: DepthCompletion | None,
        **shared,
    ):
        super().__init__(data_dir, **shared)
        if eval_samples is None and self.eval_batch_size != 1:
            raise ShapelabError(
                f"data.eval_samples=null (whole SdfSamples files) needs data.eval_batch_size=1, got {self.eval_batch_size}"
            )
        self.samples_per_scene, self.eval_samples, self.preload = samples_per_scene, eval_samples, preload
        self.completion = completion
        self._shapes: dict[str, list[tuple[str, str]]] = {}

    def facts(self) -> dict:
        """``num_shapes``: training shapes = rows of the auto-decoder's latent table."""
        return {"num_shapes": len(self.split_shapes("train"))}

    def split_file(self, split_key: str) -> Path:
        split = self.split_names[split_key]
        if split.endswith(".json"):
            return Path(split)
        return self.format_dir("deepsdf") / "splits" / f"{self.dataset_name}_{split}.json"

    def split_shapes(self, split_key: str) -> list[tuple[str, str]]:
        """(synset, id) of a split after the category filter, in split-file order."""
        if split_key not in self._shapes:
            path = self.split_file(split_key)
            shapes = keep_categories(read_split(path), self.synsets(), path)
            if not shapes:
                raise ShapelabError(f"{path}: the split lists no shapes; regenerate the split file")
            self._shapes[split_key] = shapes
        return self._shapes[split_key]

    def built_formats(self) -> list[str]:
        """Shape completion observes the test shapes through rendered depth views."""
        return super().built_formats() + (["renderings"] if self.completion is not None else [])

    def observation(self, split_key: str) -> dict:
        """How the split's shapes are observed: {} for the SdfSamples, the depth view settings for completion."""
        if self.completion is None or split_key != "test":
            return {}
        return {"depth_view": self.completion.view, "num_samples": self.completion.num_samples,
                "free_space_fraction": self.completion.free_space_fraction}

    def make_dataset(self, split_key: str, train: bool) -> SdfSamplesDataset | DepthViewDataset:
        shapes = self.split_shapes(split_key)
        if self.observation(split_key):
            return self._depth_view_dataset(split_key, shapes)
        samples_dir = self.format_dir("deepsdf") / "SdfSamples" / self.dataset_name
        files = [samples_dir / synset / f"{model_id}.npz" for synset, model_id in shapes]
        require_files(files, f"listed in {self.split_file(split_key)}; run preprocess.py or fix the split")
        arrays = None
        if self.validate or self.preload:
            loaded = validate_each(files, check_sdf_samples, f"checking {split_key} SdfSamples", self.num_workers)
            arrays = loaded if self.preload else None
        num_samples = self.samples_per_scene if train else self.eval_samples
        return SdfSamplesDataset(files, shapes, num_samples, self.seed, train, arrays)

    def _depth_view_dataset(self, split_key: str, shapes: list[tuple[str, str]]) -> DepthViewDataset:
        files = [depth_view_files(self.format_dir("occnet"), self.format_dir("deepsdf"), self.dataset_name, shape,
                                  self.completion.view) for shape in shapes]
        require_files((path for shape_files in files for path in vars(shape_files).values()),
                      "shape completion reads each test shape's depth view, cameras.npz and NormalizationParameters; "
                      "run preprocess.py (it renders depth) or choose another data.completion.view")
        dataset = DepthViewDataset(files, shapes, self.seed, self.completion)
        if self.validate:
            validate_each(range(len(shapes)), dataset.check, f"checking {split_key} depth views", self.num_workers)
        return dataset
