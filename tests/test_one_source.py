"""Each value once (issue 13 item 9): a parameter that a conf/ YAML file sets has no default in the signature
of the ``_target_`` it sets it for, so the YAML is the one source of that value (DEVELOPING.md "Configs")."""
import inspect
from pathlib import Path

import pytest
import yaml

from shapelab.config import _parameters, locate_target
from tests.conftest import REPO_ROOT


def target_nodes(node, key=""):
    """(key, node) of every mapping with a ``_target_`` below ``node`` (plain YAML data)."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield key or "<root>", node
        for child, value in node.items():
            yield from target_nodes(value, f"{key}.{child}" if key else str(child))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from target_nodes(value, f"{key}[{i}]")


def file_keys(path: Path) -> dict:
    """The file's keys with those of its ``<file>@_here_`` defaults entries (shared parts such as data/common/)."""
    own = yaml.safe_load(path.read_text()) or {}
    merged = {}
    for entry in own.get("defaults", []) if isinstance(own, dict) else []:
        if isinstance(entry, str) and entry.endswith("@_here_"):
            merged |= file_keys(path.parent / f"{entry.removesuffix('@_here_')}.yaml")
    return merged | own if isinstance(own, dict) else own


# generic functions whose defaults are their API for many callers; the config names the value a model uses
KEEP_DEFAULTS = {
    "shapelab.geometry.extraction.extract_mesh": "geometry function called with its defaults across geometry/, "
    "models/, stages/ and their tests; model/deepsdf.yaml's partial states DeepSDF's resolution, bounds and method",
}


def defaults_set_in_yaml(conf: Path) -> list[str]:
    """'<file>: <key> (<target>)' for every key a YAML file sets whose parameter also has a default in code."""
    found = []
    for path in sorted(conf.rglob("*.yaml")):
        for key, node in target_nodes(file_keys(path)):
            target = node["_target_"]
            if not target.startswith("shapelab.") or target in KEEP_DEFAULTS:
                continue  # other libraries' defaults are theirs (torch.optim.Adam, the Trainer)
            params = _parameters(locate_target(node["_target_"], key))[0]
            found += [
                f"{path.relative_to(conf.parent)}: {key}.{name} ({node['_target_']})".replace("<root>.", "")
                for name in node if name in params and params[name].default is not inspect.Parameter.empty
            ]
    return found


def test_values_the_yaml_sets_have_no_code_default():
    duplicated = defaults_set_in_yaml(REPO_ROOT / "conf")
    assert not duplicated, (
        "these parameters have a default in code and a value in YAML; remove the code default (the YAML is the "
        "one source, DEVELOPING.md 'Configs'):\n" + "\n".join(duplicated)
    )


def test_a_planted_code_default_fails(monkeypatch):
    from shapelab.datamodules.common import ShapeDataModule

    init = ShapeDataModule.__init__
    signature = inspect.signature(init)
    planted = [p.replace(default=16) if p.name == "batch_size" else p for p in signature.parameters.values()]
    monkeypatch.setattr(init, "__signature__", signature.replace(parameters=planted), raising=False)
    found = defaults_set_in_yaml(REPO_ROOT / "conf")
    assert "conf/data/synthetic.yaml: batch_size (shapelab.datamodules.sdf.SdfDataModule)" in found
    assert "conf/data/shapenet_occ.yaml: batch_size (shapelab.datamodules.occupancy.OccupancyDataModule)" in found


@pytest.mark.parametrize("option", ["data/synthetic", "loss/drwr"])
def test_instantiate_group_uses_the_yaml_values(option):
    from shapelab.config import compose_group, instantiate_group

    node = compose_group(option)
    if option == "loss/drwr":
        loss = instantiate_group(option, repulsion_weight=0.25)
        assert loss.repulsion_weight == 0.25 and loss.decay_px == node.decay_px
    else:
        datamodule = instantiate_group(option, data_dir="/nowhere", build=None)
        assert datamodule.batch_size == node.batch_size and str(datamodule.data_dir) == "/nowhere"
