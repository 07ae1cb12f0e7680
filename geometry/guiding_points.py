"""Guiding points of Small Steps and Level Sets (Koneputugodage et al., CVPR 2024): point-only operations.

Guiding points Y (M, 3) with outward unit normals n (M, 3) describe the current level set of the fitted SDF.
They start on a sphere around the input points X (N, 3), are marched inward to the surface dilated by a
radius r, and then repeatedly step *along their inward normal* toward their matched input point, so that
they stop r short of it (``guide_step``). r follows a schedule of multiples of the point spacing
(16 → 4 → 2 → 1 × spacing in the released code). Everything here works in the fitting frame (input centred,
max radius 1/1.2, see `models.level_set.FitFrame`); constants follow the released code (``pgsdf.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree


def point_spacing(points: np.ndarray, neighbours: int = 4, top_fraction: float = 0.05) -> float:
    """The point spacing ("pcd_rad" of the released code): for each k = 1..``neighbours``, the mean of the
    largest ``top_fraction`` of the k-th nearest-neighbour distances, averaged over k. points: (N, 3)."""
    distances, _ = cKDTree(points).query(points, k=neighbours + 1, workers=-1)
    ordered = np.sort(distances[:, 1:], axis=0)
    return float(ordered[int(len(points) * (1.0 - top_fraction)):].mean())


def sphere_samples(count: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` points (count, 3) uniform on the sphere of ``radius`` around the origin."""
    z = rng.uniform(-1.0, 1.0, count)
    theta = rng.uniform(-np.pi, np.pi, count)
    ring = np.sqrt(1.0 - z**2)
    return radius * np.stack([ring * np.sin(theta), ring * np.cos(theta), z], axis=1)


def march_to_offset_surface(points: np.ndarray, normals: np.ndarray, inputs: cKDTree, radius: float, step: float,
                            max_steps: int, rng: np.random.Generator, jitter: float = 0.3,
                            domain_radius: float = 1.05) -> tuple[np.ndarray, np.ndarray]:
    """March points (M, 3) inward along their outward ``normals`` (M, 3) (plus ``jitter``·N(0, 1), renormalised)
    in steps of ``step`` until they are within ``radius`` of an input point (``inputs``: KD-tree of X) or
    leave the ball of ``domain_radius``; then snap the arrived ones onto the r-offset surface of X.

    Returns (points (K, 3), outward normals (K, 3)): x* + r·u and u = (y - x*)/||y - x*||, x* the nearest
    input point of each arrived y (``move_to_lvlset`` of the released code)."""
    direction = normals + jitter * rng.standard_normal(normals.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    points = points.copy()
    for _ in range(max_steps):
        distance, _ = inputs.query(points, workers=-1)
        moving = (distance > radius) & (np.linalg.norm(points, axis=1) < domain_radius)
        if not moving.any():
            break
        points[moving] -= step * direction[moving]
    distance, nearest = inputs.query(points, workers=-1)
    arrived = (distance <= radius) & (np.linalg.norm(points, axis=1) < domain_radius) & (distance > 0)
    anchor = inputs.data[nearest[arrived]]
    outward = points[arrived] - anchor
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    return anchor + radius * outward, outward


def exterior_offset_points(start: np.ndarray, inputs: cKDTree, radius: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on the input dilated by ``radius`` and their outward normals, (K, 3) each (released
    ``find_exterior_level_set`` with one inward and no extra "bounce" pass): points ``start`` (S, 3) on the
    unit sphere march inward (step r/10, 30 % direction noise); from where they arrived (+1e-3 outward) they
    march outward again (10 % noise), which reaches dilated walls an inward march from the sphere cannot — the
    far side of a cavity. Both sets together."""
    step = radius / 10
    march = lambda points, normals, jitter: march_to_offset_surface(points, normals, inputs, radius, step,
                                                                    int(2.5 / step), rng, jitter)
    inward, inward_normals = march(start, start / np.linalg.norm(start, axis=1, keepdims=True), 0.3)
    outward, outward_normals = march(inward + 1e-3 * inward_normals, -inward_normals, 0.1)
    return np.concatenate([inward, outward]), np.concatenate([inward_normals, outward_normals])


def even_subset(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``count`` points (N, 3) spread evenly: one random point per occupied voxel of a grid
    fine enough to hold about 2·count occupied voxels, then a random choice among those (a cheap stand-in for
    the released code's farthest point sampling)."""
    if len(points) <= count:
        return np.arange(len(points))
    extent = float(np.ptp(points, axis=0).max()) or 1.0
    cell = extent / np.sqrt(2.0 * count)  # a surface of side `extent` covers ~(extent/cell)^2 cells
    while True:
        keys = np.floor(points / cell).astype(np.int64)
        order = rng.permutation(len(points))
        _, first = np.unique(keys[order], axis=0, return_index=True)
        if len(first) >= count or cell < 1e-6:
            chosen = order[first]
            return np.sort(rng.choice(chosen, min(count, len(chosen)), replace=False))
        cell /= 1.5


@dataclass
class GuideStep:
    """One small step of the guiding points: the moved points (K, 3) and their normals (K, 3) for the
    ``matched`` ones (M,) bool, their matched input index (K,), and the signed step length along the inward
    normal (K,) (positive = inward) with the cap it was clamped to."""

    points: torch.Tensor
    normals: torch.Tensor
    matched: torch.Tensor
    targets: torch.Tensor
    steps: torch.Tensor
    cap: float


def inward_cone_match(guides: torch.Tensor, normals: torch.Tensor, inputs: torch.Tensor, spacing: float,
                      cone_cos: float = 0.9, near_factor: float = 2.0, max_distance: float = 0.9999,
                      tree: cKDTree | None = None, candidates: int = 32,
                      chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each guiding point y (M, 3) with outward normal n (M, 3): the nearest input point x (N, 3) that is
    inside its inward cone (cos(x - y, -n) > ``cone_cos``), or in front of it (cos > 0) and within
    ``near_factor``·``spacing``; no match when none is nearer than ``max_distance`` (released code:
    ``move_points``, cone cos 0.9, half ball 2 × spacing, 0.9999).

    Exact, in two passes: the ``candidates`` nearest inputs of each guide (KD-tree ``tree`` of ``inputs``, built
    when None) are tested in order of distance; only the guides with no allowed point among them, and inputs
    still within ``max_distance``, are solved by brute force over every input (``chunk`` guides at a time; None:
    about 2^22 guide-input pairs at a time).
    Returns (matched (M,) bool, index (M,) long into inputs; meaningless where unmatched), on guides' device."""
    y, inward = guides.detach().cpu().double().numpy(), -normals.detach().cpu().double().numpy()
    x = inputs.detach().cpu().double().numpy()
    tree = cKDTree(x) if tree is None else tree
    count = min(candidates, len(x))
    distance, index = tree.query(y, k=count, workers=-1)
    distance, index = distance.reshape(len(y), count), index.reshape(len(y), count)
    allowed = _allowed(x[index] - y[:, None], distance, inward[:, None], spacing, cone_cos, near_factor)
    found = allowed.any(axis=1)
    first = allowed.argmax(axis=1)
    rows = np.arange(len(y))
    best, best_index = np.where(found, distance[rows, first], np.inf), index[rows, first]
    unresolved = np.flatnonzero(~found & (distance[:, -1] <= max_distance))
    chunk = chunk or max(1, (1 << 22) // len(x))
    for part in np.array_split(unresolved, max(1, -(-len(unresolved) // chunk))):
        offset = x[None] - y[part, None]
        full = np.linalg.norm(offset, axis=-1)
        ok = _allowed(offset, full, inward[part, None], spacing, cone_cos, near_factor)
        masked = np.where(ok, full, np.inf)
        best_index[part] = masked.argmin(axis=1)
        best[part] = masked[np.arange(len(part)), best_index[part]]
    as_tensor = lambda array, dtype: torch.as_tensor(array, dtype=dtype, device=guides.device)
    return as_tensor(best <= max_distance, torch.bool), as_tensor(best_index, torch.long)


def _allowed(offset: np.ndarray, distance: np.ndarray, inward: np.ndarray, spacing: float, cone_cos: float,
             near_factor: float) -> np.ndarray:
    """Inside the inward cone, or in front and within near_factor·spacing: offset (m, k, 3) from guide to input,
    distance (m, k), inward normals (m, 1, 3)."""
    cosine = (offset * inward).sum(-1) / np.maximum(distance, 1e-12)
    return (cosine > cone_cos) | ((cosine > 0) & (distance < near_factor * spacing))


def capped_step_lengths(target: torch.Tensor, cap_floor: float) -> tuple[torch.Tensor, float]:
    """Clamp step lengths (K,) to [-c, c], c = max(min(target), ``cap_floor``) (released code: floor 0.1).

    The cap is the floor unless every point still has further to go than that, when all move the same
    (smallest) distance."""
    cap = max(float(target.min()), cap_floor) if len(target) else cap_floor
    return target.clamp(-cap, cap), cap


def guide_step(guides: torch.Tensor, normals: torch.Tensor, inputs: torch.Tensor, radius: float, spacing: float,
               cone_cos: float = 0.9, cap_floor: float = 0.1, tree: cKDTree | None = None) -> GuideStep:
    """Move each matched guiding point along its inward normal so that it heads to ``radius`` short of its
    matched input point: target t = ((x - y)/||x - y|| · (||x - y|| - r)) · (-n), step = clamp(t, ±cap),
    y' = y - n·step. Unmatched points are dropped. guides, normals (M, 3); inputs (N, 3) (``tree``: their KD-tree)."""
    matched, index = inward_cone_match(guides, normals, inputs, spacing, cone_cos, tree=tree)
    y, n, x = guides[matched], normals[matched], inputs[index[matched]]
    offset = x - y
    distance = offset.norm(dim=-1, keepdim=True)
    target = (offset / distance * (distance - radius) * -n).sum(-1)
    steps, cap = capped_step_lengths(target, cap_floor)
    return GuideStep(y - n * steps[:, None], n, matched, index[matched], steps, cap)
