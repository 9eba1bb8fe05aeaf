"""Train (or load from saved_models/) and report one model family.

    python -m experiments.run [--model two_tower|bert4rec|cf|knn|autorec|data_summary] [model flags]

Each model family lives in its own `experiments/<family>.py` exposing
`add_arguments(parser)` and `run(args) -> int`; this file only dispatches.
`python -m experiments.run --model X --help` lists that family's flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import movielens  # noqa: F401  (Keras 2 before TensorFlow)

# --model value -> module under experiments/ implementing add_arguments(parser) and run(args).
MODELS = {
    "two_tower": "experiments.two_tower",
    "bert4rec": "experiments.bert4rec",
    "cf": "experiments.rating",
    "knn": "experiments.rating",
    "autorec": "experiments.rating",
    "data_summary": "experiments.data_summary",
}
DEFAULT_MODEL = "two_tower"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selector = argparse.ArgumentParser(add_help=False)
    selector.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS))
    known, _ = selector.parse_known_args(argv)
    module = importlib.import_module(MODELS[known.model])
    parser = argparse.ArgumentParser(prog="python -m experiments.run", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="model family")
    module.add_arguments(parser)
    return run_cli(module.run, parser.parse_args(argv))


def run_cli(function, args) -> int:
    """Runs a CLI body; user errors (bad ids, titles, files, no network) print one clear line, exit 2."""
    from movielens.errors import USER_ERRORS

    try:
        return function(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
