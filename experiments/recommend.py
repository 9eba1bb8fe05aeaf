"""Recommendations from a trained model (trained on first use if it is not in saved_models/).

    python -m experiments.recommend --model bert4rec --history "Toy Story (1995)" "Aladdin (1992)"
    python -m experiments.recommend --model cf --user_id 42
    python -m experiments.recommend --model knn --similar_to "Toy Story (1995)"

Each model family's `experiments/<family>.py` exposes `add_recommend_arguments(parser)`
and `recommend(args) -> int`; this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import movielens  # noqa: F401
from experiments.run import run_cli

MODELS = {
    "two_tower": "experiments.two_tower",
    "bert4rec": "experiments.bert4rec",
    "cf": "experiments.rating",
    "knn": "experiments.rating",
    "autorec": "experiments.rating",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selector = argparse.ArgumentParser(add_help=False)
    selector.add_argument("--model", default="two_tower", choices=sorted(MODELS))
    known, _ = selector.parse_known_args(argv)
    module = importlib.import_module(MODELS[known.model])
    parser = argparse.ArgumentParser(prog="python -m experiments.recommend", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="two_tower", choices=sorted(MODELS), help="model family")
    module.add_recommend_arguments(parser)
    return run_cli(module.recommend, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
