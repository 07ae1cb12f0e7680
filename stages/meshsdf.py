"""MeshSDF fine-tuning stage (Remelli et al. 2020): refine DeepSDF latents through a differentiable iso-surface.

Per target shape: (1) the plain DeepSDF answer from the observation (latent fitted with the decoder
frozen, `models.latent_optimisation.fit_latents`); (2) MeshSDF refinement of that latent (optionally
also the decoder): each iteration extracts the mesh (marching cubes, `geometry.isosurface.SurfaceTracker`),
makes its vertices differentiable (dL/ds = -(dL/dv)·n) and steps on a mesh loss (`losses.meshsdf`):
surface Chamfer to a target point cloud ("pointcloud" task) or silhouette L1 against masks seen by
known cameras ("silhouette" task). Both answers are scored by the evaluation pipeline
(`shapelab.evaluation.evaluate_predictions`), so their numbers are evaluate.py's documented columns.

Where the silhouettes come from: with an SDF datamodule, masks the stage renders of the ground-truth mesh from
ring cameras; with ``data=colmap_views`` (photos, masks and SfM cameras; `StageRun.observed_views`), the
capture's own masks and cameras, moved into the deepsdf frame of the capture's points. Captures are scored when
they have a true surface (built-in captures); real photos are not (one warning; the meshes are still written).

The plain DeepSDF answer from silhouettes fits the latent to pseudo-SDF samples of the visual hull
(points seen outside a mask are outside, +clamp; points inside every mask are taken as inside, -clamp).

Launched by train.py with ``stage=meshsdf`` (conf/stage/meshsdf.yaml): train.py instantiates
`MeshSDFStage` and calls ``stage.run(StageRun(...))`` with the SDF datamodule of the run.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
import trimesh
from omegaconf import DictConfig, OmegaConf
from shapelab.declarative.level_set import declarative_vertices
from shapelab.geometry.extraction import extract_mesh
from shapelab.geometry.isosurface import SurfaceTracker, differentiable_vertices
from shapelab.geometry.raycast import camera_rays
from shapelab.losses.meshsdf import MeshSDFLoss
from shapelab.models.latent_optimisation import LatentFitSchedule, fit_latents
from shapelab.renderers.cameras import look_at_origin, project
from shapelab.stages.base import Stage, StageRun
from torch import nn
from tqdm.auto import tqdm

from shapelab.dashboards import log_image, log_shapes
from shapelab.errors import ShapelabError
from shapelab.evaluation import evaluate_predictions
from shapelab.evaluation.ground_truth import GroundTruthSource

log = logging.getLogger("shapelab.meshsdf")
TASKS = ("pointcloud", "silhouette")
GRADIENTS = ("isosurface", "declarative")


# -- checkpoint ---------------------------------------------------------------------------------------
def load_deepsdf_checkpoint(ckpt_path: str | Path, decoder_cfg: DictConfig | None = None) -> tuple[nn.Module, torch.Tensor]:
    """(decoder, training latents (num_shapes, L)) of a DeepSDF checkpoint written by train.py.

    The decoder is built from the run's saved config (``<run>/.hydra/config.yaml``, ``model.decoder``),
    or from ``decoder_cfg`` when the checkpoint is not inside a run directory.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ShapelabError(f"stage.checkpoint: {path} does not exist; give a DeepSDF run's checkpoints/last.ckpt")
    saved = path.parent.parent / ".hydra" / "config.yaml"
    if saved.is_file():
        decoder_cfg = OmegaConf.load(saved).model.get("decoder")
    if decoder_cfg is None:
        raise ShapelabError(f"{path}: no {saved} to build the decoder from; set model.decoder to the run's decoder")
    decoder = hydra.utils.instantiate(decoder_cfg)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        decoder.load_state_dict({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")})
        latents = state["latents.weight"]
    except (KeyError, RuntimeError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ShapelabError(f"{path}: not a DeepSDF checkpoint matching its config ({reason}); "
                            "give the checkpoint of a model=deepsdf run") from None
    return decoder, latents


# -- targets and observations ------------------------------------------------------------------------
@dataclass
class ShapeTarget:
    """A shape (``key`` = (synset, model_id)) in the deepsdf frame: its ground-truth mesh (silhouette
    observations) and surface samples (point-cloud observations), or (``views``: masks, K, Rt) the silhouettes
    the data observed of it when there is no ground-truth mesh (captures)."""

    key: tuple[str, str]
    mesh: trimesh.Trimesh | None
    surface_points: np.ndarray | None
    views: dict | None = None


def ring_cameras(num_views: int, image_size: int, distance: float = 2.5, elevation_deg: float = 25.0):
    """K (V, 3, 3), Rt (V, 3, 4) float32: cameras on a ring looking at the origin; the unit sphere fills the image."""
    elevation = np.deg2rad(elevation_deg)
    Rts = []
    for azimuth in np.linspace(0.0, 2 * np.pi, num_views, endpoint=False):
        position = distance * np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation),
                                        np.cos(elevation) * np.sin(azimuth)])
        Rts.append(look_at_origin(position))
    focal = 0.5 * image_size / np.tan(np.arcsin(1.0 / distance) * 1.05)
    K = np.array([[focal, 0.0, image_size / 2], [0.0, focal, image_size / 2], [0.0, 0.0, 1.0]])
    return torch.tensor(np.repeat(K[None], num_views, 0), dtype=torch.float32), torch.tensor(np.stack(Rts), dtype=torch.float32)


def render_masks(mesh: trimesh.Trimesh, K: torch.Tensor, Rt: torch.Tensor, image_size: int) -> torch.Tensor:
    """Hard silhouettes (V, H, W) float {0, 1}: a ray through each pixel centre hits the mesh (embree)."""
    masks = []
    for k, rt in zip(K.double().numpy(), Rt.double().numpy()):
        origins, directions = camera_rays(k, rt, image_size, image_size)
        hit = mesh.ray.intersects_any(origins, directions) if len(mesh.faces) else np.zeros(len(directions), bool)
        masks.append(hit.reshape(image_size, image_size))
    return torch.tensor(np.stack(masks), dtype=torch.float32)


def visual_hull_sdf_samples(masks: torch.Tensor, K: torch.Tensor, Rt: torch.Tensor, count: int, clamp: float,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-SDF samples (count, 3), (count,) from silhouettes: uniform points in [-1, 1]^3 labelled
    +clamp when some view sees them outside its mask (or outside the image), else -clamp."""
    points = torch.rand(count, 3, generator=generator) * 2 - 1
    pixels = project(points[None], K, Rt).floor().long()  # (V, count, 2)
    size = masks.shape[-1]
    in_image = ((pixels >= 0) & (pixels < size)).all(-1)
    u, v = pixels[..., 0].clamp(0, size - 1), pixels[..., 1].clamp(0, size - 1)
    seen_inside = in_image & (masks[torch.arange(len(masks))[:, None], v, u] > 0.5)
    return points, torch.where(seen_inside.all(0), -clamp, clamp)


# -- refinement ---------------------------------------------------------------------------------------
@dataclass
class RefineSchedule:
    """MeshSDF refinement settings: Adam steps on the latent (and optionally the decoder), MC grid,
    fast re-extraction band (`geometry.isosurface.SurfaceTracker`)."""

    iterations: int
    lr: float
    resolution: int
    band_cells: int
    refresh_every: int
    optimise_decoder: bool
    decoder_lr: float


def decoder_field(decoder: nn.Module, latent: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """field(points (N, 3)) -> (N,) SDF of ``decoder`` at code ``latent`` (L,)."""
    return lambda points: decoder(latent[None], points[None].to(latent))[0]


def latent_mesh(decoder: nn.Module, latent: torch.Tensor, resolution: int) -> trimesh.Trimesh:
    """Zero level set of the decoder at ``latent``, deepsdf frame."""
    return extract_mesh(decoder_field(decoder, latent.detach()), resolution, device=latent.device).mesh


def refine_latent(
    decoder: nn.Module,
    latent: torch.Tensor,
    loss: MeshSDFLoss,
    targets: dict,
    schedule: RefineSchedule,
    on_iteration: Callable[[int, trimesh.Trimesh, dict], None] | None = None,
    generator: torch.Generator | None = None,
    gradient: str = "isosurface",
) -> tuple[torch.Tensor, list[dict]]:
    """Refine ``latent`` (L,) against ``targets`` (see `MeshSDFLoss.forward`); returns the refined code
    and one record of loss terms per iteration. Stops early when the surface vanishes (empty mesh).
    ``on_iteration(i, mesh, record)`` sees the mesh the i-th step was computed on. ``gradient``:
    "isosurface" (MeshSDF's dv/ds = −n, `geometry.isosurface`) or "declarative" (the same surface point as a
    deep declarative node, `declarative.level_set`: −∇f/‖∇f‖², equal to −n where ‖∇f‖ = 1)."""
    if gradient not in GRADIENTS:
        raise ShapelabError(f"stage.gradient={gradient!r} unknown; use one of {GRADIENTS}")
    latent = latent.detach().clone().requires_grad_(True)
    groups = [{"params": [latent], "lr": schedule.lr}]
    decoder_params = list(decoder.parameters())
    previous = [p.requires_grad for p in decoder_params]
    for p in decoder_params:
        p.requires_grad_(schedule.optimise_decoder)
    if schedule.optimise_decoder:
        groups.append({"params": decoder_params, "lr": schedule.decoder_lr})
    optimiser = torch.optim.Adam(groups)
    tracker = SurfaceTracker(schedule.resolution, band_cells=schedule.band_cells,
                             refresh_every=schedule.refresh_every, device=latent.device)
    was_training = decoder.training
    decoder.eval()
    history = []
    try:
        for iteration in range(schedule.iterations):
            field = decoder_field(decoder, latent)
            mesh = tracker.extract(field)
            if len(mesh.faces) == 0:
                log.warning("meshsdf: the surface vanished at iteration %d; keeping the last code", iteration)
                break
            vertices = torch.tensor(mesh.vertices, dtype=latent.dtype, device=latent.device)
            if gradient == "declarative":
                parameters = [latent, *decoder_params] if schedule.optimise_decoder else [latent]
                vertices = declarative_vertices(field, vertices, parameters)
            else:
                vertices = differentiable_vertices(field, vertices)
            faces = torch.tensor(mesh.faces, device=latent.device)
            terms = loss(vertices, faces, latent, targets, generator)
            optimiser.zero_grad()
            terms["loss"].backward()
            optimiser.step()
            history.append({name: float(value.detach()) for name, value in terms.items()})
            if on_iteration is not None:
                on_iteration(iteration, mesh, history[-1])
    finally:
        decoder.train(was_training)
        for p, flag in zip(decoder_params, previous):
            p.requires_grad_(flag)
    return latent.detach(), history


def observation_targets(target: ShapeTarget, task: str, num_points: int, num_views: int, image_size: int,
                        rng: np.random.Generator) -> dict:
    """What the method sees: ``points`` (num_points, 3) on the surface, or ``masks`` (V, H, W) + ``K``, ``Rt``
    (the target's observed ``views`` when it has them, else ring cameras around its mesh)."""
    if target.views is not None:
        if task != "silhouette":
            raise ShapelabError(f"stage.task={task}: the data gives silhouettes of {'/'.join(target.key)}, no surface "
                                "points; use stage.task=silhouette")
        return target.views
    if task == "pointcloud":
        chosen = rng.choice(len(target.surface_points), num_points, replace=len(target.surface_points) < num_points)
        return {"points": torch.tensor(target.surface_points[chosen], dtype=torch.float32)}
    if task == "silhouette":
        K, Rt = ring_cameras(num_views, image_size)
        return {"masks": render_masks(target.mesh, K, Rt, image_size), "K": K, "Rt": Rt}
    raise ShapelabError(f"stage.task: {task!r} unknown; use one of {TASKS}")


def deepsdf_baseline(decoder: nn.Module, targets: dict, schedule: LatentFitSchedule, generator: torch.Generator) -> torch.Tensor:
    """Plain DeepSDF latent (L,) from the same observation: SDF 0 at the observed points, or visual-hull
    pseudo-SDF samples from the silhouettes."""
    if "points" in targets:
        xyz, sdf = targets["points"], torch.zeros(len(targets["points"]))
    else:
        xyz, sdf = visual_hull_sdf_samples(targets["masks"], targets["K"], targets["Rt"], 4 * schedule.num_samples,
                                           schedule.clamp, generator)
    return fit_latents(decoder, xyz[None], sdf[None], schedule, generator=generator)[0]


# -- the stage ----------------------------------------------------------------------------------------
class MeshSDFStage(Stage):
    """``stage=meshsdf``: refine a trained DeepSDF's reconstructions of a split's shapes with MeshSDF.

    Args:
        checkpoint: DeepSDF checkpoint (``<run>/checkpoints/last.ckpt``).
        task: "pointcloud" (surface Chamfer to ``num_points`` surface samples) or "silhouette"
            (L1 to ``num_views`` masks of ``image_size`` px from ring cameras; with ``data=colmap_views`` the
            capture's masks resized to ``image_size``, ``num_views`` of its views spread evenly, null = all).
        split: data split whose shapes are refined; max_shapes: how many of them (None = all).
        baseline: latent-fit schedule of the plain DeepSDF answer; refine: `RefineSchedule`;
        loss: `MeshSDFLoss` (with a silhouette renderer for the silhouette task).
        log_every: save the mesh (PLY) every n iterations and send it (3D object) with its silhouette beside the
            target's (image) to the run's loggers; every iteration's loss terms go there as scalars.
        seed: seed of observations, fits and metrics.
    """

    def __init__(self, checkpoint: str | None, loss: MeshSDFLoss, baseline: LatentFitSchedule, refine: RefineSchedule,
                 task: str, split: str, max_shapes: int | None, num_points: int, num_views: int | None, image_size: int,
                 log_every: int, seed: int, gradient: str):
        if task not in TASKS:
            raise ShapelabError(f"stage.task: {task!r} unknown; use one of {TASKS}")
        self.checkpoint, self.loss, self.baseline, self.refine = checkpoint, loss, baseline, refine
        self.task, self.split, self.max_shapes = task, split, max_shapes
        self.num_points, self.num_views, self.image_size = num_points, num_views, image_size
        self.log_every, self.seed = log_every, seed
        if gradient not in GRADIENTS:
            raise ShapelabError(f"stage.gradient={gradient!r} unknown; use one of {GRADIENTS}")
        self.gradient = gradient

    def run(self, run: StageRun) -> dict[str, float]:
        """Refine every target shape, then score the before / after meshes with the evaluation pipeline
        (``evaluate_predictions``: the documented columns of docs/metrics.md, e.g. ``chamfer_deepsdf``, ``iou``)
        into ``<run>/meshsdf/eval_{before,after}/``; returns ``meshsdf/<column>_{before,after}`` (class means)."""
        cfg, datamodule = run.cfg, run.datamodule
        if not self.checkpoint:
            raise ShapelabError("stage.checkpoint is not set; give a DeepSDF run's checkpoints/last.ckpt")
        if cfg.get("evaluate") is None:
            raise ShapelabError("evaluate: missing from the run config; the meshsdf stage scores with it "
                                "(conf/evaluation/default.yaml)")
        decoder, _ = load_deepsdf_checkpoint(self.checkpoint, cfg.model.get("decoder"))
        out_dir = Path(cfg.paths.output_dir) / "meshsdf"
        shapes = [tuple(shape) for shape in datamodule.split_shapes(self.split)[: self.max_shapes]]
        steps = self.refine.iterations + 1
        for index, target in enumerate(tqdm(self.targets(run, shapes), desc="meshsdf")):
            self.run_shape(decoder, target, out_dir, run.loggers, first_step=index * steps)
        evaluate_cfg = OmegaConf.merge(cfg.evaluate, {"split": self.split})
        metrics = {}
        source = GroundTruthSource.from_datamodule(datamodule)
        scored_labels = ("before", "after") if source.deepsdf_root or source.occnet_root else ()
        if not scored_labels:
            log.warning("meshsdf: the data has no ground truth of these shapes (captures without pointcloud.npz), "
                        "so they are not scored; the before/after meshes are in %s", out_dir)
        for label in scored_labels:
            scored = evaluate_predictions(out_dir / label, "deepsdf", datamodule, evaluate_cfg, out_dir / f"eval_{label}",
                                          shapes=shapes)
            prefix = f"eval/{self.split}/"
            metrics.update({f"meshsdf/{name.removeprefix(prefix)}_{label}": value for name, value in scored.items()
                            if not math.isnan(value)})
        for logger in run.loggers:
            logger.log_metrics(metrics, step=len(shapes) * steps)
            logger.save()
        (out_dir / "results.json").write_text(json.dumps({"mean_over_classes": metrics}, indent=2) + "\n")
        return metrics

    def targets(self, run: StageRun, shapes: list[tuple[str, str]]) -> list[ShapeTarget]:
        """The shapes to refine: the data's observed views (deepsdf frame) when it has them, else ground truth."""
        views = [run.observed_views(shape, self.num_views, self.image_size) for shape in shapes]
        if any(view is None for view in views):
            return load_targets(run.datamodule, shapes, self.split)
        return [ShapeTarget(shape, None, None, view.in_frame("deepsdf")) for shape, view in zip(shapes, views)]

    def run_shape(self, decoder: nn.Module, target: ShapeTarget, out_dir: Path, loggers=(),
                  first_step: int = 0) -> dict[str, trimesh.Trimesh]:
        """Refine one shape; returns ``{"before": mesh, "after": mesh}`` (deepsdf frame), also written to
        ``<out_dir>/{before,after}/<synset>/<model_id>.ply``. Every ``log_every`` iterations the mesh goes to
        ``<out_dir>/<synset>_<model_id>/iter_<i>.ply``; losses, silhouettes and meshes go to ``loggers`` at steps
        ``first_step + iteration`` (shapes follow each other on one step axis, as W&B needs). The silhouette
        picture: the mesh beside the target's mesh from a ring camera, or beside the first observed mask."""
        rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        targets = observation_targets(target, self.task, self.num_points, self.num_views, self.image_size, rng)
        latent = deepsdf_baseline(decoder, targets, self.baseline, generator)
        synset, model_id = target.key
        meshes = {"before": latent_mesh(decoder, latent, self.refine.resolution)}
        name = f"{synset}_{model_id}"
        if target.mesh is not None:
            log_view, log_size = ring_cameras(1, 128), 128
            log_target = render_masks(target.mesh, *log_view, 128)[0]
        else:
            log_view, log_size = (targets["K"][:1], targets["Rt"][:1]), targets["masks"].shape[-1]
            log_target = targets["masks"][0]

        def on_iteration(iteration: int, mesh: trimesh.Trimesh, record: dict) -> None:
            step, key = first_step + iteration, f"meshsdf/{name}"
            for logger in loggers:
                logger.log_metrics({f"{key}/{term}": value for term, value in record.items()}, step=step)
            if iteration % self.log_every == 0:
                _export(mesh, out_dir / name / f"iter_{iteration:04d}.ply")
                if loggers:
                    pictures = torch.cat([render_masks(mesh, *log_view, log_size)[0], log_target], 1)
                    grey = (pictures.numpy() * 255).astype(np.uint8)
                    log_image(loggers, f"{key}/silhouette_vs_target", np.repeat(grey[..., None], 3, -1), step)
                    log_shapes(loggers, key, {"mesh": mesh}, step)

        latent, _ = refine_latent(decoder, latent, self.loss, targets, self.refine, on_iteration, generator,
                                  self.gradient)
        meshes["after"] = latent_mesh(decoder, latent, self.refine.resolution)
        for label, mesh in meshes.items():
            _export(mesh, out_dir / label / synset / f"{model_id}.ply")
        return meshes


def _export(mesh: trimesh.Trimesh, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)


def load_targets(datamodule, shapes: list[tuple[str, str]], split: str) -> list[ShapeTarget]:
    """Ground truth of ``shapes`` of an SDF datamodule: raw mesh + SurfaceSamples, in the deepsdf frame
    (files read by the evaluation's `GroundTruthSource`)."""
    source = GroundTruthSource.from_datamodule(datamodule)
    targets = []
    for synset, model_id in shapes:
        raw = datamodule.dataset_root / "raw" / synset / model_id / "models" / "model_normalized.obj"
        if not raw.is_file():
            raise ShapelabError(f"{raw}: missing; the meshsdf stage needs the raw meshes of the {split} split "
                                "(ShapeNetCore v2 layout under <data_dir>/<name>/raw)")
        truth = source.load(synset, model_id)
        if truth.surface is None or truth.normalisation is None:
            raise ShapelabError(f"{datamodule.format_dir('deepsdf')}: no SurfaceSamples or NormalizationParameters "
                                f"for {synset}/{model_id}; run preprocess.py for the {split} split")
        mesh = trimesh.load(raw, force="mesh", process=False)
        mesh = trimesh.Trimesh(truth.frames.from_original(mesh.vertices, "deepsdf"), mesh.faces, process=False)
        targets.append(ShapeTarget((synset, model_id), mesh, truth.frames.from_original(truth.surface, "deepsdf")))
    return targets
