"""Typed configuration: one small dataclass per model, shared behaviour here.

A config rejects unknown keys (a typo fails at once, not deep in a
constructor), round-trips through JSON for `config.json`, and hashes stably
for the `saved_models/<name>-<hash>/` cache key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: subclass as `@dataclasses.dataclass(frozen=True)` with typed defaults."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {cls.field_names()}")
        hints = typing.get_type_hints(cls)
        converted = {}
        for name, value in values.items():
            # JSON turns tuples into lists; restore them so equality and hashing hold.
            if isinstance(value, list) and "tuple" in str(hints.get(name, "")):
                value = tuple(value)
            converted[name] = value
        return cls(**converted)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: C, **changes: Any) -> C:
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} keys {unknown}; valid keys: {self.field_names()}")
        return dataclasses.replace(self, **changes)

    def stable_hash(self, length: int = 10) -> str:
        return config_hash(self.to_dict(), length)


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def config_hash(values: Mapping[str, Any], length: int = 10) -> str:
    """Hex digest of the canonical JSON form of `values` (key order does not matter)."""
    canonical = json.dumps(_plain(dict(values)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
