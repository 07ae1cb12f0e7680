"""Raw meshes -> the standard DeepSDF and OccNet formats plus Choy-2016-style renderings (DEVELOPING.md layout).

``preprocess_dataset`` finds the meshes of a ShapeNetCore v2 tree (``<synset>/<id>/models/model_normalized.obj``),
a v1 tree (``<synset>/<id>/model.obj``) or any folder of meshes (``[<category>/]<name>.{obj,off,ply,stl,glb}``),
processes them in parallel (one process per worker, progress bar), skips shapes whose outputs are all
there (resumable), reports a bad mesh by path and goes on, then writes splits and metadata and prints a summary.

Per shape, in the frames of DEVELOPING.md "Frames and units":
- DeepSDF: SdfSamples (``sdf_samples`` points: 47/50 near the surface at the two noise scales, 3/50 uniform
  in [-1, 1]^3; SDF from the exact triangle distance and the sign of geometry/inside.py), its
  NormalizationParameters, and ``surface_samples`` SurfaceSamples in original units.
- OccNet: points.npz (``occ_points`` uniform in the cube of side 1.1), pointcloud.npz (``pointcloud_points``
  surface samples + normals), voxels.npz (``voxel_resolution``^3 solid voxels).
- Renderings: ``views`` views of ``image_size`` px placed as in Choy et al. 2016 around the shape centred and
  scaled to a unit bounding-box diagonal (ShapeNet v2's frame); cameras.npz maps the *original* frame, as
  OccNet's do; RGB, mask and depth per view.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from shapelab.datamodules.formats import deepsdf, occnet
from shapelab.geometry.inside import METHODS, occupancy, resolve_method, signed_distance
from shapelab.geometry.normalization import deepsdf_normalization, occnet_normalization
from shapelab.geometry.raycast import render_view
from shapelab.geometry.sampling import (
    deepsdf_query_points,
    sample_outer_surface,
    sample_surface,
    uniform_cube_points,
    voxel_centres,
    voxelize,
)
from shapelab.renderers.cameras import (
    choy2016_extrinsics,
    choy2016_intrinsics,
    extrinsics_for_normalized_frame,
    sample_choy2016_views,
)
from tqdm import tqdm

from shapelab.errors import ShapelabError

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb")
FORMATS = ("deepsdf", "occnet", "renderings")
SPLIT_NAMES = ("train", "val", "test")
# defaults of the original pipelines (ANCHORS.md); DeepSDF draws 250k surface points to perturb
PAPER_OPTIONS = {
    "formats": list(FORMATS),
    "sdf_samples": 500_000,
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
# the built-in synthetic set trades SDF sample count for a fast first build (formats are unchanged)
BUILTIN_OPTIONS = {**PAPER_OPTIONS, "sdf_samples": 100_000, "sdf_source_points": 50_000}
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


@dataclass
class PreprocessSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)  # "<path>: <reason>"
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [
            (
                f"preprocessed {self.processed} shapes, skipped {self.skipped} finished ones, "
                f"{len(self.failed)} failed, in {self.seconds:.1f} s"
            )
        ]
        return "\n".join(lines + [f"  failed: {entry}" for entry in self.failed])


def find_meshes(source: str | Path) -> list[ShapeSource]:
    """Meshes of a ShapeNetCore v2 / v1 tree or of any folder of meshes, sorted by (synset, id)."""
    source = Path(source)
    if not source.is_dir():
        raise ShapelabError(f"{source}: input folder not found; set preprocess.input_dir to a mesh folder")
    shapes = [
        ShapeSource(p.parts[-4], p.parts[-3], p) for p in source.glob("*/*/models/model_normalized.obj")
    ]
    if not shapes:
        shapes = [ShapeSource(p.parts[-3], p.parts[-2], p) for p in source.glob("*/*/model.obj")]
    if not shapes:
        for path in sorted(source.rglob("*")):
            depth = len(path.relative_to(source).parts)
            if path.suffix.lower() in MESH_SUFFIXES and depth <= 2:
                shapes.append(ShapeSource(path.parent.name if depth == 2 else "meshes", path.stem, path))
    if not shapes:
        raise ShapelabError(
            f"{source}: no meshes found (looked for <synset>/<id>/models/model_normalized.obj, "
            f"<synset>/<id>/model.obj and [<category>/]*{{{','.join(MESH_SUFFIXES)}}}); check preprocess.input_dir"
        )
    return sorted(shapes, key=lambda shape: (shape.synset, shape.model_id))


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load one triangle mesh (all parts concatenated, vertices welded, degenerate faces removed);
    ShapelabError for an unreadable, empty or degenerate mesh."""
    path = Path(path)
    options = {"skip_materials": True} if path.suffix.lower() == ".obj" else {}
    try:
        mesh = trimesh.load(path, force="mesh", **options)
    except Exception as err:  # noqa: BLE001 - loaders raise many exception types for broken files
        raise ShapelabError(
            f"{path}: unreadable mesh ({type(err).__name__}: {err}); fix or remove the file"
        ) from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ShapelabError(f"{path}: mesh has no triangles; fix or remove the file")
    if not np.isfinite(mesh.vertices).all():
        raise ShapelabError(f"{path}: mesh has NaN/inf vertices; fix or remove the file")
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
        raise ShapelabError(f"preprocess.{unknown[0]}: unknown option; known: {', '.join(PAPER_OPTIONS)}")
    merged = {**PAPER_OPTIONS, **options}
    bad = sorted(set(merged["formats"]) - set(FORMATS))
    if bad:
        raise ShapelabError(f"preprocess.formats: unknown format {bad[0]!r}; use some of {list(FORMATS)}")
    if merged["inside_method"] not in METHODS:
        raise ShapelabError(
            f"preprocess.inside_method: unknown method {merged['inside_method']!r}; use one of {list(METHODS)}"
        )
    return merged


class ShapeWriter:
    """Output paths and processing of one shape under ``out_root`` (``<data_dir>/<name>``)."""

    def __init__(self, out_root: Path, name: str, shape: ShapeSource, options: dict, seed: int):
        self.shape, self.options, self.seed = shape, options, seed
        sdf_root = out_root / "deepsdf"
        self.sdf_file = sdf_root / "SdfSamples" / name / shape.synset / f"{shape.model_id}.npz"
        self.normalization_file = (
            sdf_root / "NormalizationParameters" / name / shape.synset / f"{shape.model_id}.npz"
        )
        self.surface_file = sdf_root / "SurfaceSamples" / name / shape.synset / f"{shape.model_id}.ply"
        self.occnet_dir = out_root / "occnet" / shape.synset / shape.model_id
        self.views_dir = self.occnet_dir / "img_choy2016"

    def outputs(self) -> list[Path]:
        formats = self.options["formats"]
        files = []
        if "deepsdf" in formats:
            files += [self.sdf_file, self.normalization_file, self.surface_file]
        if "occnet" in formats:
            files += [self.occnet_dir / name for name in ("points.npz", "pointcloud.npz", "voxels.npz")]
        if "renderings" in formats:
            files.append(self.views_dir / "cameras.npz")  # written last, after every view
        return files

    def finished(self) -> bool:
        return all(path.is_file() for path in self.outputs())

    def rng(self, stream: str) -> np.random.Generator:
        """Independent, reproducible generator per (seed, shape, output)."""
        key = hashlib.md5(f"{self.shape.synset}/{self.shape.model_id}/{stream}".encode()).digest()
        return np.random.default_rng([self.seed, int.from_bytes(key[:8], "little")])

    def run(self) -> None:
        mesh = load_mesh(self.shape.path)
        formats = self.options["formats"]
        if "deepsdf" in formats:
            self.write_deepsdf(mesh)
        if "occnet" in formats:
            self.write_occnet(mesh)
        if "renderings" in formats:
            self.write_renderings(mesh)

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
        offset, scale = deepsdf_normalization(mesh.vertices)
        deepsdf.write_surface_samples(self.surface_file, self.surface(mesh, opts["surface_samples"], rng)[0])
        source = self.surface(mesh, opts["sdf_source_points"], rng)[0]
        query = deepsdf_query_points((source + offset) * scale, opts["sdf_samples"], rng)
        outer = source if options["method"] == "visibility" else None
        sdf = signed_distance(mesh, query / scale - offset, surface_points=outer, **options) * scale
        rows = np.column_stack([query, sdf]).astype(np.float32)
        deepsdf.write_sdf_samples(self.sdf_file, rows[sdf > 0], rows[sdf <= 0])
        deepsdf.write_normalization(self.normalization_file, offset, scale)

    def write_occnet(self, mesh: trimesh.Trimesh) -> None:
        opts, rng = self.options, self.rng("occnet")
        loc, scale = occnet_normalization(mesh.vertices)
        surface, normals = self.surface(mesh, opts["pointcloud_points"], rng)
        surface = (surface - loc) / scale
        points = uniform_cube_points(opts["occ_points"], rng)
        resolution = opts["voxel_resolution"]
        queries = np.concatenate([points, voxel_centres(resolution)]) * scale + loc
        inside = occupancy(mesh, queries, **self.inside_options(mesh))
        occnet.write_pointcloud(self.occnet_dir / "pointcloud.npz", surface, normals, loc, scale)
        occnet.write_voxels(
            self.occnet_dir / "voxels.npz", voxelize(inside[len(points) :], surface, resolution)
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
            Rt = extrinsics_for_normalized_frame(
                choy2016_extrinsics(azimuth, elevation, distance), -centre / diagonal, 1.0 / diagonal
            )
            view = render_view(mesh, K, Rt, opts["image_size"], opts["image_size"])
            occnet.write_view(self.views_dir, index, view.rgb, view.mask, view.depth)
            Rts.append(Rt)
        occnet.write_cameras(self.views_dir / "cameras.npz", [K] * len(Rts), Rts)


def _process(task: tuple[ShapeWriter, bool]) -> tuple[ShapeSource, str, str]:
    """Worker: (shape, "done" | "skipped" | "failed", reason)."""
    writer, overwrite = task
    if writer.finished() and not overwrite:
        return writer.shape, "skipped", ""
    try:
        writer.run()
    except ShapelabError as err:
        return writer.shape, "failed", str(err)
    except Exception as err:  # noqa: BLE001 - one broken mesh must not stop the dataset; it is reported
        return writer.shape, "failed", f"{writer.shape.path}: {type(err).__name__}: {err}"
    return writer.shape, "done", ""


def assign_splits(ids: list[str], splits: list[float], rng: np.random.Generator) -> dict[str, list[str]]:
    """Shuffle sorted ``ids`` and cut them in proportion to ``splits`` (train, val, test); with counts that add
    up to ``len(ids)`` (e.g. 16/4/4 of 24) the cut is exact. Train takes the rounding remainder."""
    if len(splits) != 3 or min(splits) < 0 or sum(splits) <= 0:
        raise ShapelabError(
            f"preprocess.splits: {list(splits)} must be three non-negative numbers (train, val, test)"
        )
    order = [ids[i] for i in rng.permutation(len(ids))]
    total = float(sum(splits))
    num_val, num_test = (round(len(ids) * part / total) for part in splits[1:])
    num_train = max(len(ids) - num_val - num_test, 0)
    return {
        "train": sorted(order[:num_train]),
        "val": sorted(order[num_train : num_train + num_val]),
        "test": sorted(order[num_train + num_val :]),
    }


def write_splits(
    out_root: Path, name: str, finished: list[ShapeSource], splits, seed: int, category_names
) -> None:
    """Per-synset OccNet .lst files, DeepSDF split JSONs and metadata.yaml for the finished shapes."""
    by_synset: dict[str, list[str]] = {}
    for shape in finished:
        by_synset.setdefault(shape.synset, []).append(shape.model_id)
    per_split: dict[str, dict[str, list[str]]] = {split: {} for split in SPLIT_NAMES}
    for synset, ids in sorted(by_synset.items()):
        rng = np.random.default_rng([seed, int(hashlib.md5(synset.encode()).hexdigest()[:8], 16)])
        for split, chosen in assign_splits(sorted(ids), list(splits), rng).items():
            per_split[split][synset] = chosen
            occnet.write_split_lst(out_root / "occnet" / synset / f"{split}.lst", chosen)
    for split, content in per_split.items():
        deepsdf.write_split(out_root / "deepsdf" / "splits" / f"{name}_{split}.json", name, content)
    names = {**SHAPENET_NAMES, **(category_names or {})}
    occnet.write_metadata(
        out_root / "occnet" / "metadata.yaml", {s: names.get(s, s) for s in sorted(by_synset)}
    )


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
    (train, val, test) per category, deterministic from ``seed``; failed shapes are left out of them.
    ``categories`` keeps only those synsets (folder names).
    """
    options = check_options(options)
    out_root, started = Path(out_root), time.perf_counter()
    shapes = find_meshes(input_dir)
    if categories is not None:
        wanted = {str(synset) for synset in categories}
        shapes = [shape for shape in shapes if shape.synset in wanted]
        if not shapes:
            raise ShapelabError(f"preprocess.categories: none of {sorted(wanted)} found under {input_dir}")
    tasks = [(ShapeWriter(out_root, name, shape, options, seed), overwrite) for shape in shapes]
    summary, finished = PreprocessSummary(), []
    if workers > 1 and len(tasks) > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            results = list(
                tqdm(
                    pool.imap_unordered(_process, tasks),
                    total=len(tasks),
                    desc="preprocess",
                    disable=not progress,
                )
            )
    else:
        results = [_process(task) for task in tqdm(tasks, desc="preprocess", disable=not progress)]
    for shape, status, reason in results:
        if status == "failed":
            summary.failed.append(reason)
            continue
        finished.append(shape)
        summary.processed += status == "done"
        summary.skipped += status == "skipped"
    if finished:
        write_splits(out_root, name, finished, splits, seed, category_names)
    summary.failed.sort()
    summary.seconds = time.perf_counter() - started
    return summary
