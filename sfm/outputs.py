"""What an SfM run leaves in its output folder, from the kept COLMAP model (pycolmap.Reconstruction).

    sparse/               the model in the object frame: cameras.bin, images.bin, points3D.bin (COLMAP's GUI:
                          File > Import model, with the photos' folder as image path)
    undistorted/          only when the camera model has distortion: images/, masks/ (when masks were given)
                          and sparse/ with PINHOLE cameras (pycolmap.undistort_images)
    cameras.npz           the registered views (sfm/cameras_file.py layout), of undistorted/ when present
    points.ply            sparse points with colours, object frame
    cameras.png           camera frusta and points
    report.json           counts, errors, timings, options (+ pose evaluation when true cameras are given)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from shapelab.renderers.cameras import colmap_to_opencv_intrinsics
from shapelab.sfm.cameras_file import CaptureCameras
from shapelab.sfm.frame import object_frame, object_points

from shapelab.dashboards import figure_to_rgb
from shapelab.errors import ShapelabError


def model_cameras(reconstruction) -> CaptureCameras:
    """Registered views of a model, sorted by image name: K from the camera parameters (distortion dropped:
    use the undistorted model when the camera model has some), Rt = ``cam_from_world`` (already OpenCV)."""
    images = sorted((image for image in reconstruction.images.values() if image.has_pose), key=lambda i: i.name)
    Ks, Rts, widths, heights = [], [], [], []
    for image in images:
        camera = reconstruction.cameras[image.camera_id]
        Ks.append(colmap_to_opencv_intrinsics(camera.model.name, camera.params)[0])
        Rts.append(np.asarray(image.cam_from_world().matrix()))
        widths.append(camera.width)
        heights.append(camera.height)
    return CaptureCameras([image.name for image in images], np.array(Ks), np.array(Rts), np.array(widths),
                          np.array(heights))


def mask_path(masks_dir: Path, image_name: str) -> Path:
    """The user's mask of a photo: ``<masks_dir>/<photo stem>.png`` (white = object)."""
    return Path(masks_dir) / f"{Path(image_name).stem}.png"


def read_mask(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ShapelabError(f"{path}: mask not found; give one PNG per photo named <photo stem>.png "
                            "(white = object, black = background), or leave masks_dir unset")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L")) >= 128
    except OSError as exc:
        raise ShapelabError(f"{path}: unreadable mask ({exc}); re-export it as an 8-bit PNG") from None


def mask_share(pixels: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """(N,) share of the views in which each point projects into the image that see it inside their mask: the
    visual-hull test. ``pixels``: per view (N, 2) continuous pixel coordinates (x, y; NaN where the point is behind
    the camera); ``masks``: per view (H, W) bool. A point no view sees gets 0."""
    inside, seen = np.zeros(len(pixels[0])), np.zeros(len(pixels[0]))
    for uv, mask in zip(pixels, masks):
        uv = np.nan_to_num(np.floor(uv), nan=-1.0).astype(np.int64)
        valid = (uv[:, 0] >= 0) & (uv[:, 0] < mask.shape[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < mask.shape[0])
        seen += valid
        inside[valid] += mask[uv[valid, 1], uv[valid, 0]]
    return inside / np.maximum(seen, 1)


def inside_fraction(reconstruction, masks_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 3), `mask_share` (N,) over every registered view, not only the views that observed the point: a
    point triangulated badly from two views inside their masks still falls outside most others' masks)."""
    points = np.array([point.xyz for point in reconstruction.points3D.values()]).reshape(-1, 3)
    pixels, masks = [], []
    for image in reconstruction.images.values():
        if not image.has_pose:
            continue
        in_camera = image.cam_from_world() * points
        uv = np.asarray(reconstruction.cameras[image.camera_id].img_from_cam(in_camera), dtype=np.float64)
        uv[in_camera[:, 2] <= 0] = np.nan
        pixels.append(uv)
        masks.append(read_mask(mask_path(masks_dir, image.name)))
    return points, mask_share(pixels, masks)


def move_to_object_frame(reconstruction, masks_dir: Path | None, mask_agreement: float = 0.8) -> dict:
    """Apply the object-frame similarity (sfm/frame.py) to the model in place; returns it as a dict."""
    import pycolmap

    if reconstruction.num_points3D() < 4:
        raise ShapelabError(f"the model has {reconstruction.num_points3D()} 3D points; too few to find the object")
    if masks_dir is not None:
        points, share = inside_fraction(reconstruction, masks_dir)
    else:
        points = np.array([p.xyz for p in reconstruction.points3D.values()])
        share = None
    cameras = model_cameras(reconstruction)
    scale, rotation, translation = object_frame(object_points(points, share, mask_agreement), cameras.Rt)
    reconstruction.transform(pycolmap.Sim3d(scale, pycolmap.Rotation3d(rotation), translation))
    return {"scale": scale, "rotation": rotation.tolist(), "translation": translation.tolist(),
            "object_points": int(len(points) if share is None else (share >= mask_agreement).sum())}


def undistort(reconstruction_dir: Path, images_dir: Path, masks_dir: Path | None, out_dir: Path) -> Path:
    """Undistort the registered photos (pycolmap) and, when given, their masks (same pixel mapping,
    nearest neighbour) into ``out_dir``; returns ``out_dir`` (images/, masks/, sparse/)."""
    import pycolmap

    pycolmap.undistort_images(out_dir, reconstruction_dir, images_dir)
    if masks_dir is None:
        return out_dir
    original, undistorted = pycolmap.Reconstruction(reconstruction_dir), pycolmap.Reconstruction(out_dir / "sparse")
    (out_dir / "masks").mkdir(exist_ok=True)
    for image in undistorted.images.values():
        camera = undistorted.cameras[image.camera_id]
        source_camera = original.cameras[original.find_image_with_name(image.name).camera_id]
        mask = read_mask(mask_path(masks_dir, image.name))
        rows, cols = np.meshgrid(np.arange(camera.height) + 0.5, np.arange(camera.width) + 0.5, indexing="ij")
        rays = camera.cam_from_img(np.stack([cols.ravel(), rows.ravel()], 1))
        source = source_camera.img_from_cam(np.column_stack([rays, np.ones(len(rays))]), check_cheirality=False)
        u = np.clip(np.floor(source[:, 0]).astype(int), 0, mask.shape[1] - 1)
        v = np.clip(np.floor(source[:, 1]).astype(int), 0, mask.shape[0] - 1)
        warped = mask[v, u].reshape(camera.height, camera.width)
        Image.fromarray((warped * 255).astype(np.uint8)).save(mask_path(out_dir / "masks", image.name))
    return out_dir


def cameras_picture(cameras: CaptureCameras, points: np.ndarray, colours: np.ndarray, max_points: int = 4000,
                    title: str = "") -> np.ndarray:
    """(h, w, 3) uint8 picture: the sparse points and a frustum per camera (depth 0.15, object frame, y up)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rng = np.random.default_rng(0)
    shown = rng.choice(len(points), min(max_points, len(points)), replace=False) if len(points) else []
    fig = plt.figure(figsize=(6, 6), dpi=100)
    ax = fig.add_subplot(projection="3d")
    if len(shown):
        ax.scatter(points[shown, 0], points[shown, 2], points[shown, 1], s=1, c=colours[shown] / 255.0)
    for K, Rt, width, height in zip(cameras.K, cameras.Rt, cameras.width, cameras.height):
        corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], float)
        rays = corners @ np.linalg.inv(K).T * 0.15  # camera frame, depth 0.15
        world = (rays - Rt[:, 3]) @ Rt[:, :3]  # R^T (x - t)
        centre = -Rt[:, :3].T @ Rt[:, 3]
        for a, b in [(centre, corner) for corner in world] + list(zip(world, np.roll(world, 1, 0))):
            ax.plot([a[0], b[0]], [a[2], b[2]], [a[1], b[1]], color="tab:blue", linewidth=0.6)
    ax.set_xlabel("x")
    ax.set_ylabel("z")
    ax.set_zlabel("y (up)")
    ax.set_title(title)
    picture = figure_to_rgb(fig)
    plt.close(fig)
    return picture


def model_statistics(reconstruction, image_names: list[str]) -> dict:
    """Counts and errors of a model: registered/total (and which not), reprojection error (px), track length."""
    registered = sorted(image.name for image in reconstruction.images.values() if image.has_pose)
    return {
        "images_total": len(image_names),
        "images_registered": len(registered),
        "not_registered": [name for name in image_names if name not in set(registered)],
        "points": int(reconstruction.num_points3D()),
        "reprojection_error_px": float(reconstruction.compute_mean_reprojection_error()),
        "mean_track_length": float(reconstruction.compute_mean_track_length()),
    }
