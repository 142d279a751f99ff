"""Typed configs as JSON and back, and the fields in which two configs differ.

A config (a frozen dataclass, possibly nested) is written as a JSON object of its
fields; reading it back goes through the dataclass's type hints, so the result is
the same frozen dataclass, validated again by its ``__post_init__``. Tuples are
JSON lists and come back as tuples. Where a field's type is a union of several
dataclasses (an experiment's agent config may be R2AC, PPO, ...), the object
carries the class's name under ``"_type"``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

TYPE_KEY = "_type"


def _is_dataclass_type(t: Any) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _union_members(hint: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return None


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_to_json(config: Any, hint: Any = None) -> Any:
    """A config as JSON-compatible Python (dicts, lists, numbers, strings).

    Args:
        config: a dataclass instance (nested dataclasses, tuples, numbers,
            strings, ``None`` inside), or any of those.
        hint: the declared type where ``config`` sits (internal: decides
            whether a dataclass needs its ``"_type"`` tag).

    Returns:
        The JSON form; dataclasses whose declared type is ambiguous (a union of
        dataclasses, or the top level) carry ``"_type"``.

    Raises:
        ValueError: a float is NaN or infinite (JSON cannot hold it and a
            config never should).
        TypeError: a value of a type a config should not hold.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        hints = _hints(type(config))
        out: dict[str, Any] = {}
        if not _is_dataclass_type(hint):
            out[TYPE_KEY] = type(config).__name__
        for f in dataclasses.fields(config):
            out[f.name] = config_to_json(getattr(config, f.name), hints.get(f.name))
        return out
    if isinstance(config, enum.Enum):
        return config.value
    if config is None or isinstance(config, bool | str):
        return config
    if isinstance(config, np.generic):
        config = config.item()
    if isinstance(config, int):
        return int(config)
    if isinstance(config, float):
        if not math.isfinite(config):
            raise ValueError(f"a config holds {config}; configs must be finite.")
        return float(config)
    if isinstance(config, np.dtype):
        return str(config)
    if isinstance(config, tuple | list):
        args = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
        if len(args) == 2 and args[1] is Ellipsis:
            return [config_to_json(x, args[0]) for x in config]
        if args and len(args) == len(config):
            return [config_to_json(x, a) for x, a in zip(config, args, strict=True)]
        return [config_to_json(x) for x in config]
    if isinstance(config, Mapping):
        return {str(k): config_to_json(v) for k, v in config.items()}
    raise TypeError(
        f"a config cannot hold a {type(config).__name__} ({config!r}); use numbers, "
        "strings, tuples, None and nested config dataclasses."
    )


def config_from_json(cls: Any, data: Any, *, where: str = "config") -> Any:
    """Reads :func:`config_to_json`'s output back into ``cls``.

    Args:
        cls: the dataclass (or type hint) to build.
        data: the JSON form.
        where: the path named in errors.

    Returns:
        An instance of ``cls`` equal to the one that was written.

    Raises:
        ValueError: a field is unknown, a ``"_type"`` names no class the field
            allows, or the dataclass's own validation refuses a value (the
            message names the field's path).
    """
    members = _union_members(cls)
    if members is not None:
        if data is None and type(None) in members:
            return None
        classes = [m for m in members if _is_dataclass_type(m)]
        if isinstance(data, Mapping) and classes:
            name = data.get(TYPE_KEY)
            if name is None and len(classes) == 1:
                return config_from_json(classes[0], data, where=where)
            for c in classes:
                if c.__name__ == name:
                    return config_from_json(c, data, where=where)
            raise ValueError(
                f"{where}: _type={name!r} is none of "
                f"{', '.join(c.__name__ for c in classes)}."
            )
        others = [m for m in members if m is not type(None)]
        if len(others) == 1:
            return config_from_json(others[0], data, where=where)
        return _plain(data)
    if _is_dataclass_type(cls):
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{where} must be an object of {cls.__name__}'s fields, got {data!r}."
            )
        name = data.get(TYPE_KEY)
        if name is not None and name != cls.__name__:
            raise ValueError(f"{where} holds a {name}, not a {cls.__name__}.")
        hints = _hints(cls)
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - fields - {TYPE_KEY})
        if unknown:
            raise ValueError(
                f"{where}.{unknown[0]} is not a field of {cls.__name__} (fields: "
                f"{', '.join(sorted(fields))})."
            )
        kwargs = {
            k: config_from_json(hints[k], v, where=f"{where}.{k}")
            for k, v in data.items()
            if k != TYPE_KEY
        }
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
    origin = typing.get_origin(cls)
    if origin is tuple:
        if not isinstance(data, list | tuple):
            raise ValueError(f"{where} must be a list, got {data!r}.")
        args = typing.get_args(cls)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                config_from_json(args[0], x, where=f"{where}[{i}]")
                for i, x in enumerate(data)
            )
        if args and len(args) == len(data):
            return tuple(
                config_from_json(a, x, where=f"{where}[{i}]")
                for i, (a, x) in enumerate(zip(args, data, strict=True))
            )
        return _plain(data)
    if cls is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return _plain(data)


def _plain(data: Any) -> Any:
    """JSON lists become tuples (configs are immutable), recursively."""
    if isinstance(data, list | tuple):
        return tuple(_plain(x) for x in data)
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    return data


def _flatten(data: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(data, Mapping):
        for k, v in data.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = data


def config_diff(
    old: Any, new: Any, *, ignore: Iterable[str] = ()
) -> list[tuple[str, Any, Any]]:
    """The fields in which two configs (or their JSON forms) differ.

    Args:
        old: the config a run was made with (dataclass or JSON form).
        new: the config now asked for.
        ignore: dotted field paths (and their sub-fields) to leave out.

    Returns:
        ``(path, old value, new value)`` for every differing leaf, sorted by
        path; a field present on one side only has ``None`` on the other,
        unless it is a field a later version added and the other side holds
        its default (a config written before the field existed reads it so).
    """
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(_as_json(old), "", a)
    _flatten(_as_json(new), "", b)
    skip = tuple(ignore)

    def kept(path: str) -> bool:
        return not any(path == s or path.startswith(s + ".") for s in skip)

    def differs(path: str) -> bool:
        if (path in a) == (path in b):
            return a.get(path) != b.get(path)
        present = a if path in a else b
        found, default = _field_default(path, a, b)
        return not found or present[path] != default

    return [
        (k, a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if kept(k) and differs(k)
    ]


def _field_default(path: str, *flat: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, default)`` if ``path`` is a field, with a plain default, of an
    agent config named by its object's ``"_type"`` in one of ``flat``."""
    from . import _config

    parent, _, name = path.rpartition(".")
    type_path = f"{parent}.{TYPE_KEY}" if parent else TYPE_KEY
    for side in flat:
        cls = getattr(_config, str(side.get(type_path)), None)
        if cls is None or not _is_dataclass_type(cls):
            continue
        for f in dataclasses.fields(cls):
            plain = isinstance(f.default, bool | int | float | str | type(None))
            if f.name == name and plain:
                return True, f.default
    return False, None


def _as_json(x: Any) -> Any:
    return x if isinstance(x, Mapping) else config_to_json(x)


def format_diff(diff: list[tuple[str, Any, Any]], limit: int = 6) -> str:
    """``"a.b: 8 -> 16, c: 0.1 -> 0.2"``, at most ``limit`` fields named."""
    shown = [f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in diff[:limit]]
    more = len(diff) - limit
    return ", ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def _short(x: Any) -> str:
    text = "missing" if x is None else repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
