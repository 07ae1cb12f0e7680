"""One name space: the install claims only ``shapelab`` (and its console scripts), never generic names."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
GENERIC_NAMES = ["models", "metrics", "losses", "geometry", "renderers", "datamodules", "stages", "sfm",
                 "declarative", "conf", "train", "evaluate", "preprocess", "compare"]


def _import_outside_checkout(tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import {name}"], check=False, cwd=tmp_path, capture_output=True, text=True)


@pytest.mark.parametrize("name", GENERIC_NAMES)
def test_generic_top_level_names_are_not_installed(tmp_path, name):
    result = _import_outside_checkout(tmp_path, name)
    assert result.returncode != 0 and "No module named" in result.stderr, f"'import {name}' works outside the checkout"


def test_packages_import_under_shapelab(tmp_path):
    names = "shapelab.models.deepsdf, shapelab.stages.meshsdf, shapelab.cli.train, shapelab.conf"
    result = _import_outside_checkout(tmp_path, names)
    assert result.returncode == 0, result.stderr


def test_every_package_folder_is_installed():
    """pyproject.toml lists packages explicitly (the folders are mapped): a new folder must be added there."""
    setuptools_cfg = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = setuptools_cfg["package-dir"]
    folders = {folder: name for name, folder in mapping.items()}
    expected = set()
    for top, name in folders.items():
        for init in (REPO_ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / top).parts
            expected.add(".".join([name, *relative]))
    assert expected == set(setuptools_cfg["packages"])
