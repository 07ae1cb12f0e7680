"""Write tests/data/sample: a tiny dataset in the real on-disk layouts, made from our generated shapes (no
ShapeNet file): raw meshes in the ShapeNetCore v2 layout, DeepSDF (SdfSamples, NormalizationParameters,
SurfaceSamples, split JSON) and OccNet (points.npz, pointcloud.npz, voxels, img_choy2016 + cameras.npz, .lst
splits, metadata.yaml) files, 3 chairs and 3 tables (1 train / 1 val / 1 test each), small sample counts
(about 1.3 MB). The reader tests (tests/datamodules/test_sample_data.py) read it through the real-data configs.

    python tests/data/make_sample.py      # rebuild after a format change; commit the result
"""
from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = {
    "name": "sample", "categories": ["chair", "table"], "shapes_per_category": 3, "splits": (1, 1, 1), "seed": 0,
    "workers": 1, "sdf_samples": 2000, "sdf_source_points": 2000, "surface_samples": 1000, "occ_points": 2000,
    "pointcloud_points": 2000, "views": 3, "image_size": 64,
}


def main() -> None:
    from shapelab.datamodules.synthetic import ensure_synthetic_dataset

    shutil.rmtree(HERE / "sample", ignore_errors=True)
    ensure_synthetic_dataset(HERE, **SAMPLE)
    shutil.rmtree(HERE / "sample" / "preprocess", ignore_errors=True)  # our build records, not a format


if __name__ == "__main__":
    main()
