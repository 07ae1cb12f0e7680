"""preprocess.py with awkward input and reruns: id clashes, nested meshes, NaN vertices, empty splits, changed
options, truncated outputs, disk full, a run where everything fails, file modes under a umask."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from shapelab.datamodules.formats import deepsdf, occnet
from shapelab.datamodules.preprocessing import find_meshes, preprocess_dataset
from shapelab.geometry.axes import chamfer_under_y_rotations
from shapelab.geometry.sampling import DEEPSDF_TEST_VARIANCES

from shapelab.cli.preprocess import preprocess
from shapelab.errors import ShapelabError
from tests.conftest import REPO_ROOT

TINY = {
    "sdf_samples": 3000, "sdf_source_points": 1000, "surface_samples": 300,
    "occ_points": 2000, "pointcloud_points": 1000, "voxel_resolution": 8, "views": 1, "image_size": 24,
}  # fmt: skip


def run(folder, out, **kwargs):
    options = {"name": "t", "workers": 1, "progress": False, "splits": [1, 0, 0], **TINY, **kwargs}
    return preprocess_dataset(folder, out, **options)


@pytest.fixture
def boxes(tmp_path):
    """Two good meshes in category 'c'."""
    folder = tmp_path / "meshes" / "c"
    folder.mkdir(parents=True)
    trimesh.creation.box(extents=[0.5, 0.2, 0.3]).export(folder / "a.obj")
    trimesh.creation.icosphere(subdivisions=2, radius=0.3).export(folder / "b.off")
    return folder.parent


def test_two_files_with_one_id_are_refused(boxes):
    trimesh.creation.box().export(boxes / "c" / "a.off")
    with pytest.raises(
        ShapelabError, match=r"a\.obj and a\.off would both become shape id 'a' of 'c'; rename"
    ):
        find_meshes(boxes)


def test_nested_meshes_and_nan_vertices_are_failed_with_the_reason(boxes, tmp_path):
    nested = boxes / "c" / "deeper" / "n.obj"
    nested.parent.mkdir()
    trimesh.creation.box().export(nested)
    lines = [
        "v 0 0 0",
        "v 1 0 0",
        "v 0 1 0",
        "v 0 0 1",
        "v nan 0 0",
        "f 1 2 3",
        "f 1 2 4",
        "f 1 3 4",
        "f 2 3 5",
    ]
    (boxes / "c" / "nan.obj").write_text("\n".join(lines) + "\n")
    summary = run(boxes, tmp_path / "out", formats=["occnet"])
    assert summary.processed == 2
    assert [entry.split(":")[0] for entry in summary.failed] == [str(nested), str(boxes / "c" / "nan.obj")]
    assert "nested deeper than <category>/<file>" in summary.failed[0]
    assert "1 NaN/inf vertices" in summary.failed[1]
    assert occnet.read_split_lst(tmp_path / "out/occnet/c/train.lst") == ["a", "b"]


def test_empty_val_and_test_splits_are_reported(boxes, tmp_path):
    summary = run(boxes, tmp_path / "out", formats=["occnet"], splits=[0.8, 0.1, 0.1])
    assert [line.split(" split")[0] for line in summary.warnings] == [
        "category c: the val",
        "category c: the test",
    ]
    assert "warning: category c: the val split is empty (2 finished shapes" in str(summary)
    assert run(boxes, tmp_path / "out", formats=["occnet"], splits=[1, 0, 1]).warnings == []


def test_rerun_with_other_options_refuses_or_rebuilds(boxes, tmp_path):
    out = tmp_path / "out"
    run(boxes, out, formats=["deepsdf"])
    with pytest.raises(
        ShapelabError, match=r"c/a\.json: built with options\.sdf_samples=3000, now 2000; set overwrite"
    ):
        run(boxes, out, formats=["deepsdf"], sdf_samples=2000)
    with pytest.raises(ShapelabError, match="built with seed=0, now 1"):
        run(boxes, out, formats=["deepsdf"], seed=1)
    summary = run(boxes, out, formats=["deepsdf"], sdf_samples=2000, overwrite=True)
    assert summary.processed == 2
    pos, neg = deepsdf.read_sdf_samples(out / "deepsdf/SdfSamples/t/c/a.npz")
    assert len(pos) + len(neg) == 2000
    assert run(boxes, out, formats=["deepsdf"], sdf_samples=2000).skipped == 2
    # another format with the same options adds to the recorded shapes; both are then finished
    assert run(boxes, out, formats=["occnet"], sdf_samples=2000).processed == 2
    assert run(boxes, out, formats=["deepsdf", "occnet"], sdf_samples=2000).skipped == 2


def test_truncated_output_is_redone(boxes, tmp_path):
    out = tmp_path / "out"
    run(boxes, out, formats=["occnet"])
    points = out / "occnet/c/a/points.npz"
    points.write_bytes(points.read_bytes()[:100])
    summary = run(boxes, out, formats=["occnet"])
    assert (summary.processed, summary.skipped) == (1, 1)
    assert len(occnet.read_points(points)["points"]) == TINY["occ_points"]


def test_disk_full_stops_with_one_line_and_leaves_nothing_counted_as_done(boxes, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_savez = np.savez

    def full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(ShapelabError) as caught:
        run(boxes, out, formats=["occnet"])
    message = str(caught.value)
    assert "disk full (no space left on device) while writing shape c/a; free space" in message
    assert len(message.splitlines()) == 1
    assert not [path for path in out.rglob("*") if path.is_file() and path.suffix == ".npz"]
    monkeypatch.setattr(np, "savez", real_savez)
    assert run(boxes, out, formats=["occnet"]).processed == 2


def test_cli_exits_nonzero_when_every_shape_fails(tmp_path):
    bad = tmp_path / "bad" / "c"
    bad.mkdir(parents=True)
    (bad / "x.obj").write_text("not a mesh\n")
    args = [f"input_dir={bad.parent}", "name=x", "workers=1", "progress=false", f"out_dir={tmp_path}/o"]
    outcome = subprocess.run(
        [sys.executable, "preprocess.py", *args, f"hydra.run.dir={tmp_path}/run"],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert outcome.returncode == 1
    assert "failed: " in outcome.stdout and "x.obj" in outcome.stdout
    assert outcome.stderr.strip().splitlines()[-1].startswith("error: every shape failed (1)")


def test_a_missing_input_dir_is_one_line(compose_cfg):
    """main() prints a ShapelabError as one 'error: ...' line with status 2 (test_preprocess.py runs that path)."""
    with pytest.raises(ShapelabError) as caught:
        preprocess(compose_cfg("preprocess", ["name=x"]))
    assert str(caught.value) == (
        "input_dir: not set; give a folder of raw meshes, e.g. python preprocess.py input_dir=/data/ShapeNetCore.v2 "
        "name=ShapeNet"
    )


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_respect_the_umask(boxes, tmp_path, umask):
    from shapelab.datamodules.synthetic import ensure_synthetic_dataset

    previous = os.umask(umask)
    try:
        run(boxes, tmp_path / "out", formats=["deepsdf", "occnet", "renderings"])
        ensure_synthetic_dataset(
            tmp_path / "data", name="b", categories=["car"], shapes_per_category=1, splits=(1, 0, 0), workers=1,
            formats=["deepsdf"], **{key: TINY[key] for key in ("sdf_samples", "sdf_source_points", "surface_samples")},
        )  # fmt: skip
    finally:
        os.umask(previous)
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    files += [path for path in (tmp_path / "data").rglob("*") if path.is_file()]
    assert len(files) > 20
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in files} == {oct(0o666 & ~umask)}


def test_test_split_gets_deepsdf_test_sampling_and_a_split_change_redoes_it(tmp_path):
    folder = tmp_path / "meshes" / "c"
    folder.mkdir(parents=True)
    trimesh.creation.icosphere(subdivisions=3, radius=0.4).export(folder / "s.obj")
    out, sdf_file = tmp_path / "out", tmp_path / "out/deepsdf/SdfSamples/t/c/s.npz"

    def far_share() -> tuple[int, float]:
        rows = np.concatenate(deepsdf.read_sdf_samples(sdf_file))
        return len(rows), float((np.abs(rows[:, 3]) > 0.15).mean())

    assert DEEPSDF_TEST_VARIANCES == (0.05, 0.0005)  # PreprocessMesh.cpp -t
    run(folder.parent, out, formats=["deepsdf"], splits=[0, 0, 1], test_sdf_samples=4000)
    count, test_share = far_share()
    assert count == 4000 and test_share > 0.15  # std 0.22: about a quarter of the samples lie far out
    summary = run(folder.parent, out, formats=["deepsdf"], splits=[1, 0, 0], test_sdf_samples=4000)
    assert summary.processed == 1  # now a training shape: resampled, not refused, not kept
    count, train_share = far_share()
    assert count == TINY["sdf_samples"] and train_share < 0.1


def test_frame_occnet_turns_v2_axes_into_occnets(tmp_path):
    folder = tmp_path / "meshes" / "c"
    folder.mkdir(parents=True)
    trimesh.creation.box(extents=[0.5, 0.2, 0.3]).apply_translation([1, 2, 3]).export(folder / "a.obj")
    extents = {}
    for frame in ("original", "occnet"):
        run(folder.parent, tmp_path / frame, formats=["occnet"], frame=frame)
        cloud = occnet.read_pointcloud(tmp_path / frame / "occnet/c/a/pointcloud.npz")
        extents[frame] = (np.ptp(cloud["points"], axis=0), cloud["loc"])
    np.testing.assert_allclose(extents["original"][0], [1.0, 0.4, 0.6], atol=0.01)
    np.testing.assert_allclose(extents["original"][1], [1, 2, 3], atol=1e-6)
    np.testing.assert_allclose(extents["occnet"][0], [0.6, 0.4, 1.0], atol=0.01)
    np.testing.assert_allclose(extents["occnet"][1], 0, atol=1e-6)


def test_frame_occnet_matches_occnets_released_pointcloud(shared_data, tmp_path):
    sample = shared_data / "shapenet_sample"
    shape = "02828884/1a40eaf5919b1b3f3eaa2b95b99dae6"
    released = occnet.read_pointcloud(sample / "ShapeNet" / shape / "pointcloud.npz")["points"]
    chamfer = {}
    for frame in ("original", "occnet"):
        run(sample / "ShapeNetCore.v2", tmp_path / frame, formats=["occnet"], frame=frame, categories=["02828884"],
            occ_points=500, pointcloud_points=5000)  # fmt: skip
        ours = occnet.read_pointcloud(tmp_path / frame / "occnet" / shape / "pointcloud.npz")["points"]
        chamfer[frame] = chamfer_under_y_rotations(ours, released, angles=(0.0,))[0.0]
    assert chamfer["occnet"] < 0.01 and chamfer["original"] > 0.1  # measured 0.002 and 0.22
