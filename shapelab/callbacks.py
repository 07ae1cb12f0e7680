"""Lightning callbacks of the framework (the rest come from Lightning itself, see conf/callbacks)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytorch_lightning as pl
import torch

from shapelab.errors import ShapelabError


class NonFiniteLossGuard(pl.Callback):
    """Stop training with a clear message as soon as the training loss is NaN or infinite.

    Checkpoints written before the failure are kept; the message names the step, the loss terms and
    the newest checkpoint so the run can be resumed with a lower learning rate.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if math.isfinite(value):
            return
        terms = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
        raise ShapelabError(
            f"training loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step} "
            f"(last logged terms: {terms}); last checkpoint: {last}; lower the learning rate "
            "(model.optimizer.lr) or set trainer.gradient_clip_val, then resume with ckpt_path=<run dir>"
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
