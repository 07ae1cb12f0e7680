"""Robust pooling vs max / mean pooling under outliers (Gould et al. 2020, the DDN point-cloud experiment,
adapted to OccNet point-cloud completion).

For each outlier share (0 / 10 / 20 / 50 % of the 300 input points replaced by points uniform in the box of
side 1.1, in training AND testing; ``data.input_outliers``) and each pooling of the PointNet encoder
(``model.encoder.pooling``: max, mean, a robust penalty — a deep declarative node), the same OccNet
point-cloud model (same seed, data and number of steps) is trained on the built-in chairs through train.py;
the score is ``val/iou``: occupancy IoU at OccNet's threshold 0.2 on the validation shapes' points.npz
points (no meshes: this measures the encoder, not extraction). The cost line times one forward and one
backward pass of the encoder on one batch, robust vs max, in the same process.

    python bench/robust_pooling.py [--quick] [--levels 0 0.1 0.2 0.5] [--poolings max mean robust_welsch]
                                   [--steps N] [--jobs N] [hydra overrides ...]

``--quick``: levels 0 / 0.2 / 0.5, max vs the robust pooling, 40 steps each, 5000 validation points (a smoke
of the whole loop, mostly set-up: 60-step runs took 22–31 CPU-s each; its IoUs are far from converged and rank
nothing). Last line:
``robust_pooling iou_max_0=<> iou_robust_0=<> iou_max_20=<> iou_robust_20=<> iou_max_50=<> iou_robust_50=<>
backward_time_ratio=<robust/max>``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CPU_MODEL = [
    "experiment=occnet_pointcloud", "model.c_dim=64", "model.encoder.hidden_dim=64", "model.decoder.hidden_dim=64",
    "model.optimizer.lr=1e-3", "data.categories=[03001627]", "data.batch_size=8", "data.train_points=1024",
    "data.eval_points=20000", "data.num_workers=0", "evaluate_after_training=false", "logger=csv",
    "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]


def encoder_seconds(pooling: str, alpha: float, repeats: int = 3) -> tuple[float, float]:
    """Best-of-``repeats`` (forward, backward) seconds of the encoder on one batch (8 × 300 points)."""
    import torch
    from shapelab.models.networks.encoders import ResnetPointNetEncoder

    torch.manual_seed(0)
    encoder = ResnetPointNetEncoder(c_dim=64, hidden_dim=64, pooling=pooling, pooling_alpha=alpha)
    points = torch.rand(8, 300, 3) - 0.5
    forward, backward = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        code = encoder(points)
        middle = time.perf_counter()
        code.square().sum().backward()
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
    return min(forward), min(backward)


def val_iou(level: float, pooling: str, alpha: float, steps: int, overrides: list[str], out_root: Path,
            threads: int = 1) -> tuple[float, float, float]:
    """(val/iou, wall seconds, CPU seconds) of one training run."""
    import torch

    from bench.occnet_quality import compose_train_config
    from shapelab.cli.train import train

    torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()

    out = out_root / f"outliers{round(100 * level)}_{pooling}"
    run = [*CPU_MODEL, f"data.input_outliers={level}", f"model.encoder.pooling={pooling}",
           f"model.encoder.pooling_alpha={alpha}", f"++trainer.max_steps={steps}", "trainer.max_epochs=-1",
           f"++trainer.val_check_interval={steps}", "trainer.check_val_every_n_epoch=null", *overrides]
    metrics = train(compose_train_config(run, out, "bench_robust_pooling"))
    return float(metrics["val/iou"]), time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 levels, max vs robust, 40 steps each")
    parser.add_argument("--levels", nargs="+", type=float, default=None)
    parser.add_argument("--poolings", nargs="+", default=None, help="the first robust_* one is 'robust' below")
    parser.add_argument("--alpha", type=float, default=1.0, help="robust penalty scale (feature units)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 1500; quick 40)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (separate processes)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for every run")
    args = parser.parse_args()
    levels = args.levels or ([0.0, 0.2, 0.5] if args.quick else [0.0, 0.1, 0.2, 0.5])
    poolings = args.poolings or (["max", "robust_welsch"] if args.quick else ["max", "mean", "robust_welsch"])
    robust = next(p for p in poolings if p.startswith("robust_"))
    steps = args.steps or (40 if args.quick else 1500)
    overrides = (["data.eval_points=5000"] if args.quick else []) + args.overrides

    import torch

    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.1f}; threads {args.threads}; {steps} steps per run")
    costs = {p: encoder_seconds(p, args.alpha) for p in ("max", robust)}
    for pooling, (forward, backward) in costs.items():
        print(f"encoder cost {pooling:>24s}: forward {1e3 * forward:7.1f} ms  backward {1e3 * backward:7.1f} ms")
    from shapelab.runs import new_run_dir

    out_root = new_run_dir(REPO_ROOT / "logs" / "bench_robust_pooling")
    runs = [(level, pooling) for level in levels for pooling in poolings]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(val_iou, level, pooling, args.alpha, steps, overrides, out_root, args.threads):
                   (level, pooling) for level, pooling in runs}
        table: dict[tuple[float, str], float] = {}
        for future in as_completed(futures):
            (level, pooling), (iou, wall, cpu) = futures[future], future.result()
            table[level, pooling] = iou
            print(f"outliers {100 * level:3.0f} %  {pooling:>24s}: val/iou {iou:.3f} "
                  f"({wall:.0f} s wall, {cpu:.0f} CPU-s)", flush=True)
    print("\nval/iou      " + "".join(f"{p:>24s}" for p in poolings))
    for level in levels:
        print(f"{100 * level:3.0f} % out  " + "".join(f"{table[level, p]:24.3f}" for p in poolings))
    summary = " ".join(f"iou_{name}_{round(100 * level)}={table[level, pooling]:.4f}"
                       for level in (0.0, 0.2, 0.5) if level in levels
                       for name, pooling in (("max", "max"), ("robust", robust)))
    ratio = costs[robust][1] / costs["max"][1]
    print(f"robust_pooling {summary} backward_time_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
