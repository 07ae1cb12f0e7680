"""Structure-from-Motion of a folder of photos with COLMAP (Schönberger & Frahm 2016) through pycolmap.

Steps (each a pycolmap call; the paper's parts and the options that reach them: docs/papers/sfm.md):
1. check the photos (sfm/images.py): non-images, corrupt files and duplicates are skipped and named;
2. feature extraction: SIFT (optionally with affine shape estimation and domain-size pooling: DSP-SIFT), at most
   ``max_image_size`` px and ``max_num_features`` per image, one shared camera or one per image, camera model,
   EXIF focal length or a default guess, or known intrinsics;
3. matching (exhaustive, or sequential for ordered video-like captures) with geometric verification, optionally
   guided matching (more matches searched along each verified two-view geometry);
4. incremental mapping: initial pair, next-best-view registration, robust triangulation, iterative bundle
   adjustment, re-triangulation and outlier filtering; the model with the most registered images is kept;
5. the model is moved to the object frame (sfm/frame.py) and written out (sfm/outputs.py).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from shapelab.renderers.cameras import COLMAP_MODEL_PARAMS, COLMAP_PINHOLE_MODELS, opencv_to_colmap_intrinsics
from shapelab.sfm.images import ImageCheck, check_images
from tqdm.auto import tqdm

from shapelab.errors import ShapelabError

log = logging.getLogger("shapelab.sfm")
MATCHERS = ("exhaustive", "sequential")


@dataclass
class SfmOptions:
    """What sfm.py exposes (conf/sfm.yaml documents each key)."""

    max_image_size: int = 1600
    max_num_features: int = 8192
    affine_shape: bool = False
    domain_size_pooling: bool = False
    matching: str = "exhaustive"
    guided_matching: bool = False
    sequential_overlap: int = 10
    camera_model: str = "SIMPLE_RADIAL"
    shared_camera: bool = True
    exif_focal: bool = True
    default_focal_factor: float = 1.2
    intrinsics: list[float] | None = None
    init_min_num_inliers: int = 100
    abs_pose_min_num_inliers: int = 30
    min_registered: int = 3
    num_threads: int = 2
    seed: int = 0
    verbose: bool = False

    def check(self, check: ImageCheck) -> None:
        if self.matching not in MATCHERS:
            raise ShapelabError(f"matching={self.matching!r}: use one of {MATCHERS}")
        if self.camera_model not in COLMAP_MODEL_PARAMS:
            raise ShapelabError(f"camera_model={self.camera_model!r}: use one of {sorted(COLMAP_MODEL_PARAMS)}")
        if self.intrinsics is not None and len(self.intrinsics) != len(COLMAP_MODEL_PARAMS[self.camera_model]):
            raise ShapelabError(f"intrinsics={list(self.intrinsics)}: camera_model={self.camera_model} takes "
                                f"{COLMAP_MODEL_PARAMS[self.camera_model]}; give them in that order (pixels)")
        if (self.intrinsics is not None or not self.exif_focal) and len(set(check.sizes.values())) > 1:
            raise ShapelabError("intrinsics / exif_focal=false give one camera to every photo, but the photos have "
                                f"different sizes {sorted(set(check.sizes.values()))}; resize them or drop the option")
        if self.min_registered < 2:
            raise ShapelabError(f"min_registered={self.min_registered}: must be at least 2")

    def camera_params(self, check: ImageCheck) -> str:
        """COLMAP's ``camera_params`` string: the known intrinsics, or (exif_focal=false) the default focal
        ``default_focal_factor x max(width, height)`` with the principal point at the centre; else '' (EXIF)."""
        if self.intrinsics is not None:
            return ",".join(str(float(v)) for v in self.intrinsics)
        if self.exif_focal:
            return ""
        width, height = next(iter(check.sizes.values()))
        focal = self.default_focal_factor * max(width, height)
        K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        return ",".join(str(v) for v in opencv_to_colmap_intrinsics(K, self.camera_model, (0, 0, 0, 0)))


@dataclass
class ColmapRun:
    """What the COLMAP steps produced: the kept model (None if mapping failed), the timings and the check."""

    check: ImageCheck
    reconstruction: object | None
    num_models: int
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)


class StepClock:
    """Wall and CPU seconds (this process and its threads: ``time.process_time``) per named step."""

    def __init__(self, run: ColmapRun, bar):
        self.run, self.bar = run, bar

    def __call__(self, name: str, action):
        self.bar.set_description(f"sfm: {name}")
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        self.run.seconds[name] = time.perf_counter() - wall
        self.run.cpu_seconds[name] = time.process_time() - cpu
        self.bar.update(1)
        return result


def run_colmap(images_dir: str | Path, work_dir: str | Path, options: SfmOptions, progress: bool = True) -> ColmapRun:
    """Steps 1-4 of the module docstring; COLMAP's files go to ``work_dir`` (database.db, models/<k>/)."""
    import pycolmap

    pycolmap.logging.minloglevel = 0 if options.verbose else 2
    pycolmap.set_random_seed(options.seed)
    images_dir, work_dir = Path(images_dir), Path(work_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    check = check_images(images_dir)
    options.check(check)
    run = ColmapRun(check, None, 0, {"check_images": time.perf_counter() - wall},
                    {"check_images": time.process_time() - cpu})
    for name, why in check.skipped.items():
        log.warning("sfm: skipped %s (%s)", images_dir / name, why)
    work_dir.mkdir(parents=True, exist_ok=True)
    database = work_dir / "database.db"
    database.unlink(missing_ok=True)
    shutil.rmtree(work_dir / "models", ignore_errors=True)
    with tqdm(total=3, desc="sfm", disable=not progress) as bar:
        step = StepClock(run, bar)
        step("extract_features", lambda: extract(pycolmap, database, images_dir, check, options))
        step("match", lambda: match(pycolmap, database, options))
        models = step("map", lambda: incremental_mapping(pycolmap, database, images_dir, work_dir / "models", check,
                                                         options, progress))
    run.num_models = len(models)
    if models:
        run.reconstruction = max(models.values(), key=lambda model: model.num_reg_images())
    return run


def extraction_options(pycolmap, options: SfmOptions):
    """FeatureExtractionOptions (CPU SIFT) from ``options``."""
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = options.max_image_size
    extraction.num_threads = options.num_threads
    extraction.use_gpu = False
    extraction.sift.max_num_features = options.max_num_features
    extraction.sift.estimate_affine_shape = options.affine_shape
    extraction.sift.domain_size_pooling = options.domain_size_pooling
    return extraction


def extract(pycolmap, database: Path, images_dir: Path, check: ImageCheck, options: SfmOptions) -> None:
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = options.camera_model
    reader.camera_params = options.camera_params(check)
    reader.default_focal_length_factor = options.default_focal_factor
    mode = pycolmap.CameraMode.SINGLE if options.shared_camera else pycolmap.CameraMode.PER_IMAGE
    # Images are entered in name order first: the threads of extract_features would number them in the order they
    # finish, and the mapper's choices depend on that order (rotation errors 0.47-0.59 deg over 4 runs of the same
    # photos with 2 threads). Extraction then fills in the keypoints of the images already in the database.
    pycolmap.Database.open(database).close()
    pycolmap.import_images(database, images_dir, camera_mode=mode, image_names=sorted(check.kept), options=reader)
    pycolmap.extract_features(database, images_dir, image_names=check.kept, camera_mode=mode, reader_options=reader,
                              extraction_options=extraction_options(pycolmap, options), device=pycolmap.Device.cpu)


def matching_options(pycolmap, options: SfmOptions):
    """FeatureMatchingOptions (CPU) from ``options``."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.num_threads
    matching.use_gpu = False
    matching.guided_matching = options.guided_matching
    return matching


def verification_options(pycolmap, options: SfmOptions):
    """TwoViewGeometryOptions whose RANSAC is seeded: COLMAP's default (random_seed=-1) draws a fresh seed, so the
    same photos verified different matches and registered 2 or 4 of 4 photos over repeated runs."""
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = options.seed
    return verification


def match(pycolmap, database: Path, options: SfmOptions) -> None:
    matching, verification = matching_options(pycolmap, options), verification_options(pycolmap, options)
    if options.matching == "exhaustive":
        pycolmap.match_exhaustive(database, matching_options=matching, verification_options=verification,
                                  device=pycolmap.Device.cpu)
    else:
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = options.sequential_overlap
        pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                  verification_options=verification, device=pycolmap.Device.cpu)


def mapping_options(pycolmap, options: SfmOptions):
    """IncrementalPipelineOptions from ``options``; known intrinsics are held fixed in every adjustment."""
    pipeline = pycolmap.IncrementalPipelineOptions()
    pipeline.num_threads = options.num_threads
    pipeline.random_seed = options.seed
    pipeline.min_model_size = min(pipeline.min_model_size, options.min_registered)
    pipeline.mapper.init_min_num_inliers = options.init_min_num_inliers
    pipeline.mapper.abs_pose_min_num_inliers = options.abs_pose_min_num_inliers
    pipeline.mapper.random_seed = options.seed
    pipeline.triangulation.random_seed = options.seed
    if options.intrinsics is not None:
        pipeline.ba_refine_focal_length = False
        pipeline.ba_refine_principal_point = False
        pipeline.ba_refine_extra_params = False
        pipeline.mapper.abs_pose_refine_focal_length = False
        pipeline.mapper.abs_pose_refine_extra_params = False
    return pipeline


def incremental_mapping(pycolmap, database: Path, images_dir: Path, models_dir: Path, check: ImageCheck,
                        options: SfmOptions, progress: bool) -> dict:
    models_dir.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(check.kept), desc="sfm: registered images", leave=False, disable=not progress) as bar:
        return pycolmap.incremental_mapping(
            database, images_dir, models_dir, mapping_options(pycolmap, options),
            initial_image_pair_callback=lambda: bar.update(2), next_image_callback=lambda: bar.update(1))


def has_distortion(model_name: str) -> bool:
    return model_name not in COLMAP_PINHOLE_MODELS


def load_average() -> float:
    """1-minute load average (0 where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
