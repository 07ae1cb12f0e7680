"""SfmOptions -> pycolmap options: threads, known intrinsics held fixed, EXIF / default focal, bad values."""
from __future__ import annotations

import pytest
from shapelab.sfm.images import ImageCheck
from shapelab.sfm.pipeline import SfmOptions, extraction_options, mapping_options, matching_options

from shapelab.errors import ShapelabError

pycolmap = pytest.importorskip("pycolmap")


def photos(*sizes):
    return ImageCheck([f"{i}.png" for i in range(len(sizes))], {}, {f"{i}.png": size for i, size in enumerate(sizes)})


def test_threads_seed_and_inlier_counts_reach_the_mapper():
    options = mapping_options(pycolmap, SfmOptions(num_threads=1, seed=7, init_min_num_inliers=42,
                                                   abs_pose_min_num_inliers=11))
    assert options.num_threads == 1 and options.random_seed == 7 and options.mapper.random_seed == 7
    assert options.mapper.init_min_num_inliers == 42 and options.mapper.abs_pose_min_num_inliers == 11
    assert options.ba_refine_focal_length and options.mapper.abs_pose_refine_focal_length  # self-calibration


@pytest.mark.parametrize("on", [True, False])
def test_feature_and_matching_options_reach_colmap(on):
    options = SfmOptions(max_num_features=1234, max_image_size=999, affine_shape=on, domain_size_pooling=on,
                         guided_matching=on, num_threads=1)
    extraction, matching = extraction_options(pycolmap, options), matching_options(pycolmap, options)
    assert extraction.sift.max_num_features == 1234 and extraction.max_image_size == 999
    assert extraction.sift.estimate_affine_shape == on and extraction.sift.domain_size_pooling == on
    assert matching.guided_matching == on and matching.num_threads == 1 and not matching.use_gpu


def test_known_intrinsics_are_held_fixed_and_passed_as_camera_params():
    options = SfmOptions(camera_model="PINHOLE", intrinsics=[300.0, 310.0, 128.0, 120.0])
    mapper = mapping_options(pycolmap, options)
    assert not (mapper.ba_refine_focal_length or mapper.ba_refine_principal_point or mapper.ba_refine_extra_params)
    assert not (mapper.mapper.abs_pose_refine_focal_length or mapper.mapper.abs_pose_refine_extra_params)
    assert options.camera_params(photos((256, 240))) == "300.0,310.0,128.0,120.0"


def test_exif_focal_or_the_default_guess():
    assert SfmOptions().camera_params(photos((640, 480))) == ""  # COLMAP reads EXIF, else its default factor
    params = SfmOptions(exif_focal=False, default_focal_factor=1.5, camera_model="SIMPLE_RADIAL").camera_params(
        photos((640, 480), (640, 480)))
    assert [float(v) for v in params.split(",")] == [960.0, 320.0, 240.0, 0.0]


@pytest.mark.parametrize("options, message", [
    ({"matching": "vocab"}, "matching='vocab'"),
    ({"camera_model": "FISHEYE"}, "camera_model='FISHEYE'"),
    ({"camera_model": "PINHOLE", "intrinsics": [1.0, 2.0, 3.0]}, "takes"),
    ({"exif_focal": False}, "different sizes"),
    ({"min_registered": 1}, "at least 2"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(ShapelabError, match=message):
        SfmOptions(**options).check(photos((640, 480), (480, 640)))


@pytest.mark.parametrize("shared, cameras", [(True, 1), (False, 3)])
def test_one_shared_camera_or_one_per_photo(tmp_path, shared, cameras):
    import numpy as np
    from PIL import Image
    from shapelab.sfm.pipeline import extract

    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    check = photos((128, 96), (128, 96), (128, 96))
    extract(pycolmap, tmp_path / "db.db", tmp_path, check, SfmOptions(shared_camera=shared, num_threads=1))
    database = pycolmap.Database.open(tmp_path / "db.db")
    assert database.num_cameras() == cameras and database.num_images() == 3
    database.close()
