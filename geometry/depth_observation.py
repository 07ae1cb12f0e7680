"""A single depth image as partial SDF samples: DeepSDF's shape-completion input (Park et al. 2019, Sec. 6.3
"Shape Completion", Table 4).

The paper completes a shape from one depth image by optimising a latent code (Eq. 10) against SDF samples
made from the image: the back-projected depth pixels lie on the surface (SDF 0), and the points between the
camera and the observed surface are free space, known only to be outside (SDF > 0, distance unknown). What
is not seen from the camera gives no sample, so it comes from the learned shape prior alone.

Cameras follow renderers/cameras.py (OpenCV: x right, y down, z forward; ``Rt`` (3, 4) world -> camera;
pixel (col, row) has its centre at (col + 0.5, row + 0.5)); depth images are geometry/raycast.py's: the
camera-space z of the first hit, ``inf`` on the background, in the units of the frame ``Rt`` maps from.
"""
from __future__ import annotations

import torch


def backproject_depth(depth: torch.Tensor, K: torch.Tensor, Rt: torch.Tensor) -> torch.Tensor:
    """World points of the observed pixels of a depth image (row-major order of the pixels).

    Each pixel with finite depth z gives ``R^T (z K^-1 (col + 0.5, row + 0.5, 1) - t)``: the point of the
    ray through the pixel centre at camera-space depth z, i.e. the surface point the ray hit.

    Args:
        depth: (H, W) camera-space z (frame units), ``inf`` = background.
        K: (3, 3) pixel intrinsics.
        Rt: (3, 4) world -> camera.
    Returns:
        (P, 3) points in the frame ``Rt`` maps from, P = number of finite pixels, in the dtype of ``depth``.
    """
    rows, cols = torch.nonzero(torch.isfinite(depth), as_tuple=True)
    z = depth[rows, cols]
    pixels = torch.stack([cols + 0.5, rows + 0.5, torch.ones_like(z)], dim=-1).to(depth.dtype)
    camera_points = z[:, None] * (pixels @ torch.linalg.inv(K.to(depth.dtype)).mT)
    rotation, translation = Rt[:, :3].to(depth.dtype), Rt[:, 3].to(depth.dtype)
    return (camera_points - translation) @ rotation


def camera_centre(Rt: torch.Tensor) -> torch.Tensor:
    """(3,) centre of the camera ``Rt`` (3, 4) (world -> camera) in world coordinates: ``-R^T t``."""
    return -Rt[:, :3].mT @ Rt[:, 3]


def towards_camera(start: torch.Tensor, centre: torch.Tensor, fraction: torch.Tensor, radius: float) -> torch.Tensor:
    """Points a ``fraction`` of the way from surface points towards the camera, within a ball.

    Point k lies on the segment from ``start[k]`` towards ``centre`` at distance ``fraction[k]·reach_k``, where
    reach_k is the shorter of the distance to the camera and the distance to where that ray leaves the ball of
    ``radius`` around the origin (0 for a start outside the ball the ray does not cross).

    Args:
        start: (N, 3) surface points.
        centre: (3,) camera centre, same frame.
        fraction: (N,) values in [0, 1].
        radius: radius of the ball (same units).
    Returns:
        (N, 3) points, dtype of ``start``.
    """
    to_camera = centre.to(start) - start
    distance = to_camera.norm(dim=-1)
    direction = to_camera / distance[:, None]
    along = (start * direction).sum(-1)  # the ray x + s·d leaves the ball at s = -x·d + sqrt((x·d)² - |x|² + r²)
    leave = -along + (along.square() - start.square().sum(-1) + radius**2).clamp(min=0).sqrt()
    reach = torch.minimum(distance, leave.clamp(min=0))
    return start + (fraction.to(start) * reach)[:, None] * direction


def free_space_samples(
    surface: torch.Tensor, centre: torch.Tensor, count: int, radius: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Points of free space: `towards_camera` from surface points drawn uniformly with replacement, with
    fractions ~ U(0, 1). Nothing lies between the camera and the first surface a ray hits, so every such point
    is outside the shape (true SDF > 0); the ball (deepsdf frame: the unit sphere, where the decoder was
    trained) keeps them where the decoder's values mean something.

    Args:
        surface: (P, 3) observed surface points, P >= 1.
        centre: (3,) camera centre, same frame.
        count: number of samples.
        radius: radius of the ball the samples stay in (same units).
        generator: optional torch.Generator for the draws.
    Returns:
        (count, 3) free-space points, dtype of ``surface``.
    """
    index = torch.randint(len(surface), (count,), generator=generator, device=surface.device)
    fraction = torch.rand(count, generator=generator, device=surface.device, dtype=surface.dtype)
    return towards_camera(surface[index], centre, fraction, radius)


def depth_sdf_samples(
    surface: torch.Tensor,
    centre: torch.Tensor,
    num_samples: int,
    free_space_fraction: float,
    radius: float,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Partial SDF samples of one depth view (Sec. 6.3): surface samples with SDF 0 and free-space samples
    known only to be outside.

    ``round(num_samples · free_space_fraction)`` samples come from `free_space_samples`; the others are
    observed surface points drawn uniformly with replacement. Free-space samples carry ``sdf`` 0 as a lower
    bound and ``free_space`` True: the latent fit penalises only predictions below it
    (``losses.deepsdf.free_space_l1``).

    Args:
        surface: (P, 3) back-projected pixels (`backproject_depth`), deepsdf frame, P >= 1.
        centre: (3,) camera centre, deepsdf frame.
        num_samples: samples returned.
        free_space_fraction: share of free-space samples, in [0, 1].
        radius: the free-space samples' ball (deepsdf frame: 1).
        generator: optional torch.Generator.
    Returns:
        ``{"xyz": (num_samples, 3), "sdf": (num_samples,) zeros, "free_space": (num_samples,) bool}``,
        surface samples first.
    """
    num_free = round(num_samples * free_space_fraction)
    picked = torch.randint(len(surface), (num_samples - num_free,), generator=generator, device=surface.device)
    xyz = torch.cat([surface[picked], free_space_samples(surface, centre, num_free, radius, generator)])
    free = torch.arange(num_samples, device=surface.device) >= num_samples - num_free
    return {"xyz": xyz, "sdf": torch.zeros(num_samples, dtype=surface.dtype, device=surface.device), "free_space": free}
