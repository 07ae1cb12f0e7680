"""Camera recovery by COLMAP (sfm.py) on textured built-in captures with known cameras, then the loop
SfM cameras -> data=colmap_views -> a short DRWR run, against the same run on the true cameras.

Poses: per capture (one built-in shape each), registered/total, median rotation error (deg) and centre error
(relative to the scene size) after the Sim(3) alignment of sfm/evaluation.py, mean reprojection error (px),
wall and CPU seconds per image and the load. Same-run reference: the first capture again with its known
intrinsics held fixed (PINHOLE), i.e. what self-calibration costs.
Loop (first capture): the true surface points are moved into the SfM object frame with the inverse of the
alignment (pointcloud.npz of the SfM folder) so both DRWR runs are scored against the same surface
(val/chamfer_capnet: CAPNet's Chamfer, 1024 vs 1024 points, each cloud scaled to a unit box); the two runs
differ only in the cameras (and their frame). The MeshSDF silhouette stage is not part of the loop (it needs
a DeepSDF checkpoint of the category and takes its silhouettes from ring cameras, not from a datamodule).

    python bench/sfm_poses.py [--quick] [--shapes car chair airplane] [--loop-steps N] [--no-loop]

Full: 36 views (18 per ring at 15 and 40 deg), 512 px, 3 shapes, DRWR 300 steps. ``--quick``: the first shape
only, 12 views on a 110-degree arc at 256 px, DRWR 5 steps (about a minute on 2 idle cores).
Last line: ``sfm_poses registered_ratio=<> rot_err_deg_median=<> center_err_rel_median=<> reproj_px=<>
seconds_per_image=<>`` (+ cpu_seconds_per_image, load, drwr chamfer on SfM / true cameras).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FULL_VIEWS = {"azimuths": 18, "elevations": [15.0, 40.0], "azimuth_span": 360.0, "image_size": 512}
QUICK_VIEWS = {"azimuths": 12, "elevations": [30.0], "azimuth_span": 110.0, "image_size": 256}
QUICK_OPTIONS = {"init_min_num_inliers": 50, "abs_pose_min_num_inliers": 15}


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


def true_points_in_sfm_frame(capture: Path, sfm_dir: Path, report: dict) -> None:
    """Write <sfm_dir>/pointcloud.npz: the true surface points moved by the inverse of the evaluation's alignment
    (p_true = s R p_sfm + t)."""
    alignment = report["evaluation"]["alignment"]
    scale, rotation, translation = alignment["scale"], np.array(alignment["rotation"]), np.array(alignment["translation"])
    points = np.load(capture / "pointcloud.npz")["points"]
    np.savez(sfm_dir / "pointcloud.npz", points=((points - translation) @ rotation / scale).astype(np.float32))


def drwr(capture_dir: Path, cameras_file: str, steps: int, out: Path) -> float:
    """val/chamfer_capnet after ``steps`` DRWR steps on one capture (experiment=drwr data=colmap_views)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from shapelab.cli.train import train

    GlobalHydra.instance().clear()
    overrides = [f"paths.output_dir={out}", "task_name=bench_sfm_poses", "logger=csv", "callbacks=none",
                 "experiment=drwr", "data=colmap_views", f"data.captures=[{capture_dir}]",
                 f"data.cameras_file={cameras_file}", "evaluate_after_training=false", f"trainer.max_epochs={steps}",
                 f"trainer.check_val_every_n_epoch={steps}", "trainer.enable_progress_bar=false", "seed=0"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return float(train(cfg)["val/chamfer_capnet"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shapes", nargs="+", default=["car", "chair", "airplane"])
    parser.add_argument("--loop-steps", type=int, default=None)
    parser.add_argument("--no-loop", action="store_true")
    parser.add_argument("--out", default=str(REPO_ROOT / "logs" / "bench_sfm_poses"))
    args = parser.parse_args()
    from shapelab.sfm.captures import ViewSet, write_capture

    from shapelab.cli.sfm import builtin_shape

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    views = QUICK_VIEWS if args.quick else FULL_VIEWS
    shapes = args.shapes[:1] if args.quick else args.shapes
    options = {**(QUICK_OPTIONS if args.quick else {}), "num_threads": 2}
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

    summary = {key: float(np.median([r[key] for r in rows])) for key in (
        "rot_err_deg_median", "center_err_rel_median", "reproj_px", "seconds_per_image", "cpu_seconds_per_image",
        "load")}
    summary["registered_ratio"] = float(np.mean([r["registered_ratio"] for r in rows]))
    loop = ""
    if not args.no_loop:
        steps = args.loop_steps or (5 if args.quick else 300)
        true_points_in_sfm_frame(capture, out / first / "sfm", reports[first])
        on_sfm = drwr(out / first / "sfm", "cameras.npz", steps, out / first / "drwr_sfm")
        on_true = drwr(capture, "cameras_true.npz", steps, out / first / "drwr_true")
        print(f"DRWR {steps} steps on {first}: chamfer_capnet with SfM cameras {on_sfm:.5f}, true cameras {on_true:.5f}")
        loop = f" drwr_steps={steps} drwr_chamfer_sfm={on_sfm:.5f} drwr_chamfer_true={on_true:.5f}"
    print(f"sfm_poses registered_ratio={summary['registered_ratio']:.3f} "
          f"rot_err_deg_median={summary['rot_err_deg_median']:.3f} "
          f"center_err_rel_median={summary['center_err_rel_median']:.4f} reproj_px={summary['reproj_px']:.3f} "
          f"seconds_per_image={summary['seconds_per_image']:.2f} "
          f"cpu_seconds_per_image={summary['cpu_seconds_per_image']:.2f} load={summary['load']:.1f} "
          f"known_k_rot_err_deg_median={known['evaluation']['rot_err_deg_median']:.3f}{loop}")


if __name__ == "__main__":
    main()
