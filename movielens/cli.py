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
from movielens.distribute import STRATEGIES

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
        if default is None:
            shown = "auto"
        else:
            shown = (" ".join(str(v) for v in default) or "none") if many else default
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


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command shares besides data and model: caching, output, verbosity."""
    group = parser.add_argument_group("run")
    group.add_argument("--retrain", action="store_true", help="train again even if saved_models/ has the model")
    group.add_argument("--no_train", action="store_true",
                       help="fail instead of training when a model is not in saved_models/")
    group.add_argument("--no_plots", action="store_true", help="no HTML report or pictures (JSON and markdown only)")
    group.add_argument("--plot", action="store_true", help=argparse.SUPPRESS)  # old rating flag: plots are on
    group.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    group.add_argument("--distribute", choices=STRATEGIES, default="none",
                       help="train on one device (none), every local device (mirrored) or several processes or "
                            "machines given by TF_CONFIG (multi_worker); README: 'Several devices or machines'")
    group.add_argument("--devices", type=non_negative_int, default=0,
                       help="with --distribute on a machine without GPUs: split the CPU into this many devices")


def distribution(args: argparse.Namespace, families):
    """The strategy scope of --distribute / --devices, to enter before any data is loaded (TensorFlow's
    devices are fixed by then); a family that cannot train under a strategy is refused first."""
    import contextlib

    from movielens.distribute import make_strategy

    if args.distribute == "none" and not args.devices:
        return contextlib.nullcontext()
    refused = [f.name for f in families if not f.distributable and f.kind != "baseline"]
    if refused:
        raise ValueError(f"--distribute {args.distribute}: {', '.join(refused)} cannot train under a strategy; "
                         f"families that can: {', '.join(_distributable())}")
    return make_strategy(args.distribute, args.devices).scope()


def _distributable() -> list[str]:
    from movielens.families import REGISTRY

    return [name for name, family in REGISTRY.items() if family.distributable]


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def add_user_flags(parser: argparse.ArgumentParser, primary: str) -> None:
    """--generate_recommendations_for_user / --user_id (one concept, both spellings), --include_seen, --k."""
    names = ["--generate_recommendations_for_user", "--user_id"]
    if primary == "--user_id":
        names.reverse()
    parser.add_argument(*names, dest="user_id", default="", metavar="USER_ID",
                        help="recommend for this user id (every movie they rated in the data is excluded)")
    parser.add_argument("--include_seen", action="store_true", help="recommendations may include movies already rated")
    parser.add_argument("--k", type=positive_int, default=10, help="how many recommendations (default: 10)")


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


FOLDS = tuple(f"u{i}" for i in range(1, 6))


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The data flags (movielens.data.cli) plus ML-100K's canonical folds."""
    from movielens.data import cli as data_cli

    data_cli.add_data_arguments(parser, default_split="random")
    parser.add_argument("--fold", choices=FOLDS, default=None,
                        help="ML-100K canonical fold u1..u5 (u{i}.base / u{i}.test in --data_dir) instead of --split")


def check_data_flags(args: argparse.Namespace) -> None:
    """Flag combinations that cannot work, before anything is loaded."""
    if args.split_fractions and any(not math.isfinite(f) for f in args.split_fractions):
        raise ValueError(f"--split_fractions must be finite numbers, got {args.split_fractions}")
    if args.split_validation_users < 0:
        raise ValueError(f"--split_validation_users must be >= 0 (0 = every user validates), "
                         f"got {args.split_validation_users}")
    if args.split_validation_users and (args.split != "leave_last_out" or args.fold):
        raise ValueError("--split_validation_users applies to --split leave_last_out only")
    if args.fold and args.dataset != "100k":
        raise ValueError("--fold is ML-100K's canonical u1..u5 split; use --dataset 100k")


def load_data_and_split(args: argparse.Namespace, default_fractions) -> tuple:
    """Loads the data set and makes the split the data flags ask for (a random split's default fractions are
    the family's: 80/10/10, validation apart from test; rating models 90/10)."""
    from movielens.data import cli as data_cli
    from movielens.data import describe_source
    from movielens.data.splits import make_split

    data = data_cli.load_data(args)
    print(describe_source(data), flush=True)
    if getattr(args, "fold", None):
        from movielens import rating_data

        return data, rating_data.fold_split(data, rating_data.fold_folder(args.data_dir), args.fold)
    if args.split == "random" and not args.split_fractions:
        args.split_fractions = list(default_fractions)
    return data, make_split(data, args.split, args.split_fractions, args.seed, args.split_validation_users)
