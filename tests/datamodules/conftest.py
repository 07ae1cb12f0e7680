"""Tiny datasets in the original projects' on-disk formats, written with plain numpy / PIL (not with
shapelab's writers), so the DataModule tests also check that the original files are read as they are."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SDF_SHAPES = {"s1": ["a", "b", "c"], "s2": ["d"]}  # train split; val = ["e"] of s1, test = ["f", "g"] of s1
SDF_SPLITS = {"train": SDF_SHAPES, "val": {"s1": ["e"]}, "test": {"s1": ["f", "g"]}}
OCC_SPLITS = {"train": ["m0", "m1", "m2"], "val": ["m3"], "test": ["m4", "m5"]}
NUM_VIEWS = 6
IMAGE_SIDE = 40
LOC, SCALE = np.array([0.1, -0.2, 0.05]), 0.8


def write_sdf_file(path: Path, marker: float, num_pos: int = 50, num_neg: int = 30, rng=None) -> None:
    """pos rows have sdf in (0, 1), neg rows in (-1, 0); every x coordinate equals ``marker`` so a test can
    tell which file a sample came from."""
    rng = rng or np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pos = np.column_stack([np.full(num_pos, marker), rng.uniform(-1, 1, (num_pos, 2)), rng.uniform(0.01, 1, num_pos)])
    neg = np.column_stack([np.full(num_neg, marker), rng.uniform(-1, 1, (num_neg, 2)), -rng.uniform(0.01, 1, num_neg)])
    np.savez(path, pos=pos.astype(np.float32), neg=neg.astype(np.float32))


@pytest.fixture
def deepsdf_data(tmp_path) -> Path:
    """``<tmp>/tiny/deepsdf`` with SdfSamples + split JSONs; model id "a" has marker 0, "b" 1, ..."""
    root = tmp_path / "tiny" / "deepsdf"
    rng = np.random.default_rng(0)
    for split, synsets in SDF_SPLITS.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"tiny_{split}.json").write_text(json.dumps({"tiny": synsets}))
        for synset, ids in synsets.items():
            for model_id in ids:
                marker = float(ord(model_id) - ord("a"))
                write_sdf_file(root / "SdfSamples" / "tiny" / synset / f"{model_id}.npz", marker, rng=rng)
    return tmp_path


def view_image(view: int) -> Image.Image:
    """White image with a grey square whose level encodes the view (view v: 20 * v) and whose position
    moves with the view, so masks differ between views."""
    pixels = np.full((IMAGE_SIDE, IMAGE_SIDE, 3), 255, np.uint8)
    pixels[10 + view : 22 + view, 8:20] = 20 * view
    return Image.fromarray(pixels)


def write_occnet_shape(shape_dir: Path, rng: np.random.Generator, num_points: int = 1000) -> None:
    """points.npz (occupied = x > 0), pointcloud.npz (on the plane z = 0), voxels.npz, views, cameras.npz."""
    shape_dir.mkdir(parents=True)
    points = rng.uniform(-0.55, 0.55, (num_points, 3))
    points[:, 0] = np.sign(points[:, 0]) * np.maximum(np.abs(points[:, 0]), 0.02)
    np.savez(shape_dir / "points.npz", points=points.astype(np.float16),
             occupancies=np.packbits(points[:, 0] > 0), loc=LOC.astype(np.float16), scale=np.float16(SCALE))
    surface = np.column_stack([rng.uniform(-0.5, 0.5, (2000, 2)), np.zeros(2000)])
    normals = np.tile([0.0, 0.0, 1.0], (2000, 1))
    np.savez(shape_dir / "pointcloud.npz", points=surface.astype(np.float16), normals=normals.astype(np.float16),
             loc=LOC.astype(np.float16), scale=np.float16(SCALE))
    voxels = np.zeros((32, 32, 32), bool)
    voxels[16:, :, :] = True
    np.savez(shape_dir / "voxels.npz", occ=np.packbits(voxels.reshape(-1)), resolution=np.int64(32))
    image_dir = shape_dir / "img_choy2016"
    image_dir.mkdir()
    cameras = {}
    for view in range(NUM_VIEWS):
        view_image(view).save(image_dir / f"{view:03d}.jpg", quality=95)
        angle = 2 * np.pi * view / NUM_VIEWS
        rotation = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
        cameras[f"camera_mat_{view}"] = np.array([[43.75, 0, 20.0], [0, 43.75, 20.0], [0, 0, 1]])
        cameras[f"world_mat_{view}"] = np.column_stack([rotation, [0.0, 0.0, 1.5]])
    np.savez(image_dir / "cameras.npz", **cameras)


@pytest.fixture
def occnet_data(tmp_path) -> Path:
    """``<tmp>/tiny/occnet`` in OccNet's layout: one category 's1' with splits OCC_SPLITS."""
    root = tmp_path / "tiny" / "occnet"
    rng = np.random.default_rng(0)
    for split, ids in OCC_SPLITS.items():
        for model_id in ids:
            write_occnet_shape(root / "s1" / model_id, rng)
        (root / "s1").mkdir(parents=True, exist_ok=True)
        (root / "s1" / f"{split}.lst").write_text("\n".join(ids) + "\n")
    (root / "metadata.yaml").write_text("s1:\n  id: s1\n  name: widget\n")
    return tmp_path


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not the file you are looking for")
