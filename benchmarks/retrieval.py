"""Benchmark: two-tower retrieval quality against the TFRS tutorials, and speed against a tutorial-style loop.

Protocol (every number below):
- Data: GroupLens files from ../shared/datasets: ML-100K (`ml-100k/`) and "ML-1M (users 1–2999)"
  (`ml-1m-half/`: the first 487,650 ratings of ML-1M; published ML-1M figures are not comparable).
- Split: the TFRS tutorial protocol: random 80/20 (seed 42); validation IS the test split.
- top-100 accuracy: `FactorizedTopK` as in the tutorials: every test rating's movie ranked against ALL
  catalogue movies, seen movies NOT excluded (computed by `movielens.retrieval.evaluate_top_k`, checked
  against `model.evaluate` with FactorizedTopK below).
- recall@100 / ndcg@10: per test user, all catalogue movies ranked with the user's training movies
  EXCLUDED, query at the user's last training timestamp.
- Speed, measured side by side in one process on ML-100K, for the basic config (id-only, 32-d, 3 epochs,
  batch 8192, Adagrad 0.1) and the context config (timestamp + title text, Dense(32), batch 2048):
  "tutorial-style" is a faithful copy of the TFRS basic_retrieval / context_features loop (StringLookup,
  Discretization, Normalization, TextVectorization inside the towers on string/int features, tf.data
  `shuffle(100_000).batch(B)` (+ `.cache()` in basic_retrieval only, as in the tutorials), `tasks.Retrieval`
  with its default dense-label loss, FactorizedTopK
  over `movies.batch(128).map(candidate_model)`, metrics only when evaluating,
  `model.evaluate(test.batch(4096).cache())`). Epoch times leave out the first epoch (graph tracing);
  evaluation times are of a second call (warm), first call in the JSON.
- Training-loop rows ("incl. per-epoch validation"): the tutorial loop fitted as the tutorials fit it,
  `fit(cached_train, validation_data=cached_test, validation_freq=1)` (a FactorizedTopK pass every epoch),
  against our trainer's loop (fast `evaluate_top_k` on the same test split + a checkpoint every epoch);
  WHOLE epochs are timed (one epoch's start to the next one's), epochs 2-3 mean.
- Training-only rows at smaller batches (`--batch_sizes`, default 256 and 1024): id-only (no dense layer,
  as basic_retrieval) and timestamp + title text (Dense(32), as context_features), `--batch_epochs` epochs
  (default 2), first epoch left out, no validation timed; the B x B in-batch softmax, which both loops
  compute identically, costs B^2 per step and dominates at large batches, per-batch overheads
  (string lookups, text vectorisation, shuffling) at small ones.
- Machine: 2 shared CPU cores (other jobs were running), `nice -n 5`: absolute seconds are noisy, the
  side-by-side ratios less so.

    .venv/bin/python -m benchmarks.retrieval [--skip_1m] [--only_speed] [--batch_sizes 256 1024] [--batch_epochs 2]

Writes benchmarks/results/retrieval.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.common import RESULTS_DIR, markdown_table, write_results
from movielens import paths
from movielens.io import read_json

RESULTS = RESULTS_DIR / "retrieval.json"

# name, features, layer sizes, embedding size, epochs, batch, optimizer, learning rate, target, reference
RUNS_100K = [
    dict(name="basic: id-only", features=(), layer_sizes=(), embedding_size=32, num_epochs=3, batch_size=8192,
         optimizer="adagrad", learning_rate=0.1, target=0.23, reference="TFRS basic_retrieval: 0.233"),
    dict(name="context: timestamp + title text", features=("timestamp", "movie_title_text"), layer_sizes=(32,),
         embedding_size=32, num_epochs=3, batch_size=2048, optimizer="adagrad", learning_rate=0.1, target=0.25,
         reference="TFRS context_features: 0.25"),
    dict(name="deep [64, 32]: timestamp + title text", features=("timestamp", "movie_title_text"),
         layer_sizes=(64, 32), embedding_size=32, num_epochs=10, batch_size=1024, optimizer="adagrad",
         learning_rate=0.1, target=0.29, reference="TFRS deep_recommenders: 0.29 after 300 epochs"),
]
ALL_FEATURES = ("timestamp", "bucketized_user_age", "user_gender", "user_occupation_label", "movie_title_text",
                "movie_genres")
RUNS_1M = [
    dict(name="id-only", features=(), layer_sizes=(32,)),
    dict(name="timestamp + title text", features=("timestamp", "movie_title_text"), layer_sizes=(32,)),
    dict(name="all features but movie_length", features=ALL_FEATURES, layer_sizes=(32,)),
]
# The tutorials' loss and schedule, pinned (the trainer's defaults now add the logQ sampling correction,
# accidental-hit masking, temperature 2, L2 and early stopping on validation NDCG@10; see
# benchmarks/two_tower_quality.py): plain in-batch softmax at temperature 1, no L2, every epoch trained,
# the last epoch's weights, 1000 timestamp buckets.
TUTORIAL_LOSS = dict(sampling_correction=False, remove_accidental_hits=False, temperature=1.0, l2=0.0, patience=0,
                     timestamp_buckets=1000)
RUNS_1M = [dict(run, embedding_size=32, num_epochs=3, batch_size=1024, optimizer="adagrad", learning_rate=0.1,
                target=None, reference="") for run in RUNS_1M]


def epoch_clock():
    """A Keras callback timing WHOLE epochs: from one epoch's start to the next one's (the last: to train end).

    Everything `fit` does for an epoch falls inside: training steps, validation inside `fit`
    (`validation_data`), and every callback's `on_epoch_end` (our loop evaluates and checkpoints
    there). `seconds[i]` is epoch i+1; `train_seconds[i]` ends where validation begins (if any).
    """
    import tensorflow as tf

    class EpochClock(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.starts, self.seconds, self.train_seconds = [], [], []

        def _close(self, now):
            if self.starts:
                self.seconds.append(now - self.starts[-1])

        def on_epoch_begin(self, epoch, logs=None):
            now = time.perf_counter()
            self._close(now)
            self.starts.append(now)
            self._in_epoch = True

        def on_test_begin(self, logs=None):  # validation inside fit
            if getattr(self, "_in_epoch", False):
                self.train_seconds.append(time.perf_counter() - self.starts[-1])
                self._in_epoch = False

        def on_epoch_end(self, epoch, logs=None):
            if getattr(self, "_in_epoch", False):  # no validation inside fit this epoch
                self.train_seconds.append(time.perf_counter() - self.starts[-1])
                self._in_epoch = False

        def on_train_end(self, logs=None):
            self._close(time.perf_counter())

    return EpochClock()


def steady(seconds: list[float]) -> float:
    """Mean over epochs 2.. (the first epoch traces and compiles the graphs); the only epoch if there is one."""
    return float(np.mean(seconds[1:] or seconds))


def train_run(data, split, run: dict, models_root: Path, clock=None) -> dict:
    from movielens.trainer import MovieLensTrainer

    settings = {k: run[k] for k in ("layer_sizes", "embedding_size", "num_epochs", "batch_size", "optimizer",
                                    "learning_rate")}
    started = time.perf_counter()
    trainer = MovieLensTrainer(data, split, additional_feature_sets=[run["features"] or ["None"]], retrain=True,
                               models_root=models_root, verbose=0, **settings, **TUTORIAL_LOSS)
    trained = trainer.train_model(run["features"], callbacks=[clock] if clock is not None else [])
    m = trained.metrics
    curve = trained.history.get("val_top_100_accuracy", [])
    row = {"model": run["name"], "features": "+".join(run["features"]) or "id only", **settings,
           "layer_sizes": list(run["layer_sizes"]), "top_100": m["test_top_100_accuracy"],
           "top_10": m["test_top_10_accuracy"], "recall@100": m["recall@100"], "recall@10": m["recall@10"],
           "ndcg@10": m["ndcg@10"], "seconds_per_epoch": m.get("seconds_per_epoch"),
           "train_examples_per_second": m.get("train_examples_per_second"),
           "total_seconds": time.perf_counter() - started, "top_100_curve": curve,
           "best_epoch_top_100": (int(np.nanargmax(np.array(curve, float))) + 1) if curve else None,
           "target": run["target"], "reference": run["reference"], "_trained": trained}
    row["reached"] = None if run["target"] is None else bool(row["top_100"] >= run["target"])
    print(f"  {run['name']}: top-100 {row['top_100']:.4f}, recall@100 {row['recall@100']:.4f}, "
          f"{row['seconds_per_epoch']:.2f} s/epoch", flush=True)
    return row


def tutorial_style(data, split, context: bool = False, epochs: int = 3, batch_size: int = 8192,
                   learning_rate: float = 0.1, embedding_size: int = 32, validate_each_epoch: bool = False,
                   evaluate: bool = True) -> dict:
    """A faithful copy of the TFRS tutorial loop on the same ratings (string features, lookups per batch).

    validate_each_epoch: fit as the tutorials do, `fit(..., validation_data=cached_test, validation_freq=1)`
    (a FactorizedTopK pass over the test split inside every epoch); whole epochs are timed.
    evaluate: afterwards time two `model.evaluate(cached_test)` calls (the tutorials' final evaluation).

    context=False: basic_retrieval (user id / title StringLookup + Embedding, no dense layer).
    context=True: context_features with timestamps (+ Discretization over 1000 linspace buckets and
    Normalization of the timestamp; title id + TextVectorization title text; Dense(32) on each tower).
    """
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(42)
    columns = {"user_id": str, "movie_title": str, **({"timestamp": np.int64} if context else {})}
    train = tf.data.Dataset.from_tensor_slices({c: split.train[c].to_numpy(t) for c, t in columns.items()})
    test = tf.data.Dataset.from_tensor_slices({c: split.test[c].to_numpy(t) for c, t in columns.items()})
    movies = tf.data.Dataset.from_tensor_slices(data.movies["movie_title"].to_numpy(str))
    unique_movie_titles = np.unique(data.movies["movie_title"].to_numpy(str))
    unique_user_ids = np.unique(data.ratings["user_id"].to_numpy(str))
    d = embedding_size

    class UserModel(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.user_embedding = tf.keras.Sequential([
                tf.keras.layers.StringLookup(vocabulary=unique_user_ids, mask_token=None),
                tf.keras.layers.Embedding(len(unique_user_ids) + 1, d)])
            if context:
                timestamps = data.ratings["timestamp"].to_numpy(np.int64)
                buckets = np.linspace(timestamps.min(), timestamps.max(), num=1000)
                self.timestamp_embedding = tf.keras.Sequential([
                    tf.keras.layers.Discretization(buckets.tolist()),
                    tf.keras.layers.Embedding(len(buckets) + 1, d)])
                self.normalized_timestamp = tf.keras.layers.Normalization(axis=None)
                self.normalized_timestamp.adapt(timestamps)

        def call(self, inputs):
            if not context:
                return self.user_embedding(inputs["user_id"])
            return tf.concat([self.user_embedding(inputs["user_id"]), self.timestamp_embedding(inputs["timestamp"]),
                              tf.reshape(self.normalized_timestamp(inputs["timestamp"]), (-1, 1))], axis=1)

    class MovieModel(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.title_embedding = tf.keras.Sequential([
                tf.keras.layers.StringLookup(vocabulary=unique_movie_titles, mask_token=None),
                tf.keras.layers.Embedding(len(unique_movie_titles) + 1, d)])
            if context:
                max_tokens = 10_000
                self.title_vectorizer = tf.keras.layers.TextVectorization(max_tokens=max_tokens)
                self.title_vectorizer.adapt(movies)
                self.title_text_embedding = tf.keras.Sequential([
                    self.title_vectorizer, tf.keras.layers.Embedding(max_tokens, d, mask_zero=True),
                    tf.keras.layers.GlobalAveragePooling1D()])

        def call(self, titles):
            if not context:
                return self.title_embedding(titles)
            return tf.concat([self.title_embedding(titles), self.title_text_embedding(titles)], axis=1)

    class MovielensModel(tfrs.Model):
        def __init__(self):
            super().__init__()
            dense = [tf.keras.layers.Dense(32)] if context else []
            self.query_model = tf.keras.Sequential([UserModel(), *dense])
            self.candidate_model = tf.keras.Sequential([MovieModel(), *[tf.keras.layers.Dense(32)][:len(dense)]])
            self.task = tfrs.tasks.Retrieval(metrics=tfrs.metrics.FactorizedTopK(
                candidates=movies.batch(128).map(self.candidate_model)))

        def compute_loss(self, features, training=False):
            query_embeddings = self.query_model({k: features[k] for k in columns if k != "movie_title"})
            movie_embeddings = self.candidate_model(features["movie_title"])
            return self.task(query_embeddings, movie_embeddings, compute_metrics=not training)

    class EpochTimer(tf.keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    model = MovielensModel()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=learning_rate))
    # basic_retrieval caches the shuffled batches; context_features / deep_recommenders do not.
    cached_train = train.shuffle(100_000).batch(batch_size)
    if not context:
        cached_train = cached_train.cache()
    cached_test = test.batch(4096).cache()
    timer = EpochTimer()
    timer.seconds = []
    clock = epoch_clock()
    validation = dict(validation_data=cached_test, validation_freq=1) if validate_each_epoch else {}
    history = model.fit(cached_train, epochs=epochs, verbose=0, callbacks=[timer, clock], **validation)
    out = {"epoch_seconds": timer.seconds, "whole_epoch_seconds": clock.seconds,
           "train_part_seconds": clock.train_seconds, "validate_each_epoch": validate_each_epoch}
    if validate_each_epoch:
        # timer.on_epoch_end runs after fit's validation, so timer.seconds include it here
        out["loop_seconds_per_epoch"] = steady(clock.seconds)
        out["loop_examples_per_second"] = len(split.train) / out["loop_seconds_per_epoch"]
        out["top_100"] = float(history.history["val_factorized_top_k/top_100_categorical_accuracy"][-1])
    else:
        out["seconds_per_epoch"] = steady(timer.seconds)
        out["train_examples_per_second"] = len(split.train) / out["seconds_per_epoch"]
    if evaluate:
        eval_seconds, results = [], None
        for _ in range(2):
            started = time.perf_counter()
            results = model.evaluate(cached_test, return_dict=True, verbose=0)
            eval_seconds.append(time.perf_counter() - started)
        out["top_100"] = float(results["factorized_top_k/top_100_categorical_accuracy"])
        out["evaluate_seconds"] = eval_seconds
    return out


def evaluation_speed(trained, split) -> dict:
    """Our fast full-test top-k vs `model.evaluate` with FactorizedTopK, on the same trained model."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    from movielens.models.two_tower import InBatchSoftmax, TwoTowerModel
    from movielens.retrieval import TOP_KS, evaluate_top_k
    from movielens.trainer import encode_examples

    model, tables = trained.model, trained.tables
    examples = encode_examples(split.test, split, tables)
    fast_seconds, fast = [], None
    for _ in range(2):
        started = time.perf_counter()
        fast = evaluate_top_k(model, examples, tables.num_candidates)
        fast_seconds.append(time.perf_counter() - started)
    candidates = tf.data.Dataset.range(tables.num_candidates).batch(128).map(model.candidate_tower)
    task = tfrs.tasks.Retrieval(loss=InBatchSoftmax(), metrics=tfrs.metrics.FactorizedTopK(candidates=candidates,
                                                                                           ks=TOP_KS))
    evaluator = TwoTowerModel(model.query_tower, model.candidate_tower, task=task)
    evaluator.compile()
    test = tf.data.Dataset.from_tensor_slices(examples).batch(4096).cache()
    slow_seconds, slow = [], None
    for _ in range(2):
        started = time.perf_counter()
        slow = evaluator.evaluate(test, return_dict=True, verbose=0)
        slow_seconds.append(time.perf_counter() - started)
    differences = {k: abs(fast[f"val_top_{k}_accuracy"] - float(slow[f"factorized_top_k/top_{k}_categorical_accuracy"]))
                   for k in TOP_KS}
    return {"fast_seconds": fast_seconds, "factorized_top_k_seconds": slow_seconds,
            "fast": {k: fast[f"val_top_{k}_accuracy"] for k in TOP_KS},
            "factorized_top_k": {k: float(slow[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in TOP_KS},
            "max_abs_difference": max(differences.values())}


def loop_comparison(clock, tutorial: dict, num_train: int) -> dict:
    """Whole training-loop epochs incl. each loop's own per-epoch validation, steady state (epochs 2..)."""
    ours_seconds = steady(clock.seconds)
    return {"what": "whole epochs (training + per-epoch validation on the test split; ours also writes its "
                    "per-epoch checkpoint), epochs 2-3 mean",
            "tutorial_style": tutorial,
            "ours": {"whole_epoch_seconds": clock.seconds, "train_part_seconds": clock.train_seconds,
                     "loop_seconds_per_epoch": ours_seconds, "loop_examples_per_second": num_train / ours_seconds},
            "speedup": tutorial["loop_seconds_per_epoch"] / ours_seconds}


BATCH_CONFIGS = (
    ("id-only", False, dict(features=(), layer_sizes=())),
    ("timestamp + title text", True, dict(features=("timestamp", "movie_title_text"), layer_sizes=(32,))),
)


def batch_comparisons(data, split, models_root: Path, batch_sizes, epochs: int) -> list[dict]:
    """Training-only examples/s, side by side, at smaller batches where per-batch work (lookups) matters."""
    out = []
    for name, context, settings in BATCH_CONFIGS:
        for batch in batch_sizes:
            run = dict(name=f"{name}, batch {batch}", **settings, embedding_size=32, num_epochs=epochs,
                       batch_size=batch, optimizer="adagrad", learning_rate=0.1, target=None, reference="")
            print(f"  training-only speed, {run['name']}: ours...", flush=True)
            ours = train_run(data, split, run, models_root)
            print(f"  training-only speed, {run['name']}: tutorial-style...", flush=True)
            tutorial = tutorial_style(data, split, context=context, epochs=epochs, batch_size=batch, evaluate=False)
            ours_epochs = ours["_trained"].history.get("epoch_seconds", [])
            out.append({"config": name, "batch_size": batch, "epochs": epochs,
                        "what": f"training steps only (no validation), epochs 2-{epochs} mean",
                        "tutorial_style": tutorial,
                        "ours": {"epoch_seconds": ours_epochs,
                                 "train_examples_per_second": ours["train_examples_per_second"],
                                 "top_100": ours["top_100"]},
                        "speedup": ours["train_examples_per_second"] / tutorial["train_examples_per_second"]})
            print(f"    ours {ours['train_examples_per_second']:,.0f} ex/s, tutorial-style "
                  f"{tutorial['train_examples_per_second']:,.0f} ex/s: {out[-1]['speedup']:.2f}x", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from movielens.data.loader import load_movielens
    from movielens.data.splits import random_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip_1m", action="store_true")
    parser.add_argument("--only_speed", action="store_true",
                        help="rerun just the side-by-side speed comparison and replace it in the existing JSON")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[256, 1024],
                        help="batch sizes of the training-only side-by-side rows")
    parser.add_argument("--batch_epochs", type=int, default=2,
                        help="epochs per training-only row (the first, tracing, epoch is left out)")
    args = parser.parse_args(argv)
    if args.batch_epochs < 2:
        parser.error("--batch_epochs must be >= 2 (the first epoch traces the graph and is left out)")
    shared = paths.shared_datasets_dir()
    if shared is None:
        raise SystemExit("../shared/datasets is not present: this benchmark needs the GroupLens files")
    results = {"protocol": __doc__.split("    .venv")[0].strip(), "runs": [], "speed": {}}
    with tempfile.TemporaryDirectory() as models_root:
        print("ML-100K, random 80/20 seed 42 (tutorial protocol)", flush=True)
        data = load_movielens("100k", data_dir=shared / "ml-100k", source="local")
        split = random_split(data, (0.8, 0.2), seed=42)
        runs = RUNS_100K[:2] if args.only_speed else RUNS_100K
        clocks = [epoch_clock() for _ in runs]
        rows = [dict(train_run(data, split, run, Path(models_root), clock), dataset="ML-100K")
                for run, clock in zip(runs, clocks)]
        comparisons = []
        for row, clock, context, batch in ((rows[0], clocks[0], False, 8192), (rows[1], clocks[1], True, 2048)):
            print(f"  tutorial-style loop, {row['model']} (same data, model size, epochs, batch {batch})...",
                  flush=True)
            tutorial = tutorial_style(data, split, context=context, batch_size=batch)
            comparisons.append({
                "config": f"ML-100K {row['model']}: layers {row['layer_sizes']}, 32-d, 3 epochs, batch {batch}, "
                          "Adagrad 0.1",
                "tutorial_style": tutorial,
                "ours": {"seconds_per_epoch": row["seconds_per_epoch"],
                         "train_examples_per_second": row["train_examples_per_second"], "top_100": row["top_100"]},
                "training_speedup": row["train_examples_per_second"] / tutorial["train_examples_per_second"],
                "evaluation": evaluation_speed(row["_trained"], split)})
            comparisons[-1]["evaluation_speedup"] = (min(comparisons[-1]["evaluation"]["factorized_top_k_seconds"])
                                                     / min(comparisons[-1]["evaluation"]["fast_seconds"]))
            print(f"  tutorial-style loop as the tutorial fits it (validation_data=test every epoch), batch {batch}...",
                  flush=True)
            comparisons[-1]["loop"] = loop_comparison(
                clock, tutorial_style(data, split, context=context, batch_size=batch, validate_each_epoch=True,
                                      evaluate=False), len(split.train))
        results["speed"] = comparisons
        results["speed_batches"] = batch_comparisons(data, split, Path(models_root), args.batch_sizes,
                                                     args.batch_epochs)
        if not args.skip_1m and not args.only_speed:
            print("ML-1M (users 1–2999), random 80/20 seed 42", flush=True)
            data = load_movielens("1m", data_dir=shared / "ml-1m-half", source="local")
            split = random_split(data, (0.8, 0.2), seed=42)
            rows += [dict(train_run(data, split, run, Path(models_root)), dataset="ML-1M (users 1–2999)")
                     for run in RUNS_1M]
        for row in rows:
            row.pop("_trained")
        results["runs"] = rows
    if args.only_speed and RESULTS.is_file():
        previous = read_json(RESULTS)
        previous.pop("machine", None)
        results = {**previous, "protocol": results["protocol"], "speed": results["speed"],
                   "speed_batches": results["speed_batches"],
                   "speed_note": "speed rerun separately (--only_speed) on " + time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                              time.gmtime())}
    write_results("retrieval", results)
    print_tables(results)
    return 0


def print_tables(results: dict) -> None:
    print("\nQuality (random 80/20 seed 42; top-100: all movies ranked, seen NOT excluded; "
          "recall/ndcg: per user, seen EXCLUDED)\n")
    columns = ["dataset", "model", "layer_sizes", "num_epochs", "batch_size", "optimizer", "learning_rate",
               "top_100", "target", "reached", "reference", "recall@100", "ndcg@10", "seconds_per_epoch",
               "train_examples_per_second"]
    print(markdown_table(results["runs"], columns))
    rows = []
    for speed in results["speed"]:
        evaluation = speed["evaluation"]
        name = speed["config"].split(":")[0].replace("ML-100K ", "")
        rows += [
            {"config": name, "measure": "training examples/s (epochs 2-3)",
             "tutorial-style": speed["tutorial_style"]["train_examples_per_second"],
             "ours": speed["ours"]["train_examples_per_second"], "speedup": speed["training_speedup"],
             "target": ">= 2x"},
            *([{"config": name, "measure": "training loop examples/s incl. per-epoch validation (whole epochs 2-3)",
                "tutorial-style": speed["loop"]["tutorial_style"]["loop_examples_per_second"],
                "ours": speed["loop"]["ours"]["loop_examples_per_second"], "speedup": speed["loop"]["speedup"],
                "target": ">= 2x"}] if "loop" in speed else []),
            {"config": name, "measure": "full-test top-k evaluation, s (warm)",
             "tutorial-style": min(evaluation["factorized_top_k_seconds"]), "ours": min(evaluation["fast_seconds"]),
             "speedup": speed["evaluation_speedup"], "target": ">= 5x"},
            {"config": name, "measure": "top-100 accuracy", "tutorial-style": speed["tutorial_style"]["top_100"],
             "ours": speed["ours"]["top_100"], "speedup": None, "target": ""},
            {"config": name, "measure": "max abs(fast - FactorizedTopK), top-1..100, same model",
             "tutorial-style": None, "ours": evaluation["max_abs_difference"], "speedup": None,
             "target": "<= 1e-3"},
        ]
    print("\nSpeed, side by side in one run (ML-100K random 80/20 seed 42; configs in the JSON)\n")
    print(markdown_table(rows, ["config", "measure", "tutorial-style", "ours", "speedup", "target"]))
    rows = [{"config": f"{b['config']}, batch {b['batch_size']}",
             "measure": f"training-only examples/s (epochs 2-{b['epochs']}, no validation)",
             "tutorial-style": b["tutorial_style"]["train_examples_per_second"],
             "ours": b["ours"]["train_examples_per_second"], "speedup": b["speedup"], "target": ">= 2x"}
            for b in results.get("speed_batches", [])]
    if rows:
        print("\nTraining-only speed at smaller batches, side by side in the same run (ML-100K random 80/20 seed 42; "
              "32-d, Adagrad 0.1; same model per config as above)\n")
        print(markdown_table(rows, ["config", "measure", "tutorial-style", "ours", "speedup", "target"]))

if __name__ == "__main__":
    raise SystemExit(main())
