"""Benchmark: dense vs coarse-to-fine mesh extraction on a trained DeepSDF decoder.

    python bench/mesh_extraction.py                 # final resolution 256
    python bench/mesh_extraction.py --quick         # resolution 128, shorter fit (< 1 min)
    python bench/mesh_extraction.py --ckpt logs/train/runs/<t>/checkpoints/last.ckpt --shape 0

Without ``--ckpt`` the decoder of the default CPU preset (conf/model/deepsdf.yaml: latent 64,
5 x 128, skip at 3) is fitted for a few hundred steps to the SDF of an analytic shape (a box with
a torus through it), with DeepSDF's clamped L1 on near-surface + uniform samples. Prints network
evaluations and wall time of both methods and the DeepSDF Chamfer between the two meshes'
vertices (unit-sphere frame). Last line:
``mesh_extraction queries_ratio=<dense/c2f> time_ratio=<dense/c2f> chamfer=<between the meshes>``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from shapelab.geometry.extraction import extract_mesh
from shapelab.losses.deepsdf import clamped_l1
from shapelab.metrics.chamfer import chamfer_deepsdf
from shapelab.models.networks.deepsdf_decoder import DeepSDFDecoder

from shapelab.config import instantiate_group


def target_sdf(points: torch.Tensor) -> torch.Tensor:
    """Analytic SDF (deepsdf frame) of a box (half sizes 0.45, 0.25, 0.3) unioned with a torus."""
    q = points.abs() - torch.tensor([0.45, 0.25, 0.3])
    box = q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)
    ring = torch.stack([points[:, [0, 1]].norm(dim=-1) - 0.55, points[:, 2]], dim=-1)
    torus = ring.norm(dim=-1) - 0.12
    return torch.minimum(box, torus)


def fit_decoder(steps: int, batch: int, seed: int) -> tuple[DeepSDFDecoder, torch.Tensor]:
    """Fit the default-preset decoder with one fixed latent to ``target_sdf`` (clamped L1, δ=0.1)."""
    torch.manual_seed(seed)
    decoder = instantiate_group("model/deepsdf.decoder", latent_size=64, hidden_dim=128, num_layers=5, skip_layers=(3,), dropout=0.0)
    latent = torch.randn(1, 64) / 8.0
    surface = extract_mesh(target_sdf, 64).mesh
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-3)
    for _ in range(steps):
        near = torch.from_numpy(surface.sample(batch * 9 // 10).astype(np.float32))
        near = near + torch.randn_like(near) * torch.where(torch.rand(len(near), 1) < 0.5, 0.07, 0.022)
        uniform = torch.rand(batch - len(near), 3) * 2 - 1
        xyz = torch.cat([near, uniform])
        loss = clamped_l1(decoder(latent, xyz[None])[0], target_sdf(xyz), 0.1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"fitted decoder: {steps} steps, final clamped L1 {loss.item():.4f}")
    return decoder.eval(), latent


def load_decoder(ckpt: Path, shape: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """Decoder and training latent ``shape`` of a DeepSDF run's checkpoint."""
    from shapelab.stages.meshsdf import load_deepsdf_checkpoint

    decoder, latents = load_deepsdf_checkpoint(ckpt)
    return decoder.eval(), latents[shape : shape + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="resolution 128, 150 fit steps")
    parser.add_argument("--resolution", type=int, default=None, help="final cells per axis (256)")
    parser.add_argument("--ckpt", type=Path, default=None, help="DeepSDF checkpoint (else fit one)")
    parser.add_argument("--shape", type=int, default=0, help="training latent index with --ckpt")
    parser.add_argument("--fit-steps", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    resolution = args.resolution or (128 if args.quick else 256)
    if args.ckpt is not None:
        decoder, latent = load_decoder(args.ckpt, args.shape)
    else:
        decoder, latent = fit_decoder(args.fit_steps or (150 if args.quick else 400), 4096, args.seed)
    decoder, latent = decoder.to(args.device), latent.to(args.device)

    def field(points: torch.Tensor) -> torch.Tensor:
        return decoder(latent, points[None])[0]

    results = {}
    for method in ("dense", "coarse_to_fine"):
        start = time.perf_counter()
        result = extract_mesh(field, resolution, method=method, chunk_size=1 << 17, device=args.device)
        seconds = time.perf_counter() - start
        results[method] = (result, seconds)
        print(f"{method:>15}: res {resolution}  queries {result.num_queries:>10,d}  time {seconds:7.2f} s  "
              f"vertices {len(result.mesh.vertices):,d}  faces {len(result.mesh.faces):,d}")
    (dense, dense_s), (c2f, c2f_s) = results["dense"], results["coarse_to_fine"]
    same_faces = np.array_equal(dense.mesh.faces, c2f.mesh.faces)
    chamfer = chamfer_deepsdf(np.asarray(c2f.mesh.vertices), np.asarray(dense.mesh.vertices))
    print(f"identical triangulation: {same_faces}; device {args.device}, torch threads {torch.get_num_threads()}")
    print(
        f"mesh_extraction queries_ratio={dense.num_queries / c2f.num_queries:.2f} "
        f"time_ratio={dense_s / c2f_s:.2f} chamfer={chamfer:.3g}"
    )


if __name__ == "__main__":
    main()
