"""Start-up validation of a composed config, so a misspelt key fails before any work with the key named.

Hydra already rejects command-line overrides of keys that do not exist (struct mode). This module
also catches misspellings inside YAML files (a user's experiment or local config):
- top-level keys are checked against the keys of conf/train.yaml / conf/evaluate.yaml;
- every ``_target_`` node's keys are checked against the signature of the class/function it names.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf

from shapelab.errors import ShapelabError

HYDRA_SPECIAL_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _suggest(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def locate_target(path: str, key: str):
    """Import the object a ``_target_`` string names, or raise a ShapelabError naming the config key."""
    module_name, _, attr = path.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError) as exc:
        raise ShapelabError(
            f"config key '{key}._target_': cannot import '{path}' ({exc}); check the spelling of the class path"
        ) from None


def _accepted_parameters(target) -> tuple[set[str], bool]:
    """Names a callable accepts, and whether it takes **kwargs."""
    func = target.__init__ if inspect.isclass(target) else target
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params)
    return names - {"self"}, takes_kwargs


def check_targets(node, key: str = "") -> None:
    """Check every ``_target_`` node below ``node``: each key must be a parameter of the target."""
    if isinstance(node, DictConfig):
        target_path = node.get("_target_") if "_target_" in node else None
        if isinstance(target_path, str):
            target = locate_target(target_path, key or "<root>")
            accepted, takes_kwargs = _accepted_parameters(target)
            if not takes_kwargs:
                for child in node:
                    if child not in HYDRA_SPECIAL_KEYS and child not in accepted:
                        where = f"{key}.{child}" if key else str(child)
                        raise ShapelabError(
                            f"config key '{where}' is not a parameter of {target_path}"
                            f"{_suggest(str(child), accepted)}; remove or rename it"
                        )
        for child in node:
            if child == "hydra":
                continue
            value = node._get_node(child)
            if isinstance(value, (DictConfig, ListConfig)):
                check_targets(value, f"{key}.{child}" if key else str(child))
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node._iter_ex(resolve=False)):
            if isinstance(value, (DictConfig, ListConfig)):
                check_targets(value, f"{key}[{i}]")


def check_top_level(cfg: DictConfig, allowed: Iterable[str]) -> None:
    """Reject top-level keys that no part of the framework reads."""
    allowed = set(allowed)
    for key in cfg:
        if key not in allowed:
            raise ShapelabError(f"unknown top-level config key '{key}'{_suggest(str(key), allowed)}; remove or rename it")


def validate(cfg: DictConfig, allowed_top_level: Iterable[str]) -> None:
    """Validate a composed config: resolvable interpolations, known top-level keys, target parameters."""
    check_top_level(cfg, allowed_top_level)
    try:
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    except Exception as exc:  # noqa: BLE001 - omegaconf raises many kinds; report the one line
        message = str(exc).splitlines()[0]
        if "hydra" not in message.lower():
            raise ShapelabError(f"config interpolation failed: {message}") from None
    check_targets(cfg)
