"""Differentiable soft silhouettes of triangle meshes (SoftRas, Liu et al. 2019, Eqs. 1-2).

Each face j covers pixel i with probability

    D_j(i) = sigmoid(delta_ij * d(i, j)^2 / sigma),   delta_ij = +1 inside the projected triangle, -1 outside,

d the 2D distance from the pixel centre to the triangle's boundary (pixels) and sigma (px^2) the
sharpness (smaller = sharper; sigma -> 0 gives the hard silhouette). The silhouette aggregates the
faces as a probabilistic union, ``S(i) = 1 - prod_j (1 - D_j(i))``, computed as
``1 - exp(sum_j logsigmoid(-delta d^2 / sigma))`` for stability.

Cost and memory: a face only meets the pixels whose centre lies within ``sqrt(CUTOFF * sigma)``
pixels of its 2D bounding box (farther faces change S by < 1e-6 each); these sparse pixel-face
pairs are evaluated in chunks of at most ``max_pairs``. Cameras: OpenCV K, [R|t] (renderers/cameras.py), pixel
centres at +0.5; the mesh must be in front of every camera.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from shapelab.renderers.cameras import project
from torch import nn

CUTOFF = 14.0  # sigmoid(-14) < 1e-6: faces farther than sqrt(CUTOFF * sigma) px are skipped
AGGREGATIONS = ("softras", "nearest_outside")


def cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """z-component of the 2D cross product, (..., 2) x (..., 2) -> (...)."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def signed_squared_distance(pixels: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """delta * d^2 of pixel i to triangle i: pixels (M, 2), triangles (M, 3, 2) -> (M,).

    d is the distance to the nearest edge segment; delta = +1 for pixels strictly inside.
    """
    edge = torch.roll(triangles, -1, dims=1) - triangles  # (M, 3, 2)
    offset = pixels[:, None, :] - triangles
    length_sq = (edge * edge).sum(-1).clamp_min(1e-12)
    t = ((offset * edge).sum(-1) / length_sq).clamp(0.0, 1.0)
    distance_sq = ((offset - t[..., None] * edge) ** 2).sum(-1).min(dim=-1).values
    side = cross2(edge, offset)  # (M, 3)
    inside = (side > 0).all(-1) | (side < 0).all(-1)
    return torch.where(inside, distance_sq, -distance_sq)


def pixel_face_pairs(triangles: torch.Tensor, height: int, width: int, reach: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel index (M,), face index (M,)) of the pixels whose centre lies within a face's bounding box
    grown by ``reach`` pixels, for triangles (F, 3, 2); pixel index = row * width + col."""
    box = triangles.detach()
    col0 = (box[..., 0].min(1).values - reach - 0.5).ceil().clamp(0, width).long()
    col1 = (box[..., 0].max(1).values + reach - 0.5).floor().clamp(-1, width - 1).long() + 1
    row0 = (box[..., 1].min(1).values - reach - 0.5).ceil().clamp(0, height).long()
    row1 = (box[..., 1].max(1).values + reach - 0.5).floor().clamp(-1, height - 1).long() + 1
    cols, rows = (col1 - col0).clamp_min(0), (row1 - row0).clamp_min(0)
    counts = cols * rows
    face = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    local = torch.arange(len(face), device=counts.device) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    pixel = (row0[face] + local // cols[face]) * width + col0[face] + local % cols[face]
    return pixel, face


def rasterise_soft_silhouette(
    triangles: torch.Tensor, height: int, width: int, sigma: float = 1.0, max_pairs: int = 1 << 21,
    aggregation: str = "softras",
) -> torch.Tensor:
    """Soft silhouette (H, W) of 2D triangles (F, 3, 2) in pixel coordinates.

    ``aggregation``: "softras" is SoftRas Eq. 2 everywhere. "nearest_outside" keeps it at pixels
    covered by a face but uses only the nearest face, sigmoid(-d_min^2 / sigma), at uncovered pixels:
    the union of many small faces (dense marching-cubes meshes, grazing faces stacked at the contour)
    otherwise bloats the silhouette by about a pixel at sigma = 1, which biases silhouette fitting.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation {aggregation!r} unknown; use one of {AGGREGATIONS}")
    log_transmission = triangles.new_zeros(height * width)
    nearest = triangles.new_full((height * width,), -math.inf)  # max_j of -d^2 / sigma outside
    reach = math.sqrt(CUTOFF * sigma)
    pixel, face = pixel_face_pairs(triangles, height, width, reach)
    for start in range(0, len(pixel), max_pairs):
        p, f = pixel[start : start + max_pairs], face[start : start + max_pairs]
        centres = torch.stack([p % width, p // width], dim=-1).to(triangles.dtype) + 0.5
        logits = signed_squared_distance(centres, triangles[f]) / sigma
        log_transmission = log_transmission.index_add(0, p, F.logsigmoid(-logits))
        if aggregation == "nearest_outside":
            nearest = nearest.scatter_reduce(0, p, logits, reduce="amax")
    silhouette = 1.0 - torch.exp(log_transmission)
    if aggregation == "nearest_outside":
        silhouette = torch.where(nearest > 0, silhouette, torch.sigmoid(nearest))
    return silhouette.reshape(height, width)


def soft_silhouette(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    Rt: torch.Tensor,
    image_size: tuple[int, int],
    sigma: float = 1.0,
    max_pairs: int = 1 << 21,
    cull_backfaces: bool = False,
    aggregation: str = "softras",
) -> torch.Tensor:
    """Soft silhouettes of one mesh seen by V cameras.

    Args:
        vertices: (N, 3) world coordinates (any frame the cameras map from); differentiable.
        faces: (F, 3) long.
        K: (V, 3, 3) pixel intrinsics; Rt: (V, 3, 4) world-to-camera (OpenCV).
        image_size: (H, W) pixels.
        sigma: sharpness in px^2 (SoftRas sigma; 1e-2 is nearly hard, 1 to 4 gives wide gradients).
        max_pairs: memory bound, pixel-face pairs evaluated at once.
        cull_backfaces: drop faces turned away from the camera (outward-oriented faces assumed);
            for a closed mesh the hard silhouette is unchanged and the cost halves.
        aggregation: "softras" or "nearest_outside", see `rasterise_soft_silhouette`.
    Returns:
        (V, H, W) silhouettes in [0, 1].
    """
    height, width = image_size
    K, Rt = K.to(vertices), Rt.to(vertices)
    uv = project(vertices[None], K, Rt)  # (V, N, 2)
    images = []
    for view, rotation, translation in zip(uv, Rt[:, :, :3], Rt[:, :, 3]):
        kept = faces
        if cull_backfaces:
            corners = vertices.detach()[faces]
            normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            camera_centre = -rotation.detach().T @ translation.detach()
            kept = faces[((camera_centre - corners.mean(1)) * normals).sum(-1) > 0]
        images.append(rasterise_soft_silhouette(view[kept], height, width, sigma, max_pairs, aggregation))
    return torch.stack(images)


class SoftSilhouette(nn.Module):
    """Renderer config ``renderer=soft_silhouette``: ``forward(vertices, faces, K, Rt, image_size) -> (V, H, W)``."""

    def __init__(self, *, sigma: float, max_pairs: int = 1 << 21, cull_backfaces: bool, aggregation: str):
        super().__init__()
        self.sigma, self.max_pairs, self.cull_backfaces, self.aggregation = sigma, max_pairs, cull_backfaces, aggregation

    def forward(self, vertices, faces, K, Rt, image_size) -> torch.Tensor:
        return soft_silhouette(vertices, faces, K, Rt, image_size, self.sigma, self.max_pairs, self.cull_backfaces,
                               self.aggregation)
