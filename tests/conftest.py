"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real ShapeNet samples) or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def compose_cfg():
    """Compose a config from conf/ in-process: ``compose_cfg("train", ["experiment=..."])``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from shapelab import resolvers

    resolvers.register()

    def _compose(config_name: str = "train", overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)

    yield _compose
    GlobalHydra.instance().clear()


TINY_SYNTHETIC = {
    "name": "tiny", "categories": ["chair", "table"], "shapes_per_category": 3, "splits": (1, 1, 1), "seed": 0,
    "workers": 2, "sdf_samples": 20_000, "sdf_source_points": 10_000, "surface_samples": 5_000,
    "occ_points": 20_000, "pointcloud_points": 20_000,
}


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 2-category × 3-shape built-in dataset (all formats, small counts), built once per session.

    Returns the data_dir; the dataset is ``<data_dir>/tiny``. Use the overrides of
    ``tiny_synthetic_overrides`` to point a composed config at it.
    """
    from shapelab.datamodules.synthetic import ensure_synthetic_dataset

    data_dir = tmp_path_factory.mktemp("synthetic_data")
    ensure_synthetic_dataset(data_dir, **TINY_SYNTHETIC)
    return data_dir


def tiny_synthetic_overrides(data_dir: Path) -> list[str]:
    """Config overrides that select the session's tiny built-in dataset (already built)."""
    return [f"paths.data_dir={data_dir}", "data.dataset_name=tiny", "data.build=null"]


def compose_run_cfg(compose, overrides: list[str], output_dir: Path):
    """Compose conf/train.yaml as @hydra.main would hand it to train(): hydra node set and removed."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    cfg = compose("train", [*overrides, f"paths.output_dir={output_dir}"])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def event_tags(log_dir: Path) -> dict[str, set[str]]:
    """Summary tags of the TensorBoard event files under ``log_dir``, by kind ("images", "tensors", "scalars");
    mesh summaries (``add_mesh``) are tensors named ``<tag>_VERTEX`` / ``<tag>_FACE``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: dict[str, set[str]] = {"images": set(), "tensors": set(), "scalars": set()}
    for events in Path(log_dir).rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
        accumulator.Reload()
        for kind in tags:
            tags[kind] |= set(accumulator.Tags().get(kind, []))
    return tags
