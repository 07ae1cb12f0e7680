"""Pieces shared by the shapelab DataModules: base DataModule, per-item seeding, OccNet layout listing,
image/mask loading and up-front file validation.

Randomness: every item draws from its own ``numpy.random.Generator``. In training the seed of each item
comes from ``SeededSampler`` (a function of the DataModule seed, the epoch and the position in the epoch),
so batches are reproducible given the seed whatever ``num_workers`` is; in val/test the seed is a
function of (seed, index) only, so every evaluation sees the same samples.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage
from shapelab.datamodules.formats.occnet import read_metadata, read_split_lst
from shapelab.datamodules.synthetic import SyntheticBuild, ensure_synthetic_dataset
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from shapelab.errors import ShapelabError

Shape = tuple[str, str]  # (synset, model_id)
ALL_MODELS = "*"  # OccNet split name meaning "every model folder of the category"
# the splits a Lightning stage needs (None: all)
STAGE_SPLITS = {
    "fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",), None: ("train", "val", "test")
}


class SeededSampler(Sampler):
    """Training sampler yielding ``(index, item_seed)``: a shuffled permutation plus one seed per item,
    both drawn from a generator seeded by ``(seed, epoch)``. Lightning calls ``set_epoch`` each epoch
    (so a resumed run sees the same data); without it every pass advances to the next epoch."""

    def __init__(self, num_items: int, seed: int):
        self.num_items, self.seed = num_items, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.num_items, generator=generator)
        seeds = torch.randint(0, 2**62, (self.num_items,), generator=generator)
        yield from zip(order.tolist(), seeds.tolist())


class ShapeDataset(Dataset):
    """One split of shapes. ``dataset[i]`` (eval: seed from (seed, i)) or ``dataset[(i, item_seed)]``
    (training, from SeededSampler) returns ``{"index": i, **self.load(i, rng), "synset", "model_id"}``."""

    def __init__(self, shapes: Sequence[Shape], seed: int, train: bool):
        self.shapes, self.seed, self.train = list(shapes), seed, train

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, item_seed = key if isinstance(key, tuple) else (int(key), None)
        rng = np.random.default_rng([self.seed, index] if item_seed is None else [item_seed])
        synset, model_id = self.shapes[index]
        return {"index": index, **self.load(index, rng), "synset": synset, "model_id": model_id}

    def load(self, index: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class OccnetLayoutDataset(ShapeDataset):
    """Shapes stored as ``<root>/<synset>/<model_id>/`` with views in ``<img_folder>/`` (OccNet layout)."""

    def __init__(self, root: Path, shapes: Sequence[Shape], seed: int, train: bool, img_folder: str):
        super().__init__(shapes, seed, train)
        self.root, self.img_folder = root, img_folder

    def shape_dir(self, index: int) -> Path:
        synset, model_id = self.shapes[index]
        return self.root / synset / model_id

    def view_dir(self, index: int) -> Path:
        return self.shape_dir(index) / self.img_folder

    def required_paths(self, index: int) -> list[Path]:
        """Files shape ``index`` must have (checked to exist even when validation is off)."""
        raise NotImplementedError

    def check(self, index: int) -> Any:
        """Read every file shape ``index`` needs, raising ShapelabError for a bad one."""
        raise NotImplementedError


class ShapeDataModule(pl.LightningDataModule):
    """Shared DataModule wiring; subclasses implement ``make_dataset(split_key, train) -> ShapeDataset``.

    A subclass lists only its own parameters and forwards the rest once, ``def __init__(self, data_dir, *,
    <own>, **shared): super().__init__(data_dir, **shared)``: start-up validation (shapelab/config.py) follows
    ``**shared`` up to this explicit signature, so a misspelt data key still fails there, named.

    Args:
        data_dir: folder holding ``<dataset_name>/{deepsdf,occnet}`` (``${paths.data_dir}``).
        dataset_name: the dataset folder (and DeepSDF dataset key); "synthetic" is the built-in set.
        build: kwargs of ``datamodules.synthetic.ensure_synthetic_dataset`` (``SyntheticBuild``); when given, ``prepare_data``
            builds the built-in set if it is absent. None for existing (e.g. real ShapeNet) data.
        batch_size / eval_batch_size: shapes per batch in training / in val and test.
        num_workers: DataLoader worker processes (also threads used to validate files at setup).
        train_split / val_split / test_split: split names (or, format permitting, paths to split files);
            null = no such split (e.g. DeepSDF's released splits have no val).
        categories: synset ids (or category names from metadata.yaml) to keep; None = all.
        seed: seed of all sampling done by the data (see the module docstring).
        validate: read every file of the split at setup so bad files fail there with a clear error,
            not mid-epoch. False only checks that the files exist (faster start on large sets).
        deepsdf_dir / occnet_dir: where each format lives when not ``<data_dir>/<dataset_name>/<format>``
            (e.g. an existing DeepSDF data source or OccNet ``data/ShapeNet`` folder).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        dataset_name: str,
        build: SyntheticBuild | None,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
        train_split: str | None,
        val_split: str | None,
        test_split: str | None,
        categories: Sequence[str] | None,
        seed: int,
        validate: bool,
        deepsdf_dir: str | Path | None,
        occnet_dir: str | Path | None,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.dataset_name = dataset_name
        self.build = dict(build) if build is not None else None
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.split_names = {"train": train_split, "val": val_split, "test": test_split}
        self.categories = list(categories) if categories is not None else None
        self.seed, self.validate = seed, validate
        self.format_dirs = {"deepsdf": deepsdf_dir, "occnet": occnet_dir}
        self.datasets: dict[str, ShapeDataset] = {}

    @property
    def dataset_root(self) -> Path:
        return self.data_dir / self.dataset_name

    def format_dir(self, name: str) -> Path:
        """Folder of format ``name`` ("deepsdf" / "occnet"), whether or not it exists."""
        override = self.format_dirs[name]
        return Path(override) if override is not None else self.dataset_root / name

    @property
    def deepsdf_root(self) -> Path | None:
        """Where DeepSDF-format ground truth lives (None when absent)."""
        return _existing_dir(self.format_dir("deepsdf"))

    @property
    def occnet_root(self) -> Path | None:
        """Where OccNet-format ground truth lives (None when absent)."""
        return _existing_dir(self.format_dir("occnet"))

    def facts(self) -> dict:
        """Facts about the data that model configs may need (filled into `null` model keys)."""
        return {}

    def observation(self, split_key: str) -> dict:
        """How the split's shapes are observed when they are reconstructed, if not as usual ({}); it enters the
        evaluation's resume key (e.g. shape completion from one depth view, datamodules/sdf.py)."""
        return {}

    def synsets(self) -> list[str] | None:
        """``categories`` as synset ids (names resolved through the OccNet metadata.yaml); None = all."""
        return category_synsets(self.categories, self.format_dir("occnet") / "metadata.yaml")

    def built_formats(self) -> list[str]:
        """The built-in dataset's formats this data reads (``prepare_data`` builds only these): the DeepSDF and
        OccNet files, which training and every evaluation read; subclasses add "renderings" when they read views."""
        return ["deepsdf", "occnet"]

    def prepare_data(self) -> None:
        if self.build is not None:
            ensure_synthetic_dataset(self.data_dir, name=self.dataset_name, **{"formats": self.built_formats(),
                                                                              **self.build})

    def setup(self, stage: str | None = None) -> None:
        """Build (and validate) the datasets of the splits ``stage`` needs."""
        for split_key in STAGE_SPLITS[stage]:
            if self.split_names[split_key] is not None:
                self.dataset(split_key)

    def make_dataset(self, split_key: str, train: bool) -> ShapeDataset:
        raise NotImplementedError

    def dataset(self, split_key: str) -> ShapeDataset:
        """The dataset of "train" / "val" / "test" (set up on first use)."""
        if self.split_names[split_key] is None:
            raise ShapelabError(f"data.{split_key}_split is null; set it to a split name to use the {split_key} split")
        if split_key not in self.datasets:
            self.datasets[split_key] = self.make_dataset(split_key, train=split_key == "train")
        return self.datasets[split_key]

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        return self._loader(dataset, self.batch_size, sampler=SeededSampler(len(dataset), self.seed))

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.split_names["val"] is None else self._loader(self.dataset("val"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.eval_batch_size)

    def _loader(self, dataset: ShapeDataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )


class OccnetLayoutDataModule(ShapeDataModule):
    """DataModule over OccNet-layout shapes (``<occnet_dir>/<synset>/<id>/``) listed by ``<synset>/<split>.lst``
    (a split of "*" = every model folder of the category). Subclasses set ``dataset_class`` and return its
    keyword options from ``dataset_options(train)``.

    Args (beyond ``ShapeDataModule``'s):
        img_folder: the views' folder in each shape folder (OccNet: ``img_choy2016``).
    """

    dataset_class: type[OccnetLayoutDataset]

    def __init__(self, data_dir: str | Path, *, img_folder: str, **shared):
        super().__init__(data_dir, **shared)
        self.img_folder = img_folder

    def dataset_options(self, train: bool) -> dict[str, Any]:
        raise NotImplementedError

    def make_dataset(self, split_key: str, train: bool) -> OccnetLayoutDataset:
        root, split = self.format_dir("occnet"), self.split_names[split_key]
        shapes = occnet_shapes(root, split, self.synsets())
        dataset = self.dataset_class(root, shapes, self.seed, train, self.img_folder, **self.dataset_options(train))
        require_files(
            (path for index in range(len(shapes)) for path in dataset.required_paths(index)),
            f"listed in split {split!r}; run preprocess.py for this dataset or remove the shape from the split",
        )
        if self.validate:
            self.check_consistency(
                dataset, validate_each(range(len(shapes)), dataset.check, f"checking {split_key} data", self.num_workers)
            )
        return dataset

    def check_consistency(self, dataset: OccnetLayoutDataset, checks: list) -> None:
        """Checks across shapes, given every shape's ``dataset.check`` result (none by default)."""


def _existing_dir(path: Path) -> Path | None:
    return path if path.is_dir() else None


def keep_categories(shapes: list[Shape], synsets: Sequence[str] | None, source: Path) -> list[Shape]:
    """Keep the shapes of the given synsets (None = all); an absent synset is an error naming ``source``."""
    if synsets is None:
        return shapes
    present = {synset for synset, _ in shapes}
    unknown = [synset for synset in synsets if synset not in present]
    if unknown:
        raise ShapelabError(
            f"{source}: no shapes of categories {unknown} (present: {sorted(present)}); fix data.categories"
        )
    return [shape for shape in shapes if shape[0] in set(synsets)]


def occnet_shapes(root: Path, split: str, synsets: Sequence[str] | None) -> list[Shape]:
    """Shapes of an OccNet-layout folder: per category ``<root>/<synset>/<split>.lst``, or every model
    folder of the category when ``split`` is "*" (as OccNet's ``Shapes3dDataset(split=None)``).
    ``synsets`` None = every category folder."""
    if not root.is_dir():
        raise ShapelabError(f"{root}: OccNet data folder not found; check data.data_dir / data.dataset_name")
    synsets = _present_synsets(root, synsets)
    shapes: list[Shape] = []
    for synset in synsets:
        folder = root / synset
        if split == ALL_MODELS:
            ids = sorted(p.name for p in folder.iterdir() if p.is_dir())
        else:
            lst = folder / f"{split}.lst"
            if not lst.is_file():
                raise ShapelabError(
                    f"{lst}: split list not found; write one model id per line, or set the split to "
                    f"'{ALL_MODELS}' to use every model folder of the category"
                )
            ids = read_split_lst(lst)
        shapes.extend((synset, model_id) for model_id in ids)
    if not shapes:
        raise ShapelabError(f"{root}: split {split!r} has no shapes for categories {synsets}; check the split files")
    return shapes


def _present_synsets(root: Path, synsets: Sequence[str] | None) -> list[str]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if synsets is None:
        return folders
    missing = [synset for synset in synsets if synset not in folders]
    if missing:
        raise ShapelabError(f"{root}: categories {missing} not found (present: {folders}); fix data.categories")
    return list(synsets)


def category_synsets(categories: Sequence[str] | None, metadata_path: Path) -> list[str] | None:
    """Synset ids of ``categories`` given as ids or as names from OccNet's ``metadata.yaml`` (when it exists)."""
    if categories is None:
        return None
    metadata = read_metadata(metadata_path) if metadata_path.is_file() else {}
    by_name = {info["name"]: synset for synset, info in metadata.items()}
    return [by_name.get(str(category), str(category)) for category in categories]


def validate_each(items: Sequence, check: Callable[[Any], Any], desc: str, workers: int) -> list:
    """Run ``check`` on every item (threads, progress bar) and return the results in order; the first
    ShapelabError raised by a check propagates unchanged."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(check, items), total=len(items), desc=desc, leave=False, disable=len(items) < 50))


def require_files(paths: Iterable[Path], fix: str) -> None:
    """ShapelabError naming the first missing file."""
    for path in paths:
        if not path.is_file():
            raise ShapelabError(f"{path}: file not found; {fix}")


def list_views(image_dir: Path, extension: str = "jpg") -> list[Path]:
    """Sorted view images ``<image_dir>/*.<extension>`` (OccNet's ImagesField order)."""
    views = sorted(image_dir.glob(f"*.{extension}"))
    if not views:
        raise ShapelabError(f"{image_dir}: no *.{extension} views found; render the views or fix data.img_folder")
    return views


def open_image(path: Path, mode: str) -> Image.Image:
    """Open and decode an image converted to ``mode`` ("RGB", "L"); unreadable files raise ShapelabError."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise ShapelabError(f"{path}: not a readable image ({err}); re-render or remove this view") from None


def image_tensor(image: Image.Image, size: int | None) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 in [0, 1], bilinearly resized to ``size``² when given."""
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def white_background_mask(image: Image.Image, threshold: int) -> np.ndarray:
    """Foreground mask (H, W) bool of a rendering on white. Background = the near-white pixels (every channel
    >= ``threshold``; JPEG noise keeps real backgrounds a little below 255) that connect to the image border
    through near-white pixels (4-neighbour flood fill), so white parts of the object inside its outline stay
    foreground (on OccNet's bench sample, near-white-is-background lost up to 22 % of the silhouette, this
    rule 0.7 %). Limit: background seen through a hole the object encloses counts as object; a rendering's own
    mask (``mask/NNN.png``) is used instead where it exists."""
    near_white = np.asarray(image).min(axis=-1) >= threshold
    regions, _ = ndimage.label(near_white)
    edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
    return ~np.isin(regions, edge[edge > 0])


MASK_RESIZE_RULES = ("area", "any")


def check_mask_resize(rule: str) -> None:
    """One clear line for an unknown ``data.mask_resize``."""
    if rule not in MASK_RESIZE_RULES:
        raise ShapelabError(f"data.mask_resize={rule!r}: use 'area' (coverage >= 0.5) or 'any' (CAPNet's loader: "
                            "object wherever any object pixel contributes)")


def resize_mask(mask: np.ndarray, size: int | None, rule: str = "area") -> np.ndarray:
    """Resize a bool (H, W) mask to (size, size) bool.

    ``rule="area"``: area-weighted (anti-aliased bilinear) averaging, then threshold at 0.5 (a pixel is object
    when at least about half of it is covered).
    ``rule="any"``: CAPNet's released data loader (``fetch_batch_drc``: ``cv2.resize`` with INTER_LINEAR of the
    depth image, then every value below the background's is object): bilinear interpolation at each output
    pixel centre, source coordinate (dst + 0.5) · H/size − 0.5, edge pixels repeated, no anti-aliasing; a pixel
    is object when any source object pixel has a nonzero weight there. Thin parts survive and contours sit up
    to one source pixel further out than with "area".
    """
    check_mask_resize(rule)
    if size is None or mask.shape == (size, size):
        return mask
    if rule == "any":
        rows = (np.arange(size) + 0.5) * mask.shape[0] / size - 0.5
        cols = (np.arange(size) + 0.5) * mask.shape[1] / size - 0.5
        grid = np.meshgrid(rows, cols, indexing="ij")
        return ndimage.map_coordinates(mask.astype(np.float32), grid, order=1, mode="nearest") > 1e-6
    resized = Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized) >= 0.5
