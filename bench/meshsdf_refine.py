"""Benchmark: MeshSDF refinement vs plain DeepSDF latent reconstruction on held-out built-in shapes.

    python bench/meshsdf_refine.py            # 12 training cars, 3 held-out, both tasks
    python bench/meshsdf_refine.py --quick    # tiny: 3 training shapes, 1 held out, silhouettes only

Trains a small DeepSDF (latent 32, 5 x 128, 1000 steps) in-process on built-in synthetic shapes
(datamodules/synthetic.py, one category), then for each held-out shape and task runs
`shapelab.stages.meshsdf.MeshSDFStage.run_shape`: the plain DeepSDF answer from the observation (before) and its
MeshSDF refinement (after), scored by the evaluation's `score_shape`: DeepSDF Chamfer (x1e3; the ground truth's
"original" frame is the unit-sphere frame here) and volumetric IoU on 100k uniform points in [-1, 1]^3.
Tasks: "pointcloud" (2000 surface points, surface Chamfer) and "silhouette" (masks from ring cameras,
silhouette L1 only). The silhouette task is refined twice from the same start: with MeshSDF's hand-written
iso-surface gradient (``stage.gradient=isosurface``) and with the same surface point as a deep declarative node
(``stage.gradient=declarative``), to show they refine alike. Last line (silhouette task, mean over held-out
shapes): ``meshsdf_refine chamfer_before=<> chamfer_after=<> iou_before=<> iou_after=<>
chamfer_after_declarative=<> iou_after_declarative=<>``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from shapelab.datamodules.synthetic import CATEGORIES, generate_shape
from shapelab.geometry.inside import occupancy, signed_distance
from shapelab.geometry.normalisation import deepsdf_normalisation
from shapelab.geometry.sampling import deepsdf_query_points, sample_surface
from shapelab.losses.deepsdf import clamped_l1
from shapelab.models.base import Reconstruction
from shapelab.models.networks.deepsdf_decoder import DeepSDFDecoder
from shapelab.stages.meshsdf import ShapeTarget
from torch import nn

from shapelab.config import instantiate_group
from shapelab.evaluation.ground_truth import ShapeGroundTruth
from shapelab.evaluation.scoring import ScoringSettings, score_shape


def built_in_shape(synset: str, index: int, num_samples: int, rng: np.random.Generator):
    """(ShapeTarget in the deepsdf frame, SDF samples xyz (S, 3), sdf (S,)) of a built-in shape."""
    mesh = generate_shape(synset, index, seed=0)
    offset, scale = deepsdf_normalisation(mesh.vertices)
    mesh.vertices = (mesh.vertices + offset) * scale
    surface = sample_surface(mesh, 30000, rng)[0]
    xyz = deepsdf_query_points(surface, num_samples, rng)
    target = ShapeTarget((synset, str(index)), mesh, surface)
    return target, torch.tensor(xyz, dtype=torch.float32), torch.tensor(signed_distance(mesh, xyz))


def score(mesh, target: ShapeTarget, rng: np.random.Generator) -> dict[str, float]:
    """``chamfer`` (DeepSDF Chamfer x1e3) and ``iou`` of a deepsdf-frame mesh, by the evaluation's score_shape; the
    ground truth is given with frame parameters that make "original" and "occnet" equal to the deepsdf frame."""
    points = rng.uniform(-1.0, 1.0, (100_000, 3))
    identity = (np.zeros(3), 1.0)
    truth = ShapeGroundTruth(surface=target.surface_points, normalisation=identity, occupancy={
        "points": points, "occupancies": occupancy(target.mesh, points), "loc": np.zeros(3), "scale": 1.0})
    values, _ = score_shape(Reconstruction("deepsdf", mesh=mesh), truth, ScoringSettings(), ["deepsdf", "iou"])
    return {"chamfer": 1e3 * values["chamfer_deepsdf"], "iou": values["iou"]}


def train_deepsdf(xyz: torch.Tensor, sdf: torch.Tensor, steps: int, seed: int) -> DeepSDFDecoder:
    """Auto-decoder training (DeepSDF Eq. 9: clamped L1 + 1e-4 |z|) on xyz (B, S, 3), sdf (B, S)."""
    torch.manual_seed(seed)
    decoder = instantiate_group("model/deepsdf.decoder", latent_size=32, hidden_dim=128, num_layers=5, skip_layers=(3,), dropout=0.0)
    latents = nn.Parameter(torch.randn(len(xyz), 32) / np.sqrt(32))
    optimiser = torch.optim.Adam([{"params": decoder.parameters(), "lr": 1e-3}, {"params": [latents], "lr": 3e-3}])
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, steps // 3), gamma=0.5)
    for _ in range(steps):
        index = torch.randint(0, xyz.shape[1], (len(xyz), 1024))
        batch_xyz = torch.gather(xyz, 1, index[..., None].expand(-1, -1, 3))
        loss = clamped_l1(decoder(latents, batch_xyz), torch.gather(sdf, 1, index), 0.1).mean()
        loss = loss + 1e-4 * latents.norm(dim=-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
    print(f"trained DeepSDF on {len(xyz)} shapes: {steps} steps, final loss {loss.item():.4f}")
    return decoder.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--category", default="car", choices=sorted(CATEGORIES.values()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "shapelab_meshsdf_bench",
                        help="where before/after/per-iteration meshes are written")
    args = parser.parse_args()
    quick = args.quick
    num_train, num_test = (3, 1) if quick else (12, 3)
    synset = {name: key for key, name in CATEGORIES.items()}[args.category]
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    shapes = [built_in_shape(synset, i, 5000 if quick else 20000, rng) for i in range(num_train + num_test)]
    decoder = train_deepsdf(torch.stack([s[1] for s in shapes[:num_train]]),
                            torch.stack([s[2] for s in shapes[:num_train]]), 100 if quick else 1000, args.seed)
    print(f"data + training: {time.perf_counter() - start:.0f} s")

    runs = [("silhouette", "isosurface"), ("silhouette", "declarative")]
    runs = runs if quick else [("pointcloud", "isosurface"), *runs]
    summary = {}
    for task, gradient in runs:
        stage = instantiate_group(
            "stage/meshsdf",
            checkpoint=None,
            task=task,
            baseline={"num_iterations": 40 if quick else 300},
            refine={"iterations": 6 if quick else 30, "lr": 5e-3, "resolution": 24 if quick else 48},
            num_views=3 if quick else 6, image_size=40 if quick else 64, seed=args.seed, gradient=gradient,
        )
        rows = []
        for target, _, _ in shapes[num_train:]:
            task_start = time.perf_counter()
            meshes = stage.run_shape(decoder, target, args.out / task / gradient)
            rows.append({f"{key}_{label}": value for label, mesh in meshes.items()
                         for key, value in score(mesh, target, np.random.default_rng(args.seed)).items()})
            print(f"{task:>10} {gradient:>11} {'_'.join(target.key)}: "
                  + " ".join(f"{k}={v:.4g}" for k, v in rows[-1].items())
                  + f" ({time.perf_counter() - task_start:.0f} s)")
        summary[task, gradient] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{task:>10} {gradient:>11} mean: "
              + " ".join(f"{k}={v:.4g}" for k, v in summary[task, gradient].items()))
    print(f"total {time.perf_counter() - start:.0f} s")
    s, d = summary["silhouette", "isosurface"], summary["silhouette", "declarative"]
    print(f"meshsdf_refine chamfer_before={s['chamfer_before']:.4g} chamfer_after={s['chamfer_after']:.4g} "
          f"iou_before={s['iou_before']:.4f} iou_after={s['iou_after']:.4f} "
          f"chamfer_after_declarative={d['chamfer_after']:.4g} iou_after_declarative={d['iou_after']:.4f}")


if __name__ == "__main__":
    main()
