"""DeepSDF auto-decoder (Park et al. 2019) as a shapelab model.

One latent code per training shape (``nn.Embedding``) is optimised jointly with the decoder
(Eq. 9); unseen shapes are reconstructed by optimising a fresh code with the decoder frozen
(Eq. 10, ``models/latent_optimisation.py``) and extracting the zero level set. The math lives in
``losses/deepsdf.py``, ``models/latent_optimisation.py`` and ``geometry/extraction.py``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
import trimesh
from shapelab.losses.deepsdf import clamped_l1
from shapelab.models.base import Monitor, Reconstruction, ShapeModel, shape_name
from shapelab.models.latent_optimisation import LatentFitSchedule, best_candidate_codes, fit_latents
from shapelab.renderers.thumbnail import render_mesh_thumbnail
from torch import nn

from shapelab.dashboards import log_image
from shapelab.errors import ShapelabError


class StepSchedule:
    """Step learning-rate schedule of the paper's specs: lr(epoch) = initial · factor^⌊epoch / interval⌋.

    Called with the epoch it returns the multiplier of ``initial`` (a ``LambdaLR`` lambda).
    """

    def __init__(self, initial: float, interval: int, factor: float):
        if initial <= 0 or interval <= 0:
            raise ShapelabError(f"learning-rate schedule needs initial > 0 and interval > 0, got {initial}, {interval}")
        self.initial = initial
        self.interval = interval
        self.factor = factor

    def __call__(self, epoch: int) -> float:
        return self.factor ** (epoch // self.interval)


RECONSTRUCTION_STARTS = ("random", "best_training_code")
# samples per shape that rank the training codes for reconstruction_start=best_training_code: a quarter of the
# CPU preset's 4096 per fit step (ranking 80 codes: ~9 % of the 200-step fits' time, bench/RESULTS.md main_job_budget)
START_SAMPLES = 1024


class DeepSDF(ShapeModel):
    """Auto-decoder: shape codes + SDF decoder, trained on SDF batches (DEVELOPING.md "Batches").

    Args:
        decoder: ``decoder(latents (B, L), xyz (B, S, 3)) -> (B, S)`` with ``latent_size`` L.
        loss: ``loss(pred_sdf, sdf, latents, epoch) -> {"loss", ...terms}`` (losses/deepsdf.py).
        optimizer: partial optimiser, called with two parameter groups (decoder, latents).
        num_shapes: number of training shapes (one code each); train.py fills it from the datamodule.
        decoder_lr, latent_lr: step schedules of the two groups (paper: 5e-4 / 1e-3, halved every 500 epochs).
        latent_init_std: σ of the code init N(0, σ²); null: 1/√L as the released code.
        latent_max_norm: optional bound on ‖z‖ (``nn.Embedding(max_norm=...)``, the specs' CodeBound).
        reconstruction: schedule of test-time latent optimisation (``reconstruct``).
        reconstruction_start: where each test-time (and validation) fit starts: ``random`` (N(0, init_std²),
            the released code) or ``best_training_code`` (the learnt training code that fits the shape's
            samples best, ``best_candidate_codes``; fewer fits stuck in a wrong minimum).
        extract_mesh: partial of ``geometry.extraction.extract_mesh`` with resolution/bounds/method set.
        val_fit: short latent-fit schedule run on half of each validation shape's samples before
            ``val/sdf_l1`` is measured on the other half (null: reconstruction, 50 steps).
        mesh_every_n_epochs: save meshes + thumbnails of the first validation batch every n
            epochs (with validation); 0 disables.
        num_val_meshes: how many shapes of that batch.
        thumbnail_size: side of the rendered thumbnails in pixels.
    """

    monitor = Monitor("val/sdf_l1", "min")
    batch_format = "sdf"
    # parameters added after runs were saved, with the value that reproduces them (evaluate.py fills them in)
    ADDED_PARAMETERS: ClassVar[dict[str, str]] = {"reconstruction_start": "random"}

    def __init__(
        self,
        decoder: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        decoder_lr: StepSchedule,
        latent_lr: StepSchedule,
        reconstruction: LatentFitSchedule,
        reconstruction_start: str,
        extract_mesh: Callable,
        num_shapes: int | None,
        latent_init_std: float | None,
        latent_max_norm: float | None,
        val_fit: LatentFitSchedule | None,
        mesh_every_n_epochs: int,
        num_val_meshes: int,
        thumbnail_size: int,
    ):
        super().__init__()
        if num_shapes is None or num_shapes < 1:
            raise ShapelabError(
                f"model.num_shapes is {num_shapes}; it must be the number of training shapes "
                "(train.py fills it from datamodule.facts(); set model.num_shapes=<n> when building the model yourself)"
            )
        self.decoder = decoder
        self.loss = loss
        self.optimizer_factory = optimizer
        self.decoder_lr = decoder_lr
        self.latent_lr = latent_lr
        if reconstruction_start not in RECONSTRUCTION_STARTS:
            raise ShapelabError(
                f"model.reconstruction_start: {reconstruction_start!r} is not one of {RECONSTRUCTION_STARTS}; fix the config"
            )
        self.reconstruction = reconstruction
        self.reconstruction_start = reconstruction_start
        self.extract_mesh = extract_mesh
        self.val_fit = val_fit or dataclasses.replace(reconstruction, num_iterations=50)
        self.mesh_every_n_epochs = mesh_every_n_epochs
        self.num_val_meshes = num_val_meshes
        self.thumbnail_size = thumbnail_size
        latent_size = decoder.latent_size
        self.latents = nn.Embedding(num_shapes, latent_size, max_norm=latent_max_norm)
        std = latent_init_std if latent_init_std is not None else 1.0 / math.sqrt(latent_size)
        nn.init.normal_(self.latents.weight, mean=0.0, std=std)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        latents = self.latents(batch["index"])
        pred_sdf = self.decoder(latents, batch["xyz"])
        terms = self.loss(pred_sdf, batch["sdf"], latents, epoch=self.current_epoch)
        self.log_training_terms(terms, batch_size=len(latents))
        return terms["loss"]

    def configure_optimizers(self):
        groups = [
            {"params": list(self.decoder.parameters()), "lr": self.decoder_lr.initial},
            {"params": list(self.latents.parameters()), "lr": self.latent_lr.initial},
        ]
        optimizer = self.optimizer_factory(groups)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [self.decoder_lr, self.latent_lr])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # -- validation -------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """``val/sdf_l1``: fit codes on the even samples briefly, clamped L1 on the odd (held-out) ones."""
        xyz, sdf = batch["xyz"], batch["sdf"]
        fit_xyz, fit_sdf = xyz[:, ::2], sdf[:, ::2]
        init = self.start_codes(fit_xyz, fit_sdf, self.val_fit)
        latents = fit_latents(self.decoder, fit_xyz, fit_sdf, self.val_fit, init=init)
        pred_sdf = self.decoder(latents, xyz[:, 1::2])
        sdf_l1 = clamped_l1(pred_sdf, sdf[:, 1::2], self.val_fit.clamp).mean()
        self.log("val/sdf_l1", sdf_l1, sync_dist=True, batch_size=len(latents), prog_bar=True)
        if batch_idx == 0 and self._mesh_logging_due():
            self._save_and_log_meshes(batch, latents[: self.num_val_meshes])

    def _mesh_logging_due(self) -> bool:
        n = self.mesh_every_n_epochs
        return (
            n > 0
            and (self.current_epoch + 1) % n == 0
            and self.trainer.is_global_zero
            and not self.trainer.sanity_checking
        )

    def _save_and_log_meshes(self, batch: dict, latents: torch.Tensor) -> None:
        """Write <run>/meshes/epoch_<e>/<synset>_<id>.ply, log a rendered thumbnail of each and the first
        ``logged_shapes`` meshes as 3D objects."""
        out_dir = Path(self.trainer.default_root_dir) / "meshes" / f"epoch_{self.current_epoch:04d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        shapes = {}
        for i, latent in enumerate(latents):
            name = shape_name(batch, i)
            mesh = self.mesh_from_latent(latent)
            mesh.export(out_dir / f"{name}.ply")
            image = render_mesh_thumbnail(mesh, self.thumbnail_size)
            log_image(self.loggers, f"val_mesh/{name}", image, self.global_step)
            if i < self.logged_shapes:  # with the validation samples within 0.01 of the surface
                shapes[f"{name}/reconstruction"] = mesh
                shapes[f"{name}/near_surface_samples"] = batch["xyz"][i][batch["sdf"][i].abs() < 0.01].cpu().numpy()
        self.log_validation_shapes(shapes)

    # -- reconstruction ---------------------------------------------------------------------------
    @torch.no_grad()
    def mesh_from_latent(self, latent: torch.Tensor) -> trimesh.Trimesh:
        """Zero level set of f(latent, ·) in the deepsdf frame (decoder in eval mode)."""
        was_training = self.decoder.training
        self.decoder.eval()
        latent = latent.reshape(1, -1).to(self.device)

        def field(points: torch.Tensor) -> torch.Tensor:
            return self.decoder(latent, points.to(self.device, torch.float32)[None])[0]

        try:
            return self.extract_mesh(field).mesh
        finally:
            self.decoder.train(was_training)

    def start_codes(self, xyz, sdf, schedule, observed=None, free_space=None) -> torch.Tensor | None:
        """Initial codes of a latent fit per ``reconstruction_start`` (None: ``fit_latents``' random init)."""
        if self.reconstruction_start == "random":
            return None
        return best_candidate_codes(
            self.decoder, self.latents.weight.detach(), xyz, sdf, schedule, START_SAMPLES, observed, free_space
        )

    def reconstruct(self, batch: dict) -> list[Reconstruction]:
        """Fit a code to each shape's SDF samples (optionally only ``batch["observed"]``; ``batch["free_space"]``
        marks samples known only to be outside, as a depth view gives them), mesh it."""
        xyz, sdf = batch["xyz"].to(self.device), batch["sdf"].to(self.device)
        observed, free_space = (None if batch.get(key) is None else batch[key].to(self.device)
                                for key in ("observed", "free_space"))
        init = self.start_codes(xyz, sdf, self.reconstruction, observed, free_space)
        latents = fit_latents(
            self.decoder, xyz, sdf, self.reconstruction, observed=observed, free_space=free_space, init=init
        )
        return [Reconstruction(frame="deepsdf", mesh=self.mesh_from_latent(z)) for z in latents]
