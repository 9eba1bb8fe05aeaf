"""Load a MovieLens variant (from the cache, local files, TFDS or the PyPI copy) and summarise it and its split.

    python -m experiments.data_summary --dataset 1m --data_dir ~/movielens --split leave_last_out
"""

from __future__ import annotations

import argparse
import json
import sys

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from movielens import cli
from movielens.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.data_summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_data_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    cli.check_data_flags(args)
    data, split = cli.load_data_and_split(args, (0.8, 0.1, 0.1))
    print(json.dumps(data.summary(), indent=2))
    print(split.describe())
    print(f"vocabulary (train only): {len(split.vocabulary.user_ids):,} users, "
          f"{len(split.vocabulary.movie_ids):,} movies")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
