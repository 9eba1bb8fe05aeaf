"""Benchmark: how many MovieLens movies get a real runtime, from which source, and how fast.

Protocol: the movies of each variant come from the GroupLens files in
`../shared/datasets` through `movielens.data.load_movielens` (ML-1M's movie list
from `ml-1m-half/movies.dat`, which is the complete 3,883-title `movies.dat`).
Each variant is resolved twice, both offline (no Cinemagoer answer can arrive):

  * `table`: `--movie_lengths_file ../shared/datasets/runtimes/movielens_runtimes.csv`,
    network lookups off, an empty cachier cache;
  * `no table`: no files, network lookups on; the installed Cinemagoer finds no
    IMDb database (or no network) and the run must still finish in seconds.

Writes benchmarks/results/movie_length.json and prints a markdown table.

    .venv/bin/python benchmarks/movie_length.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import movielens  # noqa: F401  (environment first)
from movielens import paths
from movielens.io import atomic_write_json
from movielens.movie_length import MovieLengthConfig, resolve_movie_lengths

RESULTS = Path(__file__).resolve().parent / "results" / "movie_length.json"
# variant -> folder under shared/datasets holding its GroupLens files.
DATA_FOLDERS = {"1m": "ml-1m-half", "100k": "ml-100k", "latest-small": "ml-latest-small"}
LABELS = {"1m": "ML-1M", "100k": "ML-100K", "latest-small": "ml-latest-small"}


def load_movies(variant: str, shared: Path):
    from movielens.data import load_movielens

    data = load_movielens(variant, data_dir=shared / DATA_FOLDERS[variant], source="local")
    return data.movies


def run(variants: list[str], table: Path, shared: Path) -> dict:
    results = {"protocol": __doc__.split("Writes")[0].strip(), "table": str(table), "variants": {}}
    for variant in variants:
        movies = load_movies(variant, shared)
        entry = {"dataset": LABELS[variant], "n_movies": len(movies), "runs": {}}
        for name, config in (
            ("table", MovieLengthConfig(table_path=str(table), use_network=False)),
            ("no table", MovieLengthConfig()),
        ):
            with tempfile.TemporaryDirectory() as cache_dir:
                started = time.perf_counter()
                lengths = resolve_movie_lengths(
                    movies, variant, config, cache_dir=cache_dir, progress=False, verbose=True, write_report=False
                )
                seconds = time.perf_counter() - started
            report = lengths.report
            entry["runs"][name] = {
                "n_real": report["n_real"],
                "fraction_real": report["fraction_real"],
                "counts": report["counts"],
                "n_default": report["n_default"],
                "seconds": seconds,
                "notes": report["notes"],
                "mean_minutes_real": float(lengths.minutes[lengths.source != "default"].mean())
                if report["n_real"]
                else None,
            }
        results["variants"][variant] = entry
    return results


def markdown(results: dict) -> str:
    lines = [
        "| dataset | movies | sources | real runtimes | default (90 min) | seconds |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for entry in results["variants"].values():
        for name, run_ in entry["runs"].items():
            lines.append(
                f"| {entry['dataset']} | {entry['n_movies']:,} | {name} | {run_['n_real']:,} "
                f"({100 * run_['fraction_real']:.1f}%) | {run_['n_default']:,} | {run_['seconds']:.2f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="1m,100k,latest-small")
    parser.add_argument("--table", default=None, help="runtime table (default: shared/datasets/runtimes/...)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    shared = paths.shared_datasets_dir()
    if shared is None:
        print("../shared/datasets is absent: nothing to benchmark", file=sys.stderr)
        return 1
    table = Path(args.table) if args.table else shared / "runtimes" / "movielens_runtimes.csv"
    results = run([v.strip() for v in args.variants.split(",") if v.strip()], table, shared)
    atomic_write_json(args.output, results)
    print(markdown(results))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
