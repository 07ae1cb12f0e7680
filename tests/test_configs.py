"""Every experiment, search space and launcher config composes and passes start-up validation."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from shapelab.cli.train import TOP_LEVEL_KEYS
from shapelab.config import check_targets, check_top_level
from tests.conftest import REPO_ROOT

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment, compose_cfg):
    cfg = compose_cfg("train", [f"experiment={experiment}"])
    run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_top_level(run_cfg, TOP_LEVEL_KEYS)
    check_targets(run_cfg)
    assert run_cfg.monitor.metric.split("/")[0] in ("val", "train") and run_cfg.monitor.mode in ("min", "max")


@pytest.mark.parametrize("search", sorted(p.stem for p in (REPO_ROOT / "conf" / "hparams_search").glob("*.yaml")))
def test_search_spaces_name_existing_keys(search, compose_cfg):
    experiment = {"occnet_optuna": ["experiment=occnet_pointcloud"]}.get(search, [])
    cfg = compose_cfg("train", [*experiment, f"hparams_search={search}"])
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"{search}: '{key}' is not a config key"
    assert cfg.optimized_metric == cfg.monitor.metric or cfg.optimized_metric.startswith("val/")


@pytest.mark.parametrize("launcher", ["slurm", "local_processes"])
def test_launchers_compose(launcher, compose_cfg):
    cfg = compose_cfg("train", [f"hydra/launcher={launcher}"])
    assert "submitit" in cfg.hydra.launcher._target_


def test_misspelt_model_key_fails_with_the_key_named(compose_cfg):
    from shapelab.errors import ShapelabError

    cfg = compose_cfg("train", ["+model.decoder.hiden_dim=3"])
    with pytest.raises(ShapelabError, match=r"'model.decoder.hiden_dim'.*did you mean 'hidden_dim'"):
        check_targets(cfg)


def test_experiments_exist_for_every_model():
    names = set(EXPERIMENTS)
    for prefix in ("deepsdf_", "occnet_svr", "occnet_pointcloud", "occnet_voxels", "occnet_vae_", "capnet", "drwr",
                   "points_chamfer3d"):
        assert any(n.startswith(prefix) for n in names), f"no experiment {prefix}*"
    assert Path(REPO_ROOT / "conf" / "stage" / "meshsdf.yaml").is_file()



CATEGORIES = sorted(p.stem for p in (REPO_ROOT / "conf" / "category").glob("*.yaml"))


def test_category_group_has_the_five_built_in_categories():
    assert CATEGORIES == ["airplanes", "cars", "chairs", "lamps", "tables"]


@pytest.mark.parametrize("experiment", ["capnet", "drwr", "points_chamfer3d"])
def test_category_swap_changes_only_the_category(experiment, compose_cfg):
    """``experiment=<method> category=<c>``: one base; the category sets data.categories and the tag, nothing else."""
    from shapelab.datamodules.synthetic import CATEGORIES as SYNSETS

    def run_keys(*overrides):
        cfg = compose_cfg("train", [f"experiment={experiment}", "paths.output_dir=/x", *overrides])
        flat = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
        categories, tags, name = flat["data"].pop("categories"), flat.pop("tags"), flat.pop("category")
        assert flat["logger"]["wandb"].pop("tags") == tags
        return flat, categories, tags, name

    default, _, _, default_name = run_keys()
    assert default_name == "chairs"
    for category in CATEGORIES:
        rest, (synset,), tags, name = run_keys(f"category={category}")
        assert (name, SYNSETS[synset] + "s", tags) == (category, category, [experiment, "synthetic", category])
        assert rest == default
