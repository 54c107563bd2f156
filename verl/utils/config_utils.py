"""Typed configuration from dataclass defaults, a YAML file and ``key.sub=value`` command-line overrides.

The CLI keeps EasyR1's shape, ``python3 -m verl.trainer.main config=path.yaml worker.rollout.n=8``, and, as
EasyR1 does, OmegaConf merges the sources and resolves interpolations (``${trainer.experiment_name}``,
``${oc.env:HOME}``). On top of that merge a config is a tree of dataclasses that this module fills strictly.

- ``load_config(cls, argv)`` merges, in order of increasing priority: the dataclass defaults, the YAML file
  (``config=FILE``), the ``overrides`` dict and the command line; then it builds the dataclass tree and runs
  ``post_init`` on every section, children before parents, so a parent sees validated, normalised children and
  the root can do the cross-section checks.
- Unknown keys are errors naming the full dotted key and the closest valid ones. A value of the wrong type is an
  error naming the key, the value and the expected type. A derived key (a field declared with ``init=False``,
  see :func:`derived`) cannot be set; the error says which key to set instead.
- A section may declare ``renamed_keys: ClassVar[dict[str, str]]`` (old name → new name); an old name is moved
  to the new one with a warning, so a config written for the old name still loads.
- Several problems are reported together, one per line, so one run shows every typo.

Value conversion (values come from OmegaConf's YAML parser, so ``true``, ``1e-6``, ``null``, ``[a, b]``,
``{k: v}`` are typed):

- ``int``: ints; an integral float (``8.0``) or a numeric string (``"8"``, ``"1e3"``) that is integral. Bools and
  non-integral numbers are rejected.
- ``float``: ints and floats; a numeric string such as ``"1e-6"``. Bools are rejected.
- ``bool``: YAML booleans (``true``/``false``; also ``yes``/``no``/``on``/``off``) and the strings
  ``"true"``/``"false"`` in any case. Numbers (``0``, ``1``) and other strings are rejected.
- ``str``: strings; ints and floats are turned into their text (``experiment_name=7``). Bools, lists and
  mappings are rejected.
- ``Literal[...]``: the value must equal one of the choices (the error lists them).
- ``list[...]``/``tuple[...]``: a YAML list; a list of strings also accepts ``console,file``.
- ``dict[...]``: a mapping; an empty YAML value (``null``) is an empty mapping, as for a nested section.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar, Union

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")
logger = logging.getLogger(__name__)

__all__ = [
    "ConfigError",
    "build_config",
    "config_to_dict",
    "derived",
    "format_config",
    "load_config",
    "load_yaml",
    "merge_sources",
    "parse_cli_args",
    "require",
    "run_post_init",
    "save_config",
]

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_KEY_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class ConfigError(ValueError):
    """A configuration problem, reported before anything starts.

    ``key`` is the dotted key the problem is about, relative to the section whose ``post_init`` raised it; the
    loader prefixes the section's path, so ``require(self.rank >= 0, "rank", ...)`` in the LoRA section reads
    ``worker.actor.model.lora.rank: ...``.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        self.message = message
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        """One error for several problems, one per line."""
        if len(errors) == 1:
            return errors[0]
        lines = "\n".join(f"  - {error}" for error in errors)
        return cls(f"{len(errors)} config errors:\n{lines}")


def require(condition: bool, key: str, message: str) -> None:
    """Raise a :class:`ConfigError` about ``key`` (relative to the current section) unless ``condition``."""
    if not condition:
        raise ConfigError(message, key=key)


def derived(default: Any, source: str | None = None) -> Any:
    """A field computed at start-up (``init=False``): not settable from YAML or the CLI.

    ``source`` names the key(s) it comes from, for the error a user gets when setting it.
    """
    return dataclasses.field(default=default, init=False, metadata={"derived_from": source})


# ----------------------------------------------------------------------------- command line, YAML and the merge


def parse_cli_args(argv: list[str]) -> tuple[str | None, DictConfig]:
    """Split ``["config=a.yaml", "data.max_pixels=1000", ...]`` into the YAML path and the overrides.

    Each value is parsed by OmegaConf as EasyR1 parses it (``true``, ``1e-6``, ``[a,b]``, ``null``, ``{k: v}``,
    ``${oc.env:HOME}`` kept for resolution after the merge); text that is not YAML (``{{ content }} Answer.``)
    stays a string, except a broken list (``[a,b``), which is an error. An empty value (``key=``) is the empty
    string. Later arguments win over earlier ones.
    """
    config_path: str | None = None
    overrides: dict[str, Any] = {}
    for arg in argv:
        key, sep, text = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"command-line argument {arg!r} is not of the form key=value "
                "(e.g. config=path.yaml or worker.rollout.n=8)"
            )
        if key == "config":
            config_path = text
            continue
        if not all(_KEY_PART.fullmatch(part) for part in key.split(".")):
            raise ConfigError(f"command-line argument {arg!r}: {key!r} is not a dotted key like worker.rollout.n")
        try:
            node = OmegaConf.from_dotlist([f"{key}={text}"]) if text.strip() else _dotted(key, "")
        except (yaml.YAMLError, OmegaConfBaseException) as exc:
            problem = _first_line(exc)
            node = None
            if not text.lstrip().startswith(("[", "${")):  # a broken list or interpolation is a typo, not text
                try:
                    node = _dotted(key, text)  # not YAML, e.g. an inline Jinja template: the text itself
                except OmegaConfBaseException as text_exc:  # e.g. a broken ${...} inside the text
                    problem = _first_line(text_exc)
            if node is None:
                raise ConfigError(
                    f"command-line argument {arg!r}: cannot parse the value {text!r}: {problem}"
                ) from None
        overrides = _merge(overrides, OmegaConf.to_container(node, resolve=False))
    return config_path, OmegaConf.create(overrides)


def load_yaml(path: str | os.PathLike[str]) -> DictConfig:
    """The mapping in a YAML config file, interpolations unresolved (an empty file is an empty mapping)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} not found (resolved to {os.path.abspath(path)!r})")
    try:
        data = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path!r} is not valid YAML: {exc}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config file {path!r}: {_first_line(exc)}") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"config file {path!r} must hold a mapping of sections, got a list")
    return data


def _first_line(exc: Exception) -> str:
    """OmegaConf appends ``full_key``/``object_type`` lines to its messages; the first line is the problem."""
    text = getattr(exc, "msg", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _dotted(key: str, value: Any) -> DictConfig:
    """``{"a": {"b": value}}`` for the key ``a.b``; a string value is kept as it is (no parsing)."""
    node = OmegaConf.create()
    OmegaConf.update(node, key, value, merge=True)
    return node


def _from_mapping(overrides: Mapping[str, Any]) -> DictConfig:
    """A nested mapping, possibly with dotted keys (``{"data.max_pixels": 1}``), as one OmegaConf tree."""
    node = OmegaConf.create()
    for key, value in overrides.items():
        OmegaConf.update(node, str(key), value, merge=True)
    return node


def merge_sources(cls: type, sources: list[DictConfig]) -> dict[str, Any]:
    """The defaults of ``cls`` with ``sources`` merged on top in order (OmegaConf), interpolations resolved.

    Renamed keys (a section's ``renamed_keys``) are moved to their new name in each source first, with a
    warning, so an old name never stops a config; it is an error only when a source also sets the new name to
    another value. The defaults take part in the merge so that ``${trainer.experiment_name}`` resolves to the
    default when the YAML does not set it. Unknown keys and wrong types pass through untouched: the builder
    reports them with the strict messages.
    """
    errors: list[ConfigError] = []
    renamed = []
    for source in sources:
        data = OmegaConf.to_container(source, resolve=False)
        renamed.append(_apply_renames(cls, data, "", errors))
    if errors:
        raise ConfigError.combine(errors)
    try:
        defaults = config_to_dict(cls(), include_derived=False)
    except TypeError:  # a section without defaults: nothing to fall back on
        defaults = {}
    try:
        merged: dict[str, Any] = defaults
        for data in renamed:
            merged = _merge(merged, data)
        return OmegaConf.to_container(OmegaConf.create(merged), resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"cannot resolve the value: {_first_line(exc)}", key=key or None) from None


def _merge(base: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` merged over ``base`` by OmegaConf (mappings key by key, anything else replaced), unresolved."""
    _drop_replaced(base, data)
    return OmegaConf.to_container(OmegaConf.merge(base, data), resolve=False)


def _drop_replaced(base: dict[str, Any], data: Mapping[str, Any]) -> None:
    """Remove from ``base`` what ``data`` replaces rather than merges into (anything but a mapping over a
    mapping), so that a list over a mapping (``reward_channels=[accuracy]``) reaches the type check instead of
    OmegaConf refusing to merge the two."""
    for key, value in data.items():
        if key not in base:
            continue
        if isinstance(base[key], dict) and isinstance(value, Mapping):
            _drop_replaced(base[key], value)
        else:
            del base[key]


def _apply_renames(cls: type, data: Any, path: str, errors: list[ConfigError]) -> Any:
    """``data`` (one source, plain containers) with old key names of ``cls``'s sections moved to the new ones."""
    if not isinstance(data, dict):
        return data
    old_to_new = getattr(cls, "renamed_keys", {})
    for old, new in old_to_new.items():
        if old not in data:
            continue
        value = data.pop(old)
        if new in data and data[new] != value:
            errors.append(
                ConfigError(
                    f"'{_join(path, old)}' (the old name of '{_join(path, new)}') and '{_join(path, new)}' are "
                    f"both set, to {_show(value)} and {_show(data[new])}; keep only '{_join(path, new)}'"
                )
            )
            continue
        data[new] = value
        logger.warning("config key '%s' was renamed: use '%s' (its value is used)", _join(path, old), _join(path, new))
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.name in data and isinstance(tp, type) and dataclasses.is_dataclass(tp):
            data[f.name] = _apply_renames(tp, data[f.name], _join(path, f.name), errors)
    return data


# ----------------------------------------------------------------------------- building


def load_config(
    cls: type[T],
    argv: list[str] | None = None,
    yaml_path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Defaults of ``cls`` ← YAML ← ``overrides`` ← command line, merged by OmegaConf, built strictly, then
    ``post_init`` everywhere.

    ``argv`` is the command line without the program name (``sys.argv[1:]``); a ``config=FILE`` in it takes the
    place of ``yaml_path``. ``overrides`` may use nested dicts or dotted keys (``{"data.max_pixels": 1000}``).
    Both entry points (``verl.trainer.main`` and ``verl.trainer.sft``) load through this function.
    """
    cli_path, cli_overrides = parse_cli_args(argv) if argv is not None else (None, OmegaConf.create())
    path = cli_path if cli_path is not None else yaml_path
    sources = [load_yaml(path)] if path is not None else []
    if overrides:
        try:
            sources.append(_from_mapping(overrides))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"overrides: {_first_line(exc)}") from None
    sources.append(cli_overrides)
    config = build_config(cls, merge_sources(cls, sources))
    run_post_init(config)
    return config


def build_config(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """An instance of the dataclass ``cls`` from a nested mapping, checking keys and types (no ``post_init``)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"build_config needs a dataclass type, got {cls!r}")
    errors: list[ConfigError] = []
    config = _convert(data, cls, "", errors, cls)
    if errors:
        raise ConfigError.combine(errors)
    return config


def run_post_init(config: Any) -> None:
    """Call ``post_init`` on every section, children first; every failing section is reported.

    A parent whose subtree failed is not post-initialised: its checks would read unvalidated children.
    """
    errors: list[ConfigError] = []
    _post_init(config, "", errors)
    if errors:
        raise ConfigError.combine(errors)


def _post_init(node: Any, path: str, errors: list[ConfigError]) -> None:
    before = len(errors)
    for f in dataclasses.fields(node):
        child = getattr(node, f.name)
        if dataclasses.is_dataclass(child) and not isinstance(child, type):
            _post_init(child, _join(path, f.name), errors)
    if len(errors) > before or not callable(getattr(node, "post_init", None)):
        return
    try:
        node.post_init()
    except ConfigError as exc:
        if exc.key is not None:
            exc = ConfigError(exc.message, key=_join(path, exc.key))
        errors.append(exc)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    """``'eight' (str)``: the value and its YAML-ish type, for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


_TYPE_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _TYPE_HINTS:
        _TYPE_HINTS[cls] = typing.get_type_hints(cls)
    return _TYPE_HINTS[cls]


def _describe(tp: Any) -> str:
    """A type as a user reads it: ``int``, ``int or null``, ``list of str``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return "a mapping (config section)"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if arg is type(None) else _describe(arg) for arg in args)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"list of {len(args)} ({', '.join(_describe(arg) for arg in args)})"
        return f"list of {_describe(args[0])}" if args else "list"
    if origin is dict or tp is dict:
        return f"mapping of {_describe(args[0])} to {_describe(args[1])}" if args else "mapping"
    return getattr(tp, "__name__", str(tp))


def _is_text(tp: Any) -> bool:
    """Whether a list of ``tp`` may be given as a comma-separated string."""
    if tp is str:
        return True
    return typing.get_origin(tp) is Literal and all(isinstance(choice, str) for choice in typing.get_args(tp))


def _mismatch(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"expected {_describe(tp)}, got {_show(value)}", key=key or "<root>")


def _convert(value: Any, tp: Any, key: str, errors: list[ConfigError], root: type) -> Any:
    """``value`` as type ``tp``, or raise a :class:`ConfigError` naming ``key``.

    Nested sections collect their own key errors in ``errors`` (so one run reports them all).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            fields_list = ", ".join(f.name for f in dataclasses.fields(tp) if f.init)
            raise ConfigError(
                f"is a config section (keys: {fields_list}) and needs a mapping, got {_show(value)}", key=key
            )
        return _build_section(tp, value, key, errors, root)
    if origin is Literal:
        for choice in args:
            if type(value) is type(choice) and value == choice:
                return choice
        message = f"expected one of {', '.join(repr(c) for c in args)}, got {_show(value)}"
        if isinstance(value, str):
            close = difflib.get_close_matches(value, [c for c in args if isinstance(c, str)], n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        raise ConfigError(message, key=key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            try:
                return _convert(value, options[0], key, errors, root)
            except ConfigError as exc:
                if exc.key == key and exc.message.startswith("expected "):
                    _, _, hint = exc.message.partition("; did you mean")
                    suffix = f"; did you mean{hint}" if hint else ""
                    raise ConfigError(f"expected {_describe(tp)}, got {_show(value)}{suffix}", key=key) from None
                raise
        for option in options:
            try:
                return _convert(value, option, key, errors, root)
            except ConfigError:
                continue
        raise _mismatch(key, tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _mismatch(key, tp, value)
    if tp is int:
        if isinstance(value, bool):
            raise _mismatch(key, tp, value)
        if isinstance(value, int):
            return value
        number = _as_number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise _mismatch(key, tp, value)
    if tp is float:
        if isinstance(value, bool):
            raise _mismatch(key, tp, value)
        number = _as_number(value)
        if number is None:
            raise _mismatch(key, tp, value)
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _mismatch(key, tp, value)
    if origin in (list, tuple) or tp in (list, tuple):
        return _convert_sequence(value, tp, key, errors, root)
    if origin is dict or tp is dict:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise _mismatch(key, tp, value)
        key_tp, value_tp = args if args else (Any, Any)
        return {
            _convert(k, key_tp, f"{key}.{k}", errors, root): _convert(v, value_tp, f"{key}.{k}", errors, root)
            for k, v in value.items()
        }
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _mismatch(key, tp, value)


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    return None


def _convert_sequence(value: Any, tp: Any, key: str, errors: list[ConfigError], root: type) -> Any:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    fixed = origin is tuple and bool(args) and args[-1] is not Ellipsis
    item_types = list(args) if fixed else [args[0] if args else Any]
    if isinstance(value, str) and not fixed and _is_text(item_types[0]):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise _mismatch(key, tp, value)
    if fixed and len(value) != len(item_types):
        raise ConfigError(f"expected {_describe(tp)}, got {len(value)} item(s): {_show(value)}", key=key)
    items = [
        _convert(item, item_types[i] if fixed else item_types[0], f"{key}[{i}]", errors, root)
        for i, item in enumerate(value)
    ]
    return tuple(items) if origin is tuple else items


def _build_section(cls: type, data: Mapping[str, Any], path: str, errors: list[ConfigError], root: type) -> Any:
    hints = _hints(cls)
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = _join(path, str(name))
        f = fields_by_name.get(name) if isinstance(name, str) else None
        if f is None:
            errors.append(_unknown_key(cls, str(name), path, root))
            continue
        if not f.init:
            source = f.metadata.get("derived_from")
            hint = f" from {source} (set that instead)" if source else ""
            errors.append(ConfigError(f"'{key}' cannot be set: it is derived at start-up{hint}"))
            continue
        try:
            kwargs[name] = _convert(value, hints[name], key, errors, root)
        except ConfigError as exc:
            errors.append(exc)
    return cls(**kwargs)


def _settable_keys(cls: type, prefix: str = "") -> Iterator[str]:
    """Every settable dotted key of a dataclass tree (sections and leaves)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = _join(prefix, f.name)
        yield key
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _settable_keys(tp, key)


def _unknown_key(cls: type, name: str, path: str, root: type) -> ConfigError:
    key = _join(path, name)
    renamed = getattr(cls, "renamed_keys", {}).get(name)
    if renamed:
        return ConfigError(f"config key '{key}' was renamed: use '{_join(path, renamed)}'")
    local = [f.name for f in dataclasses.fields(cls) if f.init]
    # the right name at the wrong level first (trainer.max_response_length), then near spellings at this level
    suggestions = [k for k in _settable_keys(root) if k.rsplit(".", 1)[-1] == name]
    suggestions += [_join(path, match) for match in difflib.get_close_matches(name, local, n=3, cutoff=0.6)]
    suggestions = suggestions[:3]
    if suggestions:
        return ConfigError(f"unknown config key '{key}'; did you mean {' or '.join(repr(s) for s in suggestions)}?")
    where = f"under '{path}'" if path else "at the top level"
    return ConfigError(f"unknown config key '{key}'; valid keys {where}: {', '.join(local)}")


# ----------------------------------------------------------------------------- output


def config_to_dict(config: Any, include_derived: bool = True) -> Any:
    """A dataclass tree as plain dicts/lists/scalars (tuples become lists), ready for YAML or JSON.

    With ``include_derived=False`` only the settable keys remain, so the result loads back with
    :func:`load_config`.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: config_to_dict(getattr(config, f.name), include_derived)
            for f in dataclasses.fields(config)
            if include_derived or f.init
        }
    if isinstance(config, list | tuple):
        return [config_to_dict(item, include_derived) for item in config]
    if isinstance(config, Mapping):
        return {key: config_to_dict(value, include_derived) for key, value in config.items()}
    return config


def save_config(config: Any, path: str | os.PathLike[str]) -> None:
    """Write the settable keys of a resolved config as YAML; ``load_config(type(config), yaml_path=path)``
    rebuilds an equal config (derived keys are left out: they are recomputed)."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config_to_dict(config, include_derived=False), f, sort_keys=False, allow_unicode=True)


def format_config(config: Any) -> str:
    """The fully resolved config as indented YAML, derived keys marked ``# derived``, for logs."""
    lines: list[str] = []
    _format_section(config, 0, lines)
    return "\n".join(lines)


def _format_section(node: Any, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            lines.append(f"{indent}{f.name}:")
            _format_section(value, depth + 1, lines)
            continue
        text = yaml.safe_dump(config_to_dict(value), default_flow_style=True, width=1 << 30, allow_unicode=True)
        text = text.strip().removesuffix("...").strip()
        note = ""
        if not f.init:
            source = f.metadata.get("derived_from")
            note = f"  # derived from {source}" if source else "  # derived"
        lines.append(f"{indent}{f.name}: {text}{note}")
