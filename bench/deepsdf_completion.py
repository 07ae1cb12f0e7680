"""DeepSDF shape completion from one depth image vs full observation, same checkpoint, same test shapes.

One trained DeepSDF (``--run <train.py run dir>``, or trained here with the default recipe) reconstructs each test
shape twice with the shared evaluation: from its SdfSamples (full observation, as ``python train.py``) and from
one depth render (``data.completion``, paper Sec. 6.3: back-projected pixels + free-space samples on their rays).
A further row scores the mean shape (a code at its N(0, 0.01²) init, no fit): what any observation buys; for a run
whose fits start from the best training code (``model.reconstruction_start``) a row ``training_code`` scores that
start without a fit (retrieving the most similar training shape).

    python bench/deepsdf_completion.py [--quick] [--run <dir>] [--view N] [hydra overrides for training ...]

``--quick``: trains chairs for 20 epochs, 30 fit steps, 32³ meshes, 10k-point surface metrics (timing in
bench/RESULTS.md).
Last line: ``deepsdf_completion iou_full=<> iou_view=<> iou_mean_shape=<> chamfer_l1_full_x10=<> ...`` (means over
categories; Chamfer-L1 as OccNet, unit cube, ×10).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

QUICK = [
    "experiment=deepsdf_chairs", "trainer.max_epochs=20", "trainer.check_val_every_n_epoch=20",
    "model.reconstruction.num_iterations=30", "model.extract_mesh.resolution=32", "model.mesh_every_n_epochs=0",
]
QUICK_SCORING = ["occnet_points=10000", "deepsdf_points=10000"]  # evaluate.* keys: 10x fewer surface samples
COLUMNS = {"iou": 1.0, "chamfer_l1_occnet": 10.0, "chamfer_deepsdf": 1e3}  # reported scale of each
COMPLETION = {"_target_": "shapelab.datamodules.depth_completion.DepthCompletion", "num_samples": 8192,
              "free_space_fraction": 0.5}


def train_run(overrides: list[str], out: Path) -> Path:
    """Train (no evaluation) into ``out`` and return it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from shapelab.cli.train import train

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={out}", "task_name=bench_deepsdf_completion",
                                          "logger=csv", "evaluate_after_training=false", *overrides])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    train(cfg)
    return out


def evaluate_observations(run: Path, view: int, out: Path, overrides: list[str]) -> dict[str, dict]:
    """Score the run's last.ckpt on its test split: full observation, one depth view, the mean shape."""
    import hydra
    from omegaconf import OmegaConf, open_dict

    from shapelab import resolvers
    from shapelab.checkpoints import load_weights
    from shapelab.cli.evaluate import load_run_config
    from shapelab.evaluation import evaluate_model

    resolvers.register()
    run_cfg = load_run_config(run)
    evaluate_cfg = OmegaConf.merge(run_cfg.evaluate, OmegaConf.from_dotlist(overrides))  # keys of evaluate
    unknown = set(evaluate_cfg) - set(run_cfg.evaluate)
    if unknown:
        raise SystemExit(f"not evaluate settings: {sorted(unknown)}")
    with open_dict(evaluate_cfg):
        evaluate_cfg.groups = ["occnet_surface", "iou", "deepsdf"]
        evaluate_cfg.contact_sheet_shapes = 0
    model = hydra.utils.instantiate(run_cfg.model)
    load_weights(model, run / "checkpoints" / "last.ckpt")
    completion_data = OmegaConf.merge(run_cfg.data, {"completion": {**COMPLETION, "view": view}})
    schedule, start_rule = model.reconstruction, model.reconstruction_start
    rows = [("full", run_cfg.data, schedule.num_iterations, start_rule),
            (f"view{view}", completion_data, schedule.num_iterations, start_rule)]
    if start_rule == "best_training_code":  # the fits' starting point alone: the best-fitting training shape
        rows.append(("training_code", run_cfg.data, 0, start_rule))
    rows.append(("mean_shape", run_cfg.data, 0, "random"))  # a code at its N(0, 0.01²) init, whatever the run uses
    results = {}
    for name, data_cfg, iterations, start_from in rows:
        datamodule = hydra.utils.instantiate(data_cfg)
        datamodule.prepare_data()
        datamodule.setup("test")
        model.reconstruction = dataclasses.replace(schedule, num_iterations=iterations)
        model.reconstruction_start = start_from
        start, cpu = time.perf_counter(), time.process_time()
        evaluate_model(model, datamodule, evaluate_cfg, out / name)
        seconds = (time.perf_counter() - start, time.process_time() - cpu)
        summary = json.loads((out / name / "summary.json").read_text())
        results[name] = {"per_category": summary["per_category"], "mean": summary["mean_over_classes"],
                         "wall_s": seconds[0], "cpu_s": seconds[1]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train chairs for 20 epochs, coarse fits and metrics")
    parser.add_argument("--run", type=Path, help="a finished train.py DeepSDF run to evaluate instead of training")
    parser.add_argument("--view", type=int, default=0, help="which of the 24 depth renders each test shape is seen from")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for training, e.g. trainer.max_epochs=300")
    args = parser.parse_args()
    from shapelab.runs import new_run_dir

    out = new_run_dir(REPO_ROOT / "logs" / "bench_deepsdf_completion")
    run = args.run or train_run([*(QUICK if args.quick else ["experiment=deepsdf_all"]), *args.overrides], out / "run")
    results = evaluate_observations(run.resolve(), args.view, out,
                                    ["split=test", *(QUICK_SCORING if args.quick else [])])

    print(f"\nrun: {run}; evaluations in {out}")
    names = list(results)
    header = " | ".join(f"{column} ×{scale:g} " + "/".join(names) for column, scale in COLUMNS.items())
    print(f"{'category':10s} {'n':>3s} | {header}")
    for category, stats in results["full"]["per_category"].items():
        cells = " | ".join(
            " / ".join(f"{results[name]['per_category'][category][column] * scale:.4g}" for name in names)
            for column, scale in COLUMNS.items())
        print(f"{category:10s} {stats['num_shapes']:3d} | {cells}")
    for name in names:
        print(f"{name}: {results[name]['wall_s']:.0f} s wall, {results[name]['cpu_s']:.0f} CPU-s")
    fields = [f"{column}_{name}{'' if scale == 1 else f'_x{scale:g}'}={results[name]['mean'][column] * scale:.4f}"
              for column, scale in COLUMNS.items() for name in names]
    print("deepsdf_completion " + " ".join(fields))


if __name__ == "__main__":
    main()
