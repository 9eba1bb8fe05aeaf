"""The data flags every experiment shares, and the one call that turns them into a split."""

from __future__ import annotations

import argparse

from movielens.data import loader, schema, splits
from movielens.data.table import MovieLensData


def add_data_arguments(parser: argparse.ArgumentParser, default_split: str = "random") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="100k", choices=schema.VARIANTS, help="MovieLens variant")
    group.add_argument("--data_dir", default=None,
                       help=f"GroupLens files: a variant folder or zip, or a folder holding ml-<variant>/ "
                            f"(default: env {loader.DATA_DIR_ENV})")
    group.add_argument("--data_source", default="auto", choices=loader.SOURCES,
                       help="where to load from; auto tries local files, then TFDS, then (100k) the PyPI copy")
    group.add_argument("--rebuild_data", action="store_true", help="ignore and rewrite the processed-data cache")
    group.add_argument("--split", default=default_split, choices=splits.SPLITS, help="how to hold out evaluation data")
    group.add_argument("--split_fractions", type=float, nargs="+", default=None,
                       help="train [validation] test fractions (random/temporal splits)")
    group.add_argument("--split_validation_users", type=int, default=0, metavar="N",
                       help="leave_last_out only: N users (drawn with --seed) validate on their second-to-last "
                            "rating, every other user trains on it (the gSASRec protocol); 0 = every user validates")
    group.add_argument("--seed", type=int, default=42, help="seed for the split and the model")


def load_data(args: argparse.Namespace) -> MovieLensData:
    return loader.load_movielens(args.dataset, data_dir=args.data_dir, source=args.data_source,
                                 rebuild=args.rebuild_data)
