"""Format I/O: write -> read round trips, compatibility with real files, and one clear error per bad input."""

from __future__ import annotations

import json
import zipfile
from contextlib import nullcontext

import numpy as np
import pytest
from shapelab.datamodules.formats import deepsdf, occnet

from shapelab.errors import ShapelabError

RNG = np.random.default_rng(0)


def test_sdf_samples_round_trip(tmp_path):
    pos, neg = RNG.normal(size=(50, 4)).astype(np.float32), RNG.normal(size=(30, 4)).astype(np.float32)
    path = deepsdf.write_sdf_samples(tmp_path / "a" / "x.npz", pos, neg)
    assert path == tmp_path / "a" / "x.npz"
    got_pos, got_neg = deepsdf.read_sdf_samples(path)
    np.testing.assert_array_equal(got_pos, pos)
    np.testing.assert_array_equal(got_neg, neg)
    with np.load(path) as raw:
        assert raw["pos"].dtype == np.float32 and raw["neg"].shape == (30, 4)


def test_sdf_samples_nan_rows_are_dropped_with_warning(tmp_path):
    pos = RNG.normal(size=(10, 4)).astype(np.float32)
    pos[3, 3] = np.nan
    np.savez(tmp_path / "x.npz", pos=pos, neg=pos[:2])
    with pytest.warns(UserWarning, match="dropped 1 non-finite"):
        got_pos, _ = deepsdf.read_sdf_samples(tmp_path / "x.npz")
    np.testing.assert_array_equal(got_pos, np.delete(pos, 3, axis=0))


def test_normalisation_surface_and_split_round_trip(tmp_path):
    deepsdf.write_normalisation(tmp_path / "n.npz", [0.1, -0.2, 0.3], 1.5)
    offset, scale = deepsdf.read_normalisation(tmp_path / "n.npz")
    np.testing.assert_allclose(offset, [0.1, -0.2, 0.3], rtol=1e-6)
    assert scale == pytest.approx(1.5) and isinstance(scale, float)
    with np.load(tmp_path / "n.npz") as raw:
        assert raw["offset"].shape == (3,) and raw["scale"].shape == (1,)

    points = RNG.normal(size=(100, 3)).astype(np.float32)
    deepsdf.write_surface_samples(tmp_path / "s.ply", points)
    np.testing.assert_array_equal(deepsdf.read_surface_samples(tmp_path / "s.ply"), points)

    split = {"03001627": ["b", "a"], "02691156": ["c"]}
    deepsdf.write_split(tmp_path / "split.json", "synthetic", split)
    assert json.loads((tmp_path / "split.json").read_text()) == {"synthetic": split}
    assert deepsdf.read_split(tmp_path / "split.json") == [
        ("03001627", "b"),
        ("03001627", "a"),
        ("02691156", "c"),
    ]


def test_occnet_points_pointcloud_voxels_round_trip(tmp_path):
    points = RNG.uniform(-0.55, 0.55, size=(1001, 3)).astype(np.float16).astype(np.float32)
    occupancies = RNG.random(1001) < 0.3
    occnet.write_points(tmp_path / "points.npz", points, occupancies, [0.1, 0.2, 0.3], 0.8)
    got = occnet.read_points(tmp_path / "points.npz")
    np.testing.assert_array_equal(got["points"], points)
    np.testing.assert_array_equal(got["occupancies"], occupancies)
    np.testing.assert_allclose(got["loc"], [0.1, 0.2, 0.3], rtol=1e-6)
    assert got["scale"] == pytest.approx(0.8)
    with np.load(tmp_path / "points.npz") as raw:
        assert raw["points"].dtype == np.float16 and raw["occupancies"].shape == (126,)

    normals = RNG.normal(size=(1001, 3)).astype(np.float16).astype(np.float32)
    occnet.write_pointcloud(tmp_path / "pc.npz", points, normals, np.zeros(3), 1.0)
    got = occnet.read_pointcloud(tmp_path / "pc.npz")
    np.testing.assert_array_equal(got["points"], points)
    np.testing.assert_array_equal(got["normals"], normals)

    grid = RNG.random((32, 32, 32)) < 0.2
    occnet.write_voxels(tmp_path / "voxels.npz", grid)
    np.testing.assert_array_equal(occnet.read_voxels(tmp_path / "voxels.npz"), grid)


def test_occnet_lists_metadata_cameras_round_trip(tmp_path):
    occnet.write_split_lst(tmp_path / "train.lst", ["a", "b"])
    assert occnet.read_split_lst(tmp_path / "train.lst") == ["a", "b"]
    occnet.write_metadata(tmp_path / "metadata.yaml", {"03001627": "chair"})
    assert occnet.read_metadata(tmp_path / "metadata.yaml") == {
        "03001627": {"id": "03001627", "name": "chair"}
    }

    Ks = [np.diag([100.0, 100.0, 1.0]) + np.eye(3) * i for i in range(12)]
    Rts = [np.concatenate([np.eye(3), RNG.normal(size=(3, 1))], axis=1) for _ in range(12)]
    occnet.write_cameras(tmp_path / "cameras.npz", Ks, Rts)
    cameras = occnet.read_cameras(tmp_path / "cameras.npz")
    assert len(cameras) == 12  # order must be numeric (10, 11 after 9), not lexicographic
    for (K, Rt), K_ref, Rt_ref in zip(cameras, Ks, Rts):
        np.testing.assert_array_equal(K, K_ref)
        np.testing.assert_array_equal(Rt, Rt_ref)


def test_reads_real_occnet_files(shared_data):
    root = shared_data / "shapenet_sample" / "ShapeNet"
    metadata = occnet.read_metadata(root / "metadata.yaml")
    assert metadata["04379243"]["name"] == "table"
    shape_dir = root / "04379243" / "1a00aa6b75362cc5b324368d54a7416f"
    cloud = occnet.read_pointcloud(shape_dir / "pointcloud.npz")
    assert cloud["points"].shape == (100000, 3) and cloud["points"].dtype == np.float32
    assert np.abs(cloud["points"]).max() <= 0.5 + 1e-3  # unit cube frame
    np.testing.assert_allclose(np.linalg.norm(cloud["normals"], axis=1), 1.0, atol=1e-2)
    cameras = occnet.read_cameras(shape_dir / "img_choy2016" / "cameras.npz")
    assert len(cameras) == 24
    K, Rt = cameras[0]
    np.testing.assert_allclose(K, [[149.84375, 0, 68.5], [0, 149.84375, 68.5], [0, 0, 1]])
    np.testing.assert_allclose(Rt[:, :3] @ Rt[:, :3].T, np.eye(3), atol=1e-6)


def _corrupt_cases(tmp_path):
    good = RNG.normal(size=(5, 4)).astype(np.float32)
    (tmp_path / "garbage.npz").write_bytes(b"this is not a zip file")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "objects.npy").rename(tmp_path / "objects.npz")
    np.savez(tmp_path / "no_neg.npz", pos=good)
    np.savez(tmp_path / "bad_shape.npz", pos=good[:, :3], neg=good)
    np.savez(tmp_path / "bad_dtype.npz", pos=good.astype(np.int32), neg=good)
    np.savez(tmp_path / "all_nan.npz", pos=np.full((3, 4), np.nan), neg=np.full((0, 4), 1.0))
    with zipfile.ZipFile(tmp_path / "truncated.npz", "w") as archive:
        archive.writestr("pos.npy", b"\x93NUMPY broken")
        archive.writestr("neg.npy", b"")
    return {
        "missing.npz": "file not found",
        "garbage.npz": "not a readable npz file .unknown content or pickled objects",
        "objects.npz": "not a readable npz",
        "no_neg.npz": "missing key",
        "bad_shape.npz": "shape",
        "bad_dtype.npz": "dtype",
        "all_nan.npz": "no finite",
        "truncated.npz": "not a readable npz",
    }


def test_bad_sdf_files_raise_one_clear_error(tmp_path):
    for name, problem in _corrupt_cases(tmp_path).items():
        with (
            pytest.raises(ShapelabError, match=problem) as info,
            pytest.warns() if name == "all_nan.npz" else nullcontext(),
        ):
            deepsdf.read_sdf_samples(tmp_path / name)
        message = str(info.value)
        assert name in message and "\n" not in message and "; " in message
        assert "allow_pickle" not in message and "pickle.load" not in message  # never advise unpickling data


def test_bad_occnet_files_raise_one_clear_error(tmp_path):
    np.savez(
        tmp_path / "nan.npz",
        points=np.full((8, 3), np.nan),
        occupancies=np.packbits(np.ones(8, bool)),
        loc=np.zeros(3),
        scale=np.float32(1),
    )
    np.savez(
        tmp_path / "short.npz",
        points=np.zeros((80, 3)),
        occupancies=np.zeros(3, np.uint8),
        loc=np.zeros(3),
        scale=np.float32(1),
    )
    np.savez(tmp_path / "cams.npz", camera_mat_0=np.eye(3))
    np.savez(tmp_path / "badcam.npz", camera_mat_0=np.eye(4), world_mat_0=np.eye(4)[:3])
    (tmp_path / "meta.yaml").write_text("[1, 2")
    cases = [
        (occnet.read_points, "nan.npz", "NaN"),
        (occnet.read_points, "short.npz", "occupancies"),
        (occnet.read_cameras, "cams.npz", "world_mat_0"),
        (occnet.read_cameras, "badcam.npz", "camera_mat_0"),
        (occnet.read_metadata, "meta.yaml", "YAML"),
        (occnet.read_split_lst, "nope.lst", "not found"),
        (occnet.read_voxels, "nope.npz", "not found"),
    ]
    for reader, name, problem in cases:
        with pytest.raises(ShapelabError, match=problem) as info:
            reader(tmp_path / name)
        assert name in str(info.value)


def test_writers_reject_bad_arrays(tmp_path):
    with pytest.raises(ShapelabError, match="pos"):
        deepsdf.write_sdf_samples(tmp_path / "x.npz", np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ShapelabError, match="occupancies"):
        occnet.write_points(tmp_path / "p.npz", np.zeros((4, 3)), np.zeros(5, bool), np.zeros(3), 1.0)
    assert not any(tmp_path.iterdir())  # nothing half-written
