"""Checkpoint resolution, atomic and checked checkpoints, run directories, facts filling, the loss guard."""
import os
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from shapelab.callbacks import NonFiniteLossGuard, learning_rate_keys
from shapelab.checkpoints import AtomicCheckpointIO, check_fits, load_weights, read_checkpoint
from shapelab.errors import ShapelabError
from shapelab.runs import fill_from_facts, resolve_ckpt_path
from tests.conftest import REPO_ROOT

DEEPSDF, OCCNET = "shapelab.models.deepsdf.DeepSDF", "shapelab.models.occnet.OccupancyNetwork"


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _run(root, name, model=DEEPSDF, experiment=None, started=0.0, checkpoint=True):
    """A fake run directory: saved config + hydra.yaml (start time ``started`` seconds ago) [+ last.ckpt]."""
    run = root / "train" / "runs" / name
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"model": {"_target_": model}}), run / ".hydra" / "config.yaml")
    hydra_yaml = run / ".hydra" / "hydra.yaml"
    OmegaConf.save(OmegaConf.create({"hydra": {"runtime": {"choices": {"experiment": experiment}}}}), hydra_yaml)
    os.utime(hydra_yaml, (time.time() - started, time.time() - started))
    if checkpoint:
        _touch(run / "checkpoints" / "last.ckpt")
    return run


def test_ckpt_last_picks_newest_run_of_the_same_model_and_experiment(tmp_path, capsys):
    old = _run(tmp_path, "a", started=300)
    new = _run(tmp_path, "b", started=200)
    _run(tmp_path, "c", model=OCCNET, started=100)  # newer, but another model
    _run(tmp_path, "d", experiment="deepsdf_chairs", started=50)  # newer, but another experiment
    assert resolve_ckpt_path("last", tmp_path, "train", DEEPSDF, None) == str(new / "checkpoints" / "last.ckpt")
    assert f"using {new / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().err
    assert resolve_ckpt_path("last", tmp_path, "train", OCCNET, None).startswith(str(tmp_path / "train" / "runs" / "c"))
    assert old.is_dir()


def test_ckpt_last_says_when_the_newest_run_has_no_checkpoint(tmp_path, capsys):
    done = _run(tmp_path, "a", started=300)
    stopped = _run(tmp_path, "b", started=100, checkpoint=False)
    assert resolve_ckpt_path("last", tmp_path, "train", DEEPSDF, None) == str(done / "checkpoints" / "last.ckpt")
    assert f"the newer run {stopped} has no checkpoint yet" in capsys.readouterr().err
    with pytest.raises(ShapelabError, match="no run of this kind"):
        resolve_ckpt_path("last", tmp_path, "train", OCCNET, None)


def test_ckpt_run_directory_means_its_last_checkpoint(tmp_path):
    ckpt = _touch(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path(str(tmp_path / "run"), tmp_path, "train") == str(ckpt)
    assert resolve_ckpt_path(None, tmp_path, "train") is None


def test_missing_ckpt_is_a_clear_error(tmp_path):
    with pytest.raises(ShapelabError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path, "train")
    with pytest.raises(ShapelabError, match="checkpoints/last.ckpt under"):
        resolve_ckpt_path("last", tmp_path, "train")


def test_facts_fill_only_null_keys():
    cfg = OmegaConf.create({"num_shapes": None, "latent_size": 64})
    fill_from_facts(cfg, {"num_shapes": 80, "latent_size": 3, "other": 1})
    assert cfg.num_shapes == 80 and cfg.latent_size == 64 and "other" not in cfg


class _Trainer:
    current_epoch, global_step, callback_metrics, checkpoint_callback = 3, 40, {"train/loss": 1.0}, None


def test_guard_raises_on_nan_and_passes_finite():
    guard = NonFiniteLossGuard()
    guard.on_train_batch_end(_Trainer(), None, {"loss": torch.tensor(1.0)}, None, 0)
    with pytest.raises(ShapelabError, match="became nan at epoch 3, step 40"):
        guard.on_train_batch_end(_Trainer(), None, {"loss": torch.tensor(float("nan"))}, None, 0)


def test_guard_names_the_models_learning_rate_keys(compose_cfg):
    assert learning_rate_keys(compose_cfg("train").model) == ["model.decoder_lr.initial", "model.latent_lr.initial"]
    assert learning_rate_keys(compose_cfg("train", ["experiment=occnet_svr"]).model) == ["model.optimizer.lr"]
    guard = NonFiniteLossGuard()
    guard.lr_keys = ("model.decoder_lr.initial",)
    with pytest.raises(ShapelabError, match=r"lower the learning rate \(model.decoder_lr.initial\)"):
        guard.on_train_batch_end(_Trainer(), None, {"loss": torch.tensor(float("inf"))}, None, 0)


class _Net(torch.nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.layer = torch.nn.Linear(2, width)


def test_atomic_checkpoint_write_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": _Net().state_dict(), "epoch": 1}, target)
    before = target.read_bytes()

    def killed_mid_write(obj, f):  # the process dies after writing part of the file
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": _Net().state_dict(), "epoch": 2}, target)
    assert target.read_bytes() == before  # the target was never opened for writing
    assert read_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temporary left behind


def test_corrupt_checkpoint_names_the_previous_good_one(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"state_dict": _Net().state_dict()}, folder / "best.ckpt")
    (folder / "last.ckpt").write_bytes(b"")  # what a kill mid-write used to leave
    with pytest.raises(ShapelabError, match=rf"last.ckpt: not a loadable checkpoint.*previous good checkpoint is {folder / 'best.ckpt'}"):
        read_checkpoint(folder / "last.ckpt")
    torch.save({"state_dict": _Net().state_dict()}, folder / "last.ckpt")
    (folder / "last.ckpt").write_bytes((folder / "last.ckpt").read_bytes()[:-40])  # truncated
    with pytest.raises(ShapelabError, match="not a loadable checkpoint"):
        read_checkpoint(folder / "last.ckpt")


def test_checkpoint_of_another_model_or_width_is_refused_in_one_line(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": _Net(width=5).state_dict(), "model_class": "shapelab.models.deepsdf.DeepSDF"}, path)
    with pytest.raises(ShapelabError, match=r"checkpoint of shapelab.models.deepsdf.DeepSDF, not of .*_Net"):
        load_weights(_Net(), path)
    torch.save({"state_dict": _Net(width=5).state_dict()}, path)
    with pytest.raises(ShapelabError, match=r"layer.weight is \(5, 2\) in the checkpoint, \(3, 2\) here"):
        check_fits(_Net(), read_checkpoint(path), path)
    load_weights(_Net(width=5), path)


def _run_dir_in_a_new_process(extra: str) -> str:
    code = (
        "from hydra import compose, initialize_config_module\n"
        "from omegaconf import OmegaConf\n"
        "from shapelab import resolvers\n"
        "resolvers.register()\n"
        "with initialize_config_module('shapelab.conf', version_base='1.3'):\n"
        f"    {extra}\n"
        "    cfg = compose('train', return_hydra_config=True)\n"
        "print(cfg.hydra.run.dir)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_two_runs_started_in_the_same_second_get_different_directories():
    same_second = "OmegaConf.register_new_resolver('now', lambda pattern: '2026-01-01_00-00-00', replace=True)"
    first, second = _run_dir_in_a_new_process(same_second), _run_dir_in_a_new_process(same_second)
    assert "2026-01-01_00-00-00" in first and first != second


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    """Benches named their runs by the second only: two started together shared one directory and each evaluated
    whichever last.ckpt was written last."""
    from shapelab import runs

    monkeypatch.setattr(runs.time, "strftime", lambda pattern: "2026-12-01_21-14-28")
    monkeypatch.setattr(runs.os, "getpid", lambda: 101)
    first = runs.new_run_dir(tmp_path, "capnet")
    monkeypatch.setattr(runs.os, "getpid", lambda: 102)
    second = runs.new_run_dir(tmp_path)
    assert first == tmp_path / "2026-12-01_21-14-28_101_capnet"
    assert second == tmp_path / "2026-12-01_21-14-28_102"


def test_every_bench_names_its_runs_with_new_run_dir():
    lines = [(path.name, line) for path in sorted((REPO_ROOT / "bench").glob("*.py"))
             for line in path.read_text().splitlines() if '"logs"' in line]
    assert lines, "no bench writes under logs/"
    assert all("new_run_dir(" in line for _, line in lines), [name for name, line in lines if "new_run_dir(" not in line]
