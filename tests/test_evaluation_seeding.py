"""A shape's reconstruction does not depend on which batches were reconstructed before it (resume, partial runs)."""
import numpy as np
import torch
from shapelab.models.base import Reconstruction

from shapelab.evaluation.reconstruct import model_stream


class RandomModel:
    """``reconstruct`` draws from torch's global RNG, as a latent fit's start and sample draws do."""

    device = torch.device("cpu")

    def eval(self):
        return self

    def reconstruct(self, batch):
        return [Reconstruction(frame="occnet", points=torch.rand(4, 3).numpy()) for _ in batch["model_id"]]


class ThreeBatches:
    def test_dataloader(self):
        return [{"synset": ["a", "a"], "model_id": [f"{i}0", f"{i}1"]} for i in range(3)]


def reconstruct(todo, seed):
    torch.manual_seed(seed)
    stream = model_stream(RandomModel(), ThreeBatches(), "test")
    torch.rand(7)  # whatever ran between set-up and reconstruction
    return {key: recon.points for key, recon in stream(todo)}


def test_a_resumed_evaluation_reconstructs_a_shape_as_a_full_one():
    everything = {("a", f"{i}{j}") for i in range(3) for j in range(2)}
    full = reconstruct(everything, seed=0)
    resumed = reconstruct({("a", "20"), ("a", "21")}, seed=0)
    assert resumed.keys() == {("a", "20"), ("a", "21")}
    for key, points in resumed.items():
        np.testing.assert_array_equal(points, full[key])


def test_batches_and_run_seeds_draw_differently():
    everything = {("a", f"{i}{j}") for i in range(3) for j in range(2)}
    first, other_seed = reconstruct(everything, seed=0), reconstruct(everything, seed=1)
    assert not np.array_equal(first["a", "00"], first["a", "10"])
    assert not np.array_equal(first["a", "00"], other_seed["a", "00"])
