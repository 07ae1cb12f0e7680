"""Checkpoints: atomic writes, safe reads (``weights_only=True``) and the check that one fits a model.

Every problem is one ShapelabError line naming the file; a corrupt file also names the newest good
checkpoint beside it.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from shapelab.errors import ShapelabError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write a checkpoint to a temporary file next to the target, fsync it, then rename it over the target.

    The rename is atomic on one filesystem, so a run killed at any moment (SIGKILL, power loss) leaves
    either the previous checkpoint or the new one, never a truncated file. Lightning's own writer
    streams into the target itself. Remote paths (``s3://...``) keep Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def _readable(path: Path) -> str | None:
    """None if ``path`` is a complete torch zip archive, else why not (cheap: no unpickling)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return None if bad is None else f"damaged member {bad}"
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def previous_good_checkpoint(path: Path) -> Path | None:
    """The newest other ``*.ckpt`` in the same folder that is a complete archive."""
    others = sorted((p for p in path.parent.glob("*.ckpt") if p != path), key=os.path.getmtime, reverse=True)
    return next((p for p in others if _readable(p) is None), None)


def _corrupt(path: Path, reason: str) -> ShapelabError:
    good = previous_good_checkpoint(path)
    fallback = f"the previous good checkpoint is {good} (use ckpt_path={good})" if good else "no other good checkpoint is in its folder"
    return ShapelabError(f"{path}: not a loadable checkpoint, truncated or corrupt ({reason[:160]}); {fallback}")


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """Load a Lightning checkpoint with ``weights_only=True`` (tensors and plain containers only, so a checkpoint
    cannot run code)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ShapelabError(f"ckpt_path: {path} does not exist; give a .ckpt file or a run directory")
    reason = _readable(path)
    if reason:
        raise _corrupt(path, reason)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _corrupt(path, (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ShapelabError(f"{path}: has no 'state_dict'; give a Lightning checkpoint written by train.py")
    return checkpoint


def model_class_name(model: torch.nn.Module) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def check_fits(model: torch.nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Refuse, in one line, a checkpoint of another model class or with other hyper-parameters (parameter
    names or shapes differ from ``model``'s, e.g. another decoder width or latent size)."""
    saved_class = checkpoint.get("model_class")
    if saved_class and saved_class != model_class_name(model):
        raise ShapelabError(
            f"{path}: is a checkpoint of {saved_class}, not of this config's {model_class_name(model)}; "
            "give a checkpoint of the same model (or the config it was trained with)"
        )
    state, own = checkpoint["state_dict"], model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ShapelabError(
            f"{path}: weights do not fit {type(model).__name__} (missing {missing[:5]}, unexpected {unexpected[:5]}); "
            "use it with the config it was trained with (its run's .hydra/config.yaml)"
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ShapelabError(
                f"{path}: weights do not fit {type(model).__name__} ({name} is {tuple(state[name].shape)} in the checkpoint, "
                f"{tuple(tensor.shape)} here: other hyper-parameters); use it with the config it was trained "
                "with (its run's .hydra/config.yaml)"
            )


def load_weights(model: torch.nn.Module, ckpt_path: str | Path) -> None:
    """Load the checkpoint's ``state_dict`` into ``model`` after checking that it fits."""
    checkpoint = read_checkpoint(ckpt_path)
    check_fits(model, checkpoint, ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
