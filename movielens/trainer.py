"""`MovieLensTrainer`: train (or load from `saved_models/`) one two-tower model per feature set.

    trainer = MovieLensTrainer(data, split, num_epochs=3, additional_feature_sets=[(), ("timestamp",)])
    models, histories = trainer.train_all_models()
    models["timestamp"].recommender().recommend("42")

Caching goes through the one path every family uses (`movielens.families.base.train_or_load`,
family `two_tower`): a model lives in `saved_models/two_tower[<features>]-<variant>-<split>-<hash>/`
(config.json, history.json, metrics.json, weights/); the hash covers the config, the data by content
and the runtimes. Training checkpoints every epoch through `movielens.training.fit_resumable`, so an
interrupted run resumes exactly where it stopped.

Model selection: after every epoch the model ranks the validation part (per user, training
movies excluded, all catalogue movies, `retrieval.RankingEvaluator`); training stops when
`val_ndcg@10` has not improved for `patience` epochs and the best epoch's weights are kept.
Use a 3-fraction split (e.g. random 80/10/10): with a 2-fraction split validation IS the test
part, selection then happens on the test part and a warning says so.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens.config import Config
from movielens.distribute import num_replicas
from movielens.evaluation import sample_rows
from movielens.features import (
    HISTORY_LENGTH,
    HISTORY_REGULARISATION,
    HISTORY_REGULARISATION_DEFAULT,
    TIMESTAMP_BUCKETS,
    FeatureTables,
    feature_set_label,
    fit_feature_tables,
    movie_minutes_for,
    validate_feature_set,
)
from movielens.models.two_tower import OPTIMIZERS, build_two_tower, make_optimizer
from movielens.persistence import ModelDir, load_weights
from movielens.retrieval import (
    TOP_K_KEY,
    TOP_KS,
    RankingEvaluator,
    evaluate_top_k,
    export_saved_model,
)
from movielens.training import EpochData, fit_resumable, shuffled_batches

MODEL_FAMILY = "two_tower"
STEPS_PER_EXECUTION = 32  # train steps per compiled call: 1.5-2x faster epochs at batch 256-1024 (benchmark)
TOP_K_MAX_RATINGS = 200_000  # ratings the tutorial's top-k accuracy is measured on (a seeded sample beyond)
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
      history_gap_seconds: in training, a query at time t sees only the movies rated before t minus this gap
        (see `movielens.models.two_tower`); -1 (the default): by the split, `history_regularisation`.
      history_dropout: share of the training queries that see no history (their user embedding alone);
        -1 (the default): by the split. At recommendation time the whole history is used.
      unknown_user_rate: share of training examples whose user index is replaced by the unknown slot 0
        (and so their per-user features), so that slot learns a generic user: what serves people who are
        not in the data from their history (`retrieval.query_embeddings_from_histories`). 0: slot 0 stays
        at its random initialisation.
      patience: epochs without a better val_ndcg@10 before stopping (the best epoch is kept); 0: train
        all num_epochs and keep the last weights.
      validation_users: rank only this many validation users after each epoch (a draw seeded by `seed`, the
        same users every epoch); 0 = all. For ML-20M/25M, where a full pass costs more than an epoch. The
        test pass at the end always ranks every user.
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
    history_gap_seconds: int = -1
    history_dropout: float = -1.0
    unknown_user_rate: float = 0.0
    patience: int = 3
    validation_users: int = 0

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
        if self.validation_users < 0:
            raise ValueError(f"validation_users must be >= 0 (0: all), got {self.validation_users}")
        if any(int(s) < 1 for s in self.layer_sizes or ()):
            raise ValueError(f"layer_sizes must be positive, got {list(self.layer_sizes)}")
        for name in ("learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.history_gap_seconds < -1:
            raise ValueError(f"history_gap_seconds must be >= 0 (-1: by the split), got {self.history_gap_seconds}")
        if not (-1 <= self.history_dropout < 1 and (self.history_dropout >= 0 or self.history_dropout == -1)):
            raise ValueError(f"history_dropout must be in [0, 1) (-1: by the split), got {self.history_dropout}")
        if not 0 <= self.unknown_user_rate < 1:
            raise ValueError(f"unknown_user_rate must be in [0, 1), got {self.unknown_user_rate}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0: no early stopping), got {self.patience}")
        if self.optimizer.lower() not in OPTIMIZERS:  # checked by name: building one would start TensorFlow
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")

    def history_regularisation(self, split_name: str) -> tuple[int, float]:
        """(history_gap_seconds, history_dropout) in use on a split: the values given, or where -1, the split's
        default (`movielens.features.HISTORY_REGULARISATION`)."""
        gap, dropout = HISTORY_REGULARISATION.get(split_name, HISTORY_REGULARISATION_DEFAULT)
        return (gap if self.history_gap_seconds == -1 else self.history_gap_seconds,
                dropout if self.history_dropout == -1 else self.history_dropout)


def encode_examples(frame: pd.DataFrame, split, tables: FeatureTables) -> dict[str, np.ndarray]:
    """Ratings -> {"user": int64 [n], "timestamp": int64 [n] seconds, "movie": int64 [n] catalogue row}, once."""
    return {
        "user": split.vocabulary.encode_users(frame["user_id"]),
        "timestamp": frame["timestamp"].to_numpy(np.int64),
        "movie": tables.movie_rows(frame["movie_id"]),
    }


def top_k_sample(examples: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """At most TOP_K_MAX_RATINGS of the examples (a seeded draw), for the tutorial's per-rating top-k: every
    rating of ML-100K / ML-1M, a sample of ML-20M / 25M's millions (each costs a full catalogue scoring)."""
    rows = sample_rows(len(examples["user"]), TOP_K_MAX_RATINGS, seed)
    return examples if len(rows) == len(examples["user"]) else {k: v[rows] for k, v in examples.items()}


def training_dataset(examples: dict[str, np.ndarray], batch_size: int, seed: int) -> EpochData:
    """In-memory int tensors -> batches of a fresh permutation every epoch.

    Shuffling whole-epoch index permutations and gathering each batch at once replaces
    tf.data's per-example `shuffle().batch()` (about 8 us per example here, a tenth of an
    epoch of the context model); epoch e's order is a function of (seed, e), so a resumed run
    trains on exactly the batches an uninterrupted one would.
    """
    return shuffled_batches(examples, batch_size, seed)


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
    record: object = None  # the shared `movielens.families.base.TrainedModel`

    @property
    def features(self) -> tuple[str, ...]:
        return self.config.features

    def recommender(self):
        """The shared recommender (history lookup -> exclude seen -> scorer -> top-k -> titles)."""
        from movielens.recommender import Recommender

        return Recommender(self.record, backend="brute_force")

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
                 unknown_user_rate: float = _DEFAULTS.unknown_user_rate,
                 history_gap_seconds: int = _DEFAULTS.history_gap_seconds,
                 history_dropout: float = _DEFAULTS.history_dropout):
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
            unknown_user_rate=float(unknown_user_rate), history_gap_seconds=int(history_gap_seconds),
            history_dropout=float(history_dropout))
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
        """Trains (or loads) one feature set's model through the shared train-or-load path (family
        `two_tower`); `callbacks` go to `fit` (e.g. benchmark timers)."""
        from movielens.families import get_family
        from movielens.families.base import Context, train_or_load

        config = self.config_for(features)
        context = Context(self.data, self.split, self.verbose, options={
            "movie_length_config": self.movie_length_config, "trainer": self, "callbacks": list(callbacks)})
        record = train_or_load(get_family(MODEL_FAMILY), config, context, retrain=self.retrain, root=self.models_root)
        model, tables = record.state
        return TrainedModel(feature_set_label(config.features), config, model, tables, self.split, record.history,
                            record.metrics, record.model_dir, record.loaded, record)

    def build(self, config: TwoTowerConfig, movie_minutes: np.ndarray | None = None, length_summary: str = ""
              ) -> tuple[tf.keras.Model, FeatureTables]:
        """The feature tables (fitted on the split's train part) and the compiled, seeded, untrained model."""
        tables = fit_feature_tables(self.data, self.split, config.features, movie_minutes, length_summary,
                                    config.timestamp_buckets)
        gap, dropout = config.history_regularisation(self.split.name)
        tf.keras.utils.set_random_seed(config.seed)
        model = build_two_tower(config.features, tables, config.embedding_size, config.dense_layers(),
                                sampling_correction=config.sampling_correction,
                                remove_accidental_hits=config.remove_accidental_hits,
                                temperature=config.temperature, history_length=config.history_length, l2=config.l2,
                                unknown_user_rate=config.unknown_user_rate,
                                history_gap_seconds=gap, history_dropout=dropout)
        # Under tf.distribute one step per call: the cross-replica gather's shape changes at an epoch's last,
        # smaller batch, which a collective inside a multi-step loop cannot take.
        steps = self.steps_per_execution if num_replicas() == 1 else 1
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate), jit_compile=self.jit_compile,
                      steps_per_execution=steps)
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
            checkpoint_dir=model_dir.checkpoint_dir, evaluate=self.validation_evaluator(tables, config),
            evaluate_every=config.validation_freq, verbose=self.verbose,
            monitor=MONITOR if config.patience else None, patience=config.patience or None, restore_best=True,
            **({"callbacks": list(callbacks)} if callbacks else {}))
        train_seconds = time.perf_counter() - started
        metrics = self.final_metrics(model, tables, history)
        metrics["train_seconds_this_run"] = train_seconds
        return model, tables, history, metrics

    def validation_evaluator(self, tables: FeatureTables, config: TwoTowerConfig):
        """evaluate(model) -> validation metrics of one epoch: per-user ranking (seen excluded; val_ndcg@10,
        val_recall@10, val_recall@100; `config.validation_users` of them) and the tutorial's top-k accuracy
        (seen not excluded; at most TOP_K_MAX_RATINGS ratings)."""
        validation = top_k_sample(encode_examples(self.split.validation, self.split, tables), config.seed)
        ranking = RankingEvaluator(tables, self.split, "validation", prefix="val_",
                                   sample_users=config.validation_users, seed=config.seed)

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
        test = top_k_sample(encode_examples(self.split.test, self.split, tables), 0)
        metrics["test_top_k_ratings"] = float(len(test["user"]))
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

__all__ = ["MovieLensTrainer", "TwoTowerConfig", "TrainedModel", "TOP_KS", "FINAL_TOP_KEY", "MONITOR"]
