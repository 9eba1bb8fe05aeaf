"""Config dataclass -> command-line flags, with one flag name per concept across every family.

A family's config fields become flags whose defaults are the config's own (so `--help` shows
them and they cannot disagree). A few concepts have different field names in different model
files; they share one flag, the original experiment's spelling, and the other spellings stay
as aliases:

    epochs               --num_epochs        (alias --epochs)
    embedding size       --embedding_size    (aliases --n_factors, --hidden_dim)
    evaluation frequency --validation_freq   (alias --evaluate_every)

Numbers are checked as they are parsed (finite, and positive where the config says so), so a bad
value fails before any data is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Iterable

from movielens.config import Config

# config field -> the one flag name of its concept
FLAG_FOR_FIELD = {"epochs": "num_epochs", "n_factors": "embedding_size", "hidden_dim": "embedding_size",
                  "evaluate_every": "validation_freq"}
ALIASES = {"num_epochs": ("--epochs",), "embedding_size": ("--n_factors", "--hidden_dim"),
           "validation_freq": ("--evaluate_every",)}
NOT_FLAGS = ("seed", "model")  # --seed is a data flag (split and model), --model picks the family


def finite_float(text: str) -> float:
    """argparse type: a finite number (rejects nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def flag_name(field: str) -> str:
    return FLAG_FOR_FIELD.get(field, field)


def _type_of(hint) -> tuple[type, bool]:
    """(element type, is a tuple) of a field's type hint."""
    text = str(hint)
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    if "tuple" in text:  # postponed annotations as strings
        for name, kind in (("int", int), ("float", float), ("str", str)):
            if f"[{name}" in text:
                return kind, True
    return hint, False


def add_config_flags(parser: argparse.ArgumentParser, config: Config, title: str,
                     skip: Iterable[str] = NOT_FLAGS, help_text: dict[str, str] | None = None,
                     existing: set[str] | None = None) -> None:
    """One flag per field of `config` (defaults = the config's values), in its own --help group.

    `existing`: flag names already on the parser (shared by several configs): not added twice.
    """
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(type(config))
    existing = existing if existing is not None else set()
    for field in dataclasses.fields(config):
        if field.name in skip:
            continue
        flag = flag_name(field.name)
        if flag in existing:
            continue
        existing.add(flag)
        default = getattr(config, field.name)
        kind, many = _type_of(hints[field.name])
        names = [f"--{flag}", *ALIASES.get(flag, ())]
        text = (help_text or {}).get(field.name, "")
        shown = " ".join(str(v) for v in default) if many else default
        description = f"{text} (default: {shown if shown != '' else 'none'})".strip()
        if kind is bool:
            group.add_argument(*names, dest=flag, action=argparse.BooleanOptionalAction, default=default,
                               help=description)
        elif many:
            group.add_argument(*names, dest=flag, type=finite_float if kind is float else kind, nargs="*",
                               default=default, metavar=kind.__name__.upper(), help=description)
        else:
            group.add_argument(*names, dest=flag, type=finite_float if kind is float else kind, default=default,
                               help=description)


def config_from_flags(args: argparse.Namespace, config: Config, skip: Iterable[str] = NOT_FLAGS,
                      **fixed) -> Config:
    """`config` with every field that has a flag taken from `args` (plus `fixed` values, e.g. seed)."""
    values = {}
    for field in dataclasses.fields(config):
        if field.name in skip:
            continue
        value = getattr(args, flag_name(field.name), getattr(config, field.name))
        values[field.name] = tuple(value) if isinstance(value, list) else value
    values.update({k: v for k, v in fixed.items() if k in config.field_names()})
    return config.replace(**values)
