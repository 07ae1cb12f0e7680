"""Occupancy Networks (Mescheder et al. 2019) as a LightningModule.

f_theta(p, z, c) -> occupancy logit of point p, conditioned on c = encoder(inputs) (image, point
cloud or voxels; ``encoder: null`` for unconditional models) and, when ``z_dim > 0``, on a latent z
inferred by q(z | points, occupancies, c) during training (the generative model, Sec. 3.3). The
losses live in losses/occnet.py, the networks in models/networks/, and MISE in
geometry/extraction.py; this module only wires them.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from shapelab.geometry.extraction import extract_mesh
from shapelab.losses.occnet import mesh_refinement_loss
from shapelab.metrics.iou import occupancy_iou
from shapelab.models.base import Monitor, Reconstruction, ShapeModel, shape_name
from torch import nn

from shapelab.dashboards import figure_to_rgb, log_image, shows_pictures
from shapelab.errors import ShapelabError


@dataclass(frozen=True)
class MiseSettings:
    """``model.extraction``: MISE grid of resolution0 * 2**upsampling_steps cells over the unit cube + padding,
    queried in chunks of chunk_size points (OccNet: 32, 2, 0.1); dilation of refined cells (OccNet: 0);
    close = pad the grid with -1e6 before marching cubes (as OccNet)."""

    resolution0: int
    upsampling_steps: int
    padding: float
    chunk_size: int
    dilation: int
    close: bool


@dataclass(frozen=True)
class PostprocessSettings:
    """``model.postprocess`` (paper Sec. 3.4): refinement_steps Adam steps of Eq. 5-6 (0 = off) with refinement_lr
    and normal_weight; simplify_faces = quadric decimation target (None = off)."""

    refinement_steps: int
    refinement_lr: float
    normal_weight: float
    simplify_faces: int | None


@dataclass(frozen=True)
class SampleGridSettings:
    """``model.samples``: num unconditional samples rendered every every_n_epochs validation epochs (generative
    model only; 0 = off), extracted with MISE at resolution0 / upsampling_steps."""

    num: int
    every_n_epochs: int
    resolution0: int
    upsampling_steps: int


def _settings(cls, value):
    """A settings dataclass from the instantiated config (already one) or a dict of all its fields."""
    return value if isinstance(value, cls) else cls(**value)


def probability_to_logit(threshold: float) -> float:
    """log(t / (1 - t)): the occupancy probability threshold as a level of the logit field."""
    if not 0.0 < threshold < 1.0:
        raise ShapelabError(f"model.threshold={threshold} must lie strictly between 0 and 1")
    return math.log(threshold / (1.0 - threshold))


def refine_mesh(
    mesh: trimesh.Trimesh,
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    threshold: float,
    steps: int,
    lr: float = 1e-4,
    normal_weight: float = 0.01,
    generator: torch.Generator | None = None,
) -> trimesh.Trimesh:
    """Move the vertices of ``mesh`` to the threshold level of the field with Adam (paper Sec. 3.4,
    Eq. 5-6): each step takes one random point per face (Dirichlet(1/2) barycentric weights) and
    minimises ``losses.occnet.mesh_refinement_loss``. The topology is unchanged.

    Args:
        mesh: mesh in the field's frame.
        field_fn: points (N, 3) -> occupancy logits (N,), differentiable.
        threshold: occupancy probability of the surface.
        steps: number of Adam steps.
    """
    if steps <= 0 or len(mesh.faces) == 0:
        return mesh
    vertices = nn.Parameter(torch.tensor(mesh.vertices, dtype=torch.float32))
    faces = torch.as_tensor(mesh.faces, dtype=torch.long)
    optimizer = torch.optim.Adam([vertices], lr=lr, betas=(0.9, 0.999))
    dirichlet = torch.distributions.Dirichlet(torch.full((3,), 0.5))
    for _ in range(steps):
        corners = vertices[faces]  # (F, 3 corners, 3)
        weights = dirichlet.sample((len(faces),)) if generator is None else _dirichlet_half(len(faces), generator)
        face_points = (corners * weights.unsqueeze(-1)).sum(dim=1)
        normals = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
        normals = normals / (normals.norm(dim=-1, keepdim=True) + 1e-10)
        logits = field_fn(face_points)
        grads = torch.autograd.grad(torch.sigmoid(logits).sum(), face_points, create_graph=True)[0]
        loss = mesh_refinement_loss(logits, normals, grads, threshold, normal_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return trimesh.Trimesh(vertices.detach().numpy().astype(np.float64), mesh.faces, process=False)


def _dirichlet_half(n: int, generator: torch.Generator) -> torch.Tensor:
    """Dirichlet(1/2, 1/2, 1/2) samples from normalised Gamma(1/2) = chi^2_1 / 2 draws (seeded)."""
    gamma = torch.randn(n, 3, generator=generator).pow(2)
    return gamma / gamma.sum(dim=-1, keepdim=True)


def simplify_mesh(mesh: trimesh.Trimesh, face_count: int) -> trimesh.Trimesh:
    """Quadric decimation to ``face_count`` faces (trimesh + fast-simplification, paper Sec. 3.4)."""
    if len(mesh.faces) <= face_count:
        return mesh
    try:
        return mesh.simplify_quadric_decimation(face_count=face_count)
    except ImportError:
        raise ShapelabError(
            "model.postprocess.simplify_faces needs the fast-simplification package; "
            "pip install fast-simplification or set it to null"
        ) from None


class OccupancyNetwork(ShapeModel):
    """Occupancy network: encoder -> c, optional latent z, decoder -> logits; BCE (+KL) training.

    Args:
        decoder: ``(points (B,T,3), z (B,z_dim)|None, c (B,c_dim)|None) -> logits (B,T)``.
        loss: ``losses.occnet.OccupancyLoss``.
        optimizer: partial optimizer (``_partial_: true``), called with the parameters.
        encoder: ``inputs -> (B, c_dim)`` or None (unconditional model).
        latent_encoder: ``(points, occ, c) -> (mean, logstd)`` of q(z | ...); needed when z_dim > 0.
        c_dim, z_dim: sizes of the condition and the latent (z_dim 0: no latent, no KL).
        scheduler: partial LR scheduler or None; stepped every ``scheduler_interval`` ("epoch" | "step").
        threshold: occupancy probability of the surface (0.2 as OccNet; used as a logit level).
        extraction: MISE settings (resolution0, upsampling_steps, padding of the [-0.5, 0.5]^3 box, chunk_size,
            dilation of refined cells (OccNet: 0), close = pad the grid with -1e6 before marching cubes as OccNet).
        postprocess: refinement_steps (0 = off), refinement_lr, normal_weight, simplify_faces (null = off).
        samples: unconditional sample grid of the generative model: num (0 = off), every_n_epochs,
            resolution0, upsampling_steps.
    """

    monitor = Monitor("val/iou", "max")
    batch_format = "occupancy"

    def __init__(
        self,
        decoder: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        encoder: nn.Module | None = None,
        *,
        latent_encoder: nn.Module | None,
        c_dim: int,
        z_dim: int,
        scheduler: Callable | None,
        scheduler_interval: str,
        threshold: float,
        extraction: MiseSettings | dict,
        postprocess: PostprocessSettings | dict,
        samples: SampleGridSettings | dict,
    ):
        super().__init__()
        if z_dim > 0 and latent_encoder is None:
            raise ShapelabError(f"model.z_dim={z_dim} needs model.latent_encoder; set one or set model.z_dim=0")
        if encoder is None and z_dim == 0:
            raise ShapelabError("model.encoder is null and model.z_dim=0: the model has no input; set one of them")
        self.encoder = encoder
        self.decoder = decoder
        self.latent_encoder = latent_encoder if z_dim > 0 else None
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory, self.scheduler_interval = scheduler, scheduler_interval
        self.c_dim, self.z_dim = c_dim, z_dim
        self.threshold = threshold
        self.level = probability_to_logit(threshold)
        self.extraction = _settings(MiseSettings, extraction)
        self.postprocess = _settings(PostprocessSettings, postprocess)
        self.samples = _settings(SampleGridSettings, samples)

    # --- the network -------------------------------------------------------------------------
    def encode_inputs(self, inputs: torch.Tensor | None) -> torch.Tensor | None:
        """inputs -> c (B, c_dim), or None for an unconditional model."""
        if self.encoder is None:
            return None
        if inputs is None:
            raise ShapelabError("the batch has no 'inputs' but model.encoder is set; choose data with an input type")
        return self.encoder(inputs)

    def infer_z(self, points, occ, c) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Training-time z ~ q(z | points, occ, c) by reparameterisation: (z, mean, logstd); Nones without z."""
        if self.z_dim == 0:
            return None, None, None
        mean, logstd = self.latent_encoder(points, occ, c)
        return mean + torch.randn_like(mean) * logstd.exp(), mean, logstd

    def prior_z(self, batch_size: int, sample: bool = False) -> torch.Tensor | None:
        """z from the prior N(0, I): its mean (reconstruction, as OccNet) or a sample (generation)."""
        if self.z_dim == 0:
            return None
        shape = (batch_size, self.z_dim)
        return torch.randn(shape, device=self.device) if sample else torch.zeros(shape, device=self.device)

    def forward(self, points: torch.Tensor, inputs: torch.Tensor | None = None, z: torch.Tensor | None = None):
        """Occupancy logits (B, T) of ``points`` (B, T, 3) given inputs; z defaults to the prior mean."""
        c = self.encode_inputs(inputs)
        if z is None:
            z = self.prior_z(points.shape[0])
        return self.decoder(points, z, c)

    # --- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        c = self.encode_inputs(batch.get("inputs"))
        z, mean, logstd = self.infer_z(batch["points"], batch["occ"], c)
        logits = self.decoder(batch["points"], z, c)
        terms = self.loss_fn(logits, batch["occ"], mean, logstd)
        batch_size = batch["points"].shape[0]
        self.log_training_terms(terms, batch_size)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["points"], batch.get("inputs"))
        iou = occupancy_iou(logits >= self.level, batch["occ"] >= 0.5)
        terms = self.loss_fn(logits, batch["occ"])
        batch_size = batch["points"].shape[0]
        self.log("val/iou", iou.mean(), prog_bar=True, sync_dist=True, batch_size=batch_size)
        self.log("val/bce", terms["bce"], sync_dist=True, batch_size=batch_size)
        if batch_idx == 0:
            keys = ("inputs", "points", "occ", "synset", "model_id")
            self._first_val_shapes = {key: batch[key][: self.logged_shapes] for key in keys if key in batch}

    def on_validation_epoch_end(self) -> None:
        generative = self.samples.num > 0 and self.z_dim > 0 and self.encoder is None
        due = self.current_epoch % self.samples.every_n_epochs == 0
        if due and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            if generative:
                self.log_unconditional_samples()
            elif self.logged_shapes and getattr(self, "_first_val_shapes", None) and shows_pictures(self.loggers):
                self.log_validation_meshes(self._first_val_shapes)

    def log_validation_meshes(self, shapes: dict) -> None:
        """Coarse MISE meshes (``samples`` resolution) of the first validation shapes and their occupied
        validation points (ground truth), as 3D objects."""
        meshes = self.meshes_of(shapes, lambda z, c: self.extract(
            self.field_fn(z, c), self.samples.resolution0, self.samples.upsampling_steps))
        logged = {}
        for i, mesh in enumerate(meshes):
            logged[f"{shape_name(shapes, i)}/reconstruction"] = mesh
            logged[f"{shape_name(shapes, i)}/occupied_points"] = shapes["points"][i][shapes["occ"][i] >= 0.5].cpu().numpy()
        self.log_validation_shapes(logged)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = {"scheduler": self.scheduler_factory(optimizer), "interval": self.scheduler_interval}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    # --- meshes ------------------------------------------------------------------------------
    def field_fn(self, z: torch.Tensor | None, c: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """points (N, 3) -> logits (N,) of one shape with latent z (1, z_dim) and condition c (1, c_dim)."""
        return lambda points: self.decoder(points.unsqueeze(0), z, c)[0]

    def extract(self, field_fn, resolution0: int, upsampling_steps: int) -> trimesh.Trimesh:
        """MISE (geometry/extraction.py) of the threshold level in the padded unit cube."""
        half = 0.5 + self.extraction.padding / 2
        with torch.no_grad():
            result = extract_mesh(
                field_fn,
                resolution=resolution0 * 2**upsampling_steps,
                bounds=(-half, half),
                level=self.level,
                inside="above",
                method="coarse_to_fine",
                resolution0=resolution0,
                upsampling_steps=upsampling_steps,
                chunk_size=self.extraction.chunk_size,
                device=self.device,
                lipschitz=None,  # logits have no Lipschitz bound: refine sign changes, as OccNet's MISE
                dilation=self.extraction.dilation,
                close=self.extraction.close,
            )
        return result.mesh

    def generate_mesh(self, z: torch.Tensor | None, c: torch.Tensor | None) -> trimesh.Trimesh:
        """MISE mesh of one shape, then the optional simplification and refinement of Sec. 3.4."""
        field = self.field_fn(z, c)
        mesh = self.extract(field, self.extraction.resolution0, self.extraction.upsampling_steps)
        post = self.postprocess
        if post.simplify_faces:
            mesh = simplify_mesh(mesh, int(post.simplify_faces))
        if post.refinement_steps > 0:
            with torch.enable_grad(), torch.inference_mode(False):
                mesh = refine_mesh(
                    mesh,
                    lambda p: field(p.to(self.device)).cpu(),
                    self.threshold,
                    int(post.refinement_steps),
                    post.refinement_lr,
                    post.normal_weight,
                )
        return mesh

    def reconstruct(self, batch: dict) -> list[Reconstruction]:
        """One MISE mesh per shape, in the occnet frame; z is the prior mean (as OccNet)."""
        return [Reconstruction(frame="occnet", mesh=mesh) for mesh in self.meshes_of(batch, self.generate_mesh)]

    def meshes_of(self, batch: dict, mesh_fn: Callable) -> list[trimesh.Trimesh]:
        """``mesh_fn(z (1, z_dim) | None, c (1, c_dim) | None)`` for each shape of ``batch`` (its ``inputs`` or,
        unconditional, its ``model_id`` count), in eval mode; z is the prior mean."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                inputs = batch.get("inputs")
                c = self.encode_inputs(inputs.to(self.device) if inputs is not None else None)
                batch_size = c.shape[0] if c is not None else len(batch["model_id"])
                z = self.prior_z(batch_size)
            return [mesh_fn(None if z is None else z[i : i + 1], None if c is None else c[i : i + 1])
                    for i in range(batch_size)]
        finally:
            self.train(was_training)

    def sample_meshes(self, num: int) -> list[trimesh.Trimesh]:
        """Unconditional samples of the generative model: z ~ N(0, I), coarse MISE meshes."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                z = self.prior_z(num, sample=True)
            return [
                self.extract(self.field_fn(z[i : i + 1], None), self.samples.resolution0, self.samples.upsampling_steps)
                for i in range(num)
            ]
        finally:
            self.train(was_training)

    def log_unconditional_samples(self) -> Path:
        """Render a grid of unconditional samples, save it in the run directory and send it to the loggers."""
        out = Path(self.trainer.default_root_dir) / "samples" / f"epoch_{self.current_epoch:04d}.png"
        picture = render_mesh_grid(self.sample_meshes(int(self.samples.num)), out)
        log_image(self.loggers, "samples/unconditional", picture, self.global_step)
        return out


def render_mesh_grid(meshes: list[trimesh.Trimesh], path: Path, columns: int = 4) -> np.ndarray:
    """Shaded pictures of meshes (occnet frame) in a grid, saved to ``path``; returns the RGB image (H, W, 3) uint8."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    rows = max(1, math.ceil(len(meshes) / columns))
    fig = plt.figure(figsize=(2.5 * columns, 2.5 * rows))
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    for i, mesh in enumerate(meshes):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        if len(mesh.faces):
            shade = 0.3 + 0.7 * np.abs(mesh.face_normals @ light)
            ax.add_collection3d(
                Poly3DCollection(mesh.vertices[mesh.faces][:, :, [0, 2, 1]], facecolors=np.outer(shade, [0.6, 0.7, 0.9]))
            )
        ax.set(xlim=(-0.5, 0.5), ylim=(-0.5, 0.5), zlim=(-0.5, 0.5), title=f"sample {i}")
        ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.set_dpi(80)
    fig.savefig(path, dpi=80)
    picture = figure_to_rgb(fig)
    plt.close(fig)
    return picture
