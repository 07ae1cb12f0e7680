"""evaluate.py wiring: a train -> evaluate(cfg) round trip gives the in-training evaluation's numbers, and
``data=`` given to evaluate.py is the ground truth it scores against (not the run's own data config)."""
from __future__ import annotations

import json
import shutil

import pytest
from hydra.core.hydra_config import HydraConfig

from tests.conftest import compose_run_cfg, tiny_synthetic_overrides


@pytest.mark.slow  # trains a model
def test_train_then_evaluate_round_trip_and_data_override(tiny_synthetic, compose_cfg, tmp_path):
    from shapelab.cli.evaluate import evaluate
    from shapelab.cli.train import train

    fast = ["experiment=capnet", "category=chairs", "trainer=smoke", "logger=csv", "data.batch_size=2",
            "data.eval_batch_size=2", "data.surface_points=2048", "data.gt_points=256", "model.decoder.num_points=256",
            "evaluate.groups=[capnet]", "evaluate.contact_sheet_shapes=0"]
    run_dir = tmp_path / "run"
    trained = train(compose_run_cfg(compose_cfg, [*fast, *tiny_synthetic_overrides(tiny_synthetic)], run_dir))

    def evaluate_run(overrides):
        cfg = compose_cfg("evaluate", [f"ckpt_path={run_dir}", f"paths.output_dir={tmp_path / 'evaluate'}",
                                       "evaluate.groups=[capnet]", "evaluate.contact_sheet_shapes=0", *overrides])
        HydraConfig.instance().set_config(cfg)
        return evaluate(cfg)

    again = evaluate_run([f"out_dir={tmp_path / 'again'}"])  # a fresh folder: scored again, not resumed
    for column in ("chamfer_capnet", "emd_capnet"):
        assert again[f"eval/test/{column}"] == pytest.approx(trained[f"eval/test/{column}"], rel=1e-6)

    copy = tmp_path / "copy"
    shutil.copytree(tiny_synthetic / "tiny", copy / "tiny")
    evaluate_run([f"out_dir={tmp_path / 'other_data'}", "data=synthetic_views", f"paths.data_dir={copy}",
                  "data.dataset_name=tiny", "data.build=null"])
    summary = json.loads((tmp_path / "other_data" / "summary.json").read_text())
    assert summary["source"].endswith(f"checkpoint {run_dir / 'checkpoints' / 'last.ckpt'}")
    truth = summary["resume_key"]["ground_truth"]
    assert truth["occnet_root"] == str(copy / "tiny" / "occnet")  # data= was used, not the run's data config


def test_a_run_saved_before_a_data_parameter_existed_is_one_line(compose_cfg, tmp_path):
    from omegaconf import OmegaConf

    from shapelab.cli.evaluate import _check_saved_data
    from shapelab.errors import ShapelabError

    data = OmegaConf.create(OmegaConf.to_container(compose_cfg("train", []).data))
    _check_saved_data(data, tmp_path)  # today's config fits
    del data["completion"]  # as in a run saved before data.completion existed
    with pytest.raises(ShapelabError, match=r"config\.yaml: config key 'data\.completion' is missing.*data=<name>"):
        _check_saved_data(data, tmp_path)


def test_a_run_saved_before_a_model_parameter_existed_gets_its_earlier_value(compose_cfg):
    """evaluate.py fills what a model class lists in ADDED_PARAMETERS with the value that reproduces old runs
    (DeepSDF's test-time fits started at random before model.reconstruction_start existed)."""
    from omegaconf import OmegaConf

    from shapelab import config as config_check
    from shapelab.errors import ShapelabError

    model = OmegaConf.create(OmegaConf.to_container(compose_cfg("train", []).model))
    assert model.reconstruction_start == "best_training_code"
    assert config_check.fill_added_parameters(model, "model") == []  # today's config: nothing to fill
    del model["reconstruction_start"]
    with pytest.raises(ShapelabError, match="'model.reconstruction_start' is missing"):
        config_check.check_targets(model, "model")
    assert config_check.fill_added_parameters(model, "model") == ["model.reconstruction_start=random"]
    assert model.reconstruction_start == "random"
    config_check.check_targets(model, "model")
