"""Frozen config dataclasses <-> strict JSON.

Configs are saved as plain JSON (never pickled Python objects, a nerfstudio complaint) and read
back strictly: an unknown or misspelled key is an error, because tiny-cuda-nn-style configs that
silently ignore typos cause hours of confusion.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from vista_core.errors import VistaError

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types with a clear message."""
    if not isinstance(data, dict):
        raise VistaError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise VistaError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise VistaError(f"{where}: {error}") from error


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise VistaError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise VistaError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        item_hint = args[0] if args else Any
        items = [_coerce(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VistaError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise VistaError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise VistaError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise VistaError(f"{where}: expected a string, got {value!r}")
        return value
    return value
