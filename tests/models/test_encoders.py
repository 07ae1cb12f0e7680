"""Conditioning encoders: shapes, invariances, local-only pretrained weights, clear config errors."""
from __future__ import annotations

import pytest
import torch
from shapelab.models.networks.encoders import (
    LatentEncoder,
    pool_points,
)

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError


def encoder_group(name: str, **settings):
    """model/encoder=<name> with its YAML values (in model=occnet), ``settings`` replaced."""
    return instantiate_group(f"model/encoder/{name}", "model=occnet", **settings)


@pytest.mark.parametrize("encoder", ["conv", "resnet18"])
def test_image_encoders_map_images_to_codes_that_depend_on_the_image(encoder):
    torch.manual_seed(0)
    encoder = encoder_group(encoder, c_dim=16).eval()
    images = torch.rand(2, 3, 64, 64)
    codes = encoder(images)
    assert codes.shape == (2, 16)
    assert not torch.allclose(codes[0], codes[1])
    images.requires_grad_(True)
    encoder(images).sum().backward()
    assert images.grad.abs().sum() > 0


def test_resnet18_loads_a_local_weights_file_and_never_downloads(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18(weights=None)
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    encoder = encoder_group("resnet18", c_dim=8, weights_path=str(weights))
    assert torch.equal(encoder.features.conv1.weight, reference.conv1.weight)
    assert torch.equal(encoder.features.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_resnet18_bad_weights_files_raise_one_clear_error(tmp_path):
    with pytest.raises(ShapelabError, match="weights_path"):
        encoder_group("resnet18", c_dim=8, weights_path=str(tmp_path / "missing.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ShapelabError, match="corrupt.pth"):
        encoder_group("resnet18", c_dim=8, weights_path=str(corrupt))
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(ShapelabError, match="resnet18"):
        encoder_group("resnet18", c_dim=8, weights_path=str(other))


@pytest.mark.parametrize("pooling", ["max", "mean", "robust_pseudo_huber", "robust_welsch"])
def test_pointnet_is_invariant_to_point_order(pooling):
    torch.manual_seed(0)
    encoder = encoder_group("pointnet", c_dim=12, hidden_dim=16, pooling=pooling)
    points = torch.randn(3, 50, 3)
    perm = torch.randperm(50)
    codes = encoder(points)
    assert codes.shape == (3, 12)
    torch.testing.assert_close(codes, encoder(points[:, perm]))
    assert not torch.allclose(codes[0], codes[1])


def test_pooling_options_differ_and_unknown_pooling_is_a_config_error():
    x = torch.tensor([[[1.0], [3.0]]])
    assert pool_points(x, "max").item() == 3.0
    assert pool_points(x, "mean").item() == 2.0
    with pytest.raises(ShapelabError, match="pooling"):
        encoder_group("pointnet", c_dim=4, pooling="sum")


def test_voxel_encoder_shapes_and_wrong_grid_error():
    torch.manual_seed(0)
    encoder = encoder_group("voxel", c_dim=10)
    voxels = (torch.rand(2, 32, 32, 32) > 0.5).float()
    codes = encoder(voxels)
    assert codes.shape == (2, 10)
    assert not torch.allclose(codes[0], codes[1])
    with pytest.raises(ShapelabError, match="resolution"):
        encoder(torch.zeros(1, 16, 16, 16))


def test_latent_encoder_is_order_invariant_and_sees_occupancies():
    torch.manual_seed(0)
    encoder = LatentEncoder(z_dim=5, c_dim=7, hidden_dim=16)
    points, occ, c = torch.randn(2, 40, 3), (torch.rand(2, 40) > 0.5).float(), torch.randn(2, 7)
    mean, logstd = encoder(points, occ, c)
    assert mean.shape == logstd.shape == (2, 5)
    perm = torch.randperm(40)
    torch.testing.assert_close(mean, encoder(points[:, perm], occ[:, perm], c)[0])
    assert not torch.allclose(mean, encoder(points, 1 - occ, c)[0])


def test_robust_pooling_codes_move_less_than_max_pooling_under_outliers():
    """Replacing 10 % of the points by far outliers: the robust encoder's code changes less than max pooling's."""
    torch.manual_seed(0)
    points = torch.rand(2, 200, 3) - 0.5
    corrupted = points.clone()
    corrupted[:, :20] = 4.0 * (torch.rand(2, 20, 3) - 0.5)
    changes = {}
    for pooling in ("max", "robust_welsch"):
        torch.manual_seed(1)
        encoder = encoder_group("pointnet", c_dim=16, hidden_dim=32, pooling=pooling, pooling_alpha=0.5)
        clean, noisy = encoder(points), encoder(corrupted)
        changes[pooling] = float((noisy - clean).detach().norm() / clean.detach().norm())
    assert changes["robust_welsch"] < 0.5 * changes["max"], changes


def test_robust_pooling_trains_through_the_encoder():
    encoder = encoder_group("pointnet", c_dim=4, hidden_dim=8, pooling="robust_huber")
    encoder(torch.rand(2, 30, 3)).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_pretrained_resnet18_reads_the_torchvision_cache_and_stops_in_one_line_without_it(tmp_path, monkeypatch):
    """pretrained=True: torchvision's cache file (TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth) is loaded;
    without it one ShapelabError says where to put the file; never a silent random init, never a download."""
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(ShapelabError, match=f"not found at {expected}.*weights_path") as error:
        encoder_group("resnet18", c_dim=8, pretrained=True)
    assert "\n" not in str(error.value)
    torch.manual_seed(2)
    reference = resnet18(weights=None)  # a fake "ImageNet" state dict
    expected.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), expected)
    encoder = encoder_group("resnet18", c_dim=8, pretrained=True)
    assert torch.equal(encoder.features.conv1.weight, reference.conv1.weight)
    other = tmp_path / "elsewhere.pth"
    torch.save(resnet18(weights=None).state_dict(), other)
    from_path = encoder_group("resnet18", c_dim=8, pretrained=True, weights_path=str(other))
    assert not torch.equal(from_path.features.conv1.weight, reference.conv1.weight)
