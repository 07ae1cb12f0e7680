"""One SfM run end to end: COLMAP (sfm/pipeline.py) -> object frame -> output files (sfm/outputs.py) ->
report (+ pose evaluation against true cameras when given). Used by sfm.py and bench/sfm_poses.py."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from shapelab.sfm.cameras_file import read_capture_cameras, write_capture_cameras
from shapelab.sfm.evaluation import evaluate_poses
from shapelab.sfm.outputs import (
    cameras_picture,
    model_cameras,
    model_statistics,
    move_to_object_frame,
    undistort,
)
from shapelab.sfm.pipeline import SfmOptions, has_distortion, load_average, run_colmap

from shapelab.errors import ShapelabError

OUTPUTS = ("sparse", "undistorted", "cameras.npz", "points.ply", "cameras.png", "report.json")


def run_sfm(images_dir: str | Path, out_dir: str | Path, options: SfmOptions, masks_dir: str | Path | None = None,
            gt_cameras: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Reconstruct the photos of ``images_dir`` into ``out_dir`` (layout: sfm/outputs.py); returns the report.

    A run that registers fewer than ``options.min_registered`` images still writes its partial model and
    report, then raises ShapelabError; so does a run where mapping finds no model (report only).
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    masks_dir = Path(masks_dir) if masks_dir else None
    if (out_dir / "report.json").exists() and not overwrite:
        raise ShapelabError(f"out_dir={out_dir} already holds an SfM result (report.json); choose another out_dir "
                            "or set overwrite=true")
    for name in OUTPUTS:
        target = out_dir / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    if masks_dir is not None and not masks_dir.is_dir():
        raise ShapelabError(f"masks_dir={masks_dir}: not a folder; give the folder of <photo stem>.png masks")
    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    colmap = run_colmap(images_dir, out_dir, options, progress)
    report = {"images_dir": str(images_dir), "masks_dir": str(masks_dir) if masks_dir else None,
              "skipped": colmap.check.skipped, "models_found": colmap.num_models, "options": vars(options).copy()}
    model = colmap.reconstruction
    if model is None:
        report.update(status="failed", images_total=len(colmap.check.kept), images_registered=0)
        finish(report, colmap, wall, cpu, load_before, out_dir)
        raise ShapelabError(f"{images_dir}: COLMAP found no two photos with enough verified matches to start a model "
                            f"({len(colmap.check.kept)} photos; do they overlap? report: {out_dir / 'report.json'})")
    report.update(model_statistics(model, colmap.check.kept))
    report["object_frame"] = move_to_object_frame(model, masks_dir)
    (out_dir / "sparse").mkdir(parents=True, exist_ok=True)
    model.write(out_dir / "sparse")
    model.export_PLY(out_dir / "points.ply")
    cameras = model_cameras(model)
    cameras.image_dir, cameras.mask_dir = images_dir, masks_dir
    camera = next(iter(model.cameras.values()))
    report["camera_model"] = camera.model.name
    if has_distortion(camera.model.name):
        undistorted = undistort(out_dir / "sparse", images_dir, masks_dir, out_dir / "undistorted")
        import pycolmap

        cameras = model_cameras(pycolmap.Reconstruction(undistorted / "sparse"))
        cameras.image_dir, cameras.mask_dir = undistorted / "images", (undistorted / "masks" if masks_dir else None)
    write_capture_cameras(out_dir / "cameras.npz", cameras)
    points = np.array([p.xyz for p in model.points3D.values()]).reshape(-1, 3)
    colours = np.array([p.color for p in model.points3D.values()]).reshape(-1, 3)
    picture = cameras_picture(model_cameras(model), points, colours,
                              title=f"{report['images_registered']}/{report['images_total']} registered")
    Image.fromarray(picture).save(out_dir / "cameras.png")
    if gt_cameras:
        try:
            report["evaluation"] = evaluate_poses(model_cameras(model), read_capture_cameras(gt_cameras))
        except ShapelabError as error:  # < 3 registered cameras or a degenerate model: no pose errors, still a report
            report["evaluation"] = {"error": str(error)}
    report["status"] = "ok" if report["images_registered"] >= options.min_registered else "too_few_registered"
    finish(report, colmap, wall, cpu, load_before, out_dir)
    if report["status"] != "ok":
        raise ShapelabError(f"{images_dir}: only {report['images_registered']} of {report['images_total']} photos "
                            f"registered (min_registered={options.min_registered}); the partial model is in "
                            f"{out_dir / 'sparse'}; add overlapping photos or lower min_registered")
    return report


def finish(report: dict, colmap, wall: float, cpu: float, load_before: float, out_dir: Path) -> None:
    """Add timings (wall and CPU seconds per step and per image, 1-min load before/after) and write report.json."""
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    count = max(1, len(colmap.check.kept))
    report["timing"] = {"seconds": seconds, "cpu_seconds": cpu_seconds, "seconds_per_image": seconds / count,
                        "cpu_seconds_per_image": cpu_seconds / count, "steps_seconds": colmap.seconds,
                        "steps_cpu_seconds": colmap.cpu_seconds, "load_before": load_before,
                        "load_after": load_average()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))


def summary_lines(report: dict) -> list[str]:
    """The printed summary of a report."""
    lines = [f"status: {report['status']}",
             f"registered: {report.get('images_registered', 0)}/{report.get('images_total', 0)} images"]
    if report.get("not_registered"):
        lines.append(f"  not registered: {', '.join(report['not_registered'])}")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"  skipped {name}: {why}")
    if "points" in report:
        lines.append(f"points: {report['points']}  mean track length: {report['mean_track_length']:.2f}  "
                     f"mean reprojection error: {report['reprojection_error_px']:.3f} px")
    timing = report["timing"]
    lines.append(f"seconds: {timing['seconds']:.1f} wall, {timing['cpu_seconds']:.1f} CPU "
                 f"({timing['seconds_per_image']:.2f} s / image; load {timing['load_before']:.1f})")
    if "evaluation" in report and "error" in report["evaluation"]:
        lines.append(f"vs true cameras: not evaluated ({report['evaluation']['error']})")
    elif "evaluation" in report:
        e = report["evaluation"]
        lines.append(f"vs true cameras: registered {e['registered_ratio']:.3f}, rotation error median "
                     f"{e['rot_err_deg_median']:.3f} deg, centre error median {e['center_err_rel_median']:.4f} "
                     f"(scene size), AUC@1/5/10 {e['auc_1deg']:.3f}/{e['auc_5deg']:.3f}/{e['auc_10deg']:.3f}")
    return lines
