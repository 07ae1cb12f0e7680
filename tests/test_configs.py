"""Every experiment, search space and launcher config composes and passes start-up validation."""
import ast
import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from shapelab.config import check_compatibility, check_targets, check_top_level, primary_config_keys
from shapelab.errors import ShapelabError
from tests.conftest import REPO_ROOT

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment, compose_cfg):
    cfg = compose_cfg("train", [f"experiment={experiment}"])
    run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    check_top_level(run_cfg, primary_config_keys("train"))
    check_targets(run_cfg)
    check_compatibility(run_cfg, dict(cfg.hydra.runtime.choices))
    assert run_cfg.monitor.metric.split("/")[0] in ("val", "train") and run_cfg.monitor.mode in ("min", "max")


def test_top_level_keys_come_from_the_yaml():
    keys = primary_config_keys("train")
    assert {"data", "model", "loss", "evaluate", "local", "monitor", "seed", "ckpt_path", "hydra"} <= keys
    assert "optimized_metric" not in keys and "evaluation" not in keys
    assert {"pred_dir", "pred_frame", "out_dir", "evaluate"} <= primary_config_keys("evaluate")


@pytest.mark.parametrize(("overrides", "metric", "mode"), [
    ([], "val/sdf_l1", "min"),
    (["experiment=occnet_svr"], "val/iou", "max"),
    (["experiment=capnet"], "val/chamfer_capnet", "min"),
    (["model=occnet", "loss=occupancy_bce", "data=synthetic_occ"], "val/iou", "max"),
    (["experiment=deepsdf_shapenet_chairs"], "train/loss", "min"),  # no val split: the experiment says so
])
def test_the_model_owns_its_monitored_metric(overrides, metric, mode, compose_cfg):
    cfg = compose_cfg("train", overrides)
    assert (cfg.monitor.metric, cfg.monitor.mode) == (metric, mode)
    assert cfg.callbacks.model_checkpoint.monitor == metric and cfg.callbacks.model_checkpoint.mode == mode


@pytest.mark.parametrize("search", sorted(p.stem for p in (REPO_ROOT / "conf" / "hparams_search").glob("*.yaml")))
def test_search_spaces_name_existing_keys(search, compose_cfg):
    experiment = {"occnet_optuna": ["experiment=occnet_pointcloud"]}.get(search, [])
    cfg = compose_cfg("train", [*experiment, f"hparams_search={search}"])
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"{search}: '{key}' is not a config key"
    # the sweep optimises the monitored metric in the metric's own direction
    assert cfg.hydra.sweeper.direction == {"min": "minimize", "max": "maximize"}[cfg.monitor.mode]
    assert cfg.monitor.metric.startswith("val/")


def test_sweep_direction_follows_a_changed_metric(compose_cfg):
    cfg = compose_cfg("train", ["hparams_search=deepsdf_optuna", "monitor.metric=val/iou", "monitor.mode=max"])
    assert cfg.hydra.sweeper.direction == "maximize"


@pytest.mark.parametrize("launcher", ["slurm", "local_processes"])
def test_launchers_compose(launcher, compose_cfg):
    cfg = compose_cfg("train", [f"hydra/launcher={launcher}"])
    assert "submitit" in cfg.hydra.launcher._target_


# one misspelt key per config group (added with + so Hydra's own override check lets it through, as a typo in
# an experiment or local YAML file would): start-up validation names it
@pytest.mark.parametrize(("overrides", "key"), [
    (["+model.decoder.hiden_dim=3"], r"model.decoder.hiden_dim'.*did you mean 'hidden_dim'"),
    (["+data.batch_sise=8"], r"data.batch_sise'.*did you mean 'batch_size'"),
    (["+data.build.sdf_sampels=8"], r"data.build.sdf_sampels'.*did you mean 'sdf_samples'"),  # preprocess options
    (["+data.build.shapes_per_categroy=8"], r"data.build.shapes_per_categroy'.*did you mean 'shapes_per_category'"),
    (["data=synthetic_occ", "+data.img_foldr=x"], r"data.img_foldr'.*did you mean 'img_folder'"),  # via **shared
    (["data=synthetic_views", "+data.num_view=3"], r"data.num_view'.*did you mean 'num_views'"),
    (["data=colmap_views", "data.captures=[x]", "+data.eval_batch_sise=1"], r"data.eval_batch_sise'"),
    (["+loss.clamb=0.1"], r"loss.clamb'.*did you mean 'clamp'"),
    (["experiment=capnet", "+renderer.sigma_sqq=1"], r"renderer.sigma_sqq'"),
    (["experiment=occnet_svr", "+model.encoder.weights_pth=x"], r"model.encoder.weights_pth'"),
    (["model=occnet", "+model.extraction.resolution_0=8"], r"model.extraction.resolution_0'.*did you mean 'resolution0'"),
    (["model=occnet", "+model.postprocess.refinment_steps=3"], r"model.postprocess.refinment_steps'"),
    (["+trainer.max_epoch=3"], r"trainer.max_epoch'.*did you mean 'max_epochs'"),
    (["+callbacks.model_checkpoint.monitr=x"], r"callbacks.model_checkpoint.monitr'"),
    (["logger=csv", "+logger.csv.save_dri=x"], r"logger.csv.save_dri'"),
    (["stage=meshsdf", "+stage.refine.iteration=3"], r"stage.refine.iteration'.*did you mean 'iterations'"),
])
def test_misspelt_key_of_every_group_fails_with_the_key_named(overrides, key, compose_cfg):
    cfg = compose_cfg("train", overrides)
    with pytest.raises(ShapelabError, match=key):
        check_targets(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.max_epochs=abc", r"'trainer.max_epochs'='abc' is not a valid"),
    ("model.decoder.hidden_dim=wide", r"'model.decoder.hidden_dim'='wide'"),
    ("data.batch_size=1.5", r"'data.batch_size'=1.5"),
    ("trainer.precision=31", r"'trainer.precision'=31"),
])
def test_values_of_the_wrong_type_fail_at_start_up(override, message, compose_cfg):
    cfg = compose_cfg("train", [override])
    with pytest.raises(ShapelabError, match=message):
        check_targets(cfg)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=occnet"], r"model=occnet does not fit data=synthetic"),
    (["model=occnet", "data=synthetic_occ"], r"loss=sdf_clamped_l1 does not fit model=occnet"),
    (["model=image_to_points", "data=synthetic_views", "loss=occupancy_bce"], r"loss=occupancy_bce does not fit model=image_to_points"),
    (["experiment=occnet_svr", "model/encoder=pointnet"], r"model/encoder=pointnet does not fit data.input_type=image"),
    (["experiment=occnet_pointcloud", "data.input_type=voxels"], r"does not fit data.input_type=voxels"),
    (["experiment=capnet", "renderer=point_projection"], r"loss=capnet_projection does not fit renderer=point_projection"),
    (["experiment=drwr", "~renderer"], r"loss=drwr does not fit renderer=null"),
])
def test_incompatible_pairs_stop_with_both_keys_named(overrides, message, compose_cfg):
    cfg = compose_cfg("train", overrides)
    with pytest.raises(ShapelabError, match=message):
        check_compatibility(cfg, dict(cfg.hydra.runtime.choices))


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


def test_epoch_recipes_live_with_their_models(compose_cfg):
    """The DeepSDF CPU recipe (350 epochs, validation at the end) comes with model=deepsdf, not with the generic
    trainer config, so another model does not inherit it silently."""
    default = compose_cfg("train").trainer
    assert (default.max_epochs, default.check_val_every_n_epoch) == (350, 350)
    assert "max_epochs" not in compose_cfg("train", ["model=image_to_points", "data=synthetic_views",
                                                     "loss=chamfer3d"]).trainer
    assert compose_cfg("train", ["trainer=smoke"]).trainer.max_epochs == 1


def test_main_job_recipe(compose_cfg):
    """The default `python train.py` recipe measured in bench/RESULTS.md main_job_budget (2026-12-01): 4 x 128
    decoder (skip at 2), latent 64, 4 scenes x 1024 samples, lr 2e-3 / 4e-3 halved at epoch 262 of 350, code
    warm-up 100, test-time fit 200 x 2048 from the best training code, 64^3 extraction, meshes at the
    one validation. A changed value needs a new measurement there."""
    cfg = compose_cfg("train")
    model = cfg.model
    assert (model.decoder.num_layers, model.decoder.hidden_dim, model.decoder.latent_size) == (4, 128, 64)
    assert list(model.decoder.skip_layers) == [2]
    assert (cfg.data.batch_size, cfg.data.samples_per_scene) == (4, 1024)
    schedules = [(s.initial, s.interval, s.factor) for s in (model.decoder_lr, model.latent_lr)]
    assert schedules == [(2e-3, 262, 0.5), (4e-3, 262, 0.5)]
    assert (cfg.loss.clamp, cfg.loss.latent_reg_warmup_epochs) == (0.1, 100)
    assert (model.reconstruction.num_iterations, model.reconstruction.num_samples) == (200, 2048)
    assert (model.extract_mesh.resolution, model.mesh_every_n_epochs) == (64, 350)
    assert model.reconstruction_start == "best_training_code"


CONFIG_KEY = re.compile(
    r"(?<![\w./])((?:data|model|loss|renderer|stage|trainer|evaluate|paths|callbacks|logger|guidance)"
    r"\.[a-z_][a-z_0-9]*(?:\.[a-z_][a-z_0-9]*)*)(?![\w{(])"
)
NOT_KEYS = {"evaluate.py", "model.reconstruct", "stage.run"}  # a script and methods named in prose


def test_error_messages_name_keys_that_exist(compose_cfg):
    """Every config key a message or docstring of the packages names (``data.num_views``, ...) exists in the
    composed config of some experiment, stage or data choice."""
    named: dict[str, set[str]] = {}
    for folder in ("shapelab", "models", "datamodules", "losses", "geometry", "renderers", "metrics", "stages", "sfm",
                   "declarative"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    for key in CONFIG_KEY.findall(node.value):
                        named.setdefault(key, set()).add(path.relative_to(REPO_ROOT).as_posix())
    choices = [[f"experiment={e}"] for e in EXPERIMENTS] + [[f"stage={p.stem}"] for p in (REPO_ROOT / "conf" / "stage").glob("*.yaml")]
    choices += [[f"data={p.stem}"] for p in (REPO_ROOT / "conf" / "data").glob("*.yaml")]
    configs = [compose_cfg("evaluate"), *(compose_cfg("train", c) for c in [[], *choices])]

    def exists(key: str) -> bool:
        parent, _, leaf = key.rpartition(".")
        # DictConfig's `in` is False for a mandatory (???) key; its keys() lists it
        return any(isinstance(node := OmegaConf.select(c, parent), DictConfig) and leaf in node.keys()  # noqa: SIM118
                   for c in configs)

    missing = {key: sorted(files) for key, files in named.items() if key not in NOT_KEYS and not exists(key)}
    assert not missing, f"messages name config keys that do not exist: {missing}"
