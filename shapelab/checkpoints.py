"""Loading a model's weights from a Lightning checkpoint safely (``weights_only=True``)."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from shapelab.errors import ShapelabError


def load_weights(model: torch.nn.Module, ckpt_path: str | Path) -> None:
    """Load ``state_dict`` of the checkpoint into ``model``; any problem is one ShapelabError line.

    The file is unpickled with ``weights_only=True`` (tensors and plain containers only), so a checkpoint
    cannot run code; keys and shapes must match the model built from the run's saved config.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ShapelabError(f"ckpt_path: {path} does not exist; give a .ckpt file or a run directory")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise ShapelabError(
            f"{path}: not a loadable checkpoint ({reason[:160]}); it may be truncated or not a shapelab "
            "checkpoint: use checkpoints/last.ckpt or best.ckpt of a finished run"
        ) from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ShapelabError(f"{path}: has no 'state_dict'; give a Lightning checkpoint written by train.py")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = " ".join(str(exc).split())[:300]
        raise ShapelabError(
            f"{path}: weights do not fit {type(model).__name__} ({detail}); evaluate it with the config it was trained with"
        ) from None
    if missing or unexpected:
        raise ShapelabError(
            f"{path}: does not match {type(model).__name__} (missing {list(missing)[:5]}, unexpected "
            f"{list(unexpected)[:5]}); evaluate it with the config it was trained with (its run's .hydra/config.yaml)"
        )
