"""Misspelt config keys fail at start-up with the key named."""
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
