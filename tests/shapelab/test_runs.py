"""Checkpoint resolution, facts filling and the non-finite loss guard."""
import os
import time

import pytest
import torch
from omegaconf import OmegaConf

from shapelab.callbacks import NonFiniteLossGuard
from shapelab.errors import ShapelabError
from shapelab.runs import fill_from_facts, resolve_ckpt_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_ckpt_last_picks_newest_run(tmp_path):
    old = _touch(tmp_path / "train" / "runs" / "a" / "checkpoints" / "last.ckpt")
    new = _touch(tmp_path / "train" / "runs" / "b" / "checkpoints" / "last.ckpt")
    os.utime(old, (time.time() - 100, time.time() - 100))
    assert resolve_ckpt_path("last", tmp_path, "train") == str(new)


def test_ckpt_run_directory_means_its_last_checkpoint(tmp_path):
    ckpt = _touch(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert resolve_ckpt_path(str(tmp_path / "run"), tmp_path, "train") == str(ckpt)
    assert resolve_ckpt_path(None, tmp_path, "train") is None


def test_missing_ckpt_is_a_clear_error(tmp_path):
    with pytest.raises(ShapelabError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path, "train")
    with pytest.raises(ShapelabError, match="no checkpoints/last.ckpt"):
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
