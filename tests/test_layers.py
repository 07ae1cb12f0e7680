"""The dependency arrows of DEVELOPING.md, enforced: every import of every module (lazy ones included) is
parsed with ``ast`` and checked against the layer table below, so a new import across a line fails here.

    errors, geometry.frames, dashboards: leaves anyone may import
    geometry <- metrics / renderers / declarative <- losses <- models <- shapelab.evaluation <- stages <- shapelab (cli, run plumbing)
    datamodules -> geometry, renderers.cameras, sfm only; shapelab.evaluation and shapelab/ may import datamodules
    shapelab.evaluation is one-way inside: ground_truth, reconstruct -> scoring -> collect -> report -> pipeline
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
LEAVES = ("shapelab.errors", "shapelab.geometry.frames", "shapelab.dashboards")
BASE = ("shapelab.geometry", "shapelab.metrics", "shapelab.renderers", "shapelab.declarative")
EVERYTHING = ("shapelab",)
ALLOWED: dict[str, tuple[str, ...]] = {
    # layer (a module prefix; the longest matching one applies) -> what its modules may import besides itself
    "shapelab.geometry": (),
    "shapelab.metrics": ("shapelab.geometry",),
    "shapelab.renderers": ("shapelab.geometry",),
    "shapelab.declarative": ("shapelab.geometry",),
    "shapelab.sfm": ("shapelab.geometry", "shapelab.renderers"),
    "shapelab.datamodules": ("shapelab.geometry", "shapelab.renderers.cameras", "shapelab.sfm"),
    "shapelab.losses": BASE,
    "shapelab.models": (*BASE, "shapelab.losses"),
    "shapelab.evaluation": (*BASE, "shapelab.losses", "shapelab.models", "shapelab.datamodules"),
    "shapelab.stages": (*BASE, "shapelab.losses", "shapelab.models", "shapelab.evaluation", "shapelab.sfm"),
    "shapelab.conf": (),
    "shapelab": EVERYTHING,  # cli/, runs, config, checkpoints, callbacks, compare: the run plumbing
}
EVALUATION_ORDER = ["ground_truth", "reconstruct", "scoring", "collect", "report", "pipeline"]
"""Modules of shapelab.evaluation in pipeline order: each may import only the ones before it."""
GENERIC_NAMES = {"models", "metrics", "losses", "geometry", "renderers", "datamodules", "stages", "sfm",
                 "declarative", "conf", "train", "evaluate", "preprocess", "compare"}
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}
"""Documented breaks of the arrows still to be fixed (each must still occur, so a fixed one is removed here)."""


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str:
    """The ALLOWED key a module belongs to (its longest matching prefix)."""
    return max((key for key in ALLOWED if _within(module, key)), key=len)


def imported_names(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module name, line) of every import in the file, at any depth; ``from a import b`` gives
    ``a.b`` (b may be a module), relative imports are resolved against ``module``."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


def check_import(module: str, target: str) -> str | None:
    """Why ``module`` may not import ``target`` (None when it may)."""
    if target.split(".")[0] in GENERIC_NAMES:
        return "import it as shapelab.<package> (the install claims no generic top-level names)"
    if not _within(target, "shapelab") or any(_within(target, leaf) for leaf in LEAVES):
        return None
    layer = layer_of(module)
    if _within(target, layer) and layer != "shapelab":
        if layer == "shapelab.evaluation" and module.count(".") == 2 and target.count(".") >= 2:
            return _evaluation_order(module.split(".")[2], target.split(".")[2])
        return None
    if any(_within(target, allowed) for allowed in ALLOWED[layer]):
        return None
    return f"layer {layer} may import only {', '.join(ALLOWED[layer]) or 'itself'} (and {', '.join(LEAVES)})"


def _evaluation_order(source: str, target: str) -> str | None:
    if source not in EVALUATION_ORDER or target not in EVALUATION_ORDER:
        return None
    if EVALUATION_ORDER.index(target) < EVALUATION_ORDER.index(source):
        return None
    return f"the evaluation pipeline runs {' -> '.join(EVALUATION_ORDER)}: {source} may not import {target}"


def package_modules(root: Path) -> dict[Path, str]:
    """Every .py file of the installed packages (pyproject.toml's package-dir mapping) -> its module name."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules = {}
    for name, folder in mapping.items():
        for path in (root / folder).rglob("*.py"):
            parts = path.relative_to(root / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[path] = ".".join([name, *parts])
    return modules


def violations(modules: dict[Path, str]) -> list[tuple[str, str, str]]:
    """(``file:line``, imported module, reason) for every import across the arrows, known ones left out."""
    found = []
    for path, module in sorted(modules.items()):
        if path.name == "__init__.py":
            continue  # a package's __init__ only re-exports its own modules
        for target, line in imported_names(path, module):
            reason = check_import(module, target)
            if reason and not any(_within(target, known) and module == source for source, known in KNOWN_VIOLATIONS):
                found.append((f"{path}:{line}", target, reason))
    return found


def test_the_code_follows_the_arrows():
    assert violations(package_modules(REPO_ROOT)) == []


def test_known_violations_still_exist():
    modules = package_modules(REPO_ROOT)
    imports = {(module, target) for path, module in modules.items() for target, _ in imported_names(path, module)}
    for source, target in KNOWN_VIOLATIONS:
        assert any(module == source and _within(name, target) for module, name in imports), (
            f"{source} no longer imports {target}: delete it from KNOWN_VIOLATIONS")


@pytest.mark.parametrize("module, source, bad", [
    ("shapelab.models.fake", "from shapelab.cli.train import train\n", True),
    ("shapelab.geometry.fake", "def f():\n    import shapelab.models.base\n", True),  # lazy imports count
    ("shapelab.datamodules.fake", "from shapelab.renderers.soft_silhouette import SoftSilhouette\n", True),
    ("shapelab.datamodules.fake", "from shapelab.renderers.cameras import project\n", False),
    ("shapelab.stages.fake", "from shapelab.datamodules.formats import deepsdf\n", True),
    ("shapelab.stages.fake", "from shapelab.evaluation.ground_truth import GroundTruthSource\n", False),
    ("shapelab.losses.fake", "import models.base\n", True),
    ("shapelab.metrics.fake", "from shapelab.errors import ShapelabError\n", False),
    ("shapelab.evaluation.scoring", "from shapelab.evaluation.report import write_all\n", True),
    ("shapelab.evaluation.report", "from shapelab.evaluation.scoring import MetricInfo\n", False),
    ("shapelab.evaluation.collect", "from . import report\n", True),  # relative imports resolve too
    ("shapelab.cli.fake", "from shapelab.stages.meshsdf import MeshSDFStage\n", False),
])
def test_the_checker_catches_a_cross_layer_import(tmp_path, module, source, bad):
    path = tmp_path / "fake.py"
    path.write_text(source)
    found = violations({path: module})
    assert bool(found) == bad, found
