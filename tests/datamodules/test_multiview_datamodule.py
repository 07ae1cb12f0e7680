"""MultiViewDataModule: images, silhouettes, background distances, cameras and FPS ground truth."""
from __future__ import annotations

import itertools

import hydra
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from shapelab.datamodules.common import resize_mask, white_background_mask
from shapelab.datamodules.formats.occnet import read_cameras, read_pointcloud
from shapelab.datamodules.multiview import MultiViewDataModule, background_distance
from shapelab.geometry.farthest_points import capnet_reference_points, farthest_point_sampling
from shapelab.renderers.cameras import project

from shapelab.config import instantiate_group
from shapelab.errors import ShapelabError
from tests.datamodules.conftest import IMAGE_SIDE, LOC, NUM_VIEWS, SCALE, corrupt


def make(data_dir, **kwargs) -> MultiViewDataModule:
    options = {"dataset_name": "tiny", "build": None, "batch_size": 2, "eval_batch_size": 2, "image_size": None,
               "mask_size": IMAGE_SIDE, "surface_points": 512, "gt_points": 64, "seed": 0}
    return instantiate_group("data/synthetic_views", data_dir=data_dir, **{**options, **kwargs})


def view_dir(data_dir, model_id):
    return data_dir / "tiny" / "occnet" / "s1" / model_id / "img_choy2016"


def view_of(image: torch.Tensor) -> int:
    """The fixture's view index, read from the grey level (20 v) of its square."""
    return round(image.min().item() * 255 / 20)


def test_batch_keys_shapes_dtypes(occnet_data):
    datamodule = make(occnet_data, image_size=32, mask_size=16)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert set(batch) == {"image", "masks", "dist", "K", "Rt", "points_gt", "index", "synset", "model_id"}
    expected = {"image": (2, 3, 32, 32), "masks": (2, 4, 16, 16), "dist": (2, 4, 16, 16), "K": (2, 4, 3, 3),
                "Rt": (2, 4, 3, 4), "points_gt": (2, 64, 3)}
    for key, shape in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == torch.float32, key
    assert set(batch["masks"].unique().tolist()) == {0.0, 1.0}
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    # val/test: every input view (eval_input_views None), view 0 first and equal to the input image
    datamodule = make(occnet_data, image_size=32, mask_size=16, eval_input_views=None)
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["images"].shape[1:] == (NUM_VIEWS, 3, 32, 32)
    assert torch.equal(batch["images"][:, 0], batch["image"])
    limited = make(occnet_data, image_size=32, mask_size=16, eval_input_views=2)
    limited.setup("validate")
    assert next(iter(limited.val_dataloader()))["images"].shape[1] == 2


def test_masks_from_white_background_and_views_distinct_input_first(occnet_data):
    datamodule = make(occnet_data)
    datamodule.setup("fit")
    train = datamodule.dataset("train")
    for seed in range(5):
        item = train[(0, seed)]
        # the fixture's view v is a 12 x 12 square at rows 10+v.., cols 8..20: the mask gives the view back
        rows = [int(np.nonzero(mask.any(1).numpy())[0][0]) - 10 for mask in item["masks"]]
        assert rows[0] == view_of(item["image"]) and len(set(rows)) == 4
        assert item["masks"].sum((1, 2)).tolist() == [144.0] * 4


def test_val_input_is_view_zero_and_training_views_vary(occnet_data):
    datamodule = make(occnet_data)
    datamodule.setup("fit")
    val, train = datamodule.dataset("val"), datamodule.dataset("train")
    assert {view_of(val[(0, seed)]["image"]) for seed in range(20)} == {0}
    assert len({view_of(train[(0, seed)]["image"]) for seed in range(30)}) >= 4


def test_mask_folder_is_preferred(occnet_data):
    for model_id in ("m0", "m1", "m2", "m3"):
        (view_dir(occnet_data, model_id) / "mask").mkdir()
        for view in range(NUM_VIEWS):
            mask = np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.uint8)
            mask[:5, :7] = 255
            Image.fromarray(mask).save(view_dir(occnet_data, model_id) / "mask" / f"{view:03d}.png")
    datamodule = make(occnet_data)
    datamodule.setup("fit")
    assert datamodule.dataset("train")[0]["masks"].sum((1, 2)).tolist() == [35.0] * 4


def test_dist_matches_brute_force_distance_to_the_mask():
    mask = np.zeros((9, 11), bool)
    mask[2:4, 3:6] = mask[7, 9] = True
    fg = np.argwhere(mask)
    expected = np.array([[np.sqrt(((fg - (r, c)) ** 2).sum(1)).min() for c in range(11)] for r in range(9)])
    np.testing.assert_allclose(background_distance(mask), expected, rtol=1e-6)
    np.testing.assert_allclose(background_distance(np.zeros((4, 4), bool)), np.hypot(4, 4), rtol=1e-6)


def test_farthest_point_sampling_matches_a_loop_reference():
    points = np.random.default_rng(0).normal(size=(60, 3))
    chosen = [0]
    for _ in range(9):
        distances = [min(np.linalg.norm(p - points[c]) for c in chosen) for p in points]
        chosen.append(int(np.argmax(distances)))
    np.testing.assert_array_equal(farthest_point_sampling(points, 10), chosen)
    assert sorted(farthest_point_sampling(points, 100)) == list(range(60))


def test_points_gt_is_fixed_fps_of_the_surface(occnet_data):
    datamodule = make(occnet_data)
    datamodule.setup("fit")
    train = datamodule.dataset("train")
    first, other = train[(1, 5)]["points_gt"], train[(1, 6)]["points_gt"]
    assert torch.equal(first, other)  # fixed per shape, whatever the item seed
    with np.load(view_dir(occnet_data, "m1").parent / "pointcloud.npz") as data:
        surface = data["points"].astype(np.float32)
    assert torch.isin(first[:, 0], torch.from_numpy(surface[:, 0])).all()  # occnet frame: file points
    assert torch.equal(first, torch.from_numpy(capnet_reference_points(surface, 64, 512)))  # as test scoring
    spread = torch.cdist(first, first).fill_diagonal_(np.inf).min()
    random_subset = torch.from_numpy(surface[:64])
    assert spread > torch.cdist(random_subset, random_subset).fill_diagonal_(np.inf).min()


def test_cameras_scaled_to_masks_and_expressed_in_the_occnet_frame(occnet_data):
    datamodule = make(occnet_data, mask_size=20)
    datamodule.setup("test")
    item = datamodule.dataset("test")[0]
    assert torch.allclose(item["K"][0], torch.tensor([[21.875, 0, 10.0], [0, 21.875, 10.0], [0, 0, 1]]))
    cameras = np.load(view_dir(occnet_data, "m4") / "cameras.npz")
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3))
    K0, Rt0 = cameras["camera_mat_0"], cameras["world_mat_0"]
    loc, scale = LOC.astype(np.float16).astype(np.float64), float(np.float16(SCALE))
    pixels_file = project(points * scale + loc, K0, Rt0) * 20 / IMAGE_SIDE  # file cameras: original frame
    pixels_batch = project(points, item["K"][0].double().numpy(), item["Rt"][0].double().numpy())
    np.testing.assert_allclose(pixels_batch, pixels_file, atol=1e-3)


def test_deterministic_given_seed(occnet_data):
    def first_batch(seed):
        datamodule = make(occnet_data, seed=seed)
        datamodule.setup("fit")
        return next(iter(datamodule.train_dataloader()))

    first, again, other = first_batch(0), first_batch(0), first_batch(1)
    assert torch.equal(first["masks"], again["masks"]) and torch.equal(first["Rt"], again["Rt"])
    assert not all(torch.equal(first[key], other[key]) for key in ("masks", "Rt"))


@pytest.mark.parametrize(
    "relative, damage, message",
    [
        ("cameras.npz", lambda p: p.unlink(), "not found"),
        ("cameras.npz", corrupt, "npz"),
        ("002.jpg", corrupt, "image"),
        ("../pointcloud.npz", corrupt, "npz"),
    ],
    ids=["missing-cameras", "corrupt-cameras", "corrupt-view", "corrupt-pointcloud"],
)
def test_bad_files_fail_at_setup_naming_them(occnet_data, relative, damage, message):
    path = view_dir(occnet_data, "m2") / relative
    damage(path)
    with pytest.raises(ShapelabError, match=message) as error:
        make(occnet_data).setup("fit")
    assert str(path.resolve()) in str(error.value)


def test_too_few_views_or_cameras_fail_clearly(occnet_data):
    with pytest.raises(ShapelabError, match="num_views"):
        make(occnet_data, num_views=NUM_VIEWS + 1).setup("fit")
    (view_dir(occnet_data, "m0") / "mask").mkdir()
    with pytest.raises(ShapelabError, match="000.png"):
        make(occnet_data).setup("fit")


def test_real_shapenet_renderings_masks_and_cameras_agree(shared_data):
    root = shared_data / "shapenet_sample" / "ShapeNet"
    datamodule = instantiate_group("data/synthetic_views", data_dir="unused", build=None, occnet_dir=root,
                                   test_split="*", eval_batch_size=2, gt_points=256)
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    assert sorted(batch["synset"]) == ["02828884", "04379243"]
    assert torch.allclose(batch["K"][0, 0, 0, 0], torch.tensor(149.84375 * 64 / 137))
    for shape, view in itertools.product(range(2), range(4)):
        mask = batch["masks"][shape, view]
        assert 0.02 < mask.mean() < 0.6  # derived from the white background: an object, not the frame
        pixels = project(batch["points_gt"][shape].double(), batch["K"][shape, view].double(),
                         batch["Rt"][shape, view].double()).floor().long().clamp(0, 63)
        inside = mask[pixels[:, 1], pixels[:, 0]].mean().item()
        assert inside > 0.95, (shape, view, inside)  # the surface projects into its silhouettes


def test_configs_instantiate_the_multiview_datamodule(compose_cfg, occnet_data):
    cfg = compose_cfg("train", ["data=synthetic_views", f"paths.data_dir={occnet_data}", "data.dataset_name=tiny",
                                "data.build=null", "data.num_views=2", "data.gt_points=32"])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    assert isinstance(datamodule, MultiViewDataModule)
    assert next(iter(datamodule.train_dataloader()))["masks"].shape == (3, 2, 64, 64)
    assert compose_cfg("train", ["data=shapenet_views"]).data.occnet_dir.endswith("/ShapeNet")


def test_derived_masks_keep_white_object_parts_inside_the_outline():
    side, radius = 64, 20
    y, x = np.mgrid[:side, :side]
    distance = np.hypot(x - 31.5, y - 31.5)
    pixels = np.full((side, side, 3), 255, np.uint8)  # a white disc with a dark outline, on white
    pixels[np.abs(distance - radius) < 1.5] = 40
    pixels[(distance < 6)] = 250  # JPEG-like near-white noise inside
    mask = white_background_mask(Image.fromarray(pixels), threshold=240)
    np.testing.assert_array_equal(mask, distance < radius + 1.5)
    # background reached from the border, however far in, stays background
    pixels[:, :2] = 255
    assert not white_background_mask(Image.fromarray(pixels), threshold=240)[:, :2].any()


def test_derived_masks_match_the_real_silhouettes(shared_data):
    """OccNet's bench has large white parts: the surface projection (closed, holes filled) is the reference."""
    shape_dir = shared_data / "shapenet_sample/ShapeNet/02828884/1a40eaf5919b1b3f3eaa2b95b99dae6"
    cloud = read_pointcloud(shape_dir / "pointcloud.npz")
    cameras = read_cameras(shape_dir / "img_choy2016" / "cameras.npz")
    lost = []
    for view in (1, 7, 16):  # the views where near-white-is-background lost 21-22 % of the silhouette
        image = Image.open(shape_dir / "img_choy2016" / f"{view:03d}.jpg").convert("RGB")
        cells = np.floor(project(cloud["points"] * cloud["scale"] + cloud["loc"], *cameras[view])).astype(int)
        reference = np.zeros((image.height, image.width), bool)
        reference[cells[:, 1], cells[:, 0]] = True
        reference = ndimage.binary_fill_holes(ndimage.binary_closing(reference, iterations=2))
        mask = white_background_mask(image, threshold=240)
        lost.append(1 - (mask & reference).sum() / reference.sum())
        assert (mask & reference).sum() / (mask | reference).sum() > 0.95
    assert max(lost) < 0.02, lost


def any_contribution_reference(mask: np.ndarray, size: int) -> np.ndarray:
    """Loop reference of CAPNet's loader (cv2.resize INTER_LINEAR, then object wherever the value departs from the
    background): the four source pixels around each output centre (dst + 0.5) * scale - 0.5, clamped to the
    image, with their bilinear weights."""
    out = np.zeros((size, size), bool)
    for i, j in itertools.product(range(size), range(size)):
        y, x = (i + 0.5) * mask.shape[0] / size - 0.5, (j + 0.5) * mask.shape[1] / size - 0.5
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for dy, dx in itertools.product((0, 1), (0, 1)):
            weight = (1 - abs(y - (y0 + dy))) * (1 - abs(x - (x0 + dx)))
            yy, xx = min(max(y0 + dy, 0), mask.shape[0] - 1), min(max(x0 + dx, 0), mask.shape[1] - 1)
            out[i, j] |= weight > 0 and bool(mask[yy, xx])
    return out


def test_mask_resize_any_is_capnets_loader_and_keeps_thin_parts():
    rng = np.random.default_rng(0)
    blobs = ndimage.binary_dilation(rng.random((137, 137)) > 0.995, iterations=3)
    np.testing.assert_array_equal(resize_mask(blobs, 64, "any"), any_contribution_reference(blobs, 64))
    # a vertical bar 1 source pixel wide (0.47 px at 64): lost by the 0.5-coverage rule, kept by CAPNet's
    bar = np.zeros((137, 137), bool)
    bar[20:120, 70] = True
    assert not resize_mask(bar, 64, "area").any()
    kept = resize_mask(bar, 64, "any")
    assert kept.any(0).sum() == 1 and kept.any(1).sum() >= 45
    # a disc: "any" contains "area" and reaches at most one output pixel further out
    y, x = np.mgrid[:137, :137]
    disc = np.hypot(x - 68.3, y - 67.7) < 40
    area, anywhere = resize_mask(disc, 64, "area"), resize_mask(disc, 64, "any")
    assert (area <= anywhere).all() and anywhere.sum() > area.sum()
    assert not (anywhere & ~ndimage.binary_dilation(area)).any()
    with pytest.raises(ShapelabError, match="data.mask_resize='nearest'"):
        resize_mask(disc, 64, "nearest")


def test_capnet_experiments_use_capnets_masks_and_the_default_stays_area(compose_cfg):
    assert compose_cfg("train", ["experiment=capnet_paper"]).data.mask_resize == "any"
    assert compose_cfg("train", ["experiment=capnet"]).data.mask_resize == "any"
    assert compose_cfg("train", ["experiment=drwr"]).data.mask_resize == "area"
