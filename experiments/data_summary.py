"""Load a MovieLens variant (from the cache, local files, TFDS or the PyPI copy) and summarise it and its split."""

from __future__ import annotations

import argparse
import json

from movielens.data.cli import add_data_arguments, load_split


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    data, split = load_split(args)
    print(json.dumps(data.summary(), indent=2))
    print(split.describe())
    print(f"vocabulary (train only): {len(split.vocabulary.user_ids):,} users, "
          f"{len(split.vocabulary.movie_ids):,} movies")
    return 0
