"""The opt-in concave built-in categories: watertight, normalised, hollow; the default set is unchanged."""
from __future__ import annotations

import numpy as np
import pytest
from shapelab.datamodules import synthetic
from shapelab.datamodules.concave_shapes import CONCAVE_CATEGORIES


@pytest.mark.parametrize("synset", list(CONCAVE_CATEGORIES))
def test_concave_shapes_are_watertight_normalised_and_hollow(synset):
    for index in range(3):
        mesh = synthetic.generate_shape(synset, index, seed=0)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0, (synset, index)
        low, high = mesh.bounds
        assert np.linalg.norm(high - low) == pytest.approx(1.0)
        # much emptier than its bounding box: walls around a cavity, not a solid
        assert mesh.volume < 0.5 * np.prod(high - low), (synset, index)


def test_default_categories_do_not_include_the_concave_ones():
    assert synthetic.resolve_categories(None) == list(synthetic.CATEGORIES)
    assert not set(CONCAVE_CATEGORIES) & set(synthetic.CATEGORIES)
    assert synthetic.resolve_categories(["mug", "03593526"]) == ["03797390", "03593526"]
