"""Scale: the data layer on a synthetic data set shaped like ML-25M, step by step, seconds and peak memory.

    python -m benchmarks.scale [--ratings N] [--layout 25m] [--scratch /tmp/scale] [--steps generate first_load ...]

Data: `movielens.data.synthetic.generate_grouplens` in the GroupLens `--layout` (default 25m: 25,000,095
ratings, 162,541 users, 59,047 rated of 62,423 movies; `--ratings N` scales it down, see `grouplens_shape`),
written as the release's files under `--scratch` (kept between runs and reused while their shape and seed
match; `--clean` deletes the scratch folder at the end).

Steps (`--steps`, in this order; each in its own process, so its peak RSS is its own):
- generate: generate the tables and write the files (skipped, keeping its earlier row, when the files are
  there already)
- content_key: hash the files (`FileSet.content_key`: the cache identity, part of every load)
- first_load: `load_movielens(..., rebuild=True)`: content key + parse + cache write (a user's first run)
- cached_load: `load_movielens(...)` served from that cache entry
- split: a cached load (not timed), then `make_split(data, "random")` (80/20, seed 42)
Recorded per step: wall and CPU seconds of the step itself (imports, TensorFlow's included, are not timed
but are in the peak RSS: `rss_before_gb` is the RSS when the timed part starts), the peak RSS of the
process (getrusage), and the 1-minute load average before and after: the machine is shared, and on 2
cores a load of 8 stretches wall time ~4x past CPU time.

Results: benchmarks/results/scale.json, one entry per `--label` (default "<layout>-<ratings>") holding one
row per step, so runs at other sizes, and steps added later, sit side by side. To add a step (e.g. one
epoch of a family): write `def step_x(context) -> dict` doing the work after `context.timer()` starts,
register it in STEPS; it runs in its own process like the others.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import RESULTS_DIR, machine, markdown_table, process_status_kb, run_child_process
from movielens.io import atomic_write_json, read_json

RESULT_NAME = "scale"


@dataclasses.dataclass
class Context:
    """What a step needs: the data's place and shape, and the timer of the measured part."""

    layout: str
    ratings: int | None
    seed: int
    scratch: Path
    two_tower_epochs: int = 3
    measured: dict = dataclasses.field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.scratch / f"ml-{self.layout}"

    @property
    def cache_dir(self) -> Path:
        return self.scratch / "datasets"

    @contextlib.contextmanager
    def timer(self):
        """Wraps the measured part of a step: its wall and CPU seconds."""
        self.measured["rss_before_gb"] = _rss_gb()
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.measured["wall_s"] = round(time.perf_counter() - wall, 2)
        self.measured["cpu_s"] = round(time.process_time() - cpu, 2)


def _rss_gb() -> float:
    rss = process_status_kb("VmRSS").get("VmRSS")
    return round(rss / 1e6, 3) if rss is not None else float("nan")


def _marker(context: Context) -> dict:
    return {"layout": context.layout, "ratings": context.ratings, "seed": context.seed}


def step_generate(context: Context) -> dict:
    from movielens.data.synthetic import generate_grouplens, write_tables

    marker = context.data_dir / "generated.json"
    if marker.is_file() and read_json(marker) == _marker(context):
        return {"skipped": "files already there"}
    shutil.rmtree(context.data_dir, ignore_errors=True)
    with context.timer():
        started = time.perf_counter()
        tables = generate_grouplens(context.layout, context.ratings, seed=context.seed)
        generated = time.perf_counter() - started
        write_tables(tables, context.data_dir, context.layout)
    atomic_write_json(marker, _marker(context))
    size = sum(p.stat().st_size for p in context.data_dir.iterdir())
    return {"generate_s": round(generated, 2), "write_s": round(context.measured["wall_s"] - generated, 2),
            "files_mb": round(size / 1e6, 1), "ratings": len(tables.ratings),
            "users": int(tables.ratings["user_id"].nunique()), "movies": len(tables.movies),
            "rated_movies": int(tables.ratings["movie_id"].nunique())}


def step_content_key(context: Context) -> dict:
    from movielens.data import grouplens

    files = grouplens.locate(context.layout, context.data_dir)
    with context.timer():
        key = files.content_key(grouplens.LAYOUT_FILES[context.layout] + ("links.csv",))
    return {"key": key}


def _import_tensorflow() -> None:
    import tensorflow as tf  # noqa: F401  (the cache's; its import is not part of a load)


def step_first_load(context: Context) -> dict:
    from movielens.data import load_movielens

    _import_tensorflow()
    with context.timer():
        data = load_movielens(context.layout, data_dir=context.data_dir, cache_dir=context.cache_dir, rebuild=True)
    return _frame_figures(data)


def step_cached_load(context: Context) -> dict:
    from movielens.data import load_movielens

    _import_tensorflow()
    with context.timer():
        data = load_movielens(context.layout, data_dir=context.data_dir, cache_dir=context.cache_dir)
    return _frame_figures(data)


def step_split(context: Context) -> dict:
    from movielens.data import load_movielens, make_split

    _import_tensorflow()
    data = load_movielens(context.layout, data_dir=context.data_dir, cache_dir=context.cache_dir)
    with context.timer():
        split = make_split(data, "random")
    return {"train": len(split.train), "test": len(split.test), "vocabulary_users": len(split.vocabulary.user_ids),
            "vocabulary_movies": len(split.vocabulary.movie_ids)}


# ---------------------------------------------------------------- families at scale
# Each loads the cached data and splits it (not timed), then trains / refuses; the timed part is the
# family's own work. Models go under the scratch folder.
TWO_TOWER_BATCH = 2048       # the measurement batch; 512 (the default) means 4x the steps
VALIDATION_USERS = 10_000    # per-epoch validation sample; the test ranking is a full pass


def _data_and_split(context: Context, split_name: str = "random"):
    from movielens.data import load_movielens, make_split

    _import_tensorflow()
    data = load_movielens(context.layout, data_dir=context.data_dir, cache_dir=context.cache_dir)
    fractions = (0.8, 0.1, 0.1) if split_name == "random" else None
    return data, make_split(data, split_name, fractions, 42)


def _two_tower(context: Context, features: tuple[str, ...]) -> dict:
    from movielens.persistence import ModelDir
    from movielens.trainer import MovieLensTrainer, TwoTowerConfig

    data, split = _data_and_split(context)
    config = TwoTowerConfig(features=features, num_epochs=context.two_tower_epochs, batch_size=TWO_TOWER_BATCH,
                            patience=0, validation_users=VALIDATION_USERS)
    name, folder = f"two_tower-{'-'.join(features) or 'id_only'}", context.scratch / "models"
    for old in folder.glob(f"{name}-*"):  # a fresh run: no resuming from an earlier measurement
        shutil.rmtree(old)
    with context.timer():
        trainer = MovieLensTrainer(data, split, verbose=1)
        _, _, history, metrics = trainer.fit(config, ModelDir(name, config.to_dict(), folder))
    return {"features": list(features) or ["id_only"], "epochs": context.two_tower_epochs,
            "batch_size": TWO_TOWER_BATCH,
            "validation_users": VALIDATION_USERS, "epoch_s": [round(s, 1) for s in history.get("epoch_seconds", [])],
            "eval_s": [round(s, 1) for s in history.get("eval_seconds", [])],
            "val_ndcg@10": history.get("val_ndcg@10"), "test_ndcg@10": round(metrics.get("ndcg@10", float("nan")), 4),
            "test_users": metrics.get("users_evaluated"), "test_top_k_ratings": metrics.get("test_top_k_ratings")}


def step_two_tower_id_only(context: Context) -> dict:
    return _two_tower(context, ())


def step_two_tower_features(context: Context) -> dict:
    return _two_tower(context, ("timestamp", "movie_title_text", "movie_genres"))


def step_sasrec_epoch(context: Context) -> dict:
    """One SASRec epoch with the sampled softmax (`--loss sampled_ce`, 256 negatives), no evaluation."""
    from movielens.models.sasrec import SasRecConfig
    from movielens.persistence import ModelDir
    from movielens.sequential import SasRecTrainingConfig, fit_sequential

    data, split = _data_and_split(context)
    config = SasRecConfig(max_len=200, dropout=0.2, loss="sampled_ce", num_negatives=256)
    training = SasRecTrainingConfig(epochs=1, batch_size=128)
    folder = context.scratch / "models"
    shutil.rmtree(folder, ignore_errors=True)
    with context.timer():
        _, history, metrics = fit_sequential(data, split, config, training, ModelDir("sasrec", {}, folder),
                                             verbose=2)
    return {"loss": "sampled_ce", "max_len": 200, "batch_size": 128, "windows": metrics.get("n_windows"),
            "items": metrics.get("n_items"), "epoch_s": [round(s, 1) for s in history.get("epoch_seconds", [])]}


def step_refusals(context: Context) -> dict:
    """Each family's up-front check on the full data (before any work): refused ones and their one line."""
    from movielens.families import REGISTRY

    data, _ = _data_and_split(context)
    out = {}
    with context.timer():
        for name, family in REGISTRY.items():
            try:
                family.check(family.default_config(), data)
                out[name] = "accepted"
            except ValueError as error:
                out[name] = f"refused: {error}"
    return out


def _frame_figures(data) -> dict:
    frame_bytes = data.ratings.memory_usage(deep=True).sum()
    return {"ratings": len(data.ratings), "ratings_frame_gb": round(frame_bytes / 1e9, 3)}


STEPS: dict[str, Callable[[Context], dict]] = {
    "generate": step_generate, "content_key": step_content_key, "first_load": step_first_load,
    "cached_load": step_cached_load, "split": step_split, "refusals": step_refusals,
    "two_tower_id_only": step_two_tower_id_only, "two_tower_features": step_two_tower_features,
    "sasrec_epoch": step_sasrec_epoch,
}
DATA_STEPS = ("generate", "content_key", "first_load", "cached_load", "split")
COLUMNS = ["step", "wall_s", "cpu_s", "rss_before_gb", "peak_rss_gb", "load_before", "load_after"]


def run_child(name: str, context: Context) -> dict:
    """Runs one step in this process (the child) and returns its row."""
    import movielens  # noqa: F401  (selects Keras 2 before TensorFlow loads)

    load_before = os.getloadavg()[0]
    details = STEPS[name](context)
    row = {"step": name, **context.measured, **details, "peak_rss_gb": round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3), "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2)}
    return row


def run_step(name: str, args) -> dict:
    """Runs one step in a fresh process; its row (or the error) as a dict."""
    command = [sys.executable, "-m", "benchmarks.scale", "--child", name, "--layout", args.layout, "--seed",
               str(args.seed), "--scratch", str(args.scratch)]
    command += ["--ratings", str(args.ratings)] if args.ratings else []
    command += ["--two_tower_epochs", str(args.two_tower_epochs)]
    returncode, lines, tail = run_child_process(command, "{")
    if returncode != 0 or not lines:
        return {"step": name, "error": f"exit {returncode}: {tail}"}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="25m", choices=["100k", "1m", "20m", "25m", "latest-small"])
    parser.add_argument("--ratings", type=int, default=None, help="scale to this many ratings (default: the release's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/scale"), help="where the files and cache go")
    parser.add_argument("--steps", nargs="+", default=list(DATA_STEPS), choices=list(STEPS),
                        help="default: the data steps; the family steps (refusals, two_tower_id_only, "
                             "two_tower_features, sasrec_epoch) take from minutes to hours at 25M")
    parser.add_argument("--two_tower_epochs", type=int, default=3, help="epochs of the two-tower steps")
    parser.add_argument("--label", default=None, help="entry name in scale.json (default <layout>-<ratings>)")
    parser.add_argument("--clean", action="store_true", help="delete --scratch at the end")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    context = Context(args.layout, args.ratings, args.seed, args.scratch, args.two_tower_epochs)
    if args.child:
        print(json.dumps(run_child(args.child, context)))
        return 0
    from movielens.data.synthetic import grouplens_shape

    shape = grouplens_shape(args.layout, args.ratings)
    label = args.label or f"{args.layout}-{shape.n_ratings}"
    print(f"{label}: {shape.n_ratings:,} ratings, {shape.n_users:,} users, {shape.n_rated_movies:,} rated of "
          f"{shape.n_movies:,} movies, under {args.scratch}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    rows = []
    for name in args.steps:
        row = run_step(name, args)
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "step"), flush=True)
    print(markdown_table(rows, COLUMNS))
    path = RESULTS_DIR / f"{RESULT_NAME}.json"
    previous = read_json(path) if path.is_file() else {}
    runs = previous.get("runs", {})
    entry = runs.get(label, {"steps": {}})
    entry.update({"dataset": {"layout": args.layout, "seed": args.seed, **dataclasses.asdict(shape)},
                  "machine": machine()})
    for row in rows:  # a skipped step keeps its earlier measurement
        if "skipped" not in row or row["step"] not in entry["steps"]:
            entry["steps"][row["step"]] = row
    runs[label] = entry
    atomic_write_json(path, {"protocol": __doc__.strip(), "runs": runs})
    print(f"\nresults written to {path}")
    if args.clean:
        shutil.rmtree(args.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
