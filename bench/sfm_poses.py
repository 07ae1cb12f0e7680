"""Camera recovery by COLMAP (sfm.py) on textured built-in captures with known cameras, then the whole loop
SfM cameras -> data=colmap_views -> a short DRWR run and the MeshSDF silhouette stage, each against the same run
on the true cameras.

Poses: per capture (one built-in shape each), registered/total, median rotation error (deg) and centre error
(relative to the scene size) after the Sim(3) alignment of sfm/evaluation.py, mean reprojection error (px),
wall and CPU seconds per image and the load. Same-run reference: the first capture again with its known
intrinsics held fixed (PINHOLE), i.e. what self-calibration costs.
Loop (first capture): the true surface (pointcloud.npz points + normals, mesh.ply) is moved into the SfM object
frame with the inverse of the alignment, so the runs on SfM cameras and on true cameras are scored against the
same surface; each pair of runs differs only in the cameras (and their frame):
- DRWR (``experiment=drwr data=colmap_views``): val/chamfer_capnet (CAPNet's Chamfer, 1024 vs 1024 points, each
  cloud scaled to a unit box) after the same number of steps;
- MeshSDF silhouette stage (``stage=meshsdf data=colmap_views``): a small DeepSDF (bench/meshsdf_refine.py's
  ``train_deepsdf``) trained on other shapes of the category, then the plain DeepSDF answer from the capture's
  masks (before) and its MeshSDF refinement (after), scored by the shared evaluation (``iou``, and
  ``chamfer_capnet``: both clouds scaled to a unit box, so comparable across the two runs' frames, unlike
  ``chamfer_deepsdf`` in each capture's own units) against the capture's true surface.

    python bench/sfm_poses.py [--quick] [--shapes car chair airplane] [--loop-steps N] [--no-loop]

Full: 36 views (18 per ring at 15 and 40 deg), 512 px, 3 shapes, DSP-SIFT + guided matching (the last shape also
with sfm.py's default features), DRWR 200 steps, DeepSDF on 6 other shapes (600 steps), stage with 8 views of 64 px
and 30 refinement steps. ``--quick``: the first shape only, 10 views on a 90-degree arc at 192 px, sfm.py's
default features, DRWR 5 steps, DeepSDF on 3 shapes (100 steps), stage with 4 views of 32 px and 4 refinement
steps (111 s wall, 33 CPU-s at load 10.8).
Last line: ``sfm_poses registered_ratio=<> rot_err_deg_median=<> center_err_rel_median=<> reproj_px=<>
seconds_per_image=<>`` (+ cpu_seconds_per_image, load, the DRWR chamfer and MeshSDF iou / chamfer_capnet on SfM
and true cameras).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FULL_VIEWS = {"azimuths": 18, "elevations": [15.0, 40.0], "azimuth_span": 360.0, "image_size": 512}
QUICK_VIEWS = {"azimuths": 10, "elevations": [30.0], "azimuth_span": 90.0, "image_size": 192}
QUICK_OPTIONS = {"init_min_num_inliers": 50, "abs_pose_min_num_inliers": 15}
# full captures: DSP-SIFT + guided matching (conf/sfm.yaml), which registers the thin-winged airplane fully; the last
# shape is also run with sfm.py's default features as a same-run reference
FULL_OPTIONS = {"affine_shape": True, "domain_size_pooling": True, "guided_matching": True}
# the loop's DeepSDF (trained on shapes 1..shapes of the category; the capture is shape 0) and stage settings
FULL_LOOP = {"drwr_steps": 200, "deepsdf": {"shapes": 6, "steps": 600, "samples": 10000},
             "stage": ["stage.num_views=8", "stage.image_size=64", "stage.refine.iterations=30"]}
QUICK_LOOP = {"drwr_steps": 5, "deepsdf": {"shapes": 3, "steps": 100, "samples": 5000},
              "stage": ["stage.num_views=4", "stage.image_size=32", "stage.baseline.num_iterations=40",
                        "stage.refine.iterations=4", "stage.refine.resolution=24", "evaluate.occnet_points=20000",
                        "evaluate.deepsdf_points=5000"]}
DEEPSDF_SIZES = {"latent_size": 32, "hidden_dim": 128, "num_layers": 5, "skip_layers": [3], "dropout": 0.0}
"""bench/meshsdf_refine.py train_deepsdf's network: model/deepsdf's decoder with these sizes."""


def reconstruct(capture: Path, out: Path, options: dict) -> dict:
    from shapelab.sfm.pipeline import SfmOptions
    from shapelab.sfm.run import run_sfm

    return run_sfm(capture / "images", out, SfmOptions(**options), capture / "masks", capture / "cameras_true.npz",
                   overwrite=True, progress=False)


def row(name: str, report: dict) -> dict:
    e, t = report["evaluation"], report["timing"]
    return {"capture": name, "registered": f"{report['images_registered']}/{report['images_total']}",
            "registered_ratio": e["registered_ratio"], "rot_err_deg_median": e["rot_err_deg_median"],
            "center_err_rel_median": e["center_err_rel_median"], "auc_5deg": e["auc_5deg"],
            "reproj_px": report["reprojection_error_px"], "points": report["points"],
            "seconds_per_image": t["seconds_per_image"], "cpu_seconds_per_image": t["cpu_seconds_per_image"],
            "load": t["load_before"]}


def truth_in_sfm_frame(capture: Path, sfm_dir: Path, report: dict) -> None:
    """Write <sfm_dir>/pointcloud.npz and mesh.ply: the capture's true surface moved by the inverse of the
    evaluation's alignment (p_true = s R p_sfm + t), so data=colmap_views scores the SfM capture against it."""
    import trimesh

    alignment = report["evaluation"]["alignment"]
    scale, rotation, translation = alignment["scale"], np.array(alignment["rotation"]), np.array(alignment["translation"])
    truth = np.load(capture / "pointcloud.npz")
    np.savez(sfm_dir / "pointcloud.npz", points=((truth["points"] - translation) @ rotation / scale).astype(np.float32),
             normals=(truth["normals"] @ rotation).astype(np.float32))
    mesh = trimesh.load(capture / "mesh.ply", process=False)
    trimesh.Trimesh((mesh.vertices - translation) @ rotation / scale, mesh.faces, process=False).export(sfm_dir / "mesh.ply")


def train_run(overrides: list[str], out: Path) -> dict[str, float]:
    """train.py's train(cfg) in this process on conf/train.yaml with ``overrides`` (CSV logger, no callbacks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from shapelab.cli.train import train

    GlobalHydra.instance().clear()
    overrides = [f"paths.output_dir={out}", "task_name=bench_sfm_poses", "logger=csv", "callbacks=none", "seed=0",
                 *overrides]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return train(cfg)


def drwr(capture_dir: Path, cameras_file: str, steps: int, out: Path) -> float:
    """val/chamfer_capnet after ``steps`` DRWR steps on one capture (experiment=drwr data=colmap_views)."""
    metrics = train_run(["experiment=drwr", "data=colmap_views", f"data.captures=[{capture_dir}]",
                         f"data.cameras_file={cameras_file}", "evaluate_after_training=false",
                         f"trainer.max_epochs={steps}", f"trainer.check_val_every_n_epoch={steps}",
                         "trainer.enable_progress_bar=false"], out)
    return float(metrics["val/chamfer_capnet"])


def deepsdf_checkpoint(category: str, shapes: int, steps: int, samples: int, out: Path) -> Path:
    """A DeepSDF run directory (.hydra/config.yaml + checkpoints/last.ckpt, as train.py writes) trained by
    bench/meshsdf_refine.py's ``train_deepsdf`` on built-in shapes 1..``shapes`` of ``category`` (0 held out)."""
    import torch
    from omegaconf import OmegaConf
    from shapelab.datamodules.synthetic import CATEGORIES

    from bench.meshsdf_refine import built_in_shape, train_deepsdf
    from shapelab.config import compose_group

    synset = {name: key for key, name in CATEGORIES.items()}[category]
    rng = np.random.default_rng(0)
    data = [built_in_shape(synset, index, samples, rng)[1:] for index in range(1, shapes + 1)]
    decoder = train_deepsdf(torch.stack([xyz for xyz, _ in data]), torch.stack([sdf for _, sdf in data]), steps, 0)
    for folder in ("checkpoints", ".hydra"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    decoder_cfg = {**compose_group("model/deepsdf.decoder"), **DEEPSDF_SIZES}
    OmegaConf.save({"model": {"decoder": decoder_cfg}}, out / ".hydra" / "config.yaml")
    state = {f"decoder.{key}": value for key, value in decoder.state_dict().items()}
    torch.save({"state_dict": {**state, "latents.weight": torch.zeros(len(data), 32)}}, out / "checkpoints" / "last.ckpt")
    return out / "checkpoints" / "last.ckpt"


def meshsdf(capture_dir: Path, cameras_file: str, checkpoint: Path, settings: list[str], out: Path) -> dict:
    """``meshsdf/<column>_{before,after}`` of the MeshSDF silhouette stage on one capture (stage=meshsdf
    data=colmap_views), scored against the capture's true surface."""
    return train_run(["stage=meshsdf", "data=colmap_views", f"data.captures=[{capture_dir}]",
                      f"data.cameras_file={cameras_file}", "data.ground_truth_dir=${paths.output_dir}/ground_truth",
                      f"stage.checkpoint={checkpoint}", "stage.max_shapes=1",
                      "evaluate.contact_sheet_shapes=0", *settings], out)


def loop(first: str, capture: Path, sfm_dir: Path, report: dict, settings: dict, out: Path) -> str:
    """The loop of the module docstring on one capture; prints its table, returns its summary keys."""
    truth_in_sfm_frame(capture, sfm_dir, report)
    steps = settings["drwr_steps"]
    cameras = {"SfM": (sfm_dir, "cameras.npz"), "true": (capture, "cameras_true.npz")}
    chamfer = {name: drwr(folder, file, steps, out / f"drwr_{name}") for name, (folder, file) in cameras.items()}
    checkpoint = deepsdf_checkpoint(first, **settings["deepsdf"], out=out / "deepsdf")
    stage = {name: meshsdf(folder, file, checkpoint, settings["stage"], out / f"meshsdf_{name}")
             for name, (folder, file) in cameras.items()}
    print(f"\nloop on {first} ({steps} DRWR steps; MeshSDF: {' '.join(settings['stage'])})")
    print("| cameras | DRWR chamfer_capnet | MeshSDF iou before | after | MeshSDF chamfer_capnet before | after |")
    print("|---|---|---|---|---|---|")
    for name in cameras:
        m = stage[name]
        print(f"| {name} | {chamfer[name]:.5f} | {m['meshsdf/iou_before']:.4f} | {m['meshsdf/iou_after']:.4f} | "
              f"{m['meshsdf/chamfer_capnet_before']:.5f} | {m['meshsdf/chamfer_capnet_after']:.5f} |")
    keys = {f"drwr_chamfer_{n.lower()}": f"{chamfer[n]:.5f}" for n in cameras}
    keys.update({f"meshsdf_iou_{label}_{n.lower()}": f"{stage[n][f'meshsdf/iou_{label}']:.4f}"
                 for label in ("before", "after") for n in cameras})
    keys.update({f"meshsdf_chamfer_capnet_after_{n.lower()}": f"{stage[n]['meshsdf/chamfer_capnet_after']:.5f}"
                 for n in cameras})
    return f" drwr_steps={steps} " + " ".join(f"{k}={v}" for k, v in keys.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shapes", nargs="+", default=["car", "chair", "airplane"])
    parser.add_argument("--loop-steps", type=int, default=None)
    parser.add_argument("--no-loop", action="store_true")
    parser.add_argument("--out", default=None, help="an empty or new folder (default: a new one under logs/bench_sfm_poses/)")
    args = parser.parse_args()
    from shapelab.sfm.captures import ViewSet, write_capture

    from shapelab.cli.sfm import builtin_shape
    from shapelab.runs import new_run_dir

    out = Path(args.out) if args.out else new_run_dir(REPO_ROOT / "logs" / "bench_sfm_poses")
    if out.is_dir() and any(out.iterdir()):
        parser.error(f"--out {out} is not empty: give a new folder (earlier results are not overwritten)")
    views = QUICK_VIEWS if args.quick else FULL_VIEWS
    shapes = args.shapes[:1] if args.quick else args.shapes
    options = {**(QUICK_OPTIONS if args.quick else FULL_OPTIONS), "num_threads": 2}
    rows, reports = [], {}
    for shape in shapes:
        start = time.perf_counter()
        capture = write_capture(out / shape / "capture", builtin_shape(shape, 0), views=ViewSet(**views),
                                progress=False)
        print(f"{shape}: rendered {views} in {time.perf_counter() - start:.0f} s", flush=True)
        reports[shape] = reconstruct(capture, out / shape / "sfm", options)
        rows.append(row(shape, reports[shape]))
        print(json.dumps(rows[-1]), flush=True)
    first = args.shapes[0]
    capture = out / first / "capture"
    size = views["image_size"]
    focal = ViewSet(**views).cameras().K[0, 0, 0]
    known = reconstruct(capture, out / first / "sfm_known_intrinsics",
                        {**options, "camera_model": "PINHOLE", "intrinsics": [focal, focal, size / 2, size / 2]})
    print("reference, known intrinsics:", json.dumps(row(f"{first} (known K)", known)), flush=True)
    if not args.quick:
        last = args.shapes[-1]
        plain = reconstruct(out / last / "capture", out / last / "sfm_default_features",
                            {**options, **{key: False for key in FULL_OPTIONS}})
        print("reference, sfm.py's default features:", json.dumps(row(f"{last} (default features)", plain)), flush=True)

    summary = {key: float(np.median([r[key] for r in rows])) for key in (
        "rot_err_deg_median", "center_err_rel_median", "reproj_px", "seconds_per_image", "cpu_seconds_per_image",
        "load")}
    summary["registered_ratio"] = float(np.mean([r["registered_ratio"] for r in rows]))
    loop_keys = ""
    if not args.no_loop:
        settings = dict(QUICK_LOOP if args.quick else FULL_LOOP)
        settings["drwr_steps"] = args.loop_steps or settings["drwr_steps"]
        loop_keys = loop(first, capture, out / first / "sfm", reports[first], settings, out / first)
    print(f"sfm_poses registered_ratio={summary['registered_ratio']:.3f} "
          f"rot_err_deg_median={summary['rot_err_deg_median']:.3f} "
          f"center_err_rel_median={summary['center_err_rel_median']:.4f} reproj_px={summary['reproj_px']:.3f} "
          f"seconds_per_image={summary['seconds_per_image']:.2f} "
          f"cpu_seconds_per_image={summary['cpu_seconds_per_image']:.2f} load={summary['load']:.1f} "
          f"known_k_rot_err_deg_median={known['evaluation']['rot_err_deg_median']:.3f}{loop_keys}")


if __name__ == "__main__":
    main()
