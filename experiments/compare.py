"""Every family and the baselines on one data set, one split and one protocol: the leaderboard.

    python -m experiments.compare                                   every family on ML-100K, random 80/10/10
    python -m experiments.compare --dataset 1m --data_dir ../shared/datasets/ml-1m-half --split leave_last_out
    python -m experiments.compare --models popularity item_knn ease cf

Prints a markdown table (95% per-user bootstrap intervals, a paired test of each model against the
best baseline) and writes reports/compare-<data>-<split>-<models>/ (results.json, leaderboard.md,
report.html). Each family trains with its defaults (python -m experiments.run --model NAME --help);
trained models are cached in saved_models/ and loaded on the next run.
"""

from __future__ import annotations

import argparse
import sys

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from movielens import cli
from movielens.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    from movielens.families import REGISTRY

    parser = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(REGISTRY), choices=list(REGISTRY), metavar="FAMILY",
                        help=f"families to compare (default: all: {' '.join(REGISTRY)})")
    cli.add_data_flags(parser)
    cli.add_run_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    from movielens.experiment import RunOptions, run_experiment
    from movielens.families import get_family

    cli.check_data_flags(args)
    families = [get_family(name) for name in dict.fromkeys(args.models)]
    options = RunOptions(command="compare", baselines=(), retrain=args.retrain, no_train=args.no_train,
                         plots=not args.no_plots, verbose=0 if args.quiet else 1)
    data, split = cli.load_data_and_split(args, (0.8, 0.1, 0.1))
    print(split.describe())
    run_experiment(data, split, [(family, family.default_config()) for family in families], options)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
