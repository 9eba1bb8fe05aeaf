"""`MovieLensTrainer`: train (or load from `saved_models/`) one two-tower model per feature set.

    trainer = MovieLensTrainer(data, split, num_epochs=3, additional_feature_sets=[(), ("timestamp",)])
    models, histories = trainer.train_all_models()
    models["timestamp"].recommender().recommend("42")

A model lives in `saved_models/two_tower-<features>-<config hash>/` (config.json,
history.json, metrics.json, weights/); the hash covers the model config and the
data (variant, source, split fingerprint, runtimes). Training checkpoints every
epoch through `movielens.training.fit_resumable`, so an interrupted run resumes.

Model selection: after every epoch the model ranks the validation part (per user, training
movies excluded, all catalogue movies, `retrieval.RankingEvaluator`); training stops when
`val_ndcg@10` has not improved for `patience` epochs and the best epoch's weights are kept.
Use a 3-fraction split (e.g. random 80/10/10): with a 2-fraction split validation IS the test
part, selection then happens on the test part and a warning says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens.config import Config
from movielens.features import (
    HISTORY_LENGTH,
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
    RankingEvaluator,
    TwoTowerRecommender,
    evaluate_top_k,
    export_saved_model,
)
from movielens.training import fit_resumable

MODEL_FAMILY = "two_tower"
STEPS_PER_EXECUTION = 32  # train steps per compiled call: 1.5-2x faster epochs at batch 256-1024 (benchmark)
MONITOR = "val_ndcg@10"  # model selection: validation NDCG@10, per user, training movies excluded
SELECTION_ON_TEST_WARNING = ("WARNING: validation IS the test part of this split (2 fractions): early stopping and the "
                             "best-epoch choice on val_ndcg@10 are made on the test part; use 3 fractions "
                             "(e.g. random 0.8 0.1 0.1) for an honest test figure")


@dataclasses.dataclass(frozen=True)
class TwoTowerConfig(Config):
    """Everything that determines a trained two-tower model (with the data identity, the cache key).

    Attributes:
      features: optional features, sorted in registry order (() = id-only baseline).
      layer_sizes: dense stack of each tower (ReLU between, last linear); () = embeddings only; None (the
        default) = `dense_layers()`: none for the id-only model, one linear layer of `embedding_size` when
        there are side features (both towers must end in the same size).
      constant_movie_length: use the default runtime for every movie instead of the provider's.
      num_epochs: the most epochs; with `patience` training stops earlier (see the module docstring).
      sampling_correction: logQ correction of the in-batch softmax with each movie's share of the
        training ratings (off: plain in-batch softmax, which penalises popular movies).
      remove_accidental_hits: a movie that is a row's positive is not a negative elsewhere in the batch.
      temperature: logits divided by it in the loss.
      l2: L2 penalty on the id / history embedding tables (added to the summed batch loss).
      history_length: the history feature averages at most this many latest movies.
      unknown_user_rate: share of training examples whose user index is replaced by the unknown slot 0
        (and so their per-user features), so that slot learns a generic user: what serves people who are
        not in the data from their history (`retrieval.query_embeddings_from_histories`). 0: slot 0 stays
        at its random initialisation.
      patience: epochs without a better val_ndcg@10 before stopping (the best epoch is kept); 0: train
        all num_epochs and keep the last weights.
    """

    features: tuple[str, ...] = ()
    num_epochs: int = 40
    embedding_size: int = 64
    layer_sizes: tuple[int, ...] | None = None
    batch_size: int = 512
    learning_rate: float = 0.05
    optimizer: str = "adagrad"
    seed: int = 42
    validation_freq: int = 1
    constant_movie_length: bool = False
    timestamp_buckets: int = TIMESTAMP_BUCKETS
    sampling_correction: bool = True
    remove_accidental_hits: bool = True
    temperature: float = 2.0
    l2: float = 1e-3
    history_length: int = HISTORY_LENGTH
    unknown_user_rate: float = 0.0
    patience: int = 3

    def dense_layers(self) -> tuple[int, ...]:
        """The dense stack in use: `layer_sizes`, or when None, () for id-only and (embedding_size,) otherwise."""
        if self.layer_sizes is not None:
            return tuple(int(s) for s in self.layer_sizes)
        return (self.embedding_size,) if self.features else ()

    def __post_init__(self):
        for name in ("num_epochs", "embedding_size", "batch_size", "validation_freq", "timestamp_buckets",
                     "history_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(int(s) < 1 for s in self.layer_sizes or ()):
            raise ValueError(f"layer_sizes must be positive, got {list(self.layer_sizes)}")
        for name in ("learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.unknown_user_rate < 1:
            raise ValueError(f"unknown_user_rate must be in [0, 1), got {self.unknown_user_rate}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0: no early stopping), got {self.patience}")
        make_optimizer(self.optimizer, self.learning_rate)  # unknown name -> ValueError with the choices


def encode_examples(frame: pd.DataFrame, split, tables: FeatureTables) -> dict[str, np.ndarray]:
    """Ratings -> {"user": int64 [n], "timestamp": int64 [n] seconds, "movie": int64 [n] catalogue row}, once."""
    return {
        "user": split.vocabulary.encode_users(frame["user_id"]),
        "timestamp": frame["timestamp"].to_numpy(np.int64),
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

    _DEFAULTS = TwoTowerConfig()

    def __init__(self, dataset, split, num_epochs: int = _DEFAULTS.num_epochs,
                 embedding_size: int = _DEFAULTS.embedding_size,
                 layer_sizes: Sequence[int] | None = _DEFAULTS.layer_sizes,
                 additional_feature_sets: Iterable[Sequence[str]] = ((),),
                 retrain: bool = False, batch_size: int = _DEFAULTS.batch_size,
                 learning_rate: float = _DEFAULTS.learning_rate, optimizer: str = _DEFAULTS.optimizer,
                 seed: int = 42, validation_freq: int = 1, *,
                 movie_length_config=None, constant_movie_length: bool = False,
                 models_root: str | Path | None = None, jit_compile: bool = False, verbose: int = 2,
                 timestamp_buckets: int = _DEFAULTS.timestamp_buckets, steps_per_execution: int = STEPS_PER_EXECUTION,
                 sampling_correction: bool = _DEFAULTS.sampling_correction,
                 remove_accidental_hits: bool = _DEFAULTS.remove_accidental_hits,
                 temperature: float = _DEFAULTS.temperature, l2: float = _DEFAULTS.l2,
                 history_length: int = _DEFAULTS.history_length, patience: int = _DEFAULTS.patience,
                 unknown_user_rate: float = _DEFAULTS.unknown_user_rate):
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
            layer_sizes=None if layer_sizes is None else tuple(int(s) for s in layer_sizes), batch_size=int(batch_size),
            learning_rate=float(learning_rate), optimizer=str(optimizer).lower(), seed=int(seed),
            validation_freq=int(validation_freq), constant_movie_length=bool(constant_movie_length),
            timestamp_buckets=int(timestamp_buckets), sampling_correction=bool(sampling_correction),
            remove_accidental_hits=bool(remove_accidental_hits), temperature=float(temperature), l2=float(l2),
            history_length=int(history_length), patience=int(patience),
            unknown_user_rate=float(unknown_user_rate))
        self.retrain, self.models_root = retrain, models_root
        self.movie_length_config = movie_length_config
        self.jit_compile, self.verbose = jit_compile, verbose
        if int(steps_per_execution) < 1:
            raise ValueError(f"steps_per_execution must be >= 1, got {steps_per_execution}")
        self.steps_per_execution = int(steps_per_execution)
        self._minutes: tuple[np.ndarray | None, str] | None = None
        self._warned_selection = False

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
        model_dir = ModelDir(readable_name(MODEL_FAMILY, label),
                             {"model": config.to_dict(), "data": data_identity(self.data, self.split, minutes)},
                             root=self.models_root)
        if model_dir.is_complete() and not self.retrain:
            model, tables = self.load(config, model_dir, minutes, length_summary)
            history, metrics = model_dir.read_json("history.json"), model_dir.read_json("metrics.json")
            if self.verbose:
                print(f"[{label}] loaded from {model_dir.path} (--retrain to train again)", flush=True)
            return TrainedModel(label, config, model, tables, self.split, history, metrics, model_dir, True)

        model_dir.start(self.retrain)
        model, tables, history, metrics = self.fit(config, model_dir, minutes, length_summary, callbacks=callbacks)
        save_weights(model, model_dir.weights_prefix)
        model_dir.write_json("features.json", {
            "features": list(features), "title_vocabulary_size": len(tables.title_vocabulary),
            "timestamp_buckets": len(tables.timestamp_boundaries) + 1, "num_users": tables.num_users,
            "num_movies": tables.num_movies, "num_candidates": tables.num_candidates,
            "movie_length": tables.length_summary})
        model_dir.finish(history, metrics)
        return TrainedModel(label, config, model, tables, self.split, history, metrics, model_dir, False)

    def build(self, config: TwoTowerConfig, movie_minutes: np.ndarray | None = None, length_summary: str = ""
              ) -> tuple[tf.keras.Model, FeatureTables]:
        """The feature tables (fitted on the split's train part) and the compiled, seeded, untrained model."""
        tables = fit_feature_tables(self.data, self.split, config.features, movie_minutes, length_summary,
                                    config.timestamp_buckets)
        tf.keras.utils.set_random_seed(config.seed)
        model = build_two_tower(config.features, tables, config.embedding_size, config.dense_layers(),
                                sampling_correction=config.sampling_correction,
                                remove_accidental_hits=config.remove_accidental_hits,
                                temperature=config.temperature, history_length=config.history_length, l2=config.l2,
                                unknown_user_rate=config.unknown_user_rate)
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate), jit_compile=self.jit_compile,
                      steps_per_execution=self.steps_per_execution)
        return model, tables

    def load(self, config: TwoTowerConfig, model_dir: ModelDir, movie_minutes: np.ndarray | None = None,
             length_summary: str = "") -> tuple[tf.keras.Model, FeatureTables]:
        """(model, tables) of a trained model from `model_dir.weights_prefix` (nothing is trained)."""
        model, tables = self.build(config, movie_minutes, length_summary)
        load_weights(model, model_dir.weights_prefix)
        return model, tables

    def fit(self, config: TwoTowerConfig, model_dir: ModelDir, movie_minutes: np.ndarray | None = None,
            length_summary: str = "", *, callbacks: Sequence[tf.keras.callbacks.Callback] = ()
            ) -> tuple[tf.keras.Model, FeatureTables, dict, dict]:
        """Trains `config` on the split (checkpoints in `model_dir.checkpoint_dir`, resumed after an interruption;
        early stopping on validation NDCG@10, best epoch kept). Saves nothing else.

        Returns (model, tables, history, metrics) with the test metrics of `final_metrics`.
        """
        label = feature_set_label(config.features)
        model, tables = self.build(config, movie_minutes, length_summary)
        if self.verbose:
            stop = f", early stopping on {MONITOR} (patience {config.patience})" if config.patience else ""
            print(f"[{label}] training up to {config.num_epochs} epochs{stop} -> {model_dir.path}", flush=True)
        if self.split.validation_is_test and config.patience and not self._warned_selection:
            self._warned_selection = True
            if self.verbose:
                print(SELECTION_ON_TEST_WARNING, flush=True)
            else:
                warnings.warn(SELECTION_ON_TEST_WARNING, stacklevel=3)
        train = encode_examples(self.split.train, self.split, tables)
        started = time.perf_counter()
        history = fit_resumable(
            model, training_dataset(train, config.batch_size, config.seed), epochs=config.num_epochs,
            checkpoint_dir=model_dir.checkpoint_dir, evaluate=self.validation_evaluator(tables),
            evaluate_every=config.validation_freq, verbose=self.verbose,
            monitor=MONITOR if config.patience else None, patience=config.patience or None, restore_best=True,
            **({"callbacks": list(callbacks)} if callbacks else {}))
        train_seconds = time.perf_counter() - started
        metrics = self.final_metrics(model, tables, history)
        metrics["train_seconds_this_run"] = train_seconds
        return model, tables, history, metrics

    def validation_evaluator(self, tables: FeatureTables):
        """evaluate(model) -> validation metrics of one epoch: per-user ranking (seen excluded; val_ndcg@10,
        val_recall@10, val_recall@100) and the tutorial's top-k accuracy (seen not excluded)."""
        validation = encode_examples(self.split.validation, self.split, tables)
        ranking = RankingEvaluator(tables, self.split, "validation", prefix="val_")

        def evaluate(model) -> dict[str, float]:
            metrics = ranking(model)
            metrics.pop("val_users_evaluated", None)
            metrics.update(evaluate_top_k(model, validation, tables.num_candidates))
            return metrics

        return evaluate

    def final_metrics(self, model, tables: FeatureTables, history: dict) -> dict[str, float]:
        """Test per-user ranking metrics (seen excluded) and top-k accuracy (seen NOT excluded), plus the
        selected epoch's validation figures and speed."""
        metrics = dict(RankingEvaluator(tables, self.split, "test")(model))
        test = encode_examples(self.split.test, self.split, tables)
        started = time.perf_counter()
        top = evaluate_top_k(model, test, tables.num_candidates)
        metrics.update({key.replace("val_", "test_"): value for key, value in top.items()})
        metrics["test_top_k_seconds"] = time.perf_counter() - started
        epochs = history.get("epoch", [])
        best = history.get("best_epoch")
        selected = epochs.index(best) if best in epochs else len(epochs) - 1
        metrics["epochs_run"] = float(len(epochs))
        metrics["selected_epoch"] = float(epochs[selected]) if epochs else 0.0
        for key in (MONITOR, "val_recall@10", "val_recall@100"):
            values = history.get(key) or []
            if 0 <= selected < len(values) and values[selected] is not None:
                metrics[key] = float(values[selected])
        epoch_seconds = _mean_epoch_seconds(history)
        if epoch_seconds:
            metrics["seconds_per_epoch"] = epoch_seconds
            metrics["train_examples_per_second"] = len(self.split.train) / epoch_seconds
        return metrics


FINAL_TOP_KEY = TOP_K_KEY.format(k=100).replace("val_", "test_")
# The seen-excluded ranking metrics lead; the tutorial's top-k accuracy is the labelled reproduction column.
TABLE_COLUMNS = (("test ndcg@10", "ndcg@10"), ("test recall@10", "recall@10"), ("test recall@100", "recall@100"),
                 ("val ndcg@10", MONITOR), ("val recall@10", "val_recall@10"),
                 ("tutorial top-100 (seen kept)", FINAL_TOP_KEY), ("tutorial top-10", "test_top_10_accuracy"),
                 ("s/epoch", "seconds_per_epoch"), ("train ex/s", "train_examples_per_second"))


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.4f}" if value < 1 else f"{value:.2f}"


def results_table(models: dict[str, TrainedModel], data, split) -> str:
    """Markdown table, one row per feature set, with the protocol of every column stated below it."""
    lines = ["| feature set | epoch (of run) | " + " | ".join(c for c, _ in TABLE_COLUMNS) + " | cached |",
             "|---" * (len(TABLE_COLUMNS) + 3) + "|"]
    for name, trained in models.items():
        cells = [_cell(trained.metrics.get(key)) for _, key in TABLE_COLUMNS]
        run = trained.history.get("epoch") or [trained.config.num_epochs]
        best = trained.history.get("best_epoch") or run[-1]
        lines.append(f"| {name} | {best} ({run[-1]}) | " + " | ".join(cells)
                     + f" | {'loaded' if trained.loaded else 'trained'} |")
    lines += ["", f"data: MovieLens {data.variant} ({data.source}); {split.describe()}",
              f"- {RANKING_NOTE}", f"- tutorial top-k = {TOP_K_NOTE}",
              f"- epoch: the epoch kept (best {MONITOR}; early stopping) of the epochs run",
              "- s/epoch, train ex/s: training only, first epoch (graph tracing) left out; from the training run"]
    if any(trained.metrics.get("users_evaluated") == 0 for trained in models.values()):
        lines.append("- recall/ndcg '-': no test user has training ratings (nothing to rank for them)")
    if split.validation_is_test:
        lines.append(f"- {SELECTION_ON_TEST_WARNING.replace('WARNING: ', 'warning: ')}")
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


__all__ = ["MovieLensTrainer", "TwoTowerConfig", "TrainedModel", "TOP_KS", "FINAL_TOP_KEY", "MONITOR",
           "results_table", "recommendations_text"]
