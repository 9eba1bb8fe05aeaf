"""Training and evaluation of the rating models (`cf`, `autorec`; their data in `movielens.rating_data`).

Protocol (printed with every result):
- the split's held-out part is the *test* set and is touched once, after training;
- early stopping and every tuning decision use a validation part carved out of the
  training part (`validation_fraction` of it, seeded), unless the split already
  has a separate validation part (3 fractions, temporal, leave_last_out);
- the reported RMSE is on the test part: random 90/10 seed 42 by default, or a
  canonical ML-100K fold (`u1`..`u5`: u{i}.base / u{i}.test).

Ids become vocabulary indices once (`Vocabulary.encode_*`, 0 = unknown). Training reads the in-memory
arrays: each epoch a seeded permutation of their row indices, gathered a batch at a time (no tf.data shuffle
buffer or cache holding examples: 8 bytes a rating of index per epoch beside the arrays themselves).

At scale (ML-20M/25M): cf's embedding tables get row-sparse Adam updates (`sparse_optimizer`, LazyAdam), and
autorec reads its fitting ratings as a sparse matrix (no movies x users array).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import tensorflow as tf

from movielens import evaluation
from movielens.cli import flag_name
from movielens.config import Config
from movielens.data.splits import Split, Vocabulary
from movielens.data.table import MovieLensData
from movielens.io import CorruptFileError
from movielens.models.autorec import ItemAutoRec, rating_columns
from movielens.models.rating_cf import EmbeddingDotBias, implicit_matrix
from movielens.optimizers import SPARSE_OPTIMIZER, LazyAdam, use_sparse_updates
from movielens.persistence import ModelDir, load_weights
from movielens.rating_data import EncodedRatings, RatingParts, rating_parts, side_matrices, training_movies
from movielens.schedules import OneCycle
from movielens.training import EpochData, shuffled_batches
from movielens.validation import check_finite

MODELS = ("cf", "autorec")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("one_cycle", "exponential", "constant")
DEFAULT_RANDOM_FRACTIONS = (0.9, 0.1)
MONITOR = "val_rmse"


@dataclasses.dataclass(frozen=True)
class RatingConfig(Config):
    """Everything that determines a trained rating model (data identity is keyed separately).

    Family defaults come from `default_config(model)`; the CLI overrides single fields.
    """

    model: str = "cf"
    n_factors: int = 96                        # autorec: the code size (hidden units)
    y_min: float = 0.5
    y_max: float = 5.5
    weight_decay: float = 0.08                 # L2 on looked-up embeddings; autorec: lambda
    bias_decay: float = 0.01                   # cf only: L2 on looked-up biases
    implicit: bool = False                     # cf only: SVD++ implicit-feedback term on the user vector
    side_features: bool = False                # cf only: + user age/gender/occupation and movie genre factors
    init_std: float = 0.01
    optimizer: str = "adam"
    # cf + adam: update only the embedding rows a batch looked up (LazyAdam, movielens.optimizers) instead of
    # every row each step. auto: when users + movies >= movielens.optimizers.LARGE_TABLE_ROWS (ML-20M/25M), so
    # ML-100K / ML-1M keep plain Adam. autorec has no lookups (its L2 is on whole kernels): no effect there.
    sparse_optimizer: str = "auto"
    decoupled_decay: float = 0.0               # adamw only: fastai-style weight decay on all weights each step
    learning_rate: float = 0.003               # peak rate for one_cycle, start rate otherwise
    schedule: str = "exponential"
    decay_rate: float = 0.85                   # exponential: factor per epoch
    epochs: int = 30
    batch_size: int = 512                      # cf: 512 beat 1024/2048 on validation (ML-100K 90/10 and u1)
    patience: int = 3                          # evaluations without val RMSE improvement
    validation_fraction: float = 0.1           # carved out of train when the split has no validation
    # After early stopping picks the epoch count on the validation part, train a fresh model (same seed and
    # schedule) on fit + validation for that many epochs, so the ~10% held out for selection is not lost.
    # cf default on: on a nested check inside ML-100K's training part it cut validation RMSE by 0.006-0.008.
    refit_full: bool = True
    seed: int = 42

    def __post_init__(self):
        choices = {"model": MODELS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
                   "sparse_optimizer": SPARSE_OPTIMIZER}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        for name in ("n_factors", "epochs", "batch_size"):
            check_finite(f"--{flag_name(name)}", getattr(self, name), low=1, integer=True)
        for name in ("learning_rate", "init_std"):
            check_finite(f"--{name}", getattr(self, name), low=0, low_inclusive=False)
        for name in ("weight_decay", "bias_decay", "decoupled_decay", "patience"):
            check_finite(f"--{name}", getattr(self, name), low=0)
        check_finite("--decay_rate", self.decay_rate, low=0, low_inclusive=False, high=1)
        check_finite("--validation_fraction", self.validation_fraction, low=0, high=0.5, low_inclusive=False,
                     high_inclusive=False)
        if not check_finite("--y_max", self.y_max) > check_finite("--y_min", self.y_min):
            raise ValueError(f"--y_max must exceed --y_min, got {self.y_min}..{self.y_max}")
        if self.sparse_optimizer == "on" and (self.model != "cf" or self.optimizer != "adam"):
            raise ValueError(f"sparse_optimizer on is the sparse Adam of cf's embedding tables; {self.model} with "
                             f"{self.optimizer} has none (use auto or off)")
        for flag in ("implicit", "side_features"):
            if getattr(self, flag) and self.model != "cf":
                raise ValueError(f"{flag} is a cf option; {self.model} has no such term")

    def check(self) -> RatingConfig:
        """The config, validated (construction already validates; kept for callers that chain it)."""
        return self


FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "cf": {},
    # I-AutoRec (a labelled model beyond the two), the paper's 500 sigmoid hidden units, batches of
    # 128 movies. Chosen on ML-100K 90/10's validation carve-out (seed 42): lambda 1 / 30 / 200 / 600 / 1500
    # -> 0.886 / 0.885 / 0.879 / 0.906 / 0.954 (Adam 1e-3); then Adam 2e-3 decayed 0.97 per epoch 0.8761 vs
    # constant 1e-3 0.8790 (u1.base's carve-out: 0.8897 vs 0.8943); lambda 120 / 300 and 1000 units no better.
    # Validation is cheap, so it runs every epoch, with patience 20 (the curve is noisy).
    "autorec": {"n_factors": 500, "weight_decay": 200.0, "init_std": 0.03, "learning_rate": 2e-3,
                "schedule": "exponential", "decay_rate": 0.97, "epochs": 300, "patience": 20, "batch_size": 128},
}


def default_config(model: str = "cf", **overrides) -> RatingConfig:
    if model not in MODELS:
        raise ValueError(f"unknown rating model {model!r}; valid: {', '.join(MODELS)}")
    return RatingConfig(model=model, **FAMILY_DEFAULTS[model]).replace(**overrides).check()


# ----------------------------------------------------------------------------------------------- data


def training_dataset(config: RatingConfig, part: EncodedRatings) -> EpochData:
    """What `model.fit` reads: rating triples, or for autorec batches of movie indices [B]; each epoch's
    order is a function of (seed, epoch), so a resumed run trains on exactly the batches it would have."""
    if config.model != "autorec":
        return shuffled_batches((part.inputs(), part.ratings), config.batch_size, config.seed)
    return shuffled_batches(training_movies(part), config.batch_size, config.seed)


def steps_per_epoch(config: RatingConfig, part: EncodedRatings) -> int:
    examples = len(training_movies(part)) if config.model == "autorec" else len(part)
    return max(1, -(-examples // config.batch_size))


# ---------------------------------------------------------------------------------------------- model


def build_model(config: RatingConfig, vocabulary: Vocabulary, global_mean: float,
                fit: EncodedRatings | None = None, data: MovieLensData | None = None) -> tf.keras.Model:
    """The (uncompiled) model of `config`, built on a dummy batch so its variables exist.

    `fit` (the fitting ratings) is needed for the implicit-feedback term and autorec, `data` for side features.
    """
    y_range = (config.y_min, config.y_max)
    if config.model == "autorec":
        matrix = rating_columns(fit.users, fit.movies, fit.ratings, vocabulary.num_users, vocabulary.num_movies)
        model = ItemAutoRec(matrix, config.n_factors, config.weight_decay, config.init_std)
    else:
        implicit = None
        if config.implicit:
            implicit = implicit_matrix(fit.users, fit.movies, vocabulary.num_users, vocabulary.num_movies)
        user_side = movie_side = None
        if config.side_features:
            user_side, movie_side = side_matrices(data, vocabulary)
        model = EmbeddingDotBias(vocabulary.num_users, vocabulary.num_movies, config.n_factors, y_range,
                                 config.weight_decay, config.bias_decay, global_mean, config.init_std, implicit,
                                 user_side, movie_side)
    model({"user": tf.zeros([1], tf.int64), "movie": tf.zeros([1], tf.int64)})
    return model


def sparse_updates(config: RatingConfig, vocabulary: Vocabulary) -> bool:
    """Whether training uses LazyAdam's row-sparse updates (cf + adam, `sparse_optimizer` resolved on the size)."""
    return (config.model == "cf" and config.optimizer == "adam"
            and use_sparse_updates(config.sparse_optimizer, vocabulary.num_users + vocabulary.num_movies))


def make_optimizer(config: RatingConfig, steps_per_epoch: int, sparse: bool = False) -> tf.keras.optimizers.Optimizer:
    """The optimizer of `config`; `sparse` (see `sparse_updates`): LazyAdam instead of Adam."""
    if config.schedule == "one_cycle":
        rate = OneCycle(config.learning_rate, config.epochs * steps_per_epoch)
    elif config.schedule == "exponential":
        rate = tf.keras.optimizers.schedules.ExponentialDecay(config.learning_rate, steps_per_epoch,
                                                              config.decay_rate)
    else:
        rate = config.learning_rate
    if config.optimizer == "adam":
        return LazyAdam(rate) if sparse else tf.keras.optimizers.Adam(rate)
    if config.optimizer == "adamw":
        return tf.keras.optimizers.AdamW(rate, weight_decay=config.decoupled_decay)
    return tf.keras.optimizers.SGD(rate, momentum=0.9)


def predict_ratings(model: tf.keras.Model, users: np.ndarray, movies: np.ndarray,
                    batch_size: int = 65536) -> np.ndarray:
    """Compiled batched prediction: users, movies [n] -> ratings [n] float32."""
    if hasattr(model, "predict_pairs"):  # autorec: every movie encoded once, not once per batch
        return model.predict_pairs(users, movies, batch_size)
    predict = getattr(model, "_predict_batch", None)
    if predict is None:
        predict = tf.function(lambda u, m: model({"user": u, "movie": m}, training=False), reduce_retracing=True)
        model._predict_batch = predict
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    out = [predict(tf.constant(users[i:i + batch_size]), tf.constant(movies[i:i + batch_size])).numpy()
           for i in range(0, len(users), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclasses.dataclass
class TrainedRatingModel:
    config: RatingConfig
    model: tf.keras.Model
    vocabulary: Vocabulary
    history: dict
    metrics: dict
    model_dir: ModelDir
    loaded: bool = False

    def user_vectors(self) -> np.ndarray:
        return self.model.user_vectors()

    def movie_vectors(self) -> np.ndarray:
        return self.model.movie_vectors()


def _vocabulary_json(vocabulary: Vocabulary) -> dict:
    return {"user_ids": [str(u) for u in vocabulary.user_ids], "movie_ids": [str(m) for m in vocabulary.movie_ids]}


def fit_model(config: RatingConfig, data: MovieLensData, split: Split, model_dir: ModelDir,
              verbose: int = 1) -> tuple[tf.keras.Model, dict, dict]:
    """Trains the rating model of `config` (resuming an interrupted run in `model_dir`): early stopping on
    validation RMSE, then the optional refit. Returns (model, history, metrics)."""
    config = config.check()
    parts = rating_parts(split, config.validation_fraction, config.seed)
    final_fit = parts.final_fit(config.refit_full)
    model_dir.write_json("vocabularies.json", _vocabulary_json(split.vocabulary))
    model = _compiled_model(config, split.vocabulary, parts.fit, data)
    train_ds = training_dataset(config, parts.fit)

    def evaluate(m):
        return {MONITOR: evaluation.rmse(predict_ratings(m, parts.validation.users, parts.validation.movies),
                                         parts.validation.ratings)["rmse"]}

    if verbose:
        print(f"Training {config.model} ({len(parts.fit):,} ratings, {len(parts.validation):,} validation). "
              f"{parts.protocol}.", flush=True)
    started = time.perf_counter()
    history = _fit(model, train_ds, model_dir, evaluate, config, verbose)
    extra = {}
    if config.refit_full:
        # The early-stopped model's test RMSE is recorded next to the refit one (nothing is chosen by it).
        extra["test_rmse_early_stopped"] = test_metrics(model, parts, history)["test_rmse"]
        epochs = history.get("best_epoch") or len(history.get("epoch", [])) or config.epochs
        if verbose:
            print(f"Refitting on fit + validation ({len(final_fit):,} ratings) for {epochs} epochs.", flush=True)
        model = _compiled_model(config, split.vocabulary, final_fit, data)
        refit_config = config.replace(epochs=epochs)
        _fit(model, training_dataset(config, final_fit), model_dir, None, refit_config,
             verbose, checkpoint_dir=model_dir.checkpoint_dir / "refit", tensorboard_dir=model_dir.path / "tensorboard"
             / "refit")
        extra.update(refit_epochs=epochs, n_refit=len(final_fit))
    fit_seconds = time.perf_counter() - started
    metrics = test_metrics(model, parts, history)
    metrics.update(fit_seconds=fit_seconds, fit_mean_rating=_mean_rating(final_fit), protocol=parts.protocol, **extra)
    if config.refit_full:
        metrics["protocol"] += (f"; then refit on train (fit + validation) for the early-stopped epoch count "
                                f"({metrics['refit_epochs']})")
    return model, history, metrics


def load_model(config: RatingConfig, data: MovieLensData, split: Split, model_dir: ModelDir) -> tf.keras.Model:
    """Rebuilds the model saved in `model_dir` and restores its weights (CorruptFileError when it cannot)."""
    saved = model_dir.read_json("vocabularies.json")
    if saved != _vocabulary_json(split.vocabulary):
        raise CorruptFileError(f"{model_dir.path} was trained on other ids than this split")
    parts = rating_parts(split, config.validation_fraction, config.seed)
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(config, split.vocabulary, model_dir.read_json("metrics.json")["fit_mean_rating"],
                        parts.final_fit(config.refit_full), data)
    load_weights(model, model_dir.weights_prefix)
    return model


def train_or_load(config: RatingConfig, data: MovieLensData, split: Split, retrain: bool = False,
                  verbose: int = 1) -> TrainedRatingModel:
    """`movielens.families.base.train_or_load` for a rating config, as a `TrainedRatingModel`."""
    from movielens.families import get_family
    from movielens.families.base import Context
    from movielens.families.base import train_or_load as shared_train_or_load

    config = config.check()
    trained = shared_train_or_load(get_family(config.model), config, Context(data, split, verbose), retrain=retrain)
    return TrainedRatingModel(config, trained.state, split.vocabulary, trained.history, trained.metrics,
                              trained.model_dir, trained.loaded)


def _mean_rating(part: EncodedRatings) -> float:
    return float(part.ratings.mean()) if len(part) else 3.5


def _compiled_model(config: RatingConfig, vocabulary: Vocabulary, fit: EncodedRatings,
                    data: MovieLensData | None = None) -> tf.keras.Model:
    """A freshly seeded model for fitting on `fit` (global offset and implicit term from it), compiled."""
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(config, vocabulary, _mean_rating(fit), fit, data)
    # autorec's train_step computes its own masked loss.
    model.compile(optimizer=make_optimizer(config, steps_per_epoch(config, fit), sparse_updates(config, vocabulary)),
                  loss=None if config.model == "autorec" else "mse")
    return model


def _fit(model, train_ds, model_dir, evaluate, config, verbose, checkpoint_dir=None, tensorboard_dir=None):
    from movielens.training import fit_resumable

    # evaluate None (the refit): a fixed number of epochs, no early stopping.
    monitor = MONITOR if evaluate is not None else None
    # verbose 1 -> Keras' one line per epoch (+ the validation line); 2 -> progress bars.
    return fit_resumable(model, train_ds, epochs=config.epochs,
                         checkpoint_dir=checkpoint_dir or model_dir.checkpoint_dir, evaluate=evaluate,
                         monitor=monitor, mode="min", patience=config.patience if monitor else None,
                         restore_best=True, verbose={0: 0, 1: 2}.get(verbose, 1), tensorboard_dir=tensorboard_dir)


def test_metrics(model: tf.keras.Model, parts: RatingParts, history: dict) -> dict[str, Any]:
    """Test MSE/RMSE/MAE, the global-mean baseline on the same rows, and training facts."""
    predictions = predict_ratings(model, parts.test.users, parts.test.movies)
    scores = {f"test_{k}": v for k, v in evaluation.rmse(predictions, parts.test.ratings).items()}
    baseline = np.full(len(parts.test), parts.fit.ratings.mean())
    scores["test_rmse_global_mean"] = evaluation.rmse(baseline, parts.test.ratings)["rmse"]
    val = [v for v in history.get(MONITOR, []) if v is not None]
    scores.update(val_rmse=min(val) if val else None, best_epoch=history.get("best_epoch"),
                  epochs_trained=len(history.get("epoch", [])), n_fit=len(parts.fit),
                  n_validation=len(parts.validation), n_test=len(parts.test),
                  test_unknown_users=int((parts.test.users == 0).sum()),
                  test_unknown_movies=int((parts.test.movies == 0).sum()))
    return scores
