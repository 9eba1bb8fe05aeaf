"""Scale: one training epoch of cf, autorec and knn on a synthetic ML-25M-shaped data set, peak RSS and seconds.

    .venv/bin/python -m benchmarks.scale_families [--ratings 5000000] [--families cf autorec knn] [--rank]

Data: `movielens.data.synthetic.generate_grouplens("25m", --ratings)` (ML-25M's shape scaled, in the data
layer's integer / Categorical columns), or with `--generator local` (and in code from before that generator)
the vectorised frame `scale_ratings` below, in ML-25M's proportions by default: 162,541 users and 62,423
movies per 25,000,095 ratings, scaled to `--ratings` (`--users` / `--movies` override); per-user counts
log-normal with at least 20, Zipf-like movie popularity, half-star ratings from user + movie biases + noise,
increasing timestamps per user; one rating per (user, movie), string ids (object columns).
Split: random 80/10/10, seed 42 (the leaderboard's), so the rating families early-stop on the split's
validation part and knn validates on it.

Each family runs in its own process (its peak RSS is its own): the data is generated and split, then the
family's default config with `epochs=1` (rating families: `refit_full=False`) is fitted through
`family.fit`, which includes the per-epoch validation (cf / autorec: validation RMSE; knn: validation
NDCG@10 over the validation users, or a sample of `validation_users`). With `--rank` the test part is
ranked afterwards by the leaderboard protocol (`movielens.protocol.evaluate`, every test user).
Recorded per family: seconds (wall and process CPU) of data preparation, of the fit, and of its epoch and
validation (from the training history); VmRSS after the data, and VmHWM (peak RSS) over data + fit
(+ ranking), read from /proc/self/status, in GiB (the `_gb` keys). The machine is shared: the load
average is recorded, and CPU seconds are the steadier figure.

Writes benchmarks/results/scale_families.json (one entry per `--label`, default "<ratings>", so runs of
other sizes or code versions are kept) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ML25M = {"ratings": 25_000_095, "users": 162_541, "movies": 62_423}
FAMILIES = ("cf", "autorec", "knn")


def scale_ratings(n_ratings: int, n_users: int, n_movies: int, seed: int = 0):
    """A ratings frame (user_id, movie_id: str; user_rating: float32 half stars; timestamp: int64), vectorised.

    Every user has >= 20 ratings (fewer when the catalogue is smaller), no (user, movie) pair repeats.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    counts = np.exp(rng.normal(0.0, 1.0, n_users))
    counts = 20 + np.floor(counts / counts.sum() * max(n_ratings - 20 * n_users, 0)).astype(np.int64)
    counts = np.minimum(counts, n_movies)
    popularity = 1.0 / (np.arange(n_movies) + 10.0)
    popularity = rng.permutation(popularity / popularity.sum())
    # Draw half as many again with replacement, drop repeated pairs, keep each user's first `counts` draws.
    draws = counts + counts // 2 + 5
    users = np.repeat(np.arange(n_users, dtype=np.int64), draws)
    movies = rng.choice(n_movies, size=len(users), p=popularity).astype(np.int64)
    keys, first_draw = np.unique(users * n_movies + movies, return_index=True)
    keys = keys[np.argsort(first_draw, kind="stable")]  # draw order, users contiguous
    users, movies = keys // n_movies, keys % n_movies
    starts = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))[:-1]]
    keep = np.arange(len(users)) - starts[users] < counts[users]
    users, movies = users[keep], movies[keep]
    user_bias, movie_bias = rng.normal(0, 0.4, n_users), rng.normal(0, 0.4, n_movies)
    stars = 3.5 + user_bias[users] + movie_bias[movies] + rng.normal(0, 0.8, len(users))
    stars = np.clip(np.round(stars * 2) / 2, 0.5, 5.0).astype(np.float32)
    order = rng.permutation(len(users))           # a user's movies in random time order
    users, movies, stars = users[order], movies[order], stars[order]
    by_user = np.argsort(users, kind="stable")
    start = rng.integers(800_000_000, 1_500_000_000, n_users)
    steps = rng.integers(1, 3_600, len(users))
    times = np.empty(len(users), np.int64)
    cumulative = np.cumsum(steps[by_user])
    first = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))[:-1]]
    sorted_users = users[by_user]
    times[by_user] = start[sorted_users] + cumulative - (cumulative[first] - steps[by_user][first])[sorted_users]
    ids = np.arange(1, max(n_users, n_movies) + 1).astype(str).astype(object)
    return pd.DataFrame({"user_id": ids[users], "movie_id": ids[movies], "user_rating": stars, "timestamp": times})


def scale_data(n_ratings: int, n_users: int, n_movies: int, seed: int = 0, generator: str = "auto"):
    """`MovieLensData` (variant 25m): `movielens.data.synthetic.generate_grouplens` (ML-25M's shape scaled to
    `n_ratings`, the data layer's own generator) when the code has it and `generator` is "auto", else the
    `scale_ratings` frame (`generator` "local", and the only one in code from before the generator existed)."""
    from movielens.data import schema, synthetic
    from movielens.data.table import assemble, make_movies

    if generator == "auto" and hasattr(synthetic, "generate_grouplens"):
        return synthetic.generate_grouplens("25m", n_ratings, seed=seed).to_data()

    ratings = scale_ratings(n_ratings, n_users, n_movies, seed)
    genres = [[schema.GENRES[m % 17], schema.GENRES[(m * 7 + 3) % 17]] for m in range(n_movies)]
    movies = make_movies(np.arange(1, n_movies + 1).astype(str), [f"Movie {m} (1995)" for m in range(1, n_movies + 1)],
                         genres)
    return assemble("25m", "synthetic-scale", ratings, movies, None)  # source "synthetic-scale": this frame


def _status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in GiB."""
    from benchmarks.common import process_status_kb

    return {key: kb / 1024 ** 2 for key, kb in process_status_kb("VmRSS", "VmHWM").items()}


def _cap_epoch(steps: int, row: dict) -> None:
    """Trains only the first `steps` batches of the epoch (knn at 25M: ~195,000 steps, over an hour on 2
    cores): `fit_resumable` is wrapped to pass Keras `steps_per_epoch`; the row records both step counts so
    the epoch time is projected from the measured steps (a partial epoch, labelled as such)."""
    import movielens.training as training

    fit_resumable = training.fit_resumable

    def capped(model, train_data, **kwargs):
        row["steps_per_epoch"] = train_data.steps_per_epoch
        row["steps_trained"] = min(steps, train_data.steps_per_epoch)
        return fit_resumable(model, train_data, steps_per_epoch=row["steps_trained"], **kwargs)

    training.fit_resumable = capped


def run_family(name: str, n_ratings: int, n_users: int, n_movies: int, rank: bool, validation_users: int,
               generator: str, partial_steps: int = 0) -> dict:
    import movielens  # noqa: F401  (environment first)
    from movielens import protocol
    from movielens.data.splits import make_split
    from movielens.families import get_family
    from movielens.families.base import Context
    from movielens.persistence import ModelDir

    started, cpu = time.perf_counter(), time.process_time()
    data = scale_data(n_ratings, n_users, n_movies, generator=generator)
    split = make_split(data, "random", (0.8, 0.1, 0.1), seed=42)
    row = {"family": name, "data": data.source, "ratings": len(data.ratings),
           "users": int(len(split.vocabulary.user_ids)), "movies": int(len(split.vocabulary.movie_ids)),
           "train": len(split.train),
           "data_seconds": time.perf_counter() - started, "data_cpu_seconds": time.process_time() - cpu,
           "rss_after_data_gb": _status()["VmRSS"]}
    family = get_family(name)
    config = family.default_config().replace(epochs=1)
    if name in ("cf", "autorec"):
        config = config.replace(refit_full=False)
    if validation_users and "validation_users" in config.field_names():
        config = config.replace(validation_users=validation_users)
    context = Context(data, split, verbose=2)
    if partial_steps and name == "knn":
        _cap_epoch(partial_steps, row)
    with tempfile.TemporaryDirectory(prefix="scale-families-") as folder:
        started, cpu = time.perf_counter(), time.process_time()
        fitted = family.fit(config, context, ModelDir(name, config.to_dict(), root=folder))
        row.update(fit_seconds=time.perf_counter() - started, fit_cpu_seconds=time.process_time() - cpu)
    history = fitted.history
    for key in ("epoch_seconds", "eval_seconds"):
        if history.get(key):
            row[key] = history[key][0]
    if row.get("steps_trained") and row.get("epoch_seconds"):
        row["projected_epoch_seconds"] = row["epoch_seconds"] * row["steps_per_epoch"] / row["steps_trained"]
    row["peak_rss_fit_gb"] = _status()["VmHWM"]
    if rank:
        started = time.perf_counter()
        task = protocol.evaluation_task(split, "test")
        scorer = family.scorer(fitted.state, config, context)
        metrics, _ = protocol.evaluate(scorer, task, context.item_counts, with_intervals=False)
        row.update(rank_seconds=time.perf_counter() - started, test_users=len(task),
                   test_ndcg10=metrics[protocol.PRIMARY], peak_rss_rank_gb=_status()["VmHWM"])
    row["config"] = config.to_dict()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=0, help="default: ML-25M's users per rating x --ratings")
    parser.add_argument("--movies", type=int, default=0, help="default: ML-25M's movies per rating x --ratings")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--rank", action="store_true", help="also rank the test part (leaderboard protocol)")
    parser.add_argument("--validation_users", type=int, default=0,
                        help="knn: validate on a seeded sample of this many users (0 = all)")
    parser.add_argument("--generator", choices=("auto", "local"), default="auto",
                        help="auto: movielens.data.synthetic.generate_grouplens when present; local: scale_ratings")
    parser.add_argument("--knn_steps", type=int, default=0,
                        help="knn: train only this many steps of the epoch and project the epoch's time (0 = all)")
    parser.add_argument("--label", default="", help="results key (default: the number of ratings)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    users = args.users or round(ML25M["users"] * args.ratings / ML25M["ratings"])
    movies = args.movies or round(ML25M["movies"] * args.ratings / ML25M["ratings"])
    if args.child:
        row = run_family(args.child, args.ratings, users, movies, args.rank, args.validation_users, args.generator,
                         args.knn_steps)
        print("RESULT " + json.dumps(row), flush=True)
        return 0
    from benchmarks.common import RESULTS_DIR, machine, markdown_table, run_child_process, write_results

    load_start = os.getloadavg()
    rows = []
    for name in args.families:
        command = [sys.executable, "-m", "benchmarks.scale_families", "--child", name, "--ratings", str(args.ratings),
                   "--users", str(users), "--movies", str(movies), "--validation_users", str(args.validation_users),
                   "--generator", args.generator, "--knn_steps", str(args.knn_steps)]
        command += ["--rank"] if args.rank else []
        print(f"--- {name}: {' '.join(command[1:])}", flush=True)
        returncode, results, tail = run_child_process(command, "RESULT ")
        if returncode or not results:
            rows.append({"family": name, "error": f"exit {returncode}: {tail}"})
        else:
            rows.append(json.loads(results[-1][len("RESULT "):]))
        print(json.dumps(rows[-1], default=str)[:600], flush=True)
    columns = ["family", "ratings", "users", "movies", "fit_seconds", "fit_cpu_seconds", "epoch_seconds",
               "eval_seconds", "steps_trained", "steps_per_epoch", "projected_epoch_seconds",
               "rss_after_data_gb", "peak_rss_fit_gb", "rank_seconds", "peak_rss_rank_gb", "error"]
    print(markdown_table(rows, columns))
    path = RESULTS_DIR / "scale_families.json"
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    runs[args.label or str(args.ratings)] = {"rows": rows, "load_average": [load_start, os.getloadavg()],
                                             "machine": machine(), "command": " ".join(sys.argv)}
    write_results("scale_families", {"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
