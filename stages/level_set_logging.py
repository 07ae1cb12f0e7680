"""Dashboards of a level-set fit: loss curves, pictures of the guiding points, the final mesh.

`FitLogger` is the fit's observer (`models.level_set.Observer`); it sends everything to the run's Lightning
loggers (``logger=`` group: CSV / TensorBoard / W&B; pictures and meshes through `shapelab.dashboards`) under
``level_set/<shape>/...`` and keeps the pictures as PNG files in the shape's folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from matplotlib.figure import Figure

from shapelab.dashboards import figure_to_rgb, log_image, log_shapes, shows_pictures

PICTURE_POINTS = 3000
VIEWS = ((0, 1, "front (x, y)"), (2, 1, "side (z, y)"), (0, 2, "top (x, z)"))


def guide_picture(inputs: np.ndarray, guides: np.ndarray, title: str) -> Figure:
    """Three axis-aligned projections of the input points (grey) and the guiding points (red)."""
    rng = np.random.default_rng(0)
    thin = lambda points: points[rng.choice(len(points), min(len(points), PICTURE_POINTS), replace=False)]
    inputs, guides = thin(inputs), thin(guides) if len(guides) else guides
    figure = Figure(figsize=(7.5, 2.8), dpi=80)
    for index, (u, v, label) in enumerate(VIEWS):
        axes = figure.add_subplot(1, 3, index + 1)
        axes.scatter(inputs[:, u], inputs[:, v], s=0.5, c="0.6")
        if len(guides):
            axes.scatter(guides[:, u], guides[:, v], s=0.8, c="tab:red")
        axes.set_aspect("equal")
        axes.set_title(label, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


class FitLogger:
    """Observer of one shape's fit: curves every ``every_steps`` steps, a picture of the guiding points every
    ``every_moves`` moves (also written to ``folder/guides_<step>.png``), the final mesh. inputs: the fit's
    input points (K, 3) in their own frame."""

    def __init__(self, loggers: list, name: str, inputs: np.ndarray, folder: Path, every_steps: int, every_moves: int):
        self.loggers, self.name, self.inputs, self.folder = loggers or [], name, inputs, folder
        self.every_steps, self.every_moves = max(1, every_steps), every_moves
        self.moves = 0

    def __call__(self, event: str, data: dict) -> None:
        if event == "step" and data["step"] % self.every_steps == 0:
            self._log_scalars({f"level_set/{self.name}/{term}": value for term, value in data["terms"].items()},
                              data["step"])
        elif event == "level":
            self._log_scalars({f"level_set/{self.name}/radius": data["radius"]}, data["step"])
        elif event == "guides" and self.every_moves:
            if self.moves % self.every_moves == 0:
                self.picture(data)
            self.moves += 1

    def _log_scalars(self, scalars: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics(scalars, step=step)

    def picture(self, data: dict) -> None:
        """The guiding points (fitting frame; ``data["to_input_frame"]`` maps them back when given)."""
        guides = data["to_input_frame"](data["points"]) if "to_input_frame" in data else data["points"]
        figure = guide_picture(self.inputs, guides, f"{self.name}: step {data['step']}, {len(guides)} guiding points, "
                                                    f"r = {data['radius']:.3g} (fitting frame)")
        self.folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.folder / f"guides_{data['step']:05d}.png")
        if shows_pictures(self.loggers):
            log_image(self.loggers, f"level_set/{self.name}/guiding_points", figure_to_rgb(figure), data["step"])

    def final_mesh(self, mesh: trimesh.Trimesh) -> None:
        log_shapes(self.loggers, "level_set/meshes", {self.name: mesh})
        for logger in self.loggers:
            logger.save()
