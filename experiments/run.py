"""Train (or load from saved_models/) the models of one family, measure them beside the baselines, report.

    python -m experiments.run                       the two-tower retrieval model (the original experiment)
    python -m experiments.run --model ease          any family of the registry
    python -m experiments.run --model cf --help     that family's flags, with their defaults

Every model is measured on the same split and ranking protocol as the popularity and EASE baselines
(movielens.protocol); the table, results.json and an HTML report go to reports/<run>/.
"""

from __future__ import annotations

import argparse
import sys

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from movielens import cli
from movielens.errors import run_cli

DEFAULT_MODEL = "two_tower"


def family_list() -> str:
    from movielens.families import REGISTRY

    lines = ["model families (--model NAME; see a family's flags with: python -m experiments.run --model NAME --help):"]
    lines += [f"  {name:<11} {family.kind:<10} {family.summary}" for name, family in REGISTRY.items()]
    return "\n".join(lines)


def build_parser(model: str) -> argparse.ArgumentParser:
    from movielens.families import REGISTRY, get_family

    family = get_family(model)
    parser = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__ + "\n" + family_list(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list(REGISTRY), help="model family")
    cli.add_data_flags(parser)
    parser.set_defaults(split=family.default_split)
    family.add_flags(parser)
    cli.add_run_flags(parser)
    cli.add_user_flags(parser, "--generate_recommendations_for_user")
    parser.add_argument("--baselines", nargs="*", default=["popularity", "ease"], choices=list(REGISTRY),
                        metavar="FAMILY", help="rows measured beside the model (default: popularity ease)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from movielens.families import REGISTRY

    selector = argparse.ArgumentParser(prog="python -m experiments.run", add_help=False)
    selector.add_argument("--model", default=DEFAULT_MODEL, choices=list(REGISTRY))
    known, _ = selector.parse_known_args(argv)
    return run_cli(_run, build_parser(known.model).parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    from movielens.experiment import RunOptions, run_experiment
    from movielens.families import get_family

    family = get_family(args.model)
    cli.check_data_flags(args)
    with cli.distribution(args, [family, *map(get_family, args.baselines)]):  # before TensorFlow runs anything
        configs = family.configs_from_args(args)  # validates every model flag before the data is loaded
        options = RunOptions(command=f"run-{family.name}", baselines=tuple(args.baselines), retrain=args.retrain,
                             no_train=args.no_train, plots=not args.no_plots, user_id=args.user_id or "",
                             include_seen=args.include_seen, k=args.k, verbose=0 if args.quiet else 1)
        data, split = cli.load_data_and_split(args, family.default_fractions)
        print(split.describe())
        run_experiment(data, split, [(family, config) for config in configs], options,
                       family.options_from_args(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
