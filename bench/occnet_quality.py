"""Occupancy Networks reconstruction quality on the built-in dataset, through train.py and the evaluation pipeline.

Trains the point-cloud model (``experiment=occnet_pointcloud``: 300 input points, noise 0.005) and the
single-view model (``experiment=occnet_svr`` with the small conv encoder, CPU) on the built-in data, extracts
MISE meshes of the test shapes (threshold 0.2) and scores them with ``shapelab.evaluation.evaluate_model``:
IoU on the points.npz points, Chamfer-L1 as OccNet defines it (0.5 (accuracy + completeness) of unsquared
distances, unit-cube frame, reported x10 as the paper), normal consistency (|dot|) and F-score at 1 % of
the longest box edge, per category. For comparison, the same run scores the convex hull of each test
shape's noisy 300-point input cloud (the naive reconstruction of the point-cloud task) on the same points.

    python bench/occnet_quality.py [--quick] [--models pointcloud svr] [hydra overrides ...]

``--quick``: point-cloud model only, chairs only (16 train / 4 test shapes), 200 Adam steps of 8 x 512 points
with a 5x LR drop at step 150, 32^3 MISE meshes, 20k IoU points: a smoke-level quality check (bench/RESULTS.md
has the CPU time), longer in wall time on a busy machine.
Last line: ``occnet_quality iou=<> chamfer_l1=<> normal_consistency=<> fscore_1pct=<>`` for the last model
trained (means over shapes; chamfer_l1 in the unit-cube frame, not x10).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

METRICS = ("iou", "chamfer_l1_occnet", "normal_consistency", "fscore_1pct")
# CPU-sized networks and schedule (the paper's widths are in the experiment configs)
CPU_PRESET = [
    "model.c_dim=128", "model.decoder.hidden_dim=128", "model.optimizer.lr=1e-3",
    "data.batch_size=16", "data.train_points=1024", "data.eval_points=20000", "data.num_workers=1",
    "trainer.max_epochs=300", "trainer.check_val_every_n_epoch=50", "evaluate.groups=[occnet_surface,iou]",
]
MODELS = {
    "pointcloud": ["experiment=occnet_pointcloud", "model.encoder.hidden_dim=128"],
    "svr": ["experiment=occnet_svr", "model/encoder=conv", "data.img_size=64"],
}
QUICK = [
    "data.categories=[03001627]", "data.batch_size=8", "data.train_points=512",
    "trainer.max_epochs=100", "trainer.check_val_every_n_epoch=100",
    "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:150,gamma:0.2}",
    "model.scheduler_interval=step",
    "model.extraction.resolution0=16", "model.extraction.upsampling_steps=1", "evaluate.occnet_points=20000",
]


def compose_train_config(overrides: list[str], output_dir: Path, task: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={output_dir}", f"task_name={task}",
                                          "logger=csv", *overrides])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def per_shape_rows(eval_dir: Path) -> list[dict]:
    with open(eval_dir / "per_shape.csv") as handle:
        return list(csv.DictReader(handle))


def shape_means(rows: list[dict]) -> dict[str, float]:
    """Means over shapes; a shape that failed to score (empty cell) counts as NaN and is left out."""
    return {m: float(np.nanmean([float(r[m]) if r[m] != "" else np.nan for r in rows])) for m in METRICS}


def category_means(rows: list[dict]) -> dict[str, dict[str, float]]:
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    return {name: shape_means(group) | {"n": len(group)} for name, group in by_category.items()}


def convex_hull_baseline(cfg, out_dir: Path) -> Path:
    """Score the convex hull of every test shape's noisy input cloud (same cloud the model sees)."""
    import hydra
    import trimesh

    from shapelab.evaluation import evaluate_predictions

    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    pred_dir = out_dir / "hull_meshes"
    for batch in datamodule.test_dataloader():
        for synset, model_id, cloud in zip(batch["synset"], batch["model_id"], batch["inputs"]):
            path = pred_dir / synset / f"{model_id}.ply"
            path.parent.mkdir(parents=True, exist_ok=True)
            trimesh.convex.convex_hull(cloud.numpy()).export(path)
    eval_dir = out_dir / "eval_hull" / cfg.evaluate.split
    evaluate_predictions(pred_dir, "occnet", datamodule, cfg.evaluate, eval_dir)
    return eval_dir


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'category':10s} {'n':>3s} {'iou':>6s} {'chamfer_l1 x10':>15s} {'normal_cons':>11s} {'fscore_1pct':>11s}")
    for name, row in table.items():
        print(f"{name:10s} {row['n']:3d} {row['iou']:6.3f} {10 * row['chamfer_l1_occnet']:15.4f} "
              f"{row['normal_consistency']:11.3f} {row['fscore_1pct']:11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="point-cloud model, chairs, a few minutes")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a busy 2-core machine, 2 threads made a step ~10x slower)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. trainer.max_epochs=100")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    models = args.models or (["pointcloud"] if args.quick else ["pointcloud", "svr"])

    from shapelab.cli.train import train
    from shapelab.runs import new_run_dir

    summary = None
    for name in models:
        overrides = MODELS[name] + CPU_PRESET + (QUICK if args.quick else []) + args.overrides
        out = new_run_dir(REPO_ROOT / "logs" / "bench_occnet_quality", name)
        cfg = compose_train_config(overrides, out, "bench_occnet_quality")
        start = time.perf_counter()
        metrics = train(cfg)
        seconds = time.perf_counter() - start
        rows = per_shape_rows(out / "eval" / cfg.evaluate.split)
        print(f"\n== {name}: run {out} (train + evaluate {seconds:.0f} s; val/iou {metrics.get('val/iou', float('nan')):.3f})")
        print(f"overrides: {overrides}")
        print_table(f"{name} model (MISE meshes, threshold 0.2)", category_means(rows))
        summary = shape_means(rows)
        if name == "pointcloud":
            hull_rows = per_shape_rows(convex_hull_baseline(cfg, out))
            print_table("baseline: convex hull of the same noisy 300-point input", category_means(hull_rows))
            hull = shape_means(hull_rows)
            print(f"pointcloud vs hull (means over shapes): iou {summary['iou']:.3f} vs {hull['iou']:.3f}, "
                  f"chamfer_l1 {summary['chamfer_l1_occnet']:.4f} vs {hull['chamfer_l1_occnet']:.4f}")
    print(f"occnet_quality iou={summary['iou']:.4f} chamfer_l1={summary['chamfer_l1_occnet']:.5f} "
          f"normal_consistency={summary['normal_consistency']:.4f} fscore_1pct={summary['fscore_1pct']:.4f}")


if __name__ == "__main__":
    main()
