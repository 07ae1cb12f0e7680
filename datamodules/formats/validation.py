"""Shared checks for the format readers/writers: every problem becomes one ShapelabError line.

The message always has the form ``<path>: <what is wrong>; <fix>`` (DEVELOPING.md "Format I/O").
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shapelab.errors import ShapelabError

REPROCESS = "re-run preprocess.py for this shape (it skips finished shapes)"


def fail(path: str | Path, problem: str, fix: str = REPROCESS) -> ShapelabError:
    """Build the one-line error ``<path>: <problem>; <fix>``."""
    return ShapelabError(f"{path}: {problem}; {fix}")


def require_file(path: str | Path, fix: str = REPROCESS) -> Path:
    path = Path(path)
    if not path.is_file():
        raise fail(path, "file not found", fix)
    return path


def load_npz(path: str | Path, keys: tuple[str, ...] | None, fix: str = REPROCESS) -> dict[str, np.ndarray]:
    """Load the named arrays (all when ``keys`` is None) of an npz file without pickles, raising
    ShapelabError for any problem."""
    path = require_file(path, fix)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = tuple(data.files) if keys is None else keys
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise fail(path, f"missing key(s) {missing} (found {sorted(data.files)})", fix)
            return {key: np.asarray(data[key]) for key in keys}
    except ShapelabError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise fail(path, f"not a readable npz file ({_load_problem(err)})", fix) from None


def _load_problem(err: Exception) -> str:
    """What went wrong loading an npz, without numpy's advice to unpickle (never safe for a data file)."""
    if isinstance(err, ValueError) and "pickle" in str(err):
        return "unknown content or pickled objects, which are never loaded from a data file"
    return f"{type(err).__name__}: {err}"


def check_array(
    path: str | Path,
    key: str,
    array: np.ndarray,
    shape: tuple[int | None, ...],
    kind: str = "f",
    finite: bool = True,
    fix: str = REPROCESS,
) -> np.ndarray:
    """Check ndim/shape (None = any size), dtype kind ('f' float, 'u' unsigned, 'b' bool, 'i' int)
    and, for floats, that there is no NaN/inf."""
    ok_shape = array.ndim == len(shape) and all(want in (None, got) for want, got in zip(shape, array.shape))
    if not ok_shape:
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise fail(path, f"'{key}' has shape {array.shape}, expected {expected}", fix)
    if array.dtype.kind not in kind:
        raise fail(path, f"'{key}' has dtype {array.dtype}, expected kind '{kind}'", fix)
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise fail(path, f"'{key}' contains NaN or inf values", fix)
    return array


def check_points(name: str, array, columns: int = 3) -> np.ndarray:
    """Writer-side check of a (N, columns) finite float array; raises ShapelabError naming `name`."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != columns or not np.isfinite(array).all():
        raise ShapelabError(
            f"{name}: expected a finite (N, {columns}) array, got shape {array.shape}; "
            "fix the caller that produced it"
        )
    return array


def current_umask() -> int:
    """The process umask (os offers no read-only query: set and restore it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write via a temporary file in the same folder, then rename, so an interrupted run never leaves
    a half-written file under the final name. The file gets the mode a plain ``open`` would give it
    (0o666 minus the umask), not the 0600 of the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz(path: str | Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    """np.savez(_compressed) to exactly `path` (no '.npz' appended), atomically."""
    save = np.savez_compressed if compressed else np.savez

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            save(handle, **arrays)

    return atomic_write(path, _write)
