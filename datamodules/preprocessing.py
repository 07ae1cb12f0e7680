"""Raw meshes -> the standard DeepSDF and OccNet formats plus Choy-2016-style renderings (DEVELOPING.md layout).

``preprocess_dataset`` finds the meshes of a ShapeNetCore v2 tree (``<synset>/<id>/models/model_normalized.obj``),
a v1 tree (``<synset>/<id>/model.obj``) or any folder of meshes (``[<category>/]<name>.{obj,off,ply,stl,glb}``),
processes them in parallel (one process per worker, progress bar), reports a bad mesh by path and goes on,
then writes splits and metadata and prints a summary.

Reruns: each finished shape gets a record ``<out_root>/preprocess/<synset>/<id>.json`` written after all its
files: the options and seed it was built with and the size of every file. A shape is skipped only when its
record matches the current options and every file has its recorded size (a truncated or missing file redoes
the shape). Outputs recorded with other options stop the run with one line naming the option, unless
``overwrite`` rebuilds them. Disk full stops the run with one line; the shape being written is redone next time.

Per shape, in the frames of DEVELOPING.md "Frames and units":
- DeepSDF: SdfSamples (``sdf_samples`` points: 47/50 near the surface at the two noise scales, 3/50 uniform
  in [-1, 1]^3; SDF from the exact triangle distance and the sign of geometry/inside.py), its
  NormalizationParameters, and ``surface_samples`` SurfaceSamples in original units. Test-split shapes get
  DeepSDF's test sampling when ``test_sdf_samples`` > 0 (``PreprocessMesh -t``: that many samples, first
  variance 0.05 instead of 0.005), in the same SdfSamples file, as the original.
- OccNet: points.npz (``occ_points`` uniform in the cube of side 1.1), pointcloud.npz (``pointcloud_points``
  surface samples + normals), voxels.npz (``voxel_resolution``^3 solid voxels).
- Renderings: ``views`` views of ``image_size`` px placed as in Choy et al. 2016 around the shape centred and
  scaled to a unit bounding-box diagonal (ShapeNet v2's frame); cameras.npz maps the *original* frame, as
  OccNet's do; RGB, mask and depth per view.

``frame``: "original" keeps the input mesh's axes (ShapeNet v2 for v2 meshes); "occnet" first moves the mesh
into the axes of OccNet's released ShapeNet files (geometry/axes.py: v1 axes, bounding box centred), so
outputs mix with OccNet's data.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import trimesh
from shapelab.datamodules.formats import deepsdf, occnet
from shapelab.datamodules.formats.validation import atomic_write
from shapelab.geometry.axes import AXES, to_axes
from shapelab.geometry.frames import (
    deepsdf_to_original,
    occnet_to_original,
    original_to_deepsdf,
    original_to_occnet,
)
from shapelab.geometry.inside import METHODS, occupancy, resolve_method, signed_distance
from shapelab.geometry.normalisation import deepsdf_normalisation, occnet_normalisation
from shapelab.geometry.raycast import render_view
from shapelab.geometry.sampling import (
    DEEPSDF_TEST_VARIANCES,
    DEEPSDF_VARIANCES,
    deepsdf_query_points,
    sample_outer_surface,
    sample_surface,
    uniform_cube_points,
    voxel_centres,
    voxelise,
)
from shapelab.renderers.cameras import (
    choy2016_extrinsics,
    choy2016_intrinsics,
    extrinsics_for_normalised_frame,
    sample_choy2016_views,
)
from tqdm import tqdm

from shapelab.errors import ShapelabError

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb")
FORMATS = ("deepsdf", "occnet", "renderings")
SPLIT_NAMES = ("train", "val", "test")
TOP_LEVEL_KEYS = ("seed", "frame")  # conf/preprocess.yaml keys outside `options`
RECORD_DIR = "preprocess"  # <out_root>/preprocess/<synset>/<id>.json: what a finished shape was built with
# defaults of the original pipelines (ANCHORS.md); DeepSDF draws 250k surface points to perturb and samples
# test shapes separately (PreprocessMesh.cpp -t: 250k samples, variance 0.05)
PAPER_OPTIONS = {
    "formats": list(FORMATS),
    "frame": "original",
    "sdf_samples": 500_000,
    "test_sdf_samples": 250_000,
    "sdf_source_points": 250_000,
    "surface_samples": 30_000,
    "occ_points": 100_000,
    "pointcloud_points": 100_000,
    "voxel_resolution": 32,
    "views": 24,
    "image_size": 137,
    "inside_method": "auto",
    "ray_directions": 32,
}
# the option names and value types, for `**options: Unpack[PreprocessOptions]` (start-up checks data.build's keys)
PreprocessOptions = TypedDict(
    "PreprocessOptions", {name: type(value) for name, value in PAPER_OPTIONS.items()}, total=False
)
# options added after datasets were built, with the value that reproduces the earlier outputs (a record
# without the key was built with it)
ADDED_OPTIONS = {"frame": "original", "test_sdf_samples": 0}
# the built-in synthetic set trades SDF sample count for a fast first build (formats are unchanged)
BUILTIN_OPTIONS = {
    **PAPER_OPTIONS,
    "sdf_samples": 100_000,
    "sdf_source_points": 50_000,
    "test_sdf_samples": 0,
}
SHAPENET_NAMES = {
    "02691156": "airplane", "02828884": "bench", "02933112": "cabinet", "02958343": "car",
    "03001627": "chair", "03211117": "display", "03636649": "lamp", "03691459": "speaker",
    "04090263": "rifle", "04256520": "sofa", "04379243": "table", "04401088": "telephone",
    "04530566": "watercraft",
}  # fmt: skip


@dataclass(frozen=True)
class ShapeSource:
    synset: str
    model_id: str
    path: Path
    problem: str = ""  # why this mesh cannot be used (reported as failed without reading it)


@dataclass
class PreprocessSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)  # "<path>: <reason>"
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_failed(self) -> bool:
        return bool(self.failed) and self.processed + self.skipped == 0

    def __str__(self) -> str:
        lines = [
            (
                f"preprocessed {self.processed} shapes, skipped {self.skipped} finished ones, "
                f"{len(self.failed)} failed, in {self.seconds:.1f} s"
            )
        ]
        lines += [f"  failed: {entry}" for entry in self.failed]
        return "\n".join(lines + [f"  warning: {entry}" for entry in self.warnings])


def find_meshes(source: str | Path) -> list[ShapeSource]:
    """Meshes of a ShapeNetCore v2 / v1 tree or of any folder of meshes, sorted by (synset, id)."""
    source = Path(source)
    if not source.is_dir():
        raise ShapelabError(f"{source}: input folder not found; set input_dir to a mesh folder")
    shapes = [
        ShapeSource(p.parts[-4], p.parts[-3], p) for p in source.glob("*/*/models/model_normalized.obj")
    ]
    if not shapes:
        shapes = [ShapeSource(p.parts[-3], p.parts[-2], p) for p in source.glob("*/*/model.obj")]
    if not shapes:
        shapes = _loose_meshes(source)
    if not shapes:
        raise ShapelabError(
            f"{source}: no meshes found (looked for <synset>/<id>/models/model_normalized.obj, "
            f"<synset>/<id>/model.obj and [<category>/]*{{{','.join(MESH_SUFFIXES)}}}); check input_dir"
        )
    return sorted(shapes, key=lambda shape: (shape.synset, shape.model_id, str(shape.path)))


def _loose_meshes(source: Path) -> list[ShapeSource]:
    """``[<category>/]<name>.<ext>`` meshes (id = name); deeper ones come back with a ``problem``; two files
    that would share an id (``x.obj`` and ``x.off``) raise ShapelabError."""
    shapes, by_id = [], {}
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in MESH_SUFFIXES or not path.is_file():
            continue
        parts = path.relative_to(source).parts
        synset = parts[0] if len(parts) > 1 else "meshes"
        if len(parts) > 2:
            problem = (
                f"{path}: nested deeper than <category>/<file>, not used; move it to "
                f"{source / parts[0] / path.name} or use the ShapeNet layout <synset>/<id>/models/model_normalized.obj"
            )
            shapes.append(ShapeSource(synset, path.stem, path, problem))
            continue
        other = by_id.setdefault((synset, path.stem), path)
        if other != path:
            raise ShapelabError(
                f"{other} and {path.name} would both become shape id {path.stem!r} of {synset!r}; "
                "rename or remove one of them"
            )
        shapes.append(ShapeSource(synset, path.stem, path))
    return shapes


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load one triangle mesh (all parts concatenated, vertices welded, degenerate faces removed);
    ShapelabError for an unreadable, empty or degenerate mesh."""
    path = Path(path)
    options = {"skip_materials": True} if path.suffix.lower() == ".obj" else {}
    try:  # process=False: processing silently drops NaN vertices with their faces
        mesh = trimesh.load(path, force="mesh", process=False, **options)
    except Exception as err:  # noqa: BLE001 - loaders raise many exception types for broken files
        raise ShapelabError(
            f"{path}: unreadable mesh ({type(err).__name__}: {err}); fix or remove the file"
        ) from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ShapelabError(f"{path}: mesh has no triangles; fix or remove the file")
    if not np.isfinite(mesh.vertices).all():
        bad = int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
        raise ShapelabError(f"{path}: mesh has {bad} NaN/inf vertices; fix or remove the file")
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0 or mesh.area <= 0 or np.ptp(mesh.vertices, axis=0).max() <= 0:
        raise ShapelabError(f"{path}: mesh is degenerate (zero area or extent); fix or remove the file")
    return mesh


def check_options(options: dict) -> dict:
    """PAPER_OPTIONS updated with ``options``; unknown keys or formats raise ShapelabError."""
    unknown = sorted(set(options) - set(PAPER_OPTIONS))
    if unknown:
        raise ShapelabError(f"options.{unknown[0]}: unknown option; known: {', '.join(PAPER_OPTIONS)}")
    merged = {**PAPER_OPTIONS, **options}
    bad = sorted(set(merged["formats"]) - set(FORMATS))
    if bad:
        raise ShapelabError(f"options.formats: unknown format {bad[0]!r}; use some of {list(FORMATS)}")
    if merged["frame"] not in AXES:
        raise ShapelabError(f"frame: unknown frame {merged['frame']!r}; use one of {list(AXES)}")
    if merged["inside_method"] not in METHODS:
        raise ShapelabError(
            f"options.inside_method: unknown method {merged['inside_method']!r}; use one of {list(METHODS)}"
        )
    return merged


class ShapeWriter:
    """Output paths, processing and record of one shape under ``out_root`` (``<data_dir>/<name>``);
    ``test_split``: the shape is in the test split (DeepSDF test sampling when ``test_sdf_samples`` > 0)."""

    def __init__(
        self,
        out_root: Path,
        name: str,
        shape: ShapeSource,
        options: dict,
        seed: int,
        test_split: bool = False,
    ):
        self.out_root, self.shape, self.options, self.seed = out_root, shape, options, seed
        self.test_sampling = test_split and options["test_sdf_samples"] > 0
        sdf_root = out_root / "deepsdf"
        self.sdf_file = sdf_root / "SdfSamples" / name / shape.synset / f"{shape.model_id}.npz"
        self.normalisation_file = (
            sdf_root / "NormalizationParameters" / name / shape.synset / f"{shape.model_id}.npz"
        )
        self.surface_file = sdf_root / "SurfaceSamples" / name / shape.synset / f"{shape.model_id}.ply"
        self.occnet_dir = out_root / "occnet" / shape.synset / shape.model_id
        self.views_dir = self.occnet_dir / "img_choy2016"
        self.record_file = out_root / RECORD_DIR / shape.synset / f"{shape.model_id}.json"

    def outputs(self, formats) -> list[Path]:
        """Every file the given formats write for this shape."""
        files = []
        if "deepsdf" in formats:
            files += [self.sdf_file, self.normalisation_file, self.surface_file]
        if "occnet" in formats:
            files += [self.occnet_dir / name for name in ("points.npz", "pointcloud.npz", "voxels.npz")]
        if "renderings" in formats:
            for stem in (f"{index:03d}" for index in range(self.options["views"])):
                folder = self.views_dir
                files += [
                    folder / f"{stem}.jpg",
                    folder / "mask" / f"{stem}.png",
                    folder / "depth" / f"{stem}.npz",
                ]
            files.append(self.views_dir / "cameras.npz")
        return files

    def settings(self) -> dict:
        """What the outputs depend on besides the mesh: every option but ``formats``, the seed, and whether
        the DeepSDF samples are test samples."""
        settings = {key: value for key, value in self.options.items() if key != "formats"}
        return {**settings, "seed": self.seed, "test_sampling": self.test_sampling}

    def read_record(self) -> dict | None:
        """The record of an earlier run (None when absent or unreadable)."""
        try:
            record = json.loads(self.record_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            return None
        return {**record, "settings": {**ADDED_OPTIONS, **record["settings"]}}

    def changed_option(self) -> str:
        """'' or which option differs from the recorded build (a changed split only redoes the shape)."""
        record = self.read_record()
        if record is None:
            return ""
        recorded = record["settings"]
        for key, value in self.settings().items():
            if key != "test_sampling" and recorded.get(key) != value:
                config_key = key if key in TOP_LEVEL_KEYS else f"options.{key}"
                return f"built with {config_key}={recorded.get(key)!r}, now {value!r}"
        return ""

    def complete(self, record: dict | None, formats) -> bool:
        """``record`` matches the current settings and every file of ``formats`` has its recorded size."""
        if (
            record is None
            or record["settings"] != self.settings()
            or not set(formats) <= set(record["formats"])
        ):
            return False
        sizes = record.get("files", {})
        return all(self._size(path) == sizes.get(self._key(path)) for path in self.outputs(formats))

    def finished(self) -> bool:
        return self.complete(self.read_record(), self.options["formats"])

    def run(self) -> None:
        record = self.read_record()
        formats = self.options["formats"]
        kept = [
            f for f in FORMATS if f not in formats and self.complete(record, [f])
        ]  # built earlier, still good
        self.record_file.unlink(missing_ok=True)  # unfinished until the new record is written
        mesh = to_axes(load_mesh(self.shape.path), self.options["frame"])
        if "deepsdf" in formats:
            self.write_deepsdf(mesh)
        if "occnet" in formats:
            self.write_occnet(mesh)
        if "renderings" in formats:
            self.write_renderings(mesh)
        built = [f for f in FORMATS if f in formats or f in kept]
        content = {
            "settings": self.settings(),
            "formats": built,
            "files": {self._key(path): path.stat().st_size for path in self.outputs(built)},
        }
        atomic_write(self.record_file, lambda tmp: tmp.write_text(json.dumps(content, indent=1) + "\n"))

    def _key(self, path: Path) -> str:
        return path.relative_to(self.out_root).as_posix()

    @staticmethod
    def _size(path: Path) -> int | None:
        try:
            return path.stat().st_size
        except OSError:
            return None

    def rng(self, stream: str) -> np.random.Generator:
        """Independent, reproducible generator per (seed, shape, output)."""
        key = hashlib.md5(f"{self.shape.synset}/{self.shape.model_id}/{stream}".encode()).digest()
        return np.random.default_rng([self.seed, int.from_bytes(key[:8], "little")])

    def inside_options(self, mesh: trimesh.Trimesh) -> dict:
        method = resolve_method(mesh, self.options["inside_method"])
        if method == "visibility":
            return {"method": method, "num_directions": self.options["ray_directions"]}
        return {"method": method}

    def surface(self, mesh: trimesh.Trimesh, count: int, rng: np.random.Generator):
        """(points, normals) on the surface; only its outer part when the mesh needs the visibility method."""
        options = self.inside_options(mesh)
        if options["method"] == "visibility":
            return sample_outer_surface(mesh, count, rng, options["num_directions"])
        return sample_surface(mesh, count, rng)

    def write_deepsdf(self, mesh: trimesh.Trimesh) -> None:
        opts, rng, options = self.options, self.rng("deepsdf"), self.inside_options(mesh)
        offset, scale = deepsdf_normalisation(mesh.vertices)
        deepsdf.write_surface_samples(self.surface_file, self.surface(mesh, opts["surface_samples"], rng)[0])
        source = self.surface(mesh, opts["sdf_source_points"], rng)[0]
        count, variances = (
            (opts["test_sdf_samples"], DEEPSDF_TEST_VARIANCES)
            if self.test_sampling
            else (opts["sdf_samples"], DEEPSDF_VARIANCES)
        )
        query = deepsdf_query_points(original_to_deepsdf(source, offset, scale), count, rng, variances)
        outer = source if options["method"] == "visibility" else None
        sdf = signed_distance(mesh, deepsdf_to_original(query, offset, scale), surface_points=outer, **options) * scale
        rows = np.column_stack([query, sdf]).astype(np.float32)
        deepsdf.write_sdf_samples(self.sdf_file, rows[sdf > 0], rows[sdf <= 0])
        deepsdf.write_normalisation(self.normalisation_file, offset, scale)

    def write_occnet(self, mesh: trimesh.Trimesh) -> None:
        opts, rng = self.options, self.rng("occnet")
        loc, scale = occnet_normalisation(mesh.vertices)
        surface, normals = self.surface(mesh, opts["pointcloud_points"], rng)
        surface = original_to_occnet(surface, loc, scale)
        points = uniform_cube_points(opts["occ_points"], rng)
        resolution = opts["voxel_resolution"]
        queries = occnet_to_original(np.concatenate([points, voxel_centres(resolution)]), loc, scale)
        inside = occupancy(mesh, queries, **self.inside_options(mesh))
        occnet.write_pointcloud(self.occnet_dir / "pointcloud.npz", surface, normals, loc, scale)
        occnet.write_voxels(
            self.occnet_dir / "voxels.npz", voxelise(inside[len(points) :], surface, resolution)
        )
        occnet.write_points(self.occnet_dir / "points.npz", points, inside[: len(points)], loc, scale)

    def write_renderings(self, mesh: trimesh.Trimesh) -> None:
        opts = self.options
        low, high = mesh.bounds
        centre, diagonal = (low + high) / 2, float(np.linalg.norm(high - low))
        K = choy2016_intrinsics(opts["image_size"])
        Rts = []
        for index, (azimuth, elevation, distance) in enumerate(
            sample_choy2016_views(opts["views"], self.rng("views"))
        ):
            # camera placed around the unit-diagonal frame, expressed for the original frame
            Rt = extrinsics_for_normalised_frame(
                choy2016_extrinsics(azimuth, elevation, distance), -centre / diagonal, 1.0 / diagonal
            )
            view = render_view(mesh, K, Rt, opts["image_size"], opts["image_size"])
            occnet.write_view(self.views_dir, index, view.rgb, view.mask, view.depth)
            Rts.append(Rt)
        occnet.write_cameras(self.views_dir / "cameras.npz", [K] * len(Rts), Rts)


def _process(task: tuple[ShapeWriter, bool]) -> tuple[ShapeSource, str, str]:
    """Worker: (shape, "done" | "skipped" | "failed" | DISK_FULL, reason)."""
    writer, overwrite = task
    if writer.shape.problem:
        return writer.shape, "failed", writer.shape.problem
    if not overwrite and writer.finished():
        return writer.shape, "skipped", ""
    try:
        writer.run()
    except ShapelabError as err:
        return writer.shape, "failed", str(err)
    except Exception as err:  # noqa: BLE001 - one broken mesh must not stop the dataset; it is reported
        if is_disk_full(err):
            return writer.shape, DISK_FULL, f"{writer.shape.synset}/{writer.shape.model_id}"
        return writer.shape, "failed", f"{writer.shape.path}: {type(err).__name__}: {err}"
    return writer.shape, "done", ""


DISK_FULL = "disk full"


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(out_root: Path, what: str) -> ShapelabError:
    return ShapelabError(
        f"{out_root}: disk full (no space left on device) while writing {what}; free space and re-run "
        "preprocess.py (finished shapes are kept, unfinished ones are redone)"
    )


def assign_splits(ids: list[str], splits: list[float], rng: np.random.Generator) -> dict[str, list[str]]:
    """Shuffle sorted ``ids`` and cut them in proportion to ``splits`` (train, val, test); with counts that add
    up to ``len(ids)`` (e.g. 16/4/4 of 24) the cut is exact. Train takes the rounding remainder."""
    if len(splits) != 3 or min(splits) < 0 or sum(splits) <= 0:
        raise ShapelabError(f"splits: {list(splits)} must be three non-negative numbers (train, val, test)")
    order = [ids[i] for i in rng.permutation(len(ids))]
    total = float(sum(splits))
    num_val, num_test = (round(len(ids) * part / total) for part in splits[1:])
    num_train = max(len(ids) - num_val - num_test, 0)
    return {
        "train": sorted(order[:num_train]),
        "val": sorted(order[num_train : num_train + num_val]),
        "test": sorted(order[num_train + num_val :]),
    }


def split_shapes(shapes: list[ShapeSource], splits, seed: int) -> dict[str, dict[str, list[str]]]:
    """``{split: {synset: [ids]}}`` over the usable shapes, per synset deterministic from ``seed``."""
    by_synset: dict[str, list[str]] = {}
    for shape in shapes:
        if not shape.problem:
            by_synset.setdefault(shape.synset, []).append(shape.model_id)
    per_split: dict[str, dict[str, list[str]]] = {split: {} for split in SPLIT_NAMES}
    for synset, ids in sorted(by_synset.items()):
        rng = np.random.default_rng([seed, int(hashlib.md5(synset.encode()).hexdigest()[:8], 16)])
        for split, chosen in assign_splits(sorted(ids), list(splits), rng).items():
            per_split[split][synset] = chosen
    return per_split


def empty_split_warnings(per_split: dict[str, dict[str, list[str]]], splits) -> list[str]:
    """One line per (category, split) asked for (share > 0) that holds no finished shape."""
    warnings = []
    for synset in sorted(per_split["train"]):
        total = sum(len(per_split[split][synset]) for split in SPLIT_NAMES)
        for split, share in zip(SPLIT_NAMES, splits):
            if share > 0 and not per_split[split][synset]:
                warnings.append(
                    f"category {synset}: the {split} split is empty ({total} finished shapes, "
                    f"splits={list(splits)}); add shapes or give counts per split, e.g. splits=[1,1,1]"
                )
    return warnings


def write_splits(
    out_root: Path, name: str, per_split: dict[str, dict[str, list[str]]], category_names
) -> None:
    """Per-synset OccNet .lst files, DeepSDF split JSONs and metadata.yaml for ``{split: {synset: [ids]}}``."""
    for split, content in per_split.items():
        for synset, ids in content.items():
            occnet.write_split_lst(out_root / "occnet" / synset / f"{split}.lst", ids)
        deepsdf.write_split(out_root / "deepsdf" / "splits" / f"{name}_{split}.json", name, content)
    names = {**SHAPENET_NAMES, **(category_names or {})}
    occnet.write_metadata(
        out_root / "occnet" / "metadata.yaml", {s: names.get(s, s) for s in sorted(per_split["train"])}
    )


def refuse_changed_options(writers: list[ShapeWriter]) -> None:
    """ShapelabError naming the first shape whose outputs were built with other options."""
    for writer in writers:
        change = writer.changed_option()
        if change:
            raise ShapelabError(
                f"{writer.record_file}: {change}; set overwrite=true to rebuild the shapes with the new "
                "options, or choose another out_dir"
            )


def _results(tasks: list[tuple[ShapeWriter, bool]], workers: int, progress: bool):
    """(shape, status, reason) per task as they finish; a pool of ``workers`` processes when > 1."""
    bar = {"total": len(tasks), "desc": "preprocess", "disable": not progress}
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            yield from tqdm(pool.imap_unordered(_process, tasks), **bar)
    else:
        yield from (_process(task) for task in tqdm(tasks, **bar))


def preprocess_dataset(
    input_dir: str | Path,
    out_root: str | Path,
    name: str,
    splits=(0.8, 0.1, 0.1),
    seed: int = 0,
    workers: int = 2,
    overwrite: bool = False,
    category_names: dict[str, str] | None = None,
    categories: list[str] | None = None,
    progress: bool = True,
    **options,
) -> PreprocessSummary:
    """Preprocess every mesh under ``input_dir`` into ``out_root`` (see module docstring); returns the summary.

    ``options`` override PAPER_OPTIONS (unknown keys raise ShapelabError). Splits are proportions or counts
    (train, val, test) per category, deterministic from ``seed`` and the meshes found; shapes that fail are
    left out of them (the others keep their split). ``categories`` keeps only those synsets (folder names).
    """
    options = check_options(options)
    out_root, started = Path(out_root), time.perf_counter()
    shapes = find_meshes(input_dir)
    if categories is not None:
        wanted = {str(synset) for synset in categories}
        shapes = [shape for shape in shapes if shape.synset in wanted]
        if not shapes:
            raise ShapelabError(f"categories: none of {sorted(wanted)} found under {input_dir}")
    per_split = split_shapes(shapes, splits, seed)
    test_ids = {(synset, model_id) for synset, ids in per_split["test"].items() for model_id in ids}
    writers = [
        ShapeWriter(out_root, name, shape, options, seed, (shape.synset, shape.model_id) in test_ids)
        for shape in shapes
    ]
    if not overwrite:
        refuse_changed_options(writers)
    summary, failed = PreprocessSummary(), set()
    with closing(_results([(writer, overwrite) for writer in writers], workers, progress)) as results:
        for shape, status, reason in results:
            if status == DISK_FULL:  # closing() stops the other workers before the error goes up
                raise disk_full_error(out_root, f"shape {reason}")
            if status == "failed":
                summary.failed.append(reason)
                failed.add((shape.synset, shape.model_id))
            summary.processed += status == "done"
            summary.skipped += status == "skipped"
    for content in per_split.values():
        for synset, ids in content.items():
            content[synset] = [model_id for model_id in ids if (synset, model_id) not in failed]
    if summary.processed + summary.skipped:
        try:
            write_splits(out_root, name, per_split, category_names)
        except OSError as err:
            if is_disk_full(err):
                raise disk_full_error(out_root, "the split files") from None
            raise
        summary.warnings = empty_split_warnings(per_split, splits)
    summary.failed.sort()
    summary.seconds = time.perf_counter() - started
    return summary
