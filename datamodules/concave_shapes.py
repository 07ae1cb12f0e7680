"""Built-in shapes with deep concavities (high SION%), for level-set fitting (Small Steps and Level Sets).

Four extra categories, named after the ShapeNet synsets they resemble, that are *not* part of the default
built-in set (select them with ``data.build.categories=[mug,bowl,jar,cabinet]``; the five default
categories and their files are unchanged):

- mug (03797390): a hollow cylinder, open at the top, with a C-shaped handle;
- bowl (02880940): a spherical-cap shell with a foot ring;
- jar (03593526): a hollow vase of revolution with a bulging body and a narrow neck — a closed shell
  with one small opening;
- cabinet (02933112): a box with rows × columns of deep compartments open at the front.

Walls are 0.03-0.06 of the longest side thick, so every mesh is watertight (manifold3d booleans /
closed surfaces of revolution) and survives the usual preprocessing. Same conventions as
datamodules/synthetic.py: y up, one deterministic generator per shape.
"""
from __future__ import annotations

import numpy as np
import trimesh

CONCAVE_CATEGORIES = {
    "03797390": "mug",
    "02880940": "bowl",
    "03593526": "jar",
    "02933112": "cabinet",
}
SECTIONS = 32  # segments around an axis of revolution


def lathe(profile: np.ndarray) -> trimesh.Trimesh:
    """Closed solid of revolution about the y axis from a (K, 2) profile of (radius, height) that starts and
    ends on the axis (radius 0)."""
    mesh = trimesh.creation.revolve(profile, sections=SECTIONS)  # about z
    return mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))


def hollow_profile(outer: np.ndarray, wall: float, bottom: float) -> np.ndarray:
    """Profile of a vessel: the outer wall ``outer`` (K, 2) (radius, height) from the base up to the rim, a
    rim, the inner wall ``wall`` inside it back down to the floor at height ``bottom``."""
    inner = outer[::-1].copy()
    inner[:, 0] -= wall
    inner = inner[inner[:, 1] >= bottom]
    inner = np.vstack([inner, [inner[-1, 0], bottom]])
    return np.vstack([[0.0, 0.0], outer, inner, [0.0, bottom]])


def make_mug(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    height, radius = rng.uniform(0.7, 1.1), rng.uniform(0.3, 0.45)
    taper, wall = rng.uniform(0.0, 0.08), rng.uniform(0.03, 0.05)
    heights = np.linspace(0.0, height, 8)
    outer = np.column_stack([radius - taper * (1 - heights / height), heights])
    parts = [lathe(hollow_profile(outer, wall, rng.uniform(0.05, 0.1)))]
    grip, reach = rng.uniform(0.04, 0.06), rng.uniform(0.15, 0.25)
    low, high = rng.uniform(0.15, 0.3) * height, rng.uniform(0.7, 0.85) * height
    x0 = radius - wall / 2  # handle bars start inside the wall, never in the cavity
    for y in (low, high):
        parts.append(trimesh.creation.box([reach + wall / 2, grip, grip],
                                          trimesh.transformations.translation_matrix([x0 + (reach + wall / 2) / 2, y, 0])))
    parts.append(trimesh.creation.box([grip, high - low + grip, grip],
                                      trimesh.transformations.translation_matrix([x0 + reach, (low + high) / 2, 0])))
    return parts


def make_bowl(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    radius, depth = rng.uniform(0.5, 0.7), rng.uniform(0.55, 0.95)  # depth: fraction of a hemisphere
    wall = rng.uniform(0.03, 0.05)
    angles = np.linspace(0.0, depth * np.pi / 2, 12)
    outer = np.column_stack([radius * np.sin(angles), radius * (1 - np.cos(angles))])
    outer[0, 0] = 0.05  # a flat base instead of a point on the axis
    foot = rng.uniform(0.3, 0.5) * radius
    parts = [lathe(hollow_profile(outer, wall, wall * 1.5))]
    parts.append(lathe(np.array([[0.0, -0.04], [foot, -0.04], [foot, 0.12], [0.0, 0.12]])))
    return parts


def make_jar(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    height, belly = rng.uniform(0.9, 1.3), rng.uniform(0.3, 0.45)
    neck, wall = rng.uniform(0.08, 0.14), rng.uniform(0.03, 0.045)
    neck_start = rng.uniform(0.7, 0.85) * height
    heights = np.linspace(0.0, height, 14)
    body = belly * np.sin(np.clip(heights / neck_start, 0.0, 1.0) * np.pi * 0.5 + 0.45) ** 1.5
    radii = np.where(heights < neck_start, np.maximum(body, neck + 0.02), neck + 0.02)
    radii[0] = belly * 0.6
    outer = np.column_stack([radii, heights])
    return [lathe(hollow_profile(outer, wall, 0.06))]


def make_cabinet(rng: np.random.Generator) -> list[trimesh.Trimesh]:
    width, height, depth = rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.2), rng.uniform(0.35, 0.6)
    wall = rng.uniform(0.03, 0.05)
    rows, columns = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    body = trimesh.creation.box([width, height, depth])
    cell_w, cell_h = (width - wall) / columns, (height - wall) / rows
    slot_depth = depth - wall
    slots = []
    for row in range(rows):
        for column in range(columns):
            centre = [-width / 2 + wall + cell_w * (column + 0.5) - wall / 2,
                      -height / 2 + wall + cell_h * (row + 0.5) - wall / 2,
                      depth / 2 - slot_depth / 2 + 0.01]
            slots.append(trimesh.creation.box([cell_w - wall, cell_h - wall, slot_depth + 0.02],
                                              trimesh.transformations.translation_matrix(centre)))
    return [trimesh.boolean.difference([body, *slots], engine="manifold")]


CONCAVE_MAKERS = {
    "03797390": make_mug,
    "02880940": make_bowl,
    "03593526": make_jar,
    "02933112": make_cabinet,
}
