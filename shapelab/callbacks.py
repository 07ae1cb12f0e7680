"""Lightning callbacks of the framework (the rest come from Lightning itself, see conf/callbacks)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from shapelab.errors import ShapelabError


def learning_rate_keys(model_cfg: DictConfig, prefix: str = "model") -> list[str]:
    """Config keys of a model's training learning rates: ``optimizer.lr`` and each ``*_lr`` schedule's
    ``initial`` (DeepSDF's decoder_lr / latent_lr), e.g. ``["model.decoder_lr.initial", ...]``."""
    keys = []
    optimizer = model_cfg.get("optimizer")
    if isinstance(optimizer, DictConfig) and "lr" in optimizer:
        keys.append(f"{prefix}.optimizer.lr")
    for name in model_cfg:
        node = model_cfg.get(name)
        if str(name).endswith("_lr") and isinstance(node, DictConfig) and "initial" in node:
            keys.append(f"{prefix}.{name}.initial")
    return keys


class LastCheckpoint(ModelCheckpoint):
    """``<dirpath>/last.ckpt``: the state at the end of every training epoch, hence also at the end of training.

    Lightning's ``save_last`` rewrites last.ckpt only when the monitored checkpoint is written (at validation),
    so with validation every N epochs it lagged up to N - 1 epochs behind. This one does not monitor anything
    and saves after every epoch; a ``ModelCheckpoint`` with a ``monitor`` writes best.ckpt beside it.
    """

    def __init__(self, dirpath: str):
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                         save_on_train_epoch_end=True, enable_version_counter=False)


class NonFiniteLossGuard(pl.Callback):
    """Stop training with a clear message as soon as the training loss is NaN or infinite.

    Checkpoints written before the failure are kept; the message names the step, the loss terms, the
    newest checkpoint and the learning-rate keys of the model (``lr_keys``, set by train.py from the model
    config) so the run can be resumed with a lower learning rate.
    """

    lr_keys: tuple[str, ...] = ()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if math.isfinite(value):
            return
        terms = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        saved = [c.best_model_path for c in getattr(trainer, "checkpoint_callbacks", []) if isinstance(c, LastCheckpoint)]
        last = next((path for path in saved if path), "none yet")
        lr = f" ({', '.join(self.lr_keys)})" if self.lr_keys else ""
        raise ShapelabError(
            f"training loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step} "
            f"(last logged terms: {terms}); last checkpoint: {last}; lower the learning rate{lr} "
            "or set trainer.gradient_clip_val, then resume with ckpt_path=<run dir>"
        )


class RNGStateCheckpoint(pl.Callback):
    """Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

    Lightning restores the step counter, optimiser and schedulers; with the RNG states restored too
    (random shape/sample draws, dropout), a resumed run continues with the same losses as an
    uninterrupted one. States are stored as tensors/ints so the checkpoint stays `weights_only` loadable.
    """

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        states = checkpoint.get("rng_states")
        if not states:
            return
        random.setstate(states["python"])
        kind, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
