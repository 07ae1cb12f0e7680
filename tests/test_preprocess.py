"""preprocess.py / datamodules/preprocessing.py: correct values in every format, bad meshes reported, resumable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.ndimage import binary_dilation
from shapelab.datamodules.formats import deepsdf, occnet
from shapelab.datamodules.preprocessing import assign_splits, find_meshes, preprocess_dataset
from shapelab.renderers.cameras import project

from shapelab.cli.preprocess import preprocess
from shapelab.errors import ShapelabError
from tests.conftest import REPO_ROOT

TINY = [
    "options.sdf_samples=4000",
    "options.sdf_source_points=2000",
    "options.surface_samples=500",
    "options.occ_points=4000",
    "options.pointcloud_points=2000",
    "options.voxel_resolution=16",
    "options.views=2",
    "options.image_size=48",
]
RADIUS = 0.4


@pytest.fixture
def mesh_folder(tmp_path):
    """A folder of meshes in two categories: two good ones and three bad ones."""
    folder = tmp_path / "meshes"
    (folder / "round").mkdir(parents=True)
    (folder / "boxy").mkdir()
    trimesh.creation.icosphere(subdivisions=4, radius=RADIUS).export(folder / "round" / "sphere.obj")
    trimesh.creation.box(extents=[0.5, 0.2, 0.3]).export(folder / "boxy" / "box.off")
    (folder / "boxy" / "garbage.obj").write_bytes(b"\x00\x01 this is not a mesh \xff")
    (folder / "boxy" / "empty.obj").write_text("# nothing here\n")
    (folder / "boxy" / "degenerate.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    return folder


def run_preprocess(compose_cfg, folder, out_dir, *overrides):
    cfg = compose_cfg("preprocess", [f"input_dir={folder}", "name=tiny", f"out_dir={out_dir}", "workers=1",
                                     "progress=false", *TINY, *overrides])  # fmt: skip
    return preprocess(cfg)


def test_preprocess_writes_correct_formats_and_reports_bad_meshes(compose_cfg, mesh_folder, tmp_path):
    out = tmp_path / "out"
    summary = run_preprocess(compose_cfg, mesh_folder, out, "splits=[1,0,0]")
    assert (summary.processed, summary.skipped) == (2, 0)
    assert len(summary.failed) == 3
    for name in ("garbage.obj", "empty.obj", "degenerate.obj"):
        assert sum(name in entry for entry in summary.failed) == 1
    assert "degenerate" in str(summary)

    # DeepSDF: unit-sphere frame, sdf = |p| - r' with the sign of the analytic sphere
    offset, scale = deepsdf.read_normalisation(out / "deepsdf/NormalizationParameters/tiny/round/sphere.npz")
    np.testing.assert_allclose(offset, 0, atol=1e-6)
    assert scale == pytest.approx(1 / (1.03 * RADIUS), rel=1e-5)
    pos, neg = deepsdf.read_sdf_samples(out / "deepsdf/SdfSamples/tiny/round/sphere.npz")
    rows = np.concatenate([pos, neg])
    exact = np.linalg.norm(rows[:, :3], axis=1) - RADIUS * scale
    np.testing.assert_allclose(rows[:, 3], exact, atol=3e-3)
    assert (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all() and len(neg) > 0.2 * len(rows)
    # 47/50 near the surface (std sqrt(0.005) ~ 0.07 and sqrt(0.0005)), 3/50 uniform in [-1, 1]^3
    assert (np.abs(rows[:, 3]) < 0.25).mean() > 0.93 and 0.005 < (np.abs(rows[:, 3]) > 0.4).mean() < 0.06
    surface = deepsdf.read_surface_samples(out / "deepsdf/SurfaceSamples/tiny/round/sphere.ply")
    np.testing.assert_allclose(np.linalg.norm(surface, axis=1), RADIUS, atol=3e-3)  # original units

    # OccNet: unit-cube frame (radius 0.5), occupancies of the analytic sphere
    points = occnet.read_points(out / "occnet/round/sphere/points.npz")
    assert points["scale"] == pytest.approx(2 * RADIUS) and np.abs(points["points"]).max() <= 0.55
    radius = np.linalg.norm(points["points"], axis=1)
    clear = np.abs(radius - 0.5) > 5e-3
    np.testing.assert_array_equal(points["occupancies"][clear], radius[clear] < 0.5)
    cloud = occnet.read_pointcloud(out / "occnet/round/sphere/pointcloud.npz")
    np.testing.assert_allclose(np.linalg.norm(cloud["points"], axis=1), 0.5, atol=4e-3)
    np.testing.assert_allclose(np.abs(np.sum(cloud["points"] * cloud["normals"], axis=1)), 0.5, atol=5e-3)
    voxels = occnet.read_voxels(out / "occnet/round/sphere/voxels.npz")
    assert voxels.shape == (16, 16, 16) and voxels[8, 8, 8] and not voxels[0, 0, 0]

    # renderings: the cameras project the surface onto the written masks; depth where the mask is
    views = out / "occnet/round/sphere/img_choy2016"
    for index, (K, Rt) in enumerate(occnet.read_cameras(views / "cameras.npz")):
        mask = np.asarray(Image.open(views / "mask" / f"{index:03d}.png")) >= 128
        depth = occnet.read_depth(views / "depth" / f"{index:03d}.npz")
        assert np.array_equal(np.isfinite(depth), mask)
        assert Image.open(views / f"{index:03d}.jpg").size == (48, 48)
        cells = np.floor(project(cloud["points"] * cloud["scale"] + cloud["loc"], K, Rt)).astype(int)
        assert binary_dilation(mask)[cells[:, 1], cells[:, 0]].all()  # within a pixel at the silhouette's rim
        assert mask[cells[:, 1], cells[:, 0]].mean() > 0.9

    # splits, lists and metadata only hold the shapes that worked
    assert occnet.read_split_lst(out / "occnet/boxy/train.lst") == ["box"]
    assert deepsdf.read_split(out / "deepsdf/splits/tiny_train.json") == [
        ("boxy", "box"),
        ("round", "sphere"),
    ]
    assert set(occnet.read_metadata(out / "occnet/metadata.yaml")) == {"boxy", "round"}


def test_preprocess_resumes_and_skips_finished_shapes(compose_cfg, mesh_folder, tmp_path):
    out = tmp_path / "out"
    run_preprocess(compose_cfg, mesh_folder, out, "options.formats=[occnet]")
    points_file = out / "occnet/round/sphere/points.npz"
    stamp = points_file.stat().st_mtime_ns
    (out / "occnet/boxy/box/voxels.npz").unlink()  # an interrupted shape
    summary = run_preprocess(compose_cfg, mesh_folder, out, "options.formats=[occnet]")
    assert (summary.processed, summary.skipped, len(summary.failed)) == (1, 1, 3)
    assert points_file.stat().st_mtime_ns == stamp
    assert (out / "occnet/boxy/box/voxels.npz").is_file()


def test_real_shapenet_mesh_matches_its_solid_voxels(compose_cfg, shared_data, tmp_path):
    """ShapeNetCore v2's table is not watertight; our occupancies agree with ShapeNet's own solid binvox."""
    source = shared_data / "shapenet_sample" / "ShapeNetCore.v2"
    out = tmp_path / "out"
    summary = run_preprocess(compose_cfg, source, out, "categories=[04379243]", "options.formats=[occnet]")
    assert (summary.processed, summary.failed) == (1, [])
    shape = "04379243/1a00aa6b75362cc5b324368d54a7416f"
    points = occnet.read_points(out / "occnet" / shape / "points.npz")
    original = points["points"] * points["scale"] + points["loc"]
    solid = trimesh.load(source / shape / "models" / "model_normalized.solid.binvox")
    cells = np.floor(trimesh.transform_points(original, np.linalg.inv(solid.transform)) + 0.5).astype(int)
    valid = ((cells >= 0) & (cells < solid.shape)).all(axis=1)
    reference = np.zeros(len(cells), dtype=bool)
    reference[valid] = solid.matrix[tuple(cells[valid].T)]
    ours = points["occupancies"]
    assert reference.sum() > 50
    assert (ours & reference).sum() / (ours | reference).sum() > 0.8


def test_find_meshes_layouts_and_splits(tmp_path):
    for synset, model in (("02691156", "a1"), ("02691156", "b2")):
        v2 = tmp_path / "v2" / synset / model / "models"
        v2.mkdir(parents=True)
        (v2 / "model_normalized.obj").write_text("")
        v1 = tmp_path / "v1" / synset / model
        v1.mkdir(parents=True)
        (v1 / "model.obj").write_text("")
    for layout in ("v1", "v2"):
        assert [(s.synset, s.model_id) for s in find_meshes(tmp_path / layout)] == [
            ("02691156", "a1"),
            ("02691156", "b2"),
        ]
    ids = [f"id{i:02d}" for i in range(24)]
    split = assign_splits(ids, [16, 4, 4], np.random.default_rng(0))
    assert [len(split[k]) for k in ("train", "val", "test")] == [16, 4, 4]
    assert sorted(split["train"] + split["val"] + split["test"]) == ids
    assert split == assign_splits(ids, [16, 4, 4], np.random.default_rng(0))


def test_bad_inputs_raise_one_clear_error(tmp_path, mesh_folder):
    with pytest.raises(ShapelabError, match="options.sdf_sample: unknown option"):
        preprocess_dataset(mesh_folder, tmp_path / "o", name="x", workers=1, sdf_sample=5)
    with pytest.raises(ShapelabError, match="options.inside_method: unknown method 'parity'"):
        preprocess_dataset(mesh_folder, tmp_path / "o", name="x", workers=1, inside_method="parity")
    with pytest.raises(ShapelabError, match="no meshes found"):
        preprocess_dataset(tmp_path / "o", tmp_path / "o2", name="x") if (
            tmp_path / "o"
        ).mkdir() is None else None
    result = subprocess.run(
        [sys.executable, "preprocess.py", f"input_dir={tmp_path / 'missing'}", "name=x", f"out_dir={tmp_path}/o3",
         f"hydra.run.dir={tmp_path}/run"],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and "missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
