"""What the default job's CPU-seconds buy: IoU per category against process time, train vs reconstruction.

Trains the default recipe (``python train.py``'s config, plus any overrides) once, then reconstructs and
scores the test split (IoU on the OccNet points, mean over classes) under several test-time settings
(latent-fit iterations / samples, extraction resolution, optionally where the fit starts), each with its CPU-seconds (process time,
all threads). The same run also meshes the learnt codes of some training shapes (no latent fit): the
gap between those and the test shapes is what reconstruction, not the decoder, loses.

    python bench/main_job_budget.py [--quick] [--from-run DIR] [hydra overrides ...] [--recon ITERS:SAMPLES:RES[:START] ...]

START: ``model.reconstruction_start`` of that setting (random | best_training_code; default: the config's).

``--from-run DIR``: skip training, evaluate DIR/checkpoints/last.ckpt (trained with the same overrides).

``--quick``: 20 epochs, test settings 30:2048:32 only (a pipeline check, ~1 min with the data built).
Last line: ``main_job_budget train_cpu_s=<> iou=<first test setting> ... train_codes_iou=<>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

QUICK = ["trainer.max_epochs=20", "trainer.check_val_every_n_epoch=20", "model.mesh_every_n_epochs=0"]
TRAIN_CODES_PER_CATEGORY = 2


def compose_config(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from shapelab import resolvers

    resolvers.register()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"paths.output_dir={output_dir}", "task_name=bench_main_job_budget", "logger=csv",
            "evaluate_after_training=false", "evaluate.groups=[iou]", "evaluate.contact_sheet_shapes=0",
            "evaluate.save_reconstructions=false", "evaluate.resume=false", *overrides,
        ])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def per_category_iou(summary: dict) -> dict[str, float]:
    return {name: stats["iou"] for name, stats in summary["per_category"].items()}


def evaluate_setting(model, datamodule, cfg, setting: str, out: Path):
    """Reconstruct + score the test split with one test-time setting: (IoU per category, CPU-s)."""
    import json

    from shapelab.models.deepsdf import RECONSTRUCTION_STARTS

    from shapelab.evaluation import evaluate_model

    iterations, samples, resolution, *start = setting.split(":")
    iterations, samples, resolution = int(iterations), int(samples), int(resolution)
    model.reconstruction_start = start[0] if start else cfg.model.reconstruction_start
    if model.reconstruction_start not in RECONSTRUCTION_STARTS:
        raise SystemExit(f"--recon {setting}: START must be one of {RECONSTRUCTION_STARTS}")
    model.reconstruction = dataclasses.replace(model.reconstruction, num_iterations=iterations, num_samples=samples)
    model.extract_mesh = functools.partial(model.extract_mesh, resolution=resolution)
    start = time.process_time()
    evaluate_model(model, datamodule, cfg.evaluate, out)
    cpu = time.process_time() - start
    return per_category_iou(json.loads((out / "summary.json").read_text())), cpu


def train_codes_iou(model, datamodule, resolution: int) -> dict[str, list[float]]:
    """IoU of the meshes of learnt training codes (first shapes of each category), no latent fit."""
    import functools as ft

    from shapelab.models.base import Reconstruction

    from shapelab.evaluation.ground_truth import GroundTruthSource
    from shapelab.evaluation.scoring import ScoringSettings, score_shape

    truth_source = GroundTruthSource.from_datamodule(datamodule)
    names = truth_source.category_names()
    settings = ScoringSettings()
    model.extract_mesh = ft.partial(model.extract_mesh, resolution=resolution)
    seen: dict[str, list[float]] = {}
    for index, (synset, model_id) in enumerate(datamodule.dataset("train").shapes):
        scores = seen.setdefault(names.get(synset, synset), [])
        if len(scores) >= TRAIN_CODES_PER_CATEGORY:
            continue
        recon = Reconstruction(frame="deepsdf", mesh=model.mesh_from_latent(model.latents.weight[index].detach()))
        values, _ = score_shape(recon, truth_source.load(synset, model_id), settings, ["iou"])
        scores.append(values["iou"])
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 epochs, one coarse test setting")
    parser.add_argument("--recon", nargs="+", default=None,
                        help="test-time settings ITERATIONS:SAMPLES:RESOLUTION[:START] (default: the config's, then variants)")
    parser.add_argument("--from-run", type=Path, default=None, help="evaluate this run's last.ckpt, no training")
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the training run")
    args = parser.parse_args()
    if any("=" in setting for setting in args.recon or []):
        parser.error("--recon takes every value after it: put the hydra overrides before --recon")
    from shapelab.runs import new_run_dir

    out = args.from_run or new_run_dir(REPO_ROOT / "logs" / "bench_main_job_budget")
    cfg = compose_config([*(QUICK if args.quick else []), *args.overrides], out)
    settings = args.recon or (["30:2048:32"] if args.quick else None)

    import os

    import torch

    from shapelab.cli.train import train
    from shapelab.runs import fill_from_facts

    train_cpu = math.nan
    if args.from_run is None:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        train(cfg)
        train_cpu = time.process_time() - start_cpu
        print(f"train: {train_cpu:.0f} CPU-s, {time.perf_counter() - start_wall:.0f} s wall, load {os.getloadavg()[0]:.1f}")

    import hydra

    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    fill_from_facts(cfg.model, datamodule.facts())
    model = hydra.utils.instantiate(cfg.model)
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    model.eval()
    if settings is None:
        r, x = model.reconstruction, model.extract_mesh.keywords["resolution"]
        settings = [f"{r.num_iterations}:{r.num_samples}:{x}"]
    results = []
    for setting in settings:
        ious, cpu = evaluate_setting(model, datamodule, cfg, setting, out / "eval" / setting.replace(":", "_"))
        mean = sum(ious.values()) / len(ious)
        results.append((setting, mean))
        print(f"test {setting:>14}: {cpu:6.0f} CPU-s  iou/classes {mean:.3f}  " + "  ".join(f"{k} {v:.3f}" for k, v in ious.items()),
              flush=True)
    codes = train_codes_iou(model, datamodule, int(settings[-1].split(":")[2]))
    codes_mean = sum(sum(v) / len(v) for v in codes.values()) / len(codes)
    print("train codes (no fit): " + "  ".join(f"{k} {sum(v) / len(v):.3f}" for k, v in codes.items()))
    print("main_job_budget " + f"train_cpu_s={train_cpu:.0f} "
          + " ".join(f"iou_{s.replace(':', '_')}={m:.3f}" for s, m in results) + f" train_codes_iou={codes_mean:.3f}")


if __name__ == "__main__":
    main()
