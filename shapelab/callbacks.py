"""Lightning callbacks of the framework (the rest come from Lightning itself, see conf/callbacks)."""
from __future__ import annotations

import math

import pytorch_lightning as pl

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
