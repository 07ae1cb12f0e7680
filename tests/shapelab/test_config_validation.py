"""Misspelt config keys fail at start-up with the key named."""
import re

import pytest
from omegaconf import OmegaConf

from shapelab.config import check_targets, check_top_level
from shapelab.errors import ShapelabError


def test_misspelt_target_parameter_is_named_with_suggestion():
    cfg = OmegaConf.create(
        {"callbacks": {"ckpt": {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitr": "val/x"}}}
    )
    with pytest.raises(ShapelabError, match=r"'callbacks.ckpt.monitr'.*did you mean 'monitor'"):
        check_targets(cfg)


def test_valid_target_parameters_pass():
    cfg = OmegaConf.create({"cb": {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitor": "v"}})
    check_targets(cfg)


def test_nested_targets_inside_lists_are_checked():
    cfg = OmegaConf.create({"items": [{"_target_": "torch.nn.Linear", "in_features": 2, "out_featurez": 3}]})
    with pytest.raises(ShapelabError, match=r"'items\[0\].out_featurez'"):
        check_targets(cfg)


def test_unimportable_target_names_the_key():
    cfg = OmegaConf.create({"model": {"_target_": "models.nope.Missing"}})
    with pytest.raises(ShapelabError, match=r"'model._target_'.*models.nope.Missing"):
        check_targets(cfg)


def test_unknown_top_level_key_is_rejected():
    cfg = OmegaConf.create({"seed": 1, "seeed": 2})
    with pytest.raises(ShapelabError, match=r"'seeed'.*did you mean 'seed'"):
        check_top_level(cfg, {"seed"})


def test_untrusted_target_in_a_saved_run_config_is_refused(compose_cfg, tmp_path):
    """A handed-over run config naming e.g. shutil.copyfile is refused before anything is instantiated."""
    from hydra.core.hydra_config import HydraConfig

    from shapelab.cli.evaluate import evaluate
    from shapelab.config import check_trusted_targets

    check_trusted_targets(OmegaConf.create({"model": {"_target_": "shapelab.models.deepsdf.DeepSDF",
                                                      "optimizer": {"_target_": "torch.optim.Adam"}}}), "x")
    victim = tmp_path / "written_by_the_config"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create({"model": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(victim)}}),
                   run / ".hydra" / "config.yaml")
    cfg = compose_cfg("evaluate", [f"ckpt_path={run}", f"paths.output_dir={tmp_path}"])
    HydraConfig.instance().set_config(cfg)
    with pytest.raises(ShapelabError, match=r"'model._target_: shutil.copyfile' is not a trusted target"):
        evaluate(cfg)
    assert not victim.exists()
    nested = OmegaConf.create({"model": {"loss": [{"_target_": "${oc.env:TARGET}"}]}})
    with pytest.raises(ShapelabError, match=r"model.loss\[0\]._target_"):
        check_trusted_targets(nested, "x")


def test_every_project_target_in_conf_has_a_closed_set_of_keys():
    """No `_target_` of ours accepts an unchecked key: `**shared` is followed up to an explicit base signature
    and `**options: Unpack[TypedDict]` names its keys (shapelab/config.py `_parameters`)."""
    from shapelab.config import _parameters, locate_target
    from tests.conftest import REPO_ROOT

    targets = set()
    for path in (REPO_ROOT / "conf").rglob("*.yaml"):
        targets |= set(re.findall(r"_target_:\s*(shapelab\.[\w.]+)", path.read_text()))
    assert "shapelab.datamodules.sdf.SdfDataModule" in targets
    open_targets = [target for target in sorted(targets) if _parameters(locate_target(target, "x"))[1]]
    assert not open_targets, f"these targets accept any key: {open_targets}"


def test_datamodule_keys_are_its_own_plus_the_base_signature():
    import inspect

    from shapelab.datamodules.common import ShapeDataModule
    from shapelab.datamodules.occupancy import OccupancyDataModule

    from shapelab.config import _parameters

    base = set(inspect.signature(ShapeDataModule.__init__).parameters) - {"self"}
    keys, takes_kwargs, hints = _parameters(OccupancyDataModule)
    assert not takes_kwargs and base < set(keys) and {"img_folder", "input_type", "train_points"} < set(keys)
    assert "shared" not in keys and hints["batch_size"] is int


def test_typed_kwargs_and_typed_dict_settings_are_checked():
    """`**preprocess_options: Unpack[PreprocessOptions]` names the preprocess options; a dict parameter annotated
    with a TypedDict (`data.build: SyntheticBuild`) has its keys and values checked."""
    ok = {"_target_": "shapelab.datamodules.synthetic.ensure_synthetic_dataset", "data_dir": "x", "sdf_samples": 10}
    check_targets(OmegaConf.create({"build": ok}))
    with pytest.raises(ShapelabError, match=r"'build.sdf_sampels'.*did you mean 'sdf_samples'"):
        check_targets(OmegaConf.create({"build": {**ok, "sdf_sampels": 10}}))
    from shapelab.config import compose_group

    data = compose_group("data/synthetic")
    data.build = {"seed": 0}
    check_targets(OmegaConf.create({"data": data}))
    data.build = {"voxel_resolution": 1.5}
    with pytest.raises(ShapelabError, match=r"'data.build.voxel_resolution'=1.5 is not a valid int"):
        check_targets(OmegaConf.create({"data": data}))


@pytest.mark.parametrize(("option", "key"), [("data/synthetic", "batch_size"), ("loss/drwr", "repulsion_weight"),
                                             ("stage/meshsdf", "refine.lr")])
def test_a_missing_required_key_is_one_line(option, key):
    """Our targets take the values configs set from the config (no code default): a node without one (a local
    file that dropped it, a run saved before the parameter existed) stops at start-up naming the key."""
    from shapelab.config import compose_group

    group = option.split("/")[0]
    node = compose_group(option)
    parent, _, leaf = f"{group}.{key}".rpartition(".")
    cfg = OmegaConf.create({group: node})
    check_targets(cfg)
    del OmegaConf.select(cfg, parent)[leaf]
    with pytest.raises(ShapelabError, match=rf"config key '{re.escape(parent)}.{leaf}' is missing: shapelab\."):
        check_targets(cfg)
