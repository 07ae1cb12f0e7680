"""One spelling for public names: British (normalise, optimise, centre, colour, neighbour), the majority here.

Names that other APIs or file formats fix keep theirs: Lightning's ``configure_optimizers``, torch's
``optimizer``, the lightning-hydra-template's ``optimized_metric``, DeepSDF's ``NormalizationParameters`` folder.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.test_layers import package_modules

AMERICAN = re.compile(r"(?i)(normaliz|optimiz|initializ|regulariz|visualiz|rasteriz|voxeliz|minimiz|maximiz|"
                      r"summariz|parameteriz|center|color|neighbor|gray)")
FIXED_ELSEWHERE = {"configure_optimizers", "optimizer", "optimizers", "optimized_metric"}


def defined_names(path: Path) -> set[str]:
    """Functions, classes, their arguments and module-level assignments of a file, and the module's name."""
    names = {path.stem}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names |= {arg.arg for arg in node.args.args + node.args.kwonlyargs}
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def config_keys(node) -> set[str]:
    if isinstance(node, dict):
        return {str(key) for key in node} | set().union(*(config_keys(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(set(), *(config_keys(item) for item in node))
    return set()


def american(names: set[str]) -> list[str]:
    """The names with an American spelling in one of their dotted parts (``model.optimizer.lr`` is fine)."""
    return sorted(name for name in names
                  if any(AMERICAN.search(part) and part not in FIXED_ELSEWHERE for part in name.split(".")))


def test_python_names_are_british():
    names = set().union(*(defined_names(path) for path in package_modules(REPO_ROOT)))
    assert american(names) == []


def test_config_keys_are_british():
    keys = set().union(*(config_keys(yaml.safe_load(path.read_text())) for path in (REPO_ROOT / "conf").rglob("*.yaml")))
    assert american(keys) == []


def test_the_check_catches_an_american_name(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("def normalize_points(points, colors):\n    pass\n")
    assert american(defined_names(path)) == ["colors", "normalize_points"]
