"""What every Hydra entry point does before Hydra runs: register resolvers, catch a misspelt override.

Only Hydra and OmegaConf are imported here, so ``--help`` answers without loading torch or Lightning.
"""
from __future__ import annotations

import difflib
import sys
from collections.abc import Callable

from shapelab import resolvers

# flags after which Hydra reads another config: the pre-check would compose the wrong one, so it is skipped
CONFIG_FLAGS = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd")
INFO_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")


def run_hydra_app(hydra_main: Callable[[], object], config_name: str, argv: list[str] | None = None) -> None:
    """Register the resolvers, check the ``key=value`` overrides of ``argv`` name existing keys, run Hydra."""
    resolvers.register()
    argv = sys.argv[1:] if argv is None else argv
    if not any(arg.split("=")[0] in CONFIG_FLAGS + INFO_FLAGS for arg in argv):
        message = misspelt_override(config_name, [arg for arg in argv if not arg.startswith("-")])
        if message:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
    hydra_main()


def misspelt_override(config_name: str, overrides: list[str]) -> str | None:
    """The one-line error for the first ``key=value`` override whose key does not exist, else None.

    Hydra refuses such an override too, but only with its own multi-line message; this names the key and
    the closest existing key, as for a misspelt key in a YAML file. Sweeps (``a=1,2``) are checked with their
    first value. Composition problems other than a missing key are left to Hydra.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException, OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:
        return None  # Hydra reports a syntax error itself
    lines = [
        f"{o.input_line.split('=', 1)[0]}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
        for o in parsed
    ]

    def try_compose(selected: list[str]):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_module("shapelab.conf", version_base="1.3"):
                return compose(config_name=config_name, overrides=selected)
        finally:
            GlobalHydra.instance().clear()

    try:
        try_compose(lines)
        return None
    except ConfigCompositionException as exc:
        failed = next((o for o, line in zip(parsed, lines) if f"Could not override '{o.key_or_group}'" in str(exc)), None)
        if failed is None or failed.type.name != "CHANGE":
            return None
    key = failed.key_or_group
    parent_key, _, leaf = key.rpartition(".")
    try:
        cfg = try_compose([line for o, line in zip(parsed, lines) if o is not failed])
    except ConfigCompositionException:
        return None
    from omegaconf import DictConfig, OmegaConf

    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig):
        return f"config key '{key}' does not exist ('{parent_key}' is not a group of keys); check the spelling"
    close = difflib.get_close_matches(leaf, [str(k) for k in parent], n=1)
    hint = f" (did you mean '{parent_key + '.' if parent_key else ''}{close[0]}'?)" if close else ""
    return f"config key '{key}' does not exist{hint}; fix the spelling, or add a new key with +{key}=..."
