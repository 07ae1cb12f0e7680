"""Inside/outside and distance methods of geometry/inside.py on 100k points, against the alternatives.

Occupancy: trimesh ``contains`` (embree ray parity; our fast path for closed meshes and the reference on
the watertight chair), generalized winding number (igl.fast_winding_number), our visibility carving
(embree rays, 32 directions); and on a "ShapeNet-like" copy of the same chair: its parts overlapping
without a union (a part soup with internal faces, as ShapeNet models are) and half of the faces flipped,
whose reference is the watertight union's occupancy.
Distance: exact AABB point-triangle distance (igl.signed_distance, unsigned) vs a KD-tree (pykdtree) on
500k dense surface samples, as DeepSDF does; error of the KD-tree against the exact one.

    python bench/inside_outside.py [--quick]

Last line: ``inside_outside points=<> winding_s=<> visibility_s=<> contains_s=<> visibility_agree_open=<>
winding_agree_open=<> contains_agree_open=<> igl_distance_s=<> kdtree_distance_s=<> kdtree_max_err=<>``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import trimesh
from pykdtree.kdtree import KDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shapelab.datamodules.synthetic import MAKERS, union
from shapelab.geometry import inside


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def shapenet_like(seed_index: int) -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(watertight union, part soup with half the faces flipped) of built-in chair ``seed_index``."""
    parts = MAKERS["03001627"](np.random.default_rng([0, 3001627, seed_index]))
    soup = trimesh.util.concatenate(parts)
    faces = soup.faces.copy()
    faces[::2] = faces[::2, ::-1]
    return union(parts), trimesh.Trimesh(soup.vertices, faces, process=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k points instead of 100k")
    args = parser.parse_args()
    count = 20_000 if args.quick else 100_000
    rng = np.random.default_rng(0)
    chair, open_chair = shapenet_like(0)
    low, high = chair.bounds
    points = rng.uniform(low - 0.05, high + 0.05, size=(count, 3))
    print(
        f"chair: {len(chair.faces)} faces, closed; ShapeNet-like copy: closed={inside.is_closed(open_chair)}"
    )

    reference, contains_s = timed(chair.contains, points)
    winding, winding_s = timed(inside.winding_occupancy, chair, points)
    visibility, visibility_s = timed(inside.visibility_occupancy, chair, points)
    far = inside.unsigned_distance(chair, points) > inside.default_shell_half_thickness(chair)
    print(
        f"watertight, {count} points:  contains {contains_s:.3f} s | winding {winding_s:.3f} s "
        f"(agree {np.mean(winding == reference):.4f}) | visibility {visibility_s:.3f} s "
        f"(agree {np.mean(visibility == reference):.4f}, {np.mean(visibility[far] == reference[far]):.4f} off the shell)"
    )

    agreement = {}
    for name, method in [("visibility", inside.visibility_occupancy), ("winding", inside.winding_occupancy),
                         ("contains", lambda mesh, p: mesh.contains(p))]:  # fmt: skip
        got, seconds = timed(method, open_chair, points)
        agreement[name] = float(np.mean(got[far] == reference[far]))
        print(
            f"ShapeNet-like, {count} points: {name:10s} {seconds:.3f} s, agrees with the solid chair on "
            f"{agreement[name]:.4f} of points off the surface"
        )

    exact, igl_s = timed(inside.unsigned_distance, chair, points)
    start = time.perf_counter()
    dense, _ = trimesh.sample.sample_surface(chair, 500_000, seed=rng)
    approx, _ = KDTree(dense).query(points)
    kdtree_s = time.perf_counter() - start
    max_err = float(np.max(np.abs(approx - exact)))
    print(
        f"distance, {count} points: igl AABB exact {igl_s:.3f} s | KD-tree on 500k samples {kdtree_s:.3f} s "
        f"(max error {max_err:.4f})"
    )
    print(
        f"inside_outside points={count} winding_s={winding_s:.3f} visibility_s={visibility_s:.3f} "
        f"contains_s={contains_s:.3f} visibility_agree_open={agreement['visibility']:.4f} "
        f"winding_agree_open={agreement['winding']:.4f} contains_agree_open={agreement['contains']:.4f} "
        f"igl_distance_s={igl_s:.3f} kdtree_distance_s={kdtree_s:.3f} kdtree_max_err={max_err:.4f}"
    )


if __name__ == "__main__":
    main()
