"""The inside test behind the ``iou`` column on real (non-watertight) ShapeNet meshes: OccNet's z-parity
(`geometry.ray_parity`, ``evaluate.iou_inside=occnet``, the default) against trimesh ``contains`` with its
random re-casts left unseeded (the old behaviour) and seeded (``evaluate.iou_inside=trimesh``).

For each real mesh of ../shared/data (ShapeNetCore v2 ``model_normalized.obj``, open thin shells; each face is
stored twice, once per side, so every crossing counts twice and a parity test finds nothing inside: the
duplicates are removed first: vertices merged, then ``unique_faces``) in the OccNet frame, on 100k points uniform in the cube of side 1.1: how many points trimesh's answer changes between
two unseeded calls, the IoU between the two unseeded answers, the IoU between OccNet's and trimesh's answers,
whether each method repeats itself exactly, and the CPU seconds of each.

    python bench/iou_inside.py [--quick]        # --quick: 20k points

Last line: ``iou_inside meshes=<> points=<> trimesh_unseeded_flips=<max over meshes> trimesh_unseeded_iou=<min>
occnet_vs_trimesh_iou=<min> occnet_repeats=<bool> trimesh_seeded_repeats=<bool> occnet_cpu_s=<> trimesh_cpu_s=<>``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import trimesh
from shapelab.geometry.normalisation import occnet_normalisation
from shapelab.geometry.ray_parity import contains_z_parity
from shapelab.metrics.iou import mesh_contains, occupancy_iou

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "shapenet_sample" / "ShapeNetCore.v2"


def cpu_seconds(function):
    start = time.process_time()
    result = function()
    return result, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    count = 20_000 if parser.parse_args().quick else 100_000
    points = np.random.default_rng(0).uniform(-0.55, 0.55, (count, 3))
    paths = sorted(SAMPLE.glob("*/*/models/model_normalized.obj"))
    if not paths:
        raise SystemExit(f"no meshes under {SAMPLE}")
    flips, unseeded_ious, cross_ious, occnet_repeats, seeded_repeats, occnet_cpu, trimesh_cpu = [], [], [], [], [], 0.0, 0.0
    for path in paths:
        mesh = trimesh.load(path, force="mesh", process=False)
        loc, scale = occnet_normalisation(mesh.vertices)
        mesh = trimesh.Trimesh((mesh.vertices - loc) / scale, mesh.faces, process=True)  # merges duplicate vertices
        mesh.update_faces(mesh.unique_faces())
        first, seconds = cpu_seconds(lambda mesh=mesh: mesh.contains(points))
        second = mesh.contains(points)
        occnet, occnet_seconds = cpu_seconds(lambda mesh=mesh: contains_z_parity(mesh, points))
        seeded = mesh_contains(mesh, points, "trimesh")
        flips.append(int((first != second).sum()))
        unseeded_ious.append(float(occupancy_iou(first, second)))
        cross_ious.append(float(occupancy_iou(occnet, seeded)))
        occnet_repeats.append(bool(np.array_equal(occnet, contains_z_parity(mesh, points))))
        seeded_repeats.append(bool(np.array_equal(seeded, mesh_contains(mesh, points, "trimesh"))))
        occnet_cpu, trimesh_cpu = occnet_cpu + occnet_seconds, trimesh_cpu + seconds
        print(f"{path.parts[-4]}/{path.parts[-3][:8]}: faces={len(mesh.faces)} watertight={mesh.is_watertight} "
              f"inside occnet={occnet.mean():.3f} trimesh={first.mean():.3f}/{second.mean():.3f} "
              f"unseeded flips={flips[-1]} IoU(unseeded, unseeded)={unseeded_ious[-1]:.4f} "
              f"IoU(occnet, trimesh)={cross_ious[-1]:.4f} cpu occnet={occnet_seconds:.2f}s trimesh={seconds:.2f}s")
    print(f"iou_inside meshes={len(paths)} points={count} trimesh_unseeded_flips={max(flips)} "
          f"trimesh_unseeded_iou={min(unseeded_ious):.4f} occnet_vs_trimesh_iou={min(cross_ious):.4f} "
          f"occnet_repeats={all(occnet_repeats)} trimesh_seeded_repeats={all(seeded_repeats)} "
          f"occnet_cpu_s={occnet_cpu:.2f} trimesh_cpu_s={trimesh_cpu:.2f}")


if __name__ == "__main__":
    main()
