"""Recommendations from a trained model of any family, three ways:

    python -m experiments.recommend --model cf --user_id 42                 a user of the data set
    python -m experiments.recommend --model sasrec --history "Star Wars (1977)" "empire strikes back"
    python -m experiments.recommend --model item_knn --similar_to "Toy Story"

Titles are matched the way people type them (words in any order, small typos, a bare year); an
ambiguous title lists the candidates. A model that is not in saved_models/ is named with what will
be trained before it trains; --no_train makes that an error instead. The model's flags are the same
as `python -m experiments.run --model NAME` (see its --help), so both commands share saved models.
"""

from __future__ import annotations

import argparse
import sys

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from movielens import cli
from movielens.errors import run_cli

DEFAULT_MODEL = "two_tower"


def build_parser(model: str) -> argparse.ArgumentParser:
    from movielens.families import REGISTRY, get_family

    family = get_family(model)
    parser = argparse.ArgumentParser(prog="python -m experiments.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list(REGISTRY), help="model family")
    query = parser.add_argument_group("who to recommend for (one of)").add_mutually_exclusive_group(required=True)
    query.add_argument("--user_id", "--generate_recommendations_for_user", dest="user_id", default="",
                       metavar="USER_ID", help="a user of the data set: every movie they rated is excluded")
    query.add_argument("--history", nargs="+", default=(), metavar="TITLE",
                       help='movies someone liked, oldest first, e.g. "Star Wars (1977)" "empire strikes back"')
    query.add_argument("--similar_to", default="", metavar="TITLE", help="movies for someone who liked this one")
    parser.add_argument("--k", type=cli.positive_int, default=10, help="how many recommendations (default: 10)")
    parser.add_argument("--include_seen", action="store_true", help="--user_id: may include movies already rated")
    parser.add_argument("--index_backend", default="auto", choices=("auto", "brute_force", "scann"),
                        help="top-k index (default auto: ScaNN when importable and the catalogue is large)")
    cli.add_data_flags(parser)
    parser.set_defaults(split=family.default_split)
    family.add_flags(parser)
    cli.add_run_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    from movielens.experiment import recommend
    from movielens.families import get_family

    family = get_family(args.model)
    cli.check_data_flags(args)
    with cli.distribution(args, [family]):  # before TensorFlow runs anything
        configs = family.configs_from_args(args)
        if len(configs) != 1:
            raise ValueError(f"recommend uses one model; the flags describe {len(configs)} (give one feature set)")
        data, split = cli.load_data_and_split(args, family.default_fractions)
        recommend(data, split, family, configs[0], user_id=args.user_id, history=args.history,
                  similar_to=args.similar_to, k=args.k, include_seen=args.include_seen, no_train=args.no_train,
                  retrain=args.retrain, backend=args.index_backend, verbose=0 if args.quiet else 1,
                  options=family.options_from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    from movielens.families import REGISTRY

    argv = list(sys.argv[1:] if argv is None else argv)
    selector = argparse.ArgumentParser(prog="python -m experiments.recommend", add_help=False)
    selector.add_argument("--model", default=DEFAULT_MODEL, choices=list(REGISTRY))
    known, _ = selector.parse_known_args(argv)
    return run_cli(_run, build_parser(known.model).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
