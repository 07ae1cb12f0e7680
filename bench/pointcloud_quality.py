"""Image -> point cloud quality on the built-in chairs: CAPNet vs DRWR vs the 3D-supervised baseline.

Trains ``experiment=capnet``, ``drwr`` and ``points_chamfer3d`` with ``category=chairs`` (same network, same
seed, same data; only the supervision differs) for the same wall-clock budget each through train.py, then
scores the held-out test chairs with the evaluation pipeline: CAPNet's Chamfer (mean squared distances both
ways after scaling each cloud to a unit bounding cube, 1024 vs 1024 points) and EMD (same normalisation).
The untrained network (identical initialisation, zero steps) is scored in the same run as the floor.

    python bench/pointcloud_quality.py [--quick | --steps S | --minutes M] [hydra overrides ...]

Full: 15 minutes of training per method. ``--quick``: CAPNet and DRWR only (``--methods`` adds the 3D baseline),
QUICK_STEPS optimiser steps each (a step budget, so the ranking does not depend on the machine's load), run as two
processes at once (``--jobs``): about 4 CPU-minutes in all (untrained ~28 CPU-s, CAPNet ~110, DRWR ~100, each with
its evaluation). At 160 steps both methods' Chamfer is at least 2.2x below the untrained network's in each of three
seeds (CAPNet 2.6-3.3x, DRWR 2.2-2.4x); at 100 CAPNet's was only 1.2x below for seed 12345. CAPNet's EMD first rises
while the untrained clump opens, then falls, so in the quick run it is below the untrained network's for some seeds
only (bench/RESULTS.md, pointcloud_quality); the full run is past that. The clouds are
predicted from 5 input views per test chair (the CPU experiments' ``data.eval_input_views``) and the metrics
averaged over them; DRWR's own ``chamfer_drwr_best`` (x100) is printed too.
Last line: ``pointcloud_quality capnet_chamfer=<> drwr_chamfer=<> chamfer3d_chamfer=<> untrained_chamfer=<>``
plus the EMDs and the CPU seconds of each run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

METHODS = {"capnet": "capnet", "drwr": "drwr", "chamfer3d": "points_chamfer3d"}
QUICK_STEPS = 160
QUICK_METHODS = ("capnet", "drwr")


def compose_train_config(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={output_dir}", "task_name=bench_pointcloud_quality",
                                          "logger=csv", "callbacks=none", *overrides])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def run(experiment: str, budget: dict, extra: list[str], out: Path) -> dict[str, float]:
    """Train ``experiment`` within ``budget`` ({"seconds": s} or {"steps": n}; {"steps": 0}: the untrained network)
    and evaluate its test split."""
    from shapelab.cli.train import train

    limits = ["++trainer.max_steps=0", "trainer.min_epochs=0"] if budget.get("steps") == 0 else [
        f"++trainer.max_time='{time.strftime('00:%H:%M:%S', time.gmtime(budget['seconds']))}'" if "seconds" in budget
        else f"++trainer.max_steps={budget['steps']}", "trainer.max_epochs=100000",
        "trainer.check_val_every_n_epoch=100000", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
    ]
    overrides = [f"experiment={experiment}", "category=chairs", *limits, "evaluate.groups=[capnet,drwr]",
                 "evaluate.contact_sheet_shapes=0", "evaluate.resume=false", *extra]
    start, cpu = time.time(), time.process_time()
    metrics = train(compose_train_config(overrides, out))
    metrics["wall_s"], metrics["cpu_s"] = time.time() - start, time.process_time() - cpu
    metrics["steps"] = steps_logged(out)
    return metrics


def run_with_threads(threads: int, *task) -> dict[str, float]:
    """``run(*task)`` in a worker process with ``threads`` torch threads (``--jobs``)."""
    import torch

    torch.set_num_threads(threads)
    return run(*task)


def steps_logged(out: Path) -> int:
    """Optimiser steps of a run, from the last ``step`` of its CSV log (0 when nothing was logged)."""
    import csv

    steps = [int(row["step"]) + 1 for path in out.rglob("metrics.csv") for row in csv.DictReader(path.open())
             if row.get("step")]
    return max(steps, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_STEPS} optimiser steps per method, methods {' '.join(QUICK_METHODS)} unless --methods")
    parser.add_argument("--steps", type=int, help="optimiser steps per method instead of a wall-clock budget")
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes per method (full run)")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS),
                        help="train only these (default: all; --quick: capnet drwr; the untrained network is always scored)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at once, one process each (default: 2 with --quick, else 1; a wall-clock budget "
                             "needs a core per job)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: fastest on the shared, oversubscribed 2-core machine)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for every run, e.g. data.batch_size=16; a loss setting "
                             "(loss.repulsion_weight=0.3) needs --methods of that loss only")
    args = parser.parse_args()
    args.methods = args.methods or list(QUICK_METHODS if args.quick else METHODS)
    steps = QUICK_STEPS if args.quick else args.steps
    budget = {"steps": steps} if steps else {"seconds": 60.0 * args.minutes}

    import torch

    torch.set_num_threads(args.threads)
    from shapelab.runs import new_run_dir

    out = new_run_dir(REPO_ROOT / "logs" / "bench_pointcloud_quality", "-".join(args.methods))
    # the network is the same in every experiment; the first method's lets its loss overrides apply here too
    tasks = {"untrained": (METHODS[args.methods[0]], {"steps": 0}, args.overrides, out / "untrained")}
    tasks.update({name: (METHODS[name], budget, args.overrides, out / name) for name in args.methods})
    jobs, started = args.jobs or (2 if args.quick else 1), time.time()
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {name: pool.submit(run_with_threads, args.threads, *task) for name, task in tasks.items()}
            results = {name: future.result() for name, future in futures.items()}
    else:
        results = {name: run(*task) for name, task in tasks.items()}

    described = f"{steps} optimiser steps" if steps else f"{args.minutes:g} minutes of training"
    print(f"\ntest chairs, {described} per method, torch threads {args.threads}, {jobs} job(s), load {load()}")
    print(f"{'method':>10} {'chamfer_capnet':>15} {'emd_capnet':>11} {'drwr_best_x100':>15} {'train_steps':>12} "
          f"{'wall_s':>7} {'cpu_s':>7}")
    for name, metrics in results.items():
        print(f"{name:>10} {metrics['eval/test/chamfer_capnet']:15.5f} {metrics['eval/test/emd_capnet']:11.5f} "
              f"{100 * metrics['eval/test/chamfer_drwr_best']:15.3f} {metrics['steps']:>12} {metrics['wall_s']:7.1f} "
              f"{metrics['cpu_s']:7.1f}")
    names = (*args.methods, "untrained")
    summary = " ".join(f"{name}_chamfer={results[name]['eval/test/chamfer_capnet']:.5f}" for name in names)
    emds = " ".join(f"{name}_emd={results[name]['eval/test/emd_capnet']:.5f}" for name in names)
    cpus = " ".join(f"{name}_cpu_s={results[name]['cpu_s']:.0f}" for name in names)
    print(f"pointcloud_quality {summary} {emds} {cpus} jobs={jobs} total_wall_s={time.time() - started:.0f}")


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared; timings mean little without them)."""
    import os

    return "/".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
