"""Typed configuration: dataclasses loaded from / saved to JSON or YAML.

Every stage keeps its options in a dataclass next to its code; this module is the one place
that turns files and dicts into those dataclasses. Unknown keys are errors (with a suggestion),
never silently ignored, and values are type-checked.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def _check_value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # a NaN weight would silently act like 0
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(fields))})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        kwargs[name] = _check_value(value, hints[name], f"{where}.{name}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
    return obj


def to_dict(obj: Any) -> dict:
    """Plain, JSON/YAML-serialisable dict of a dataclass (paths become strings)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(obj)


def _no_duplicates(pairs: list[tuple[Any, Any]], where: str) -> dict:
    seen: set = set()
    for key, _ in pairs:
        if key in seen:
            raise ConfigError(f"{where}: the key {key!r} is given twice; keep one (a repeated key would "
                              "silently override the first)")
        seen.add(key)
    return dict(pairs)


def _yaml_load(text: str, where: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping with a repeated key (PyYAML keeps the last one)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                keys = [self.construct_object(k, deep=True) for k, _ in node.value
                        if k.tag != "tag:yaml.org,2002:merge"]
                line = node.start_mark.line + 1
                _no_duplicates([(k, None) for k in keys if isinstance(k, (str, int, float, bool))],
                               f"{where} (mapping at line {line})")
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=Loader)


def read_mapping(path: str | Path) -> dict:
    """Read a JSON or YAML file into a dict, with errors that name the file (a repeated key, text
    that is not UTF-8 and parse errors included)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                          "save the config file as UTF-8") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, object_pairs_hook=lambda pairs: _no_duplicates(pairs, str(path)))
        else:
            data = _yaml_load(text, str(path))
    except ConfigError:
        raise
    except Exception as e:  # parse errors from either library
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of option names to values")
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: dict | None = None) -> T:
    """Defaults of ``cls``, updated by the file at ``path``, then by ``overrides`` (e.g. CLI flags)."""
    data: dict = read_mapping(path) if path is not None else {}
    where = str(path) if path is not None else "config"
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return from_dict(cls, data, where)


def save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    data = to_dict(obj)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        import yaml

        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
