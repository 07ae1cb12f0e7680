"""The built-in ShapeNet-like dataset: procedural watertight meshes in five ShapeNet categories.

Each shape is a union of primitives (boxes, cylinders, cones, convex hulls) computed with trimesh's boolean
union on the ``manifold3d`` engine, so every mesh is watertight. Shapes vary within a category the way
ShapeNet's do (chairs with/without arms, slatted or solid backs, four legs or a swivel base; tables round or
rectangular on legs, pedestal or trestles; lamps with straight or angled arms and cone or globe shades;
airplanes with different sweep, span, taper, tail type and engines; cars with different proportions and
cabins). Meshes are written in the ShapeNetCore v2 layout ``<synset>/<id>/models/model_normalized.obj``
(y up, front towards +z, centred, bounding-box diagonal 1 as v2's normalisation) and then go through the
same preprocessing as real data (datamodules/preprocessing.py).

Everything is a deterministic function of ``seed``: shape ``i`` of category ``c`` uses its own generator
``default_rng([seed, synset, i])``, so shapes can be built in any order or in parallel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack, get_type_hints

import numpy as np
import trimesh
from shapelab.datamodules.concave_shapes import CONCAVE_CATEGORIES, CONCAVE_MAKERS
from shapelab.datamodules.formats.validation import atomic_write
from shapelab.datamodules.preprocessing import (
    ADDED_OPTIONS,
    BUILTIN_OPTIONS,
    FORMATS,
    PreprocessOptions,
    preprocess_dataset,
)

from shapelab.errors import ShapelabError

CATEGORIES = {
    "02691156": "airplane",
    "03001627": "chair",
    "04379243": "table",
    "03636649": "lamp",
    "02958343": "car",
}
SECTIONS = 20  # polygon sides of cylinders and cones
COMPLETE_MARKER = "COMPLETE.json"
log = logging.getLogger("shapelab.data")


# ----------------------------------------------------------------------------------------------- primitives
def box(size, centre) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=size, transform=trimesh.transformations.translation_matrix(centre))


def rod(radius: float, start, end) -> trimesh.Trimesh:
    """Cylinder of ``radius`` from ``start`` to ``end``."""
    return trimesh.creation.cylinder(
        radius=radius, segment=np.array([start, end], dtype=float), sections=SECTIONS
    )


def frustum(bottom_radius: float, top_radius: float, start, end) -> trimesh.Trimesh:
    """Truncated cone from ``start`` (radius ``bottom_radius``) to ``end`` (``top_radius``)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    axis = (end - start) / np.linalg.norm(end - start)
    side = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    other = np.cross(axis, side)
    angle = np.linspace(0, 2 * np.pi, SECTIONS, endpoint=False)
    ring = np.cos(angle)[:, None] * side + np.sin(angle)[:, None] * other
    return trimesh.convex.convex_hull(np.concatenate([start + bottom_radius * ring, end + top_radius * ring]))


def slab(outline_xz: np.ndarray, y_low: float, y_high: float) -> trimesh.Trimesh:
    """Convex prism of a (K, 2) outline in the x-z plane between heights ``y_low`` and ``y_high``."""
    low = np.column_stack([outline_xz[:, 0], np.full(len(outline_xz), y_low), outline_xz[:, 1]])
    high = low + [0.0, y_high - y_low, 0.0]
    return trimesh.convex.convex_hull(np.concatenate([low, high]))


def mirror_x(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mirrored = mesh.copy()
    return mirrored.apply_transform(np.diag([-1.0, 1.0, 1.0, 1.0]))  # trimesh re-winds reflected faces


# ------------------------------------------------------------------------------------------- categories
def make_chair(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    width, depth = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.55)
    seat_height, seat_thickness = rng.uniform(0.4, 0.5), rng.uniform(0.04, 0.08)
    parts = [box([width, seat_thickness, depth], [0, seat_height, 0])]
    seat_bottom = seat_height - seat_thickness / 2
    if rng.random() < 0.7:  # four legs, square or round
        leg = rng.uniform(0.03, 0.06)
        round_legs = rng.random() < 0.5
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (width / 2 - leg), sz * (depth / 2 - leg)
                if round_legs:
                    parts.append(rod(leg / 2, [x, 0, z], [x, seat_bottom + 0.01, z]))
                else:
                    parts.append(box([leg, seat_bottom + 0.01, leg], [x, (seat_bottom + 0.01) / 2, z]))
    else:  # swivel base: column and a star of feet
        feet = int(rng.integers(4, 6))
        parts.append(rod(rng.uniform(0.025, 0.045), [0, 0.04, 0], [0, seat_bottom + 0.01, 0]))
        for angle in np.arange(feet) * 2 * np.pi / feet:
            tip = 0.3 * np.array([np.cos(angle), 0, np.sin(angle)])
            parts.append(rod(0.02, [0, 0.03, 0], tip + [0, 0.02, 0]))
    back_height, back_thickness = rng.uniform(0.3, 0.6), rng.uniform(0.04, 0.06)
    back_z = -depth / 2 + back_thickness / 2
    back_bottom = seat_height
    if rng.random() < 0.6:  # solid back
        parts.append(box([width, back_height, back_thickness], [0, back_bottom + back_height / 2, back_z]))
    else:  # top rail and vertical slats
        rail = rng.uniform(0.05, 0.1)
        parts.append(box([width, rail, back_thickness], [0, back_bottom + back_height - rail / 2, back_z]))
        slats = int(rng.integers(2, 6))
        for x in np.linspace(-width / 2 + 0.025, width / 2 - 0.025, slats):
            parts.append(
                box([0.04, back_height, back_thickness * 0.8], [x, back_bottom + back_height / 2, back_z])
            )
    if rng.random() < 0.4:  # arms
        arm_height = rng.uniform(0.15, 0.25)
        for sx in (-1, 1):
            x = sx * (width / 2 - 0.025)
            parts.append(box([0.05, 0.04, depth], [x, seat_height + arm_height, 0]))
            parts.append(box([0.04, arm_height, 0.04], [x, seat_height + arm_height / 2, depth / 2 - 0.03]))
    return parts


def make_table(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    height, thickness = rng.uniform(0.6, 0.8), rng.uniform(0.03, 0.07)
    round_top = rng.random() < 0.3
    width = rng.uniform(0.8, 1.4)
    depth = width if round_top else rng.uniform(0.5, 0.9)
    if round_top:
        parts = [rod(width / 2, [0, height - thickness, 0], [0, height, 0])]
    else:
        parts = [box([width, thickness, depth], [0, height - thickness / 2, 0])]
    under = height - thickness + 0.01
    style = rng.choice(["legs", "pedestal", "trestle"]) if not round_top else rng.choice(["legs", "pedestal"])
    if style == "legs":
        leg = rng.uniform(0.04, 0.08)
        inset = width / 2 * (0.65 if round_top else 1.0) - leg
        zinset = depth / 2 * (0.65 if round_top else 1.0) - leg
        legs = [(sx * inset, sz * zinset) for sx in (-1, 1) for sz in (-1, 1)]
        for x, z in legs:
            parts.append(box([leg, under, leg], [x, under / 2, z]))
        if rng.random() < 0.4:  # lower shelf
            shelf_y = rng.uniform(0.1, 0.25)
            parts.append(box([2 * inset + leg, 0.03, 2 * zinset + leg], [0, shelf_y, 0]))
    elif style == "pedestal":
        parts.append(rod(rng.uniform(0.04, 0.08), [0, 0, 0], [0, under, 0]))
        parts.append(rod(rng.uniform(0.2, 0.3) * min(width, depth) * 1.5, [0, 0, 0], [0, 0.04, 0]))
    else:  # two trestle panels and a stretcher
        panel = rng.uniform(0.04, 0.07)
        for sx in (-1, 1):
            parts.append(box([panel, under, depth * 0.8], [sx * (width / 2 - 0.1), under / 2, 0]))
        parts.append(box([width - 0.2, 0.05, 0.05], [0, rng.uniform(0.15, 0.35), 0]))
    return parts


def make_lamp(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    base_radius, base_height = rng.uniform(0.1, 0.2), rng.uniform(0.03, 0.08)
    if rng.random() < 0.7:
        parts = [rod(base_radius, [0, 0, 0], [0, base_height, 0])]
    else:
        parts = [box([2 * base_radius, base_height, 2 * base_radius], [0, base_height / 2, 0])]
    stem_radius, stem_height = rng.uniform(0.01, 0.025), rng.uniform(0.4, 0.9)
    top = np.array([0.0, stem_height, 0.0])
    parts.append(rod(stem_radius, [0, base_height / 2, 0], top))
    if rng.random() < 0.4:  # angled arm
        angle = rng.uniform(0.3, 1.1)
        arm_end = top + rng.uniform(0.2, 0.4) * np.array([np.sin(angle), np.cos(angle), 0.0])
        parts.append(rod(stem_radius, top, arm_end))
        parts.append(trimesh.creation.icosphere(1, radius=stem_radius * 1.5).apply_translation(top))
        top = arm_end
    if rng.random() < 0.7:  # cone shade hanging over the top of the stem
        shade_height = rng.uniform(0.15, 0.3)
        bottom_radius = rng.uniform(0.12, 0.25)
        start = top - [0, shade_height * 0.6, 0]
        parts.append(
            frustum(bottom_radius, bottom_radius * rng.uniform(0.4, 0.8), start, start + [0, shade_height, 0])
        )
    else:  # globe
        parts.append(trimesh.creation.icosphere(2, radius=rng.uniform(0.08, 0.16)).apply_translation(top))
    return parts


def make_airplane(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    length, radius = rng.uniform(1.0, 1.4), rng.uniform(0.05, 0.09)
    nose, tail = -length / 2, length / 2  # nose towards -z, tail towards +z
    parts = [
        rod(radius, [0, 0, nose + 0.15], [0, 0, tail - 0.25]),
        frustum(radius, 0.01, [0, 0, nose + 0.15], [0, 0, nose]),
        frustum(radius, radius * 0.3, [0, 0, tail - 0.25], [0, radius * 0.5, tail]),
    ]
    span, root_chord = rng.uniform(0.5, 0.8) * length, rng.uniform(0.2, 0.35)
    tip_chord, sweep = root_chord * rng.uniform(0.3, 0.9), np.radians(rng.uniform(0.0, 40.0))
    wing_z, wing_y = rng.uniform(-0.15, 0.05) * length, rng.uniform(-0.6, 0.3) * radius
    wing = half_wing(span / 2, root_chord, tip_chord, sweep, 0.025, wing_z, wing_y)
    parts += [wing, mirror_x(wing)]
    stabiliser = half_wing(span * rng.uniform(0.15, 0.25), 0.15, 0.08, sweep, 0.015, 0, 0)
    fin_height, t_tail = rng.uniform(0.15, 0.3), rng.random() < 0.3
    stab_y = fin_height * 0.9 if t_tail else radius * 0.3
    stabiliser.apply_translation([0, stab_y, tail - 0.12])
    parts += [stabiliser, mirror_x(stabiliser)]
    fin_outline = np.array(
        [
            [0, tail - 0.3],
            [0, tail - 0.02],
            [fin_height, tail - 0.02 + np.tan(sweep) * 0.1],
            [fin_height, tail - 0.12],
        ]
    )
    fin = slab(fin_outline, -0.01, 0.01)  # built in the x-z plane, then turned upright
    fin.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1]))
    parts.append(mirror_x(fin))
    engines_per_side = int(rng.integers(0, 3))
    for k in range(engines_per_side):
        x = span / 2 * (0.3 + 0.3 * k)
        z = wing_z + x * np.tan(sweep) - 0.05
        engine = rod(0.04, [x, wing_y - 0.05, z - 0.12], [x, wing_y - 0.05, z + 0.08])
        pylon = box([0.02, 0.06, 0.08], [x, wing_y - 0.02, z])
        parts += [engine, pylon, mirror_x(engine), mirror_x(pylon)]
    return parts


def half_wing(half_span, root_chord, tip_chord, sweep, thickness, z, y) -> trimesh.Trimesh:
    """Right half of a swept, tapered wing (root at x=0 from z to z+root_chord)."""
    tip_z = z + half_span * np.tan(sweep)
    outline = np.array([[0, z], [0, z + root_chord], [half_span, tip_z + tip_chord], [half_span, tip_z]])
    return slab(outline, y - thickness / 2, y + thickness / 2)


def make_car(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    length, width = rng.uniform(0.9, 1.2), rng.uniform(0.4, 0.5)
    wheel_radius, body_height = rng.uniform(0.08, 0.12), rng.uniform(0.15, 0.25)
    body_bottom = wheel_radius * 0.6
    parts = [box([width, body_height, length], [0, body_bottom + body_height / 2, 0])]
    cabin_length = rng.uniform(0.35, 0.6) * length
    cabin_centre = rng.uniform(-0.1, 0.15) * length
    cabin_height = rng.uniform(0.12, 0.2)
    slant_front, slant_back = rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.15)
    low_y, high_y = body_bottom + body_height - 0.01, body_bottom + body_height + cabin_height
    cabin_low = [cabin_centre - cabin_length / 2, cabin_centre + cabin_length / 2]
    cabin_high = [cabin_low[0] + slant_front, cabin_low[1] - slant_back]
    cabin = []
    for x in (-width / 2 + 0.02, width / 2 - 0.02):
        cabin += [
            [x, low_y, cabin_low[0]],
            [x, low_y, cabin_low[1]],
            [x, high_y, cabin_high[0]],
            [x, high_y, cabin_high[1]],
        ]
    parts.append(trimesh.convex.convex_hull(np.array(cabin)))
    axle = length / 2 - rng.uniform(0.15, 0.22)
    for x in (-width / 2, width / 2):
        for z in (-axle, axle):
            parts.append(rod(wheel_radius, [x - 0.04, wheel_radius, z], [x + 0.04, wheel_radius, z]))
    return parts


MAKERS: dict[str, Callable[[np.random.Generator], list[trimesh.Trimesh]]] = {
    "02691156": make_airplane,
    "03001627": make_chair,
    "04379243": make_table,
    "03636649": make_lamp,
    "02958343": make_car,
    **CONCAVE_MAKERS,  # opt-in categories with deep concavities (datamodules/concave_shapes.py)
}
OPTIONAL_CATEGORIES = CONCAVE_CATEGORIES


# --------------------------------------------------------------------------------------------- assembly
def union(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Boolean union of closed parts (manifold3d engine): one watertight mesh."""
    return trimesh.boolean.union(parts, engine="manifold")


def normalise_like_shapenet_v2(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre the bounding box at the origin and scale its diagonal to 1 (ShapeNetCore v2 normalisation)."""
    low, high = mesh.bounds
    mesh.apply_translation(-(low + high) / 2)
    mesh.apply_scale(1.0 / np.linalg.norm(high - low))
    return mesh


def model_id(synset: str, index: int, seed: int) -> str:
    """32 hex characters like ShapeNet ids, deterministic from (synset, index, seed)."""
    return hashlib.md5(f"shapelab-synthetic/{synset}/{seed}/{index}".encode()).hexdigest()


def generate_shape(synset: str, index: int, seed: int) -> trimesh.Trimesh:
    """The watertight mesh of shape ``index`` of category ``synset`` for ``seed``."""
    rng = np.random.default_rng([seed, int(synset), index])
    return normalise_like_shapenet_v2(union(MAKERS[synset](rng)))


def write_raw_dataset(
    raw_dir: str | Path, categories: list[str], shapes_per_category: int, seed: int
) -> list[Path]:
    """Write (or keep, when already there) every ``<synset>/<id>/models/model_normalized.obj`` under ``raw_dir``."""
    paths = []
    for synset in categories:
        for index in range(shapes_per_category):
            path = Path(raw_dir) / synset / model_id(synset, index, seed) / "models" / "model_normalized.obj"
            if not path.is_file():
                mesh = generate_shape(synset, index, seed)
                atomic_write(
                    path, lambda tmp, mesh=mesh: mesh.export(tmp, file_type="obj", include_normals=False)
                )
            paths.append(path)
    return paths


def resolve_categories(categories: list[str] | None) -> list[str]:
    """Synset ids from ids or names (None = the five default ones; the optional concave categories only when
    named); unknown entries raise ShapelabError."""
    if categories is None:
        return list(CATEGORIES)
    every = {**CATEGORIES, **OPTIONAL_CATEGORIES}
    by_name = {name: synset for synset, name in every.items()}
    resolved = []
    for entry in categories:
        entry = str(entry)
        if entry not in every and entry not in by_name:
            known = ", ".join(f"{synset} ({name})" for synset, name in every.items())
            raise ShapelabError(f"data.categories: unknown synthetic category {entry!r}; use one of {known}")
        resolved.append(entry if entry in every else by_name[entry])
    return resolved


def ensure_synthetic_dataset(
    data_dir: str | Path,
    name: str = "synthetic",
    categories: list[str] | None = None,
    shapes_per_category: int = 24,
    splits: tuple[int, int, int] = (16, 4, 4),
    seed: int = 0,
    workers: int = 2,
    **preprocess_options: Unpack[PreprocessOptions],
) -> Path:
    """Build the built-in dataset into ``<data_dir>/<name>`` on first use and return that path.

    Writes raw meshes (ShapeNetCore v2 layout) under ``raw/``, preprocesses them into the DeepSDF and OccNet
    formats with :func:`datamodules.preprocessing.preprocess_dataset` (``preprocess_options`` override the
    built-in defaults, e.g. ``sdf_samples``), and finally writes ``COMPLETE.json`` holding the parameters.
    When that marker exists with the same parameters nothing is done; with different parameters a
    ShapelabError asks for another ``name`` (existing data is never overwritten). An interrupted build
    resumes where it stopped.

    ``formats`` (``preprocess_options``; default every one) are the formats the caller reads: the datamodules
    ask only for theirs (``ShapeDataModule.built_formats``), so a DeepSDF run does not wait for the 24 renderings
    per shape. A format asked for later is added to the finished set (the marker lists what is built).
    """
    root = Path(data_dir) / name
    synsets = resolve_categories(categories)
    options = {**BUILTIN_OPTIONS, **preprocess_options}
    asked = options.pop("formats")
    wanted = [name for name in FORMATS if name in asked]
    params = {
        "categories": synsets,
        "shapes_per_category": int(shapes_per_category),
        "splits": [int(count) for count in splits],
        "seed": int(seed),
        "preprocess": options,
    }
    marker, built_formats = root / COMPLETE_MARKER, []
    if marker.is_file():
        built = json.loads(marker.read_text())
        built["preprocess"] = {**ADDED_OPTIONS, **built.get("preprocess", {})}  # built before those options
        built_formats = built["preprocess"].pop("formats")
        if built != params:
            raise ShapelabError(
                f"{marker}: the dataset at {root} was built with other parameters ({built}); "
                f"pick another dataset name (data.dataset_name=...) or delete {root} to rebuild"
            )
        if set(wanted) <= set(built_formats):
            return root
    missing = [name for name in wanted if name not in built_formats]
    if sum(params["splits"]) != shapes_per_category:
        raise ShapelabError(
            f"data.build.splits: {list(splits)} must add up to shapes_per_category={shapes_per_category}; fix the config"
        )
    write_raw_dataset(root / "raw", synsets, shapes_per_category, seed)
    summary = preprocess_dataset(
        root / "raw",
        root,
        name=name,
        splits=params["splits"],
        seed=seed,
        workers=workers,
        category_names={**CATEGORIES, **OPTIONAL_CATEGORIES},
        formats=missing,
        **options,
    )
    log.info("built-in dataset %s (%s): %s", root, ", ".join(missing), summary)
    if summary.failed:
        raise ShapelabError(
            f"{root}: {len(summary.failed)} built-in shapes failed to preprocess ({summary.failed[0]})"
        )
    params["preprocess"]["formats"] = [name for name in FORMATS if name in built_formats or name in missing]
    atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(params, indent=2) + "\n"))
    return root


# `data.build`: the keyword arguments of ensure_synthetic_dataset after data_dir and name, read from its signature;
# the datamodules annotate `build` with it so start-up validation names a misspelt key (shapelab/config.py)
SyntheticBuild = TypedDict(
    "SyntheticBuild",
    {name: hint for name, hint in get_type_hints(ensure_synthetic_dataset).items()
     if name not in ("data_dir", "name", "preprocess_options", "return")} | get_type_hints(PreprocessOptions),
    total=False,
)
