"""The input photos of an SfM run: which files are usable images, checked before COLMAP sees them.

Every file of the folder is decoded once (Pillow): files that are not images and images that do not decode
(a truncated or corrupt JPEG) are skipped and named with the reason; an image whose decoded pixels equal an
earlier one's is skipped as a duplicate (it adds no viewpoint and would make a degenerate pair). Fewer than
``MIN_IMAGES`` usable images is an error: two views give no verified next-best-view step.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from shapelab.errors import ShapelabError

MIN_IMAGES = 3
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass
class ImageCheck:
    """``kept``: usable image names (sorted), ``skipped``: name -> reason, ``sizes``: name -> (width, height)."""

    kept: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


def check_images(images_dir: str | Path) -> ImageCheck:
    """Decode every file of ``images_dir`` (hidden files ignored); see the module docstring."""
    folder = Path(images_dir)
    if not folder.is_dir():
        raise ShapelabError(f"images_dir={folder}: not a folder; give the folder holding the photos")
    result, first_of = ImageCheck(), {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            with Image.open(path) as image:
                image.load()
                pixels = image.convert("RGB")
        except UnidentifiedImageError:
            image_like = path.suffix.lower() in IMAGE_SUFFIXES
            result.skipped[path.name] = "corrupt image (cannot be decoded)" if image_like else "not an image"
            continue
        except (OSError, ValueError, SyntaxError) as exc:
            result.skipped[path.name] = f"unreadable image ({exc})"
            continue
        digest = hashlib.sha1(pixels.tobytes() + repr(pixels.size).encode()).hexdigest()
        if digest in first_of:
            result.skipped[path.name] = f"duplicate of {first_of[digest]}"
            continue
        first_of[digest] = path.name
        result.kept.append(path.name)
        result.sizes[path.name] = pixels.size
    if len(result.kept) < MIN_IMAGES:
        skipped = "; ".join(f"{name}: {why}" for name, why in result.skipped.items()) or "none"
        raise ShapelabError(f"images_dir={folder}: {len(result.kept)} usable images, SfM needs at least {MIN_IMAGES} "
                            f"overlapping photos of the object (skipped: {skipped}); add photos")
    return result
