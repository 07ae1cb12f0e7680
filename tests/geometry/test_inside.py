"""Inside/outside and signed distance (geometry/inside.py) against exact answers and trimesh ``contains``."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from shapelab.geometry import inside
from shapelab.geometry.sampling import sample_outer_surface, sample_surface

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(-0.6, 0.6, size=(4000, 3))


def box_sdf(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Exact SDF of an axis-aligned box centred at the origin."""
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def sheet(size: float = 0.6, y: float = 0.0) -> trimesh.Trimesh:
    """An open square sheet at height y (a chair seat modelled as a single surface)."""
    h = size / 2
    vertices = np.array([[-h, y, -h], [h, y, -h], [h, y, h], [-h, y, h]])
    return trimesh.Trimesh(vertices, [[0, 2, 1], [0, 3, 2]])


def outside_shell(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Points farther from the surface than the visibility method's shell (where it may differ)."""
    return inside.unsigned_distance(mesh, points) > inside.default_shell_half_thickness(mesh)


@pytest.mark.parametrize("method", ["contains", "winding", "visibility"])
def test_box_sdf_is_exact(method):
    half = np.array([0.3, 0.2, 0.15])
    mesh = trimesh.creation.box(extents=2 * half)
    got = inside.signed_distance(mesh, POINTS, method=method)
    exact = box_sdf(POINTS, half)
    far = outside_shell(mesh, POINTS)
    np.testing.assert_allclose(np.abs(got), np.abs(exact), atol=1e-6)
    np.testing.assert_array_equal(np.sign(got[far]), np.sign(exact[far]))


@pytest.mark.parametrize("method", ["winding", "visibility"])
def test_sphere_sdf_matches_analytic(method):
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    got = inside.signed_distance(mesh, POINTS, method=method)
    exact = np.linalg.norm(POINTS, axis=1) - 0.4
    np.testing.assert_allclose(np.abs(got), np.abs(exact), atol=2e-3)  # polygonal approximation of the sphere
    far = outside_shell(mesh, POINTS) & (np.abs(exact) > 2e-3)
    np.testing.assert_array_equal(got[far] < 0, exact[far] < 0)


@pytest.mark.parametrize("method", ["contains", "winding", "visibility", "auto"])
def test_watertight_agrees_with_trimesh_contains(method):
    mesh = trimesh.boolean.union(
        [trimesh.creation.box(extents=[0.6, 0.1, 0.6]), trimesh.creation.cylinder(0.05, 0.8)],
        engine="manifold",
    )
    assert inside.is_closed(mesh)
    got = inside.occupancy(mesh, POINTS, method=method)
    far = outside_shell(mesh, POINTS) if method == "visibility" else np.ones(len(POINTS), bool)
    np.testing.assert_array_equal(got[far], mesh.contains(POINTS[far]))


def test_mesh_with_small_hole_keeps_its_inside():
    full = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    holed = trimesh.Trimesh(full.vertices, full.faces[1:])
    assert not inside.is_closed(holed)
    got = inside.occupancy(holed, POINTS)
    far = outside_shell(holed, POINTS)
    agreement = (got[far] == full.contains(POINTS[far])).mean()
    assert agreement > 0.998


def test_open_box_is_seen_into():
    """A box without a lid is a container: its inside is empty space, as visibility-based pipelines decide."""
    box = trimesh.creation.box(extents=[0.6, 0.6, 0.6])
    open_box = trimesh.Trimesh(box.vertices, box.faces[box.face_normals[:, 1] < 0.5])
    interior = RNG.uniform(-0.25, 0.25, size=(3000, 3))
    assert inside.occupancy(open_box, interior).mean() < 0.05


def test_internal_faces_and_overlapping_parts():
    """Two overlapping closed boxes (not unioned) plus an internal sheet: inside = the union of the boxes."""
    first = trimesh.creation.box(extents=[0.6, 0.2, 0.4])
    second = trimesh.creation.box(extents=[0.2, 0.8, 0.2])
    messy = trimesh.util.concatenate([first, second, sheet(size=0.3, y=0.05)])
    solid = trimesh.boolean.union([first, second], engine="manifold")
    assert not inside.is_closed(messy)
    got = inside.occupancy(messy, POINTS)
    far = outside_shell(messy, POINTS)
    np.testing.assert_array_equal(got[far], solid.contains(POINTS[far]))
    # ray-parity contains miscounts the doubled walls: the test tells the methods apart
    assert not np.array_equal(messy.contains(POINTS[far]), solid.contains(POINTS[far]))


def test_open_sheet_is_a_thin_solid():
    seat = sheet(size=0.6)
    half_thickness = inside.default_shell_half_thickness(seat)
    got = inside.occupancy(seat, POINTS)
    np.testing.assert_array_equal(got, inside.unsigned_distance(seat, POINTS) < half_thickness)
    near = np.column_stack([RNG.uniform(-0.25, 0.25, 200), RNG.uniform(-1, 1, 200) * 0.9 * half_thickness,
                            RNG.uniform(-0.25, 0.25, 200)])  # fmt: skip
    assert inside.occupancy(seat, near).all()
    assert not inside.winding_occupancy(seat, near).any()  # why winding numbers alone are not enough


def test_flipped_faces_do_not_change_visibility():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    faces = sphere.faces.copy()
    faces[::2] = faces[::2, ::-1]  # inconsistent winding, as in many ShapeNet meshes
    flipped = trimesh.Trimesh(sphere.vertices, faces, process=False)
    assert not inside.is_closed(flipped)
    far = outside_shell(sphere, POINTS)
    np.testing.assert_array_equal(inside.occupancy(flipped, POINTS)[far], sphere.contains(POINTS[far]))
    assert (inside.winding_occupancy(flipped, POINTS) != sphere.contains(POINTS)).mean() > 0.05


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown inside method"):
        inside.occupancy(trimesh.creation.box(), POINTS[:3], method="parity")


def part_soup() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """(union, the same parts overlapping without a union and half the faces flipped), like ShapeNet models."""
    parts = [trimesh.creation.box(extents=[0.6, 0.3, 0.4]), trimesh.creation.box(extents=[0.1, 0.8, 0.1])]
    soup = trimesh.util.concatenate(parts)
    faces = soup.faces.copy()
    faces[::2] = faces[::2, ::-1]
    return trimesh.boolean.union(parts, engine="manifold"), trimesh.Trimesh(
        soup.vertices, faces, process=False
    )


def test_outer_surface_samples_skip_internal_faces():
    solid, soup = part_soup()
    points, _ = sample_outer_surface(soup, 3000, np.random.default_rng(1))
    assert len(points) == 3000
    # every kept sample lies on the union's surface; buried parts of the faces are dropped
    assert inside.unsigned_distance(solid, points).max() < 1e-3
    all_points, all_normals = sample_surface(soup, 3000, np.random.default_rng(1))
    buried = inside.unsigned_distance(solid, all_points) > 1e-3
    assert buried.sum() > 100 and not inside.outer_surface_mask(soup, all_points, all_normals)[buried].any()


def test_signed_distance_to_outer_samples_matches_the_union():
    solid, soup = part_soup()
    outer, _ = sample_outer_surface(soup, 20000, np.random.default_rng(2))
    got = inside.signed_distance(soup, POINTS, surface_points=outer)
    exact = inside.signed_distance(solid, POINTS)
    far = outside_shell(soup, POINTS)
    np.testing.assert_allclose(got[far], exact[far], atol=0.02)
    # exact triangle distances would measure to the buried faces inside the solid
    naive = inside.signed_distance(soup, POINTS)
    assert np.abs(naive[far] - exact[far]).max() > 0.03
