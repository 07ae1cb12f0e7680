"""shapelab: one name space for the framework's packages.

The repository keeps its packages at the top (``models/``, ``metrics/``, ``losses/``, ...); installed, they
are ``shapelab.models``, ``shapelab.metrics``, ... (pyproject.toml maps the folders). In a source checkout
that is not installed, or a second working tree beside an installed one, the same names resolve to the
folders next to this one.
"""
from pathlib import Path as _Path

_CHECKOUT = _Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "models").is_dir():
    __path__.insert(1, str(_CHECKOUT))

from shapelab.allocator import keep_freed_memory as _keep_freed_memory

_keep_freed_memory()
