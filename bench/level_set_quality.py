"""Small Steps and Level Sets: guided vs unguided level-set fitting across the SION% range.

Builds (first time only) a built-in dataset with the five default categories and the four concave ones
(mug, bowl, jar, cabinet; 2 test shapes each, DeepSDF + OccNet formats) under ``--data-dir``, computes each
test shape's SION% (`metrics.sion`, unit-cube frame), and fits the chosen shapes twice through train.py's
``stage=level_set_fit`` — ``guidance=guiding_points`` and ``guidance=none`` (same network, loss family and
step budget) — from 10k points of each pointcloud.npz. Scores come from the shared evaluation (IoU on
points.npz) and the stage (the paper's squared Chamfer, 30k mesh samples vs the GT cloud, unit-cube frame).

    python bench/level_set_quality.py [--quick] [--threads 1] [--jobs 1] [--data-dir DIR] [--out DIR] [hydra overrides ...]

Full: every test shape (18, SION% from ~2 to ~52; ``--count 12``: 12 of them evenly spread in SION% order);
``--quick``: 3 shapes (lowest, median, highest SION%).
Fits are resumable: rerunning the command reuses finished fits. ``--jobs 2`` fits the two methods in two
processes at once (``--threads`` torch threads each). Prints a table per shape, the machine load,
wall and CPU seconds, and the last line is
``level_set_quality guided_iou=<> unguided_iou=<> guided_chamfer=<> unguided_chamfer=<> high_sion_iou_gain=<>
seconds_per_shape=<>`` (means over shapes; gain = guided minus unguided mean IoU on the upper third of SION%;
seconds: guided wall seconds per shape); ``quality_vs_sion.png``: IoU and Chamfer-L1 against SION%, both methods.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CATEGORIES = ["car", "airplane", "chair", "lamp", "table", "mug", "bowl", "jar", "cabinet"]
DATASET = {"name": "levelset", "categories": CATEGORIES, "shapes_per_category": 4, "splits": (1, 1, 2),
           "seed": 0, "workers": 2, "formats": ["deepsdf", "occnet"]}
METHODS = {"guided": "guidance=guiding_points", "unguided": "guidance=none"}


def shape_sions(root: Path) -> dict[str, float]:
    """SION% of every test shape, "<synset>/<model_id>" -> percent (cached in <root>/sion.json)."""
    from shapelab.datamodules.formats.occnet import read_pointcloud, read_split_lst
    from shapelab.metrics.sion import sion_percent

    cache = root / "sion.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    sions = {}
    for lst in sorted((root / "occnet").glob("*/test.lst")):
        for model_id in read_split_lst(lst):
            cloud = read_pointcloud(lst.parent / model_id / "pointcloud.npz")
            sions[f"{lst.parent.name}/{model_id}"] = sion_percent(cloud["points"], cloud["normals"])
    cache.write_text(json.dumps(sions, indent=2) + "\n")
    return sions


def run_method(method: str, shapes: list[str], data_dir: Path, out: Path, overrides: list[str],
               threads: int) -> tuple[dict, list]:
    """Fit and score ``shapes`` with one guidance through train(): (per shape: iou, chamfer, seconds, cpu;
    the evaluation's per-shape rows)."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from shapelab.cli.train import train

    torch.set_num_threads(threads)
    run_dir = out / method
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [
            "experiment=level_set_fit", METHODS[method], "logger=csv", f"paths.data_dir={data_dir}",
            f"data.dataset_name={DATASET['name']}", "data.build=null", "evaluate.groups=[occnet_surface,iou,sion]",
            f"stage.shapes=[{','.join(shapes)}]", f"paths.output_dir={run_dir}", *overrides,
        ], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    train(cfg)
    scores = {}
    with open(run_dir / "eval" / "test" / "per_shape.csv") as handle:
        rows = list(csv.DictReader(handle))
        for row in rows:
            scores[f"{row['synset']}/{row['model_id']}"] = {"iou": float(row["iou"] or "nan"),
                                                           "chamfer_l1": float(row["chamfer_l1_occnet"] or "nan")}
    for record in json.loads((run_dir / "level_set" / "fits.json").read_text())["shapes"]:
        key = record["shape"].replace("_", "/", 1)
        scores[key].update(chamfer=record["chamfer_pgsdf"], seconds=record["seconds"], cpu=record["cpu_seconds"])
    return scores, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 shapes (lowest, median, highest SION%%)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    parser.add_argument("--count", type=int, default=None, help="full run: this many shapes, evenly spread in SION%% order")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1, help="2: both methods at once, one process each")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SHAPELAB_DATA", REPO_ROOT / "data")))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out" / "level_set_quality")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for both methods, e.g. stage.num_points=5000")
    args = parser.parse_args()
    from shapelab.datamodules.synthetic import ensure_synthetic_dataset

    from shapelab.evaluation.report import quality_vs_sion

    root = ensure_synthetic_dataset(args.data_dir, **DATASET)
    sions = shape_sions(root)
    ordered = sorted(sions, key=sions.get)
    if args.quick:
        shapes = [ordered[0], ordered[len(ordered) // 2], ordered[-1]]
    else:
        count = min(args.count or len(ordered), len(ordered))
        shapes = [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, count).round()]
    out = args.out / ("quick" if args.quick else "full")
    load_before, wall = os.getloadavg()[0], time.perf_counter()
    jobs = {method: (method, shapes, args.data_dir, out, args.overrides, args.threads) for method in METHODS}
    if args.jobs == 1:
        runs = {method: run_method(*job) for method, job in jobs.items()}
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {method: pool.submit(run_method, *job) for method, job in jobs.items()}
            runs = {method: future.result() for method, future in futures.items()}
    results = {method: scores for method, (scores, _) in runs.items()}
    print(f"\n{'shape':<44} {'SION%':>6} | {'IoU guided':>10} {'unguided':>9} | {'Chamfer guided':>14} {'unguided':>9}")
    for key in shapes:
        guided, unguided = results["guided"][key], results["unguided"][key]
        print(f"{key:<44} {sions[key]:6.1f} | {guided['iou']:10.4f} {unguided['iou']:9.4f} | "
              f"{guided['chamfer']:14.6f} {unguided['chamfer']:9.6f}")
    upper = shapes[len(shapes) - max(1, len(shapes) // 3):]
    mean = lambda method, metric, keys=shapes: float(np.mean([results[method][k][metric] for k in keys]))
    gain = mean("guided", "iou", upper) - mean("unguided", "iou", upper)
    quality_vs_sion(out / "quality_vs_sion.png", {method: rows for method, (_, rows) in runs.items()})
    print(f"\nshapes {len(shapes)}, SION% {sions[shapes[0]]:.1f}..{sions[shapes[-1]]:.1f}; load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}; whole run {time.perf_counter() - wall:.0f} s wall; per shape: "
          f"guided {mean('guided', 'seconds'):.1f} s wall / {mean('guided', 'cpu'):.1f} CPU-s, unguided "
          f"{mean('unguided', 'seconds'):.1f} s / {mean('unguided', 'cpu'):.1f} CPU-s ({args.threads} thread(s), "
          f"{args.jobs} job(s)); "
          f"chamfer = PG-SDF squared Chamfer (unit cube); picture {out / 'quality_vs_sion.png'}")
    print(f"level_set_quality guided_iou={mean('guided', 'iou'):.4f} unguided_iou={mean('unguided', 'iou'):.4f} "
          f"guided_chamfer={mean('guided', 'chamfer'):.6f} unguided_chamfer={mean('unguided', 'chamfer'):.6f} "
          f"high_sion_iou_gain={gain:.4f} seconds_per_shape={mean('guided', 'seconds'):.1f}")


if __name__ == "__main__":
    main()
