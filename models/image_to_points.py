"""Single image -> point cloud (CAPNet, DRWR, or a 3D-supervised baseline), one LightningModule.

The supervision is a swappable pair from config: ``loss=capnet_projection renderer=gaussian_projection``
(CAPNet), ``loss=drwr renderer=point_projection`` (DRWR) or ``loss=chamfer3d`` (no renderer).
The module only wires encoder -> decoder -> renderer -> loss; the math lives in renderers/ and losses/.
Points are predicted in the occnet frame (unit cube).
"""
from __future__ import annotations

import numpy as np
import torch
from shapelab.metrics.chamfer import chamfer_capnet
from shapelab.models.base import Monitor, Reconstruction, ShapeModel, shape_name
from shapelab.renderers.point_projection import project_points
from torch import nn

from shapelab.dashboards import figure_to_rgb, log_image
from shapelab.errors import ShapelabError


class ImageToPoints(ShapeModel):
    """Encoder (B,3,H,W)->(B,c) -> PointDecoder -> (B,N,3); trained through ``renderer`` + ``loss``.

    Args:
        encoder, decoder: networks (``models/networks``); c_dim: their code size (recorded as a hyperparameter).
        loss: an ``nn.Module`` whose ``forward(points, rendered, batch)`` returns ``{"loss", <terms>}``
            and whose ``renderer_outputs`` names what it needs from the renderer.
        renderer: projects points into the batch's views (``forward(points, K, Rt, (H, W)) -> dict``, the keys
            listed in its ``outputs``) or None.
        optimizer, scheduler: partials from config.
        log_images: log a picture of the first validation shape at each validation.
    """

    monitor = Monitor("val/chamfer_capnet", "min")
    batch_format = "multiview"

    def __init__(self, encoder: nn.Module, decoder: nn.Module, loss: nn.Module, renderer: nn.Module | None,
                 optimizer, scheduler, log_images: bool, c_dim: int | None):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "decoder", "loss", "renderer", "optimizer", "scheduler"])
        missing = set(getattr(loss, "renderer_outputs", ())) - set(getattr(renderer, "outputs", ()))
        if missing:
            raise ShapelabError(
                f"renderer={type(renderer).__name__ if renderer is not None else 'null'}: loss "
                f"{type(loss).__name__} needs renderer outputs {sorted(missing)}; use renderer=gaussian_projection "
                "with loss=capnet_projection and renderer=point_projection with loss=drwr"
            )
        self.encoder, self.decoder, self.loss, self.renderer = encoder, decoder, loss, renderer
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.log_images = log_images

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, N, 3) points in the occnet frame."""
        return self.decoder(self.encoder(image))

    def predict_views(self, batch: dict) -> torch.Tensor:
        """(B, Vi, N, 3): a cloud from each input view of ``images`` (val/test batches), else from ``image`` (Vi = 1)."""
        images = batch["images"] if "images" in batch else batch["image"][:, None]
        points = self(images.flatten(0, 1))
        return points.view(*images.shape[:2], *points.shape[1:])

    def supervision(self, points: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        rendered = None
        if self.renderer is not None:
            rendered = self.renderer(points, batch["K"], batch["Rt"], tuple(batch["masks"].shape[-2:]))
        return self.loss(points, rendered, batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.supervision(self(batch["image"]), batch)
        batch_size = batch["image"].shape[0]
        self.log_training_terms(terms, batch_size)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        points = self(batch["image"])
        batch_size = points.shape[0]
        for name, value in self.supervision(points, batch).items():
            self.log(f"val/{name}", value, sync_dist=True, batch_size=batch_size)
        with torch.no_grad():
            views = self.predict_views(batch).cpu().numpy()
        gt = batch["points_gt"].detach().cpu().numpy()
        # as test scoring (chamfer_capnet): each input view's cloud against the fixed FPS points, averaged over views
        chamfer = np.mean([np.mean([chamfer_capnet(p, g) for p in shape_views]) for shape_views, g in zip(views, gt)])
        self.log("val/chamfer_capnet", float(chamfer), sync_dist=True, batch_size=batch_size)
        if batch_idx == 0 and self.log_images and self.loggers:
            self.log_picture(batch, points)

    def reconstruct(self, batch: dict) -> list[Reconstruction]:
        with torch.no_grad():
            views = self.predict_views(batch).cpu().numpy()
        return [Reconstruction(frame="occnet", points=v[0], views=v) for v in views]

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ShapelabError("model.optimizer is null; set it, e.g. model.optimizer._target_=torch.optim.Adam")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer=optimizer)}

    def log_picture(self, batch: dict, points: torch.Tensor) -> None:
        """Log the first shape (input | view-0 mask with projected points | 3D scatter) to every image logger,
        and the first ``logged_shapes`` predicted and ground-truth clouds as 3D objects."""
        uv, _ = project_points(points[:1].detach(), batch["K"][:1, :1], batch["Rt"][:1, :1])
        picture = point_cloud_picture(
            batch["image"][0].permute(1, 2, 0).cpu().numpy(), batch["masks"][0, 0].cpu().numpy(),
            uv[0, 0].cpu().numpy(), points[0].detach().cpu().numpy(), batch["points_gt"][0].cpu().numpy(),
        )
        log_image(self.loggers, "val/point_cloud", picture, self.global_step)
        shapes = {}
        for i in range(min(self.logged_shapes, len(points))):
            name = shape_name(batch, i)
            shapes[f"{name}/prediction"] = points[i].detach().cpu().numpy()
            shapes[f"{name}/ground_truth"] = batch["points_gt"][i].cpu().numpy()
        self.log_validation_shapes(shapes)


def point_cloud_picture(image: np.ndarray, mask: np.ndarray, uv: np.ndarray, pred: np.ndarray,
                        gt: np.ndarray) -> np.ndarray:
    """A (h, w, 3) uint8 picture: input image | mask with projected predicted points | 3D scatter."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig = plt.figure(figsize=(9, 3), dpi=80)
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(np.clip(image, 0, 1))
    ax.set_title("input")
    ax = fig.add_subplot(1, 3, 2)
    ax.imshow(mask, cmap="gray")
    ax.scatter(uv[:, 0], uv[:, 1], s=1, c="tab:red")
    ax.set_xlim(0, mask.shape[1] - 1)
    ax.set_ylim(mask.shape[0] - 1, 0)
    ax.set_title("mask + projection")
    ax = fig.add_subplot(1, 3, 3, projection="3d")
    for cloud, colour in ((gt, "dimgray"), (pred, "tab:red")):
        ax.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], s=1, c=colour)  # the data's y is up
    ax.set_title("pred (red) / gt")
    for axis in fig.axes:
        axis.set_xticks([])
        axis.set_yticks([])
    picture = figure_to_rgb(fig)
    plt.close(fig)
    return picture
