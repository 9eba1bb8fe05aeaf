"""`MovieLensTrainer`: train (or load from `saved_models/`) one two-tower model per feature set.

    trainer = MovieLensTrainer(data, split, num_epochs=3, additional_feature_sets=[(), ("timestamp",)])
    models, histories = trainer.train_all_models()
    models["timestamp"].recommender().recommend("42")

A model lives in `saved_models/two_tower-<features>-<config hash>/` (config.json,
history.json, metrics.json, weights/); the hash covers the model config and the
data (variant, source, split fingerprint, runtimes). Training checkpoints every
epoch through `movielens.training.fit_resumable`, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens.config import Config
from movielens.features import (
    TIMESTAMP_BUCKETS,
    FeatureTables,
    feature_set_label,
    fit_feature_tables,
    movie_minutes_for,
    validate_feature_set,
)
from movielens.models.two_tower import build_two_tower, make_optimizer
from movielens.persistence import ModelDir, load_weights, readable_name, save_weights
from movielens.retrieval import (
    RANKING_NOTE,
    TOP_K_KEY,
    TOP_K_NOTE,
    TOP_KS,
    TwoTowerRecommender,
    evaluate_top_k,
    export_saved_model,
    ranking_metrics,
)
from movielens.training import fit_resumable

MODEL_FAMILY = "two_tower"
STEPS_PER_EXECUTION = 32  # train steps per compiled call: 1.5-2x faster epochs at batch 256-1024 (benchmark)


@dataclasses.dataclass(frozen=True)
class TwoTowerConfig(Config):
    """Everything that determines a trained two-tower model (with the data identity, the cache key).

    Attributes:
      features: optional features, sorted in registry order (() = id-only baseline).
      layer_sizes: dense stack of each tower (ReLU between, last linear); () = embeddings only.
      constant_movie_length: use the default runtime for every movie instead of the provider's.
    """

    features: tuple[str, ...] = ()
    num_epochs: int = 3
    embedding_size: int = 32
    layer_sizes: tuple[int, ...] = (32,)
    batch_size: int = 8192
    learning_rate: float = 0.1
    optimizer: str = "adagrad"
    seed: int = 42
    validation_freq: int = 1
    constant_movie_length: bool = False
    timestamp_buckets: int = TIMESTAMP_BUCKETS

    def __post_init__(self):
        for name in ("num_epochs", "embedding_size", "batch_size", "validation_freq", "timestamp_buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(int(s) < 1 for s in self.layer_sizes):
            raise ValueError(f"layer_sizes must be positive, got {list(self.layer_sizes)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        make_optimizer(self.optimizer, self.learning_rate)  # unknown name -> ValueError with the choices


def encode_examples(frame: pd.DataFrame, split, tables: FeatureTables) -> dict[str, np.ndarray]:
    """Ratings -> {"user": int64 [n], "timestamp": float32 [n], "movie": int64 [n] catalogue row}, once."""
    return {
        "user": split.vocabulary.encode_users(frame["user_id"]),
        "timestamp": frame["timestamp"].to_numpy(np.float32),
        "movie": tables.movie_rows(frame["movie_id"]),
    }


def training_dataset(examples: dict[str, np.ndarray], batch_size: int, seed: int) -> tf.data.Dataset:
    """In-memory int tensors -> batches of a fresh permutation every epoch, prefetched.

    Shuffling whole-epoch index permutations and gathering each batch at once replaces
    tf.data's per-example `shuffle().batch()` (about 8 us per example here, a tenth of an
    epoch of the context model); `Dataset.random(rerandomize_each_iteration=True)` draws a
    new seed every epoch, reproducibly from `seed`.
    """
    tensors = {key: tf.constant(value) for key, value in examples.items()}
    n = len(examples["user"])
    num_batches = -(-n // batch_size)

    def epoch(epoch_seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([epoch_seed, tf.constant(seed, tf.int64)]))

        def batch(i):
            rows = order[i * batch_size:(i + 1) * batch_size]
            return {key: tf.gather(value, rows) for key, value in tensors.items()}

        return tf.data.Dataset.range(num_batches).map(batch)

    # Known cardinality: Keras sizes the last multi-step call of an epoch (steps_per_execution) exactly.
    return (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(epoch)
            .apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(tf.data.AUTOTUNE))


def _fingerprint(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame[["user_id", "movie_id", "timestamp"]], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def data_identity(data, split, movie_minutes: np.ndarray | None) -> dict:
    """What the cache key needs to know about the data: variant, source and exactly which ratings train/test."""
    identity = {"variant": data.variant, "source": data.source, "split": split.name,
                "validation_is_test": bool(split.validation_is_test), "train": _fingerprint(split.train),
                "validation": _fingerprint(split.validation), "test": _fingerprint(split.test),
                "catalogue": int(len(data.movies))}
    if movie_minutes is not None:
        identity["movie_minutes"] = hashlib.sha256(np.asarray(movie_minutes, np.float32).tobytes()).hexdigest()[:16]
    return identity


@dataclasses.dataclass
class TrainedModel:
    """One trained (or loaded) model with what it was trained on."""

    name: str
    config: TwoTowerConfig
    model: tf.keras.Model
    tables: FeatureTables
    split: object
    history: dict
    metrics: dict
    model_dir: ModelDir
    loaded: bool

    @property
    def features(self) -> tuple[str, ...]:
        return self.config.features

    def recommender(self) -> TwoTowerRecommender:
        return TwoTowerRecommender(self.model, self.tables, self.split)

    def export(self, path: str | Path | None = None, k: int = 10) -> Path:
        """SavedModel mapping raw (user_id, timestamp) to top-k titles; default `<model dir>/export/`."""
        return export_saved_model(self.model, self.tables, self.split, path or self.model_dir.path / "export", k)


def _mean_epoch_seconds(history: dict) -> float | None:
    seconds = [s for s in history.get("epoch_seconds", []) if s is not None]
    steady = seconds[1:] or seconds  # the first epoch also traces and compiles the graph
    return float(np.mean(steady)) if steady else None


class MovieLensTrainer:
    """Trains or loads one two-tower model per feature set on one split.

    Args:
      dataset: `MovieLensData` (its movies frame is the candidate catalogue).
      split: `Split`; vocabularies and feature tables are fitted on its train part.
      additional_feature_sets: iterable of feature-name sequences; () or ("None",) = id-only baseline.
      retrain: ignore saved models and checkpoints.
      movie_length_config: `MovieLengthConfig` for the runtime provider (movie_length feature).
      constant_movie_length: force the default runtime (loud warning) instead of the provider's.
      models_root: `saved_models/` folder (default `movielens.paths.models_dir()`).
      jit_compile: XLA-compile the train step (speed only; not part of the cache key).
      steps_per_execution: train steps per compiled call (speed only, same updates in the same order; not
        part of the cache key): fewer Python round trips per epoch, which matters at small batches.
      verbose: 0 silent, 1 progress, 2 one line per epoch.
    """

    def __init__(self, dataset, split, num_epochs: int = 3, embedding_size: int = 32,
                 layer_sizes: Sequence[int] = (32,), additional_feature_sets: Iterable[Sequence[str]] = ((),),
                 retrain: bool = False, batch_size: int = 8192, learning_rate: float = 0.1,
                 optimizer: str = "adagrad", seed: int = 42, validation_freq: int = 1, *,
                 movie_length_config=None, constant_movie_length: bool = False,
                 models_root: str | Path | None = None, jit_compile: bool = False, verbose: int = 2,
                 timestamp_buckets: int = TIMESTAMP_BUCKETS, steps_per_execution: int = STEPS_PER_EXECUTION):
        self.data, self.split = dataset, split
        self.feature_sets = []
        for names in additional_feature_sets:
            names = [names] if isinstance(names, str) else list(names)
            features = validate_feature_set(names, dataset.variant)
            if features not in self.feature_sets:
                self.feature_sets.append(features)
        if not self.feature_sets:
            raise ValueError("additional_feature_sets is empty; give at least one set (None = id-only baseline)")
        self.base_config = TwoTowerConfig(
            num_epochs=int(num_epochs), embedding_size=int(embedding_size),
            layer_sizes=tuple(int(s) for s in layer_sizes), batch_size=int(batch_size),
            learning_rate=float(learning_rate), optimizer=str(optimizer).lower(), seed=int(seed),
            validation_freq=int(validation_freq), constant_movie_length=bool(constant_movie_length),
            timestamp_buckets=int(timestamp_buckets))
        self.retrain, self.models_root = retrain, models_root
        self.movie_length_config = movie_length_config
        self.jit_compile, self.verbose = jit_compile, verbose
        if int(steps_per_execution) < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
        self.steps_per_execution = int(steps_per_execution)
        self._minutes: tuple[np.ndarray | None, str] | None = None

    def _movie_minutes(self, features) -> tuple[np.ndarray | None, str]:
        if "movie_length" not in features:
            return None, ""
        if self._minutes is None:
            self._minutes = movie_minutes_for(self.data, features, self.movie_length_config,
                                              self.base_config.constant_movie_length, verbose=self.verbose > 0)
        return self._minutes

    def config_for(self, features: Sequence[str]) -> TwoTowerConfig:
        return self.base_config.replace(features=validate_feature_set(features, self.data.variant))

    def train_all_models(self) -> tuple[dict[str, TrainedModel], dict[str, dict]]:
        """Trains or loads every feature set's model. Returns ({label: TrainedModel}, {label: history})."""
        models = {}
        for features in self.feature_sets:
            trained = self.train_model(features)
            models[trained.name] = trained
        return models, {name: trained.history for name, trained in models.items()}

    def train_model(self, features: Sequence[str], *, callbacks: Sequence[tf.keras.callbacks.Callback] = ()
                    ) -> TrainedModel:
        """Trains (or loads) one feature set's model; `callbacks` go to `fit` (e.g. benchmark timers)."""
        config = self.config_for(features)
        features = config.features
        label = feature_set_label(features)
        minutes, length_summary = self._movie_minutes(features)
        tables = fit_feature_tables(self.data, self.split, features, minutes, length_summary,
                                    config.timestamp_buckets)
        model_dir = ModelDir(readable_name(MODEL_FAMILY, label),
                             {"model": config.to_dict(), "data": data_identity(self.data, self.split, minutes)},
                             root=self.models_root)
        tf.keras.utils.set_random_seed(config.seed)
        model = build_two_tower(features, tables, config.embedding_size, config.layer_sizes)
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate), jit_compile=self.jit_compile,
                      steps_per_execution=self.steps_per_execution)
        if model_dir.is_complete() and not self.retrain:
            load_weights(model, model_dir.weights_prefix)
            history, metrics = model_dir.read_json("history.json"), model_dir.read_json("metrics.json")
            if self.verbose:
                print(f"[{label}] loaded from {model_dir.path} (--retrain to train again)", flush=True)
            return TrainedModel(label, config, model, tables, self.split, history, metrics, model_dir, True)

        if self.verbose:
            print(f"[{label}] training {config.num_epochs} epochs -> {model_dir.path}", flush=True)
        model_dir.start(self.retrain)
        train = encode_examples(self.split.train, self.split, tables)
        validation = encode_examples(self.split.validation, self.split, tables)
        started = time.perf_counter()
        history = fit_resumable(
            model, training_dataset(train, config.batch_size, config.seed), epochs=config.num_epochs,
            checkpoint_dir=model_dir.checkpoint_dir,
            evaluate=lambda m: evaluate_top_k(m, validation, tables.num_candidates),
            evaluate_every=config.validation_freq, verbose=self.verbose,
            **({"callbacks": list(callbacks)} if callbacks else {}))
        train_seconds = time.perf_counter() - started
        metrics = self.final_metrics(model, tables, history)
        metrics["train_seconds_this_run"] = train_seconds
        save_weights(model, model_dir.weights_prefix)
        model_dir.write_json("features.json", {
            "features": list(features), "title_vocabulary_size": len(tables.title_vocabulary),
            "timestamp_buckets": len(tables.timestamp_boundaries) + 1, "num_users": tables.num_users,
            "num_movies": tables.num_movies, "num_candidates": tables.num_candidates,
            "movie_length": tables.length_summary})
        model_dir.finish(history, metrics)
        return TrainedModel(label, config, model, tables, self.split, history, metrics, model_dir, False)

    def final_metrics(self, model, tables: FeatureTables, history: dict) -> dict[str, float]:
        """Test top-k accuracy (seen NOT excluded) and per-user ranking metrics (seen excluded), plus speed."""
        test = encode_examples(self.split.test, self.split, tables)
        started = time.perf_counter()
        top = evaluate_top_k(model, test, tables.num_candidates)
        metrics = {key.replace("val_", "test_"): value for key, value in top.items()}
        metrics["test_top_k_seconds"] = time.perf_counter() - started
        metrics.update(ranking_metrics(model, tables, self.split))
        epoch_seconds = _mean_epoch_seconds(history)
        if epoch_seconds:
            metrics["seconds_per_epoch"] = epoch_seconds
            metrics["train_examples_per_second"] = len(self.split.train) / epoch_seconds
        return metrics


FINAL_TOP_KEY = TOP_K_KEY.format(k=100).replace("val_", "test_")
TABLE_COLUMNS = (("test top-1", "test_top_1_accuracy"), ("test top-10", "test_top_10_accuracy"),
                 ("test top-100", FINAL_TOP_KEY), ("recall@10", "recall@10"), ("recall@100", "recall@100"),
                 ("ndcg@10", "ndcg@10"), ("s/epoch", "seconds_per_epoch"),
                 ("train ex/s", "train_examples_per_second"))


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.4f}" if value < 1 else f"{value:.2f}"


def results_table(models: dict[str, TrainedModel], data, split) -> str:
    """Markdown table, one row per feature set, with the protocol of every column stated below it."""
    lines = ["| feature set | epochs | " + " | ".join(c for c, _ in TABLE_COLUMNS) + " | cached |",
             "|---" * (len(TABLE_COLUMNS) + 3) + "|"]
    for name, trained in models.items():
        cells = [_cell(trained.metrics.get(key)) for _, key in TABLE_COLUMNS]
        lines.append(f"| {name} | {trained.config.num_epochs} | " + " | ".join(cells)
                     + f" | {'loaded' if trained.loaded else 'trained'} |")
    lines += ["", f"data: MovieLens {data.variant} ({data.source}); {split.describe()}",
              f"- {TOP_K_NOTE}", f"- {RANKING_NOTE}",
              "- s/epoch, train ex/s: training only, first epoch (graph tracing) left out; from the training run"]
    if any(trained.metrics.get("users_evaluated") == 0 for trained in models.values()):
        lines.append("- recall/ndcg '-': no test user has training ratings (nothing to rank for them)")
    return "\n".join(lines)


def recommendations_text(models: dict[str, TrainedModel], split, user_id, k: int = 10,
                         exclude_seen: bool = True, favourites: int = 10) -> str:
    """The user's highest-rated training movies, then each model's top k."""
    from movielens.recommender import UserHistory

    history = UserHistory(split.train)
    user = history.check_user(user_id)
    rated = history.favourites(user, favourites)
    lines = [f"User {user}: {len(history.seen_movies(user))} training ratings; highest rated:"]
    lines += [f"  {r.user_rating:.0f}  {r.movie_title}" for r in rated.itertuples()]
    which = "excluding movies the user rated in training" if exclude_seen else "INCLUDING movies already rated"
    for name, trained in models.items():
        lines.append(f"\n[{name}] top {k} ({which}):")
        for rank, rec in enumerate(trained.recommender().recommend(user, k=k, exclude_seen=exclude_seen), 1):
            lines.append(f"  {rank:2d}. {rec.movie_title}  (score {rec.score:.3f}, movie_id {rec.movie_id})")
    return "\n".join(lines)


__all__ = ["MovieLensTrainer", "TwoTowerConfig", "TrainedModel", "TOP_KS", "FINAL_TOP_KEY", "results_table",
           "recommendations_text"]
