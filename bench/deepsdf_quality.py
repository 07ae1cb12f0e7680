"""DeepSDF reconstruction quality on the built-in dataset, through train.py and the evaluation pipeline.

Trains the default recipe (``experiment=deepsdf_all``, = ``python train.py``), reconstructs the
held-out test shapes by latent optimisation (decoder frozen) and scores them with
``shapelab.evaluation.evaluate_model``: Chamfer as DeepSDF defines it (mean squared distances both
ways, summed, original units, reported ×10³) and IoU on the OccNet points, per category. For
comparison, the same decoder's mean shape (a code left at its N(0, 0.01²) init, no optimisation)
is scored in the same run: the gap is what test-time latent optimisation buys.

    python bench/deepsdf_quality.py [--quick] [hydra overrides ...]

``--quick`` (< 1 min once the built-in data exists): chairs only, 20 epochs, 30 fit steps, 32³ meshes.
Last line: ``deepsdf_quality chamfer_deepsdf_x1e3=<> iou=<> mean_shape_chamfer_deepsdf_x1e3=<> mean_shape_iou=<>``
(means over categories).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

QUICK = [
    "experiment=deepsdf_chairs", "trainer.max_epochs=20", "trainer.check_val_every_n_epoch=20",
    "model.reconstruction.num_iterations=30", "model.extract_mesh.resolution=32", "model.mesh_every_n_epochs=0",
    "evaluate.contact_sheet_shapes=0",
]
# only the metric groups this bench reports (Chamfer as DeepSDF, IoU)
REPORTED_GROUPS = ["evaluate.groups=[iou,deepsdf]"]


def compose_train_config(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={output_dir}", "task_name=bench_deepsdf_quality",
                                          "logger=csv", *overrides])
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def per_category_table(summary_path: Path) -> dict[str, dict]:
    summary = json.loads(summary_path.read_text())
    return {name: {"n": stats["num_shapes"], "chamfer_x1e3": stats["chamfer_deepsdf"] * 1e3, "iou": stats["iou"]}
            for name, stats in summary["per_category"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="chairs, 20 epochs, coarse meshes (< 1 min)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. trainer.max_epochs=300")
    args = parser.parse_args()
    overrides = [*(QUICK if args.quick else ["experiment=deepsdf_all"]), *REPORTED_GROUPS, *args.overrides]
    from shapelab.runs import new_run_dir

    out = new_run_dir(REPO_ROOT / "logs" / "bench_deepsdf_quality")
    cfg = compose_train_config(overrides, out)

    import hydra
    import torch

    from shapelab.cli.train import train
    from shapelab.evaluation import evaluate_model

    start = time.perf_counter()
    metrics = train(cfg)
    train_eval_s = time.perf_counter() - start
    # the mean-shape comparison: rebuild the datamodule and model from the run's checkpoint
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    model = hydra.utils.instantiate(cfg.model)
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    model.reconstruction.num_iterations = 0
    start = time.perf_counter()
    evaluate_model(model, datamodule, cfg.evaluate, out / "eval_mean_shape" / cfg.evaluate.split)
    mean_shape_s = time.perf_counter() - start

    split = cfg.evaluate.split
    ours = per_category_table(out / "eval" / split / "summary.json")
    base = per_category_table(out / "eval_mean_shape" / split / "summary.json")
    print(f"\nrun: {out}  (train + evaluate {train_eval_s:.0f} s, mean-shape evaluation {mean_shape_s:.0f} s)")
    print(f"{'category':10s} {'n':>3s} {'chamfer_deepsdf x1e3':>21s} {'iou':>6s} | mean shape: {'chamfer x1e3':>12s} {'iou':>6s}")
    for name, row in ours.items():
        ref = base.get(name, {"chamfer_x1e3": float("nan"), "iou": float("nan")})
        print(f"{name:10s} {row['n']:3d} {row['chamfer_x1e3']:21.3f} {row['iou']:6.3f} | "
              f"{'':11s} {ref['chamfer_x1e3']:12.3f} {ref['iou']:6.3f}")
    mean = {k: sum(r[k] for r in ours.values()) / len(ours) for k in ("chamfer_x1e3", "iou")}
    ref_mean = {k: sum(r[k] for r in base.values()) / len(base) for k in ("chamfer_x1e3", "iou")}
    print(f"val/sdf_l1 at the end of training: {metrics.get('val/sdf_l1', float('nan')):.4f}; overrides: {overrides}")
    print(f"deepsdf_quality chamfer_deepsdf_x1e3={mean['chamfer_x1e3']:.3f} iou={mean['iou']:.3f} "
          f"mean_shape_chamfer_deepsdf_x1e3={ref_mean['chamfer_x1e3']:.3f} mean_shape_iou={ref_mean['iou']:.3f} "
          f"train_eval_s={train_eval_s:.0f}")


if __name__ == "__main__":
    main()
