"""Step 1 of the evaluation: the reconstructions of a split, as a stream of ``((synset, model_id),
Reconstruction | Exception)``, from a trained model (`model_stream`) or a folder of files (`files_stream`).

A shape whose reconstruction fails (an exception in ``reconstruct``, a missing, unreadable or non-finite
file) yields the exception: the pipeline records it as ``failed: <reason>`` and goes on.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import trimesh

from shapelab.datamodules.formats.validation import load_npz
from shapelab.errors import ShapelabError
from shapelab.geometry.frames import FRAMES
from shapelab.models.base import Reconstruction

log = logging.getLogger("shapelab.evaluation")

PREDICTION_EXTENSIONS = (".obj", ".ply", ".off", ".npz")

ShapeKey = tuple[str, str]
Stream = Callable[[set[ShapeKey]], Iterator[tuple[ShapeKey, Reconstruction | Exception]]]
"""``stream(todo)`` yields (key, reconstruction or the exception that prevented it) for the keys in ``todo``."""


def split_shapes(datamodule, split: str) -> list[ShapeKey]:
    """(synset, model_id) of every shape of the datamodule's ``split`` ("test" or "val")."""
    if split not in ("test", "val"):
        raise ShapelabError(f"evaluate.split={split!r}: choose 'test' or 'val'")
    return [tuple(shape) for shape in datamodule.dataset(split).shapes]


def batch_seed(run_seed: int, keys: list[ShapeKey]) -> int:
    """The RNG seed of one batch's reconstruction: a hash of the run's seed and the batch's shape ids, so a
    shape's random draws (a latent fit's start and samples, a VAE's z) do not depend on which batches ran
    before it — a resumed or partial evaluation scores every shape exactly as a full one does."""
    text = f"{run_seed}:" + ";".join(f"{synset}/{model_id}" for synset, model_id in keys)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % 2**63


def model_stream(model, datamodule, split: str) -> Stream:
    """Reconstructions by ``model.reconstruct(batch)`` of the batches of the split's loader; each batch
    reseeds torch's RNG with ``batch_seed`` of the run's seed (``torch.initial_seed()`` when the stream is made)."""
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    model.eval()
    run_seed = torch.initial_seed()

    def stream(todo: set[ShapeKey]):
        for batch in loader:
            keys = list(zip(batch["synset"], batch["model_id"]))
            if not todo.intersection(keys):
                continue
            torch.manual_seed(batch_seed(run_seed, keys))
            try:
                reconstructions = model.reconstruct(_to_device(batch, model.device))
                if len(reconstructions) != len(keys):
                    raise RuntimeError(f"reconstruct returned {len(reconstructions)} shapes for a batch of {len(keys)}")
            except ShapelabError:
                raise
            except Exception as exc:
                log.debug("reconstruct failed", exc_info=True)
                reconstructions = [exc] * len(keys)
            yield from ((key, recon) for key, recon in zip(keys, reconstructions) if key in todo)

    return stream


def files_stream(pred_dir: str | Path, pred_frame: str, shapes: list[ShapeKey]) -> Stream:
    """Reconstructions read from ``<pred_dir>/<synset>/<model_id>.(obj|ply|off|npz)`` in frame ``pred_frame``."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ShapelabError(f"pred_dir={pred_dir} is not a directory; give the folder holding <synset>/<model_id>.ply")
    if pred_frame not in FRAMES:
        raise ShapelabError(f"pred_frame={pred_frame!r} is not one of {FRAMES}; say which frame the files are in")

    def stream(todo: set[ShapeKey]):
        for key in shapes:
            if key in todo:
                try:
                    yield key, load_prediction(_prediction_file(pred_dir, *key), pred_frame)
                except Exception as exc:  # noqa: BLE001 - a missing or broken file fails that shape only
                    yield key, exc

    return stream


def _prediction_file(pred_dir: Path, synset: str, model_id: str) -> Path:
    for extension in PREDICTION_EXTENSIONS:
        path = pred_dir / synset / f"{model_id}{extension}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no prediction {pred_dir / synset / model_id}.(obj|ply|off|npz)")


class BadPrediction(ValueError):
    """A prediction file that cannot be read as a mesh or point cloud, or holds non-finite coordinates."""


def load_prediction(path: Path, frame: str) -> Reconstruction:
    """A mesh or point cloud file as a Reconstruction. ``.npz``: ``vertices`` + ``faces`` or ``points``.

    A file that is not of its extension's format (checked by its header, so random bytes are never read as
    an empty mesh) or that holds NaN/inf coordinates raises `BadPrediction` naming the file and the reason.
    """
    try:
        recon = _read_prediction(path, frame)
    except (ShapelabError, BadPrediction):
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error means the same: this file cannot be read
        raise BadPrediction(f"{path}: unreadable ({one_line(exc)})") from None
    coordinates = recon.mesh.vertices if recon.mesh is not None else recon.points
    if not np.isfinite(coordinates).all():
        raise BadPrediction(f"{path}: non-finite (NaN or inf) coordinates")
    return recon


def _read_prediction(path: Path, frame: str) -> Reconstruction:
    if path.suffix == ".npz":
        arrays = load_npz(path, None, "re-export the prediction")  # one line, never numpy's unpickling advice
        if "vertices" in arrays and "faces" in arrays:
            return Reconstruction(frame, mesh=trimesh.Trimesh(arrays["vertices"], arrays["faces"], process=False))
        if "points" in arrays:
            return Reconstruction(frame, points=np.asarray(arrays["points"], dtype=np.float64).reshape(-1, 3))
        raise ShapelabError(f"{path}: npz has neither 'vertices'+'faces' nor 'points'; save one of them")
    _check_header(path)
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry() if loaded.geometry else trimesh.Trimesh()
    if isinstance(loaded, trimesh.PointCloud):
        return Reconstruction(frame, points=np.asarray(loaded.vertices, dtype=np.float64))
    if not isinstance(loaded, trimesh.Trimesh):
        raise ShapelabError(f"{path}: holds a {type(loaded).__name__}, not a triangle mesh or point cloud; export one")
    return Reconstruction(frame, mesh=loaded)


def _check_header(path: Path) -> None:
    """PLY starts with ``ply``, OFF's first line ends in ``OFF``, OBJ is text: else `BadPrediction`."""
    if path.suffix == ".obj":
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise BadPrediction(f"{path}: not an OBJ file (not text)") from None
        return
    with path.open("rb") as handle:
        first_line = handle.readline(64).strip()
    if (path.suffix == ".ply" and not first_line.startswith(b"ply")) or (
            path.suffix == ".off" and not first_line.endswith(b"OFF")):
        raise BadPrediction(f"{path}: not a {path.suffix[1:].upper()} file (header {first_line[:16]!r})")


def unmatched_files(pred_dir: str | Path, shapes: list[ShapeKey]) -> list[str]:
    """Prediction files of ``pred_dir`` (``<synset>/<model_id>.<ext>``) for no shape of ``shapes``."""
    wanted = set(shapes)
    files = sorted(path for extension in PREDICTION_EXTENSIONS for path in Path(pred_dir).glob(f"*/*{extension}"))
    return [f"{path.parent.name}/{path.name}" for path in files if (path.parent.name, path.stem) not in wanted]


def model_identity(model) -> str:
    """sha256 of a model's class and weights (its state dict): the same checkpoint gives the same hash."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return f"model sha256:{digest.hexdigest()}"


def files_identity(pred_dir: str | Path, pred_frame: str) -> str:
    """sha256 of a prediction folder's files (names, sizes, modification times) and their frame."""
    digest = hashlib.sha256(pred_frame.encode())
    root = Path(pred_dir).resolve()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"pred_dir {root} sha256:{digest.hexdigest()}"


def one_line(exc: BaseException) -> str:
    """``<ExceptionType>: <first line of its message>``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def save_reconstruction(recon: Reconstruction, path: Path) -> None:
    """Write a reconstruction as PLY (a mesh, or a vertex-only point cloud)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    geometry = recon.mesh if recon.mesh is not None else trimesh.PointCloud(recon.points)
    geometry.export(path)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
