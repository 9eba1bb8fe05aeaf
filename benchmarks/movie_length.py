"""Benchmark: how many MovieLens movies get a real runtime, from which source, and how fast.

Protocol: the movies of each variant come from the GroupLens files in
`../shared/datasets` through `movielens.data.load_movielens` (ML-1M's movie list
from `ml-1m-half/movies.dat`, which is the complete 3,883-title `movies.dat`).
Each variant is resolved twice, both offline (no Cinemagoer answer can arrive):

  * `table`: `--movie_lengths_file ../shared/datasets/runtimes/movielens_runtimes.csv`,
    network lookups off, an empty cachier cache;
  * `no table`: no files, network lookups on; the installed Cinemagoer finds no
    IMDb database (or no network) and the run must still finish in seconds.

A third measurement times the IMDb bulk-file source on a SYNTHETIC
`title.basics.tsv.gz` (IMDb's format; `--bulk_rows` random titles plus every
ML-1M title with a planted runtime), because IMDb's real file cannot be
downloaded here: it reports scan time and how many planted runtimes came back.

Last, the two-tower top-100 accuracy with real runtimes against the constant
90 minutes: ML-100K (complete `u.data`), random 80/20 split, for each seed the
same split, model seed and settings in both arms (the CLI defaults: 5 epochs,
batch 2048, Adagrad lr 0.1, embeddings 32, layers [32]); feature set
`movie_length` alone (candidate tower: movie id + runtime buckets + normalised
runtime); test top-k is the FactorizedTopK protocol (all catalogue movies,
seen not excluded). Runtimes from the table above (98.6% real).

Writes benchmarks/results/movie_length.json and prints markdown tables.

    .venv/bin/python -m benchmarks.movie_length [--variants 1m,100k] [--bulk_rows 0] [--accuracy_seeds]
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


def load_movies_data(variant: str, shared: Path):
    from movielens.data import load_movielens

    return load_movielens(variant, data_dir=shared / DATA_FOLDERS[variant], source="local")


def load_movies(variant: str, shared: Path):
    return load_movies_data(variant, shared).movies


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


def synthetic_bulk_file(path: Path, movies, n_random: int, seed: int = 0):
    """Writes an IMDb-format title.basics.tsv.gz; returns the planted runtime of each movie."""
    import numpy as np
    import pandas as pd

    from movielens.titles import parse_title

    rng = np.random.default_rng(seed)
    words = np.array("love night dark house city man girl war dream blue road last time king star river".split())
    picks = rng.integers(0, len(words), size=(n_random, 2))
    numbers = rng.integers(0, 100_000, n_random).astype(str)
    primary = [f"{words[a]} {words[b]} {n}" for (a, b), n in zip(picks, numbers, strict=True)]
    runtimes = rng.integers(1, 200, n_random).astype(str)
    runtimes[rng.random(n_random) < 0.4] = "\\N"
    random_rows = pd.DataFrame(
        {
            "tconst": [f"tt{i + 10_000_000:08d}" for i in range(n_random)],
            "titleType": rng.choice(
                ["movie", "tvEpisode", "short", "tvSeries", "video"], n_random, p=[0.15, 0.6, 0.1, 0.1, 0.05]
            ),
            "primaryTitle": primary,
            "originalTitle": primary,
            "isAdult": "0",
            "startYear": rng.integers(1900, 2025, n_random).astype(str),
            "endYear": "\\N",
            "runtimeMinutes": runtimes,
            "genres": "Drama",
        }
    )
    planted = 100 + np.arange(len(movies)) % 50
    parsed = [parse_title(t) for t in movies["movie_title"]]
    movie_rows = pd.DataFrame(
        {
            "tconst": [f"tt{i + 1:07d}" for i in range(len(movies))],
            "titleType": "movie",
            "primaryTitle": [p.name for p in parsed],
            "originalTitle": [p.alternates[0] if p.alternates else p.name for p in parsed],
            "isAdult": "0",
            "startYear": [str(p.year) if p.year else "\\N" for p in parsed],
            "endYear": "\\N",
            "runtimeMinutes": planted.astype(str),
            "genres": "Drama",
        }
    )
    frame = pd.concat([random_rows, movie_rows]).sample(frac=1.0, random_state=seed)
    frame.to_csv(path, sep="\t", index=False, quoting=3, compression={"method": "gzip", "compresslevel": 1})
    return planted


def run_bulk(shared: Path, n_random: int) -> dict:
    import numpy as np

    movies = load_movies("1m", shared)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "title.basics.tsv.gz"
        planted = synthetic_bulk_file(path, movies, n_random)
        started = time.perf_counter()
        lengths = resolve_movie_lengths(
            movies,
            "1m",
            MovieLengthConfig(imdb_basics_path=str(path), use_network=False),
            cache_dir=tmp,
            progress=False,
            verbose=True,
            write_report=False,
        )
        seconds = time.perf_counter() - started
    return {
        "dataset": "ML-1M titles in a synthetic title.basics.tsv.gz",
        "n_rows": n_random + len(movies),
        "n_movies": len(movies),
        "n_real": lengths.report["n_real"],
        "n_planted_runtime_recovered": int(np.sum(lengths.minutes == planted)),
        "seconds": seconds,
    }


def run_accuracy(shared: Path, table: Path, seeds: list[int], num_epochs: int) -> dict:
    from movielens.data.splits import make_split
    from movielens.trainer import MovieLensTrainer

    data = load_movies_data("100k", shared)
    config = MovieLengthConfig(table_path=str(table), use_network=False)
    settings = {
        "num_epochs": num_epochs,
        "batch_size": 2048,
        "learning_rate": 0.1,
        "optimizer": "adagrad",
        "embedding_size": 32,
        "layer_sizes": [32],
    }
    runs = []
    for seed in seeds:
        split = make_split(data, "random", None, seed)
        for arm, constant in (("real runtimes", False), ("constant 90", True)):
            with tempfile.TemporaryDirectory() as models_root:
                started = time.perf_counter()
                trainer = MovieLensTrainer(
                    data,
                    split,
                    additional_feature_sets=[("movie_length",)],
                    seed=seed,
                    retrain=True,
                    movie_length_config=config,
                    constant_movie_length=constant,
                    models_root=models_root,
                    verbose=0,
                    **settings,
                )
                models, _ = trainer.train_all_models()
                metrics = next(iter(models.values())).metrics
            runs.append(
                {
                    "seed": seed,
                    "arm": arm,
                    "seconds": time.perf_counter() - started,
                    **{
                        k: metrics[k]
                        for k in (
                            "test_top_1_accuracy",
                            "test_top_10_accuracy",
                            "test_top_50_accuracy",
                            "test_top_100_accuracy",
                            "recall@10",
                            "ndcg@10",
                        )
                        if k in metrics
                    },
                }
            )
            print(f"seed {seed} {arm}: test top-100 {runs[-1]['test_top_100_accuracy']:.4f}", flush=True)
    summary = {}
    for arm in ("real runtimes", "constant 90"):
        values = [r["test_top_100_accuracy"] for r in runs if r["arm"] == arm]
        summary[arm] = {"mean_top_100": float(sum(values) / len(values)), "values": values}
    diffs = [
        real["test_top_100_accuracy"] - const["test_top_100_accuracy"]
        for real, const in zip(runs[0::2], runs[1::2], strict=True)
    ]
    return {
        "dataset": "ML-100K",
        "split": "random 80/20 (per seed)",
        "features": ["movie_length"],
        "settings": settings,
        "seeds": seeds,
        "runs": runs,
        "summary": summary,
        "top_100_difference_real_minus_constant": diffs,
    }


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
    bulk = results.get("imdb_bulk_synthetic")
    if bulk:
        lines.append(
            f"| ML-1M titles in a synthetic {bulk['n_rows']:,}-row title.basics.tsv.gz | {bulk['n_movies']:,} | "
            f"imdb_bulk | {bulk['n_real']:,} ({bulk['n_planted_runtime_recovered']:,} = planted value) | "
            f"{bulk['n_movies'] - bulk['n_real']:,} | {bulk['seconds']:.2f} |"
        )
    accuracy = results.get("accuracy")
    if accuracy:
        lines += [
            "",
            f"Two-tower, {accuracy['dataset']}, {accuracy['split']}, features {accuracy['features']}, "
            f"{accuracy['settings']}:",
            "",
            "| seed | arm | test top-1 | test top-10 | test top-100 | recall@10 | seconds |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in accuracy["runs"]:
            lines.append(
                f"| {r['seed']} | {r['arm']} | {r['test_top_1_accuracy']:.4f} | "
                f"{r['test_top_10_accuracy']:.4f} | {r['test_top_100_accuracy']:.4f} | "
                f"{r.get('recall@10', float('nan')):.4f} | {r['seconds']:.0f} |"
            )
        for arm, values in accuracy["summary"].items():
            lines.append(f"| mean | {arm} | | | {values['mean_top_100']:.4f} | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="1m,100k,latest-small")
    parser.add_argument("--table", default=None, help="runtime table (default: shared/datasets/runtimes/...)")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--accuracy_seeds",
        type=int,
        nargs="*",
        default=[42, 43, 44],
        help="seeds of the real-vs-constant two-tower comparison; none skips it",
    )
    parser.add_argument("--num_epochs", type=int, default=5)
    parser.add_argument(
        "--bulk_rows", type=int, default=2_000_000, help="random rows in the synthetic bulk file; 0 skips"
    )
    args = parser.parse_args(argv)
    shared = paths.shared_datasets_dir()
    if shared is None:
        print("../shared/datasets is absent: nothing to benchmark", file=sys.stderr)
        return 1
    table = Path(args.table) if args.table else shared / "runtimes" / "movielens_runtimes.csv"
    results = run([v.strip() for v in args.variants.split(",") if v.strip()], table, shared)
    if args.bulk_rows > 0:
        results["imdb_bulk_synthetic"] = run_bulk(shared, args.bulk_rows)
    if args.accuracy_seeds:
        results["accuracy"] = run_accuracy(shared, table, args.accuracy_seeds, args.num_epochs)
    atomic_write_json(args.output, results)
    print(markdown(results))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
