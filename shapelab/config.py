"""Start-up validation of a composed config, so a bad key or value fails before any work, with the key named.

Hydra already rejects command-line overrides of keys that do not exist (struct mode; the entry points
turn that into a "did you mean" line, shapelab/cli/common.py). This module also catches what YAML files
(an experiment, a user's local config) and ``+key=`` overrides can get wrong:
- top-level keys are checked against the keys of the primary config file (conf/train.yaml, conf/evaluate.yaml);
- every ``_target_`` node's keys are checked against the signature of the class/function it names, and
  every plain value against the parameter's type annotation (``trainer.max_epochs=abc`` fails here);
- the model, data, loss and encoder chosen must fit each other (``check_compatibility``);
- a saved run config may only name trusted ``_target_``s before it is instantiated (``check_trusted_targets``).
"""
from __future__ import annotations

import difflib
import functools
import importlib
import importlib.resources
import inspect
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from shapelab.errors import ShapelabError

HYDRA_SPECIAL_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
# `_target_` prefixes a saved run config may name (README "What is trusted"): the project's own code and the
# libraries its configs document. Anything else (e.g. `shutil.copyfile`) is refused before instantiation.
OPTIONAL_KEY = object()  # the "default" of a key a TypedDict does not require (`total=False`)
# base classes whose `__init__(*args, **kwargs)` accepts no keyword (torch's Module raises on any)
KWARGS_FREE_BASES = {"builtins.object", "torch.nn.modules.module.Module"}
TRUSTED_TARGET_PREFIXES = (
    "shapelab.", "torch.optim.", "torch.nn.", "pytorch_lightning.", "lightning.pytorch.", "torchvision.models.",
)


def _suggest(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def primary_config_keys(config_name: str) -> set[str]:
    """Top-level keys a composed ``conf/<config_name>.yaml`` may hold: the file's own keys, the packages its
    defaults list fills (``evaluation@evaluate`` -> ``evaluate``, ``optional local`` -> ``local``) and ``hydra``.
    The YAML file is the one place these are listed."""
    text = importlib.resources.files("shapelab.conf").joinpath(f"{config_name}.yaml").read_text()
    raw = OmegaConf.create(text)
    keys = {str(key) for key in raw if key != "defaults"} | {"hydra"}
    for entry in raw.get("defaults", []):
        if isinstance(entry, str):
            continue  # _self_
        for group in entry:
            name = str(group).removeprefix("optional ").removeprefix("override ")
            keys.add(name.split("@")[-1].split("/")[0])
    return keys


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


def fill_added_parameters(node: DictConfig, key: str) -> list[str]:
    """Give a saved config node (a run's ``model``) the parameters its target gained after the run was saved.

    A class lists them in ``ADDED_PARAMETERS = {name: value}``, each with the value that reproduces what runs
    saved before it did (``DeepSDF``: ``reconstruction_start: random``). Returns the ``key.name=value`` set.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return []
    added = getattr(locate_target(node._target_, key), "ADDED_PARAMETERS", {})
    filled = []
    with open_dict(node):
        for name, value in added.items():
            if name not in node:
                node[name] = value
                filled.append(f"{key}.{name}={value}")
    return filled


def _callable_parameters(func) -> tuple[dict[str, inspect.Parameter], bool, dict]:
    """Named parameters of one function, whether it takes untyped ``**kwargs``, and its resolved type hints.
    ``**kwargs: Unpack[SomeTypedDict]`` names its keys: they count as named parameters."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}, True, {}
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no type checks for this target
        hints = {}
    named = {n: p for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"}
    open_kwargs = False
    for name, param in params.items():
        if param.kind != param.VAR_KEYWORD:
            continue
        typed = _unpacked_typeddict(hints.get(name))
        if typed is None:
            open_kwargs = True
            continue
        for key, hint in typing.get_type_hints(typed).items():
            default = inspect.Parameter.empty if key in typed.__required_keys__ else OPTIONAL_KEY
            named[key] = inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
            hints[key] = hint
    return named, open_kwargs, hints


def _unpacked_typeddict(hint):
    """The TypedDict of a ``**kwargs: Unpack[TypedDict]`` annotation, else None."""
    if typing.get_origin(hint) is typing.Unpack and typing.is_typeddict(typing.get_args(hint)[0]):
        return typing.get_args(hint)[0]
    return None


def _parameters(target) -> tuple[dict[str, inspect.Parameter], bool, dict]:
    """Named parameters of a callable, whether it takes **kwargs, and its resolved type hints.

    A class of this project whose ``__init__`` takes ``**kwargs`` forwards them to its base class (DEVELOPING.md
    "Configs"): the base classes' ``__init__`` parameters are followed up the MRO until one without
    ``**kwargs``, so ``SdfDataModule(samples_per_scene, ..., **shared)`` accepts exactly its own parameters plus
    ``ShapeDataModule``'s. Other libraries' ``**kwargs`` accept anything (they may go anywhere)."""
    if not inspect.isclass(target):
        return _callable_parameters(target)
    named: dict[str, inspect.Parameter] = {}
    hints: dict = {}
    for cls in target.__mro__:
        if "__init__" not in vars(cls):
            continue
        if f"{cls.__module__}.{cls.__qualname__}" in KWARGS_FREE_BASES:
            return named, False, hints
        params, open_kwargs, cls_hints = _callable_parameters(vars(cls)["__init__"])
        named = {**params, **named}
        hints = {**cls_hints, **hints}
        if not open_kwargs:
            return named, False, hints
        if not cls.__module__.startswith("shapelab."):
            return named, True, hints
    return named, True, hints


def _fits(value, annotation) -> bool:
    """Whether a plain config value (int, float, bool, str, None) can be passed where ``annotation`` is
    expected. Annotations this cannot judge (classes, callables, generics) accept everything."""
    if annotation in (inspect.Parameter.empty, typing.Any, object):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is Path or (inspect.isclass(annotation) and issubclass(annotation, Path)):
        return isinstance(value, str)
    container = origin or annotation
    # a plain value where a list / dict is expected does not fit; other annotations are not judged
    return not (inspect.isclass(container) and issubclass(container, (Sequence, Mapping)) and not issubclass(container, str))


def _describe(annotation) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_targets(node, key: str = "") -> None:
    """Check every ``_target_`` node below ``node``: each key must be a parameter of the target and each plain
    value must fit the parameter's type annotation."""
    if isinstance(node, DictConfig):
        target_path = node.get("_target_") if "_target_" in node else None
        if isinstance(target_path, str):
            _check_target_node(node, target_path, key)
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


def _check_target_node(node: DictConfig, target_path: str, key: str) -> None:
    params, takes_kwargs, hints = _parameters(locate_target(target_path, key or "<root>"))
    _check_keys(node, params, takes_kwargs, hints, target_path, key)
    if target_path.startswith("shapelab.") and not node.get("_partial_") and "_args_" not in node:
        _check_required(node, params, target_path, key)


def _check_required(node: DictConfig, params: dict, target_path: str, key: str) -> None:
    """Our targets take every value a config sets from the config (no code default, DEVELOPING.md "Configs"): a
    required parameter the node lacks (a local file that dropped it, a run saved before it existed) is one line."""
    for name, param in params.items():
        if param.default is inspect.Parameter.empty and name not in node.keys():  # noqa: SIM118 - keys() lists ??? keys
            where = f"{key}.{name}" if key else name
            raise ShapelabError(
                f"config key '{where}' is missing: {target_path} needs it; add it (its value is in the conf/ file of "
                "this group; a run saved before the parameter existed: add the value it was trained with)"
            )


def _check_keys(node: DictConfig, params: dict, takes_kwargs: bool, hints: dict, owner: str, key: str) -> None:
    """Every key of ``node`` must be one of ``params`` (unless ``takes_kwargs``) and every plain value must fit
    its annotation; a plain dict whose parameter is annotated with a TypedDict is checked against its keys."""
    for child in node:
        if child in HYDRA_SPECIAL_KEYS:
            continue
        where = f"{key}.{child}" if key else str(child)
        if child not in params:
            if takes_kwargs:
                continue
            raise ShapelabError(
                f"config key '{where}' is not a parameter of {owner}{_suggest(str(child), params)}; remove or rename it"
            )
        if node._get_node(child)._is_interpolation():
            continue  # checked where the value is written (or a run-time value such as ${hydra:runtime.output_dir})
        value = node[child]
        annotation = hints.get(child, params[child].annotation)
        typed = _typeddict(annotation)
        if isinstance(value, DictConfig) and typed is not None and "_target_" not in value:
            fields = typing.get_type_hints(typed)
            named = {name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in fields}
            _check_keys(value, named, False, fields, f"{typed.__module__}.{typed.__qualname__}", where)
        if isinstance(value, (DictConfig, ListConfig)) or node.get("_partial_"):
            continue
        if not isinstance(annotation, str) and not _fits(value, annotation):
            raise ShapelabError(
                f"config key '{where}'={value!r} is not a valid {_describe(annotation)} "
                f"(parameter of {owner}); fix the value"
            )


def _typeddict(annotation):
    """The TypedDict an annotation names (alone or in a union such as ``Options | None``), else None."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return next((arg for arg in candidates if typing.is_typeddict(arg)), None)


def check_top_level(cfg: DictConfig, allowed: Iterable[str]) -> None:
    """Reject top-level keys that no part of the framework reads."""
    allowed = set(allowed)
    for key in cfg:
        if key not in allowed:
            raise ShapelabError(f"unknown top-level config key '{key}'{_suggest(str(key), allowed)}; remove or rename it")


def _target_class(node, key: str):
    """The class a ``_target_`` node names, or None when the node is absent or has no ``_target_``."""
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        return None
    return locate_target(node._target_, key)


def check_compatibility(cfg: DictConfig, choices: Mapping[str, str] | None = None) -> None:
    """Refuse, in one line naming both keys, a model / data / loss / encoder / renderer combination that cannot
    train: each side declares what it needs or gives (``batch_format``, ``input_type``, ``renderer_outputs``,
    ``outputs`` class attributes). ``choices``: Hydra's group choices, to name ``model=occnet`` rather than a class."""
    choices = choices or {}

    def name(group: str, node) -> str:
        return f"{group}={choices[group]}" if choices.get(group) else f"{group}._target_={node._target_}"

    model_cls, data_cls = _target_class(cfg.get("model"), "model"), _target_class(cfg.get("data"), "data")
    if model_cls is None or cfg.get("stage"):  # a stage runs instead of training: the model never sees the batches
        return
    wanted = getattr(model_cls, "batch_format", None)
    given = getattr(data_cls, "batch_format", None)
    if wanted and given and wanted != given:
        raise ShapelabError(
            f"{name('model', cfg.model)} does not fit {name('data', cfg.data)}: the model trains on {wanted} batches, "
            f"the data yields {given} batches; choose data and model of the same kind (README 'Experiments')"
        )
    loss_cls = _target_class(cfg.model.get("loss"), "model.loss")
    if wanted and getattr(loss_cls, "batch_format", wanted) != wanted:
        raise ShapelabError(
            f"{name('loss', cfg.model.loss)} does not fit {name('model', cfg.model)}: the loss is for "
            f"{loss_cls.batch_format} batches, the model trains on {wanted} batches; choose a loss of the model"
        )
    renderer_node = cfg.model.get("renderer")
    missing = set(getattr(loss_cls, "renderer_outputs", ())) - set(
        getattr(_target_class(renderer_node, "model.renderer"), "outputs", ())
    )
    if missing:
        renderer = choices.get("renderer") or (renderer_node._target_ if renderer_node else "null")
        raise ShapelabError(
            f"{name('loss', cfg.model.loss)} does not fit renderer={renderer}: the loss needs renderer outputs "
            f"{sorted(missing)}; use renderer=gaussian_projection with loss=capnet_projection, "
            "renderer=point_projection with loss=drwr"
        )
    encoder_cls = _target_class(cfg.model.get("encoder"), "model.encoder")
    needs = getattr(encoder_cls, "input_type", None)
    has = (cfg.data.get("input_type") if data_cls is not None else None) or getattr(data_cls, "input_type", None)
    if needs and has and needs != has:
        encoder = choices.get("model/encoder") or cfg.model.encoder._target_
        raise ShapelabError(
            f"model/encoder={encoder} does not fit data.input_type={has}: the encoder reads {needs} inputs; "
            f"set data.input_type={needs} or choose an encoder for {has} inputs"
        )


def check_trusted_targets(node, source: str | Path, key: str = "") -> None:
    """Refuse a config (e.g. a run's saved ``.hydra/config.yaml``) naming a ``_target_`` outside
    ``TRUSTED_TARGET_PREFIXES``: instantiating it could run any function of any installed package."""
    if isinstance(node, DictConfig):
        for child in node:
            value = node._get_node(child)
            where = f"{key}.{child}" if key else str(child)
            if child == "_target_":
                target = str(value._value()) if hasattr(value, "_value") else str(value)
                if not target.startswith(TRUSTED_TARGET_PREFIXES):
                    raise ShapelabError(
                        f"{source}: '{where}: {target}' is not a trusted target (allowed: "
                        f"{', '.join(p + '*' for p in TRUSTED_TARGET_PREFIXES)}); use a config you trust (README "
                        "'What is trusted')"
                    )
            elif isinstance(value, (DictConfig, ListConfig)):
                check_trusted_targets(value, source, where)
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node._iter_ex(resolve=False)):
            if isinstance(value, (DictConfig, ListConfig)):
                check_trusted_targets(value, source, f"{key}[{i}]")


def validate(cfg: DictConfig, config_name: str) -> None:
    """Validate a composed config of ``conf/<config_name>.yaml``: resolvable interpolations, known top-level
    keys, target parameters and their value types."""
    check_top_level(cfg, primary_config_keys(config_name))
    try:
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    except Exception as exc:  # noqa: BLE001 - omegaconf raises many kinds; report the one line
        message = str(exc).splitlines()[0]
        if "hydra" not in message.lower():
            raise ShapelabError(f"config interpolation failed: {message}") from None
    check_targets(cfg)


def compose_group(option: str, overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The node of one config group option (``"loss/drwr"``, ``"model/encoder/resnet18"``; a node inside it after a
    dot: ``"stage/meshsdf.loss"``) as ``conf/<config_name>.yaml`` composes it with ``<group>=<option>`` and Hydra
    ``overrides``, interpolations resolved: the values the YAML sets, for code (tests, benches) that builds an
    object outside a run."""
    path, _, inner = option.partition(".")
    node = OmegaConf.create(_composed_group(path, tuple(overrides), config_name))
    return OmegaConf.select(node, inner) if inner else node


@functools.lru_cache(maxsize=64)
def _composed_group(option: str, overrides: tuple[str, ...], config_name: str) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException

    from shapelab import resolvers

    group, _, name = option.rpartition("/")
    if not group:
        raise ShapelabError(f"'{option}': name a group option as <group>/<option>, e.g. loss/drwr")
    resolvers.register()
    GlobalHydra.instance().clear()
    conf_dir = str(importlib.resources.files("shapelab.conf"))
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            try:
                cfg = compose(config_name=config_name, overrides=[f"{group}={name}", *overrides])
            except ConfigCompositionException:  # a group the defaults list does not hold (e.g. model/encoder)
                cfg = compose(config_name=config_name, overrides=[f"+{group}={name}", *overrides])
    finally:
        GlobalHydra.instance().clear()
    return OmegaConf.to_container(OmegaConf.select(cfg, group.replace("/", ".")), resolve=True)


def instantiate_group(option: str, *overrides: str, **kwargs):
    """Build the object of a config group option with the values its YAML sets (``compose_group``), e.g.
    ``instantiate_group("loss/drwr", repulsion_weight=0.0)``: ``kwargs`` replace parameters (nested dicts merge),
    ``overrides`` are Hydra overrides of the whole config (``"model=occnet"``). An error raised by the target
    comes out as itself (not wrapped in Hydra's InstantiationException)."""
    import hydra.utils
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(compose_group(option, overrides), **kwargs)
    except InstantiationException as exc:
        if exc.__cause__ is None:
            raise
        raise exc.__cause__ from None
