"""The visual-hull test behind the object frame: a sparse point counts as the object only when most views that
see it in their image see it inside their mask (not only the views that observed it)."""
from __future__ import annotations

import numpy as np
from shapelab.sfm.frame import object_points
from shapelab.sfm.outputs import mask_share


def reference_share(pixels, masks):
    shares = []
    for n in range(len(pixels[0])):
        votes = []
        for uv, mask in zip(pixels, masks):
            if np.isnan(uv[n]).any():
                continue
            x, y = int(np.floor(uv[n, 0])), int(np.floor(uv[n, 1]))
            if 0 <= x < mask.shape[1] and 0 <= y < mask.shape[0]:
                votes.append(mask[y, x])
        shares.append(np.mean(votes) if votes else 0.0)
    return np.array(shares)


def test_mask_share_matches_a_loop_over_views_and_points():
    rng = np.random.default_rng(0)
    masks = [rng.random((12, 16)) > 0.4 for _ in range(5)]
    pixels = [rng.uniform(-3, 19, (200, 2)) for _ in range(5)]
    for uv in pixels:
        uv[rng.random(200) < 0.1] = np.nan  # behind that camera
    np.testing.assert_allclose(mask_share(pixels, masks), reference_share(pixels, masks))


def test_a_point_inside_the_masks_of_its_two_views_but_off_the_object_is_dropped():
    """Four views of a centred object (mask = the middle of the image); the outlier was triangulated from views 0
    and 1 (inside their masks) but projects outside the masks of views 2 and 3: share 0.5 < 0.8."""
    mask = np.zeros((10, 10), bool)
    mask[3:7, 3:7] = True
    on_object = np.array([5.0, 5.0])
    pixels = [np.array([on_object, on_object]), np.array([on_object, on_object]),
              np.array([on_object, [9.0, 1.0]]), np.array([on_object, [0.5, 8.0]])]
    share = mask_share(pixels, [mask] * 4)
    np.testing.assert_allclose(share, [1.0, 0.5])
    points = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0]])
    np.testing.assert_array_equal(object_points(np.vstack([points[:1]] * 4 + [points[1:]]),
                                                np.array([1.0] * 4 + [share[1]]), 0.8), np.zeros((4, 3)))
