"""The one way pictures and shapes reach the dashboards (W&B, TensorBoard) — a leaf every layer may import.

- :func:`figure_to_rgb`: a matplotlib figure -> (H, W, 3) uint8 RGB array.
- :func:`log_image`: an RGB picture to every logger that shows images (W&B ``log_image``, TensorBoard
  ``add_image``); other loggers (CSV) are skipped. A run with both gets it on both.
- :func:`log_shapes`: a few meshes / point clouds as W&B 3D objects and TensorBoard mesh summaries, decimated
  to at most ``max_faces`` faces / ``max_points`` points (:func:`decimate`) so a sweep stays light.
Loggers are recognised by what they offer (``log_image``: W&B; ``experiment.add_image``: TensorBoard), so
Lightning's loggers and plain test doubles work alike. Nothing here imports another shapelab package.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import trimesh

MAX_FACES = 2000
MAX_POINTS = 2048
Shape = trimesh.Trimesh | np.ndarray
"""A mesh or an (N, 3) point cloud."""


def figure_to_rgb(fig) -> np.ndarray:
    """The (H, W, 3) uint8 RGB pixels of a matplotlib figure (pyplot or ``matplotlib.figure.Figure``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="raw", dpi=fig.dpi)
    width, height = fig.canvas.get_width_height()
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(height, width, 4)[..., :3].copy()


def _is_wandb(logger) -> bool:
    return hasattr(logger, "log_image")


def _tensorboard_writer(logger):
    """The SummaryWriter of a TensorBoard logger, else None (W&B's ``experiment`` is not touched)."""
    if _is_wandb(logger):
        return None
    writer = getattr(logger, "experiment", None)
    return writer if hasattr(writer, "add_image") else None


def shows_pictures(loggers) -> bool:
    """Whether any of ``loggers`` shows pictures and 3D objects (W&B, TensorBoard): skip rendering otherwise."""
    return any(_is_wandb(logger) or _tensorboard_writer(logger) is not None for logger in loggers or [])


def log_image(loggers, key: str, image: np.ndarray, step: int | None = None) -> None:
    """Send an (H, W, 3) uint8 picture to each logger that shows images (W&B, TensorBoard); others skip."""
    for logger in loggers or []:
        if _is_wandb(logger):
            logger.log_image(key=key, images=[image], step=step)
        elif (writer := _tensorboard_writer(logger)) is not None:
            writer.add_image(key, image, step, dataformats="HWC")


def decimate(shape: Shape, max_faces: int = MAX_FACES, max_points: int = MAX_POINTS) -> Shape:
    """A lighter copy for viewing: a mesh quadric-decimated to <= ``max_faces`` faces, a cloud evenly
    subsampled (every k-th point, deterministic) to <= ``max_points`` points."""
    if isinstance(shape, trimesh.Trimesh):
        if len(shape.faces) <= max_faces:
            return shape
        simplified = shape.simplify_quadric_decimation(face_count=max_faces)
        return simplified if len(simplified.faces) else shape
    points = np.asarray(shape, dtype=np.float32).reshape(-1, 3)
    if len(points) <= max_points:
        return points
    return points[np.linspace(0, len(points) - 1, max_points).astype(int)]


def log_shapes(loggers, key: str, shapes: dict[str, Shape], step: int | None = None, max_faces: int = MAX_FACES,
               max_points: int = MAX_POINTS) -> None:
    """Log ``shapes`` (name -> mesh or (N, 3) points) as ``<key>/<name>``: W&B 3D objects (meshes as GLB,
    clouds as points) and TensorBoard mesh summaries (clouds as vertices without faces). Empty shapes skip."""
    light = {name: decimate(shape, max_faces, max_points) for name, shape in shapes.items()}
    light = {name: shape for name, shape in light.items() if _size(shape)}
    if not light:
        return
    for logger in loggers or []:
        if _is_wandb(logger):
            _log_wandb_shapes(logger, key, light, step)
        elif (writer := _tensorboard_writer(logger)) is not None and hasattr(writer, "add_mesh"):
            for name, shape in light.items():
                vertices, faces = _vertices_faces(shape)
                writer.add_mesh(f"{key}/{name}", vertices=vertices[None],
                                faces=None if faces is None else faces[None], global_step=step)


def _size(shape: Shape) -> int:
    return len(shape.faces) if isinstance(shape, trimesh.Trimesh) else len(shape)


def _vertices_faces(shape: Shape) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(shape, trimesh.Trimesh):
        return np.asarray(shape.vertices, np.float32), np.asarray(shape.faces, np.int32)
    return np.asarray(shape, np.float32), None


def _log_wandb_shapes(logger, key: str, shapes: dict[str, Shape], step: int | None) -> None:
    import wandb

    with tempfile.TemporaryDirectory() as tmp:
        objects = {}
        for index, (name, shape) in enumerate(shapes.items()):
            if isinstance(shape, trimesh.Trimesh):
                path = Path(tmp) / f"{index}.glb"
                shape.export(path)
                objects[f"{key}/{name}"] = wandb.Object3D(str(path))  # copies the file into the run
            else:
                objects[f"{key}/{name}"] = wandb.Object3D(np.asarray(shape, np.float32))
        logger.log_metrics(objects, step=step)
