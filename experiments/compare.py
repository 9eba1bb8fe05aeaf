"""Every family and the baselines on one data set, one split and one protocol: the leaderboard.

    python -m experiments.compare                                   every family on ML-100K, random 80/10/10
    python -m experiments.compare --dataset 1m --data_dir ../shared/datasets/ml-1m-half --split leave_last_out
    python -m experiments.compare --models popularity item_knn ease cf

Sequential models train for at most `--time_budget_minutes` each (5 by default), so the first run of
the default comparison takes about 15-20 minutes on 2 cores (later runs load the saved models).
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
    parser.add_argument("--time_budget_minutes", type=cli.finite_float, default=5.0,
                        help="training budget of each sequential model (default 5; 0 = until early stopping); "
                             "not part of a model's identity")
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
    with cli.distribution(args, families):
        data, split = cli.load_data_and_split(args, (0.8, 0.1, 0.1))
        print(split.describe())
        run_experiment(data, split, [(family, _budgeted(family, args.time_budget_minutes)) for family in families],
                       options)
    return 0


def _budgeted(family, minutes: float):
    config = family.default_config()
    if family.kind == "sequential":
        config = config.replace(training=config.training.replace(time_budget_minutes=minutes))
    return config


def main(argv: list[str] | None = None) -> int:
    return run_cli(_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
