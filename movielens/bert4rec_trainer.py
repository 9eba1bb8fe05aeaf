"""Training, evaluation, caching and recommendations for BERT4Rec (`movielens.models.bert4rec`).

Protocol (leave-last-out, `movielens.sequences`): the model trains on each user's
training movies (masked afresh every epoch), validates on the second-to-last movie
(history = the training movies) every `evaluate_every` epochs with early stopping on
`val_ndcg@10` (best weights kept), and is tested on the last movie (history =
training movies + the validation movie).

Metrics:
  full ranking  - the target ranked among all n_items training movies, the input
                  history excluded: hr@1/5/10, ndcg@5/10, mrr (`test_*`, `val_*`).
  sampled       - the BERT4Rec paper's protocol, for comparison with it only: the target
                  ranked among 100 negatives sampled by popularity (training
                  interaction counts) from movies outside the history (`test_sampled100_*`).
A held-out movie never rated in training cannot be ranked and counts as a miss.

Cache: `saved_models/bert4rec-<dataset>-<hash>/` with config.json, history.json,
metrics.json, vocabulary.json (item index i = movie_ids[i - 1]) and weights/.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens import evaluation
from movielens.config import Config
from movielens.data.splits import Split, Vocabulary
from movielens.data.table import MovieLensData
from movielens.io import CorruptFileError
from movielens.models.bert4rec import Bert4Rec, Bert4RecConfig
from movielens.persistence import ModelDir, load_weights, readable_name, save_weights
from movielens.recommender import Recommendation, UserHistory
from movielens.sequences import (
    PAD,
    NextItemTask,
    build_sequences,
    leave_last_out_tasks,
    masked_dataset,
    training_windows,
)
from movielens.titles import TitleIndex

MODEL_NAME = "bert4rec"
MONITOR = "val_ndcg@10"
KS = (1, 5, 10)
SAMPLED_NEGATIVES = 100
SAMPLED_PREFIX = f"sampled{SAMPLED_NEGATIVES}_"
# Bumped when the layers (hence the checkpoint layout) change: older cached models are not reloaded.
# 2: matmul self-attention with one fused QKV projection and stateless dropout.
ARCHITECTURE_VERSION = 2


@dataclasses.dataclass(frozen=True)
class Bert4RecTrainingConfig(Config):
    """Optimisation and early stopping."""

    # The benchmarked settings (benchmarks/bert4rec.py): Adam 2e-3 beat 1e-3 on ML-100K's validation curve.
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 100       # linear warm-up, then constant (Adam)
    clipnorm: float = 5.0         # global gradient-norm clipping (as the original code)
    epochs: int = 200             # upper bound; early stopping usually ends sooner
    evaluate_every: int = 3       # epochs between validations
    patience: int = 5             # validations without a better val_ndcg@10 before stopping
    window_stride: int = 0        # items between training windows of long histories; 0 -> max_len
    time_budget_minutes: float = 0.0  # stop after the epoch that exceeds this (this run's time); 0 -> no limit

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 1 or self.evaluate_every < 1 or self.learning_rate <= 0:
            raise ValueError(f"batch_size, epochs, evaluate_every must be >= 1 and learning_rate > 0: {self}")
        if min(self.patience, self.window_stride, self.warmup_steps, self.clipnorm, self.time_budget_minutes) < 0:
            raise ValueError(f"patience, window_stride, warmup_steps, clipnorm, time_budget_minutes must be >= 0: "
                             f"{self}")


class TimeBudget(tf.keras.callbacks.Callback):
    """Stops training after the first epoch ending past `minutes` of this run (best weights are still kept)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes, self.started = minutes, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and time.perf_counter() - self.started > 60.0 * self.minutes:
            print(f"time budget of {self.minutes} minutes reached after epoch {epoch + 1}", flush=True)
            self.model.stop_training = True


class WarmupConstant(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ~0 to `rate` over `warmup_steps`, constant afterwards."""

    def __init__(self, rate: float, warmup_steps: int):
        self.rate, self.warmup_steps = rate, warmup_steps

    def __call__(self, step):
        if not self.warmup_steps:
            return tf.constant(self.rate, tf.float32)
        fraction = tf.cast(step + 1, tf.float32) / float(self.warmup_steps)
        return self.rate * tf.minimum(1.0, fraction)

    def get_config(self):
        return {"rate": self.rate, "warmup_steps": self.warmup_steps}


# --- evaluation ------------------------------------------------------------------------------------------

def next_item_ranks(model: Bert4Rec, task: NextItemTask, batch_size: int = 256) -> np.ndarray:
    """0-based full-ranking rank of each target among all items, the input history excluded: [U] int.

    Unknown targets (PAD) get rank n_items (a miss at every cut-off).
    """
    ranks = np.full(len(task), model.n_items, np.int64)
    for start in range(0, len(task), 2048):  # chunks bound the [chunk, n_items] score matrix
        stop = min(start + 2048, len(task))
        scores = model.score_histories(task.histories[start:stop], batch_size)
        targets = task.targets[start:stop]
        known = targets != PAD
        seen = evaluation.ItemSets.from_lists([h - 1 for h in task.histories[start:stop]])
        held_out = evaluation.ItemSets.from_lists([[t - 1] if t != PAD else [] for t in targets])
        scores = evaluation.exclude_seen(scores, seen, held_out)
        chunk = evaluation.target_ranks(scores, np.maximum(targets - 1, 0))
        ranks[start:stop] = np.where(known, chunk, model.n_items)
    return ranks


def next_item_metrics(model: Bert4Rec, task: NextItemTask, prefix: str = "") -> dict[str, float]:
    """Full-ranking hr@1/5/10, ndcg@1/5/10, mrr of a next-item task."""
    metrics = evaluation.leave_one_out_metrics(next_item_ranks(model, task), KS)
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def sampled_metrics(model: Bert4Rec, task: NextItemTask, popularity: np.ndarray, prefix: str = "",
                    n_negatives: int = SAMPLED_NEGATIVES, seed: int = 0) -> dict[str, float]:
    """The paper's protocol: the target against `n_negatives` popularity-sampled unseen items.

    popularity: float [n_items] sampling weights (column j = item index j + 1).
    """
    known = task.targets != PAD
    seen = evaluation.ItemSets.from_lists([h - 1 for h in task.histories])
    negatives = evaluation.sample_negatives(seen, np.maximum(task.targets - 1, 0), popularity, n_negatives, seed)
    scores = model.score_histories(task.histories)
    ranks = evaluation.sampled_target_ranks(scores, np.maximum(task.targets - 1, 0), negatives)
    ranks = np.where(known, ranks, n_negatives)
    metrics = evaluation.leave_one_out_metrics(ranks, KS)
    return {f"{prefix}{SAMPLED_PREFIX}{k}": v for k, v in metrics.items()}


# --- training ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainedBert4Rec:
    """A trained (or loaded) model with everything needed to use and report it."""

    model: Bert4Rec
    config: Bert4RecConfig
    training: Bert4RecTrainingConfig
    vocabulary: Vocabulary
    history: dict
    metrics: dict
    model_dir: ModelDir | None
    loaded: bool = False


def cache_key(data: MovieLensData, split: Split, config: Bert4RecConfig, training: Bert4RecTrainingConfig,
              seed: int) -> dict:
    """Everything that determines the trained model (hashed into the saved_models/ folder name)."""
    return {"model": config.to_dict(), "architecture": ARCHITECTURE_VERSION, "training": training.to_dict(),
            "seed": seed,
            "data": {"variant": data.variant, "source": data.source, "ratings": int(len(data.ratings)),
                     "split": split.name, "train": int(len(split.train))}}


def build_model(config: Bert4RecConfig, training: Bert4RecTrainingConfig, n_items: int) -> Bert4Rec:
    model = Bert4Rec(config, n_items).build_variables()
    optimizer = tf.keras.optimizers.Adam(WarmupConstant(training.learning_rate, training.warmup_steps),
                                         global_clipnorm=training.clipnorm or None)
    model.compile(optimizer=optimizer)
    return model


def train_bert4rec(data: MovieLensData, split: Split, config: Bert4RecConfig | None = None,
                   training: Bert4RecTrainingConfig | None = None, seed: int = 42,
                   retrain: bool = False, verbose: int = 1, root=None,
                   callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> TrainedBert4Rec:
    """Trains BERT4Rec on `split.train` (or loads the cached result), then evaluates on the test part.

    With a leave-last-out split: validation every `evaluate_every` epochs, early stopping on
    val_ndcg@10, full-ranking and sampled test metrics. With another split there is no
    next-item task: it trains for `training.epochs` epochs and reports no metrics.
    """
    config, training = config or Bert4RecConfig(), training or Bert4RecTrainingConfig()
    key = cache_key(data, split, config, training, seed)
    model_dir = ModelDir(readable_name(MODEL_NAME, data.variant, split.name), key, root=root)
    if model_dir.is_complete() and not retrain:
        try:
            return load_trained(model_dir)
        except CorruptFileError as error:
            print(f"cached model unreadable ({error}); retraining", flush=True)
    model_dir.start(retrain=retrain)
    vocabulary = split.vocabulary
    n_items = len(vocabulary.movie_ids)
    model_dir.write_json("vocabulary.json", {"movie_ids": [str(m) for m in vocabulary.movie_ids]})
    tf.keras.utils.set_random_seed(seed)
    model = build_model(config, training, n_items)

    sequences = build_sequences(split.train, vocabulary)
    windows = training_windows(sequences, config.max_len, training.window_stride or None)
    dataset = masked_dataset(windows, n_items, training.batch_size, config.mask_prob,
                             config.predictions_per_window, seed, config.last_only_prob)
    tasks = leave_last_out_tasks(split) if split.name == "leave_last_out" else None
    evaluate = (lambda m: next_item_metrics(m, tasks[0], "val_")) if tasks else None
    started = time.perf_counter()
    callbacks = [*callbacks, TimeBudget(training.time_budget_minutes)]
    history = _fit(model, dataset, model_dir, training, evaluate, verbose, callbacks)
    history["train_seconds_this_run"] = time.perf_counter() - started
    metrics: dict[str, float] = {"n_items": n_items, "n_windows": len(windows), "n_users": len(sequences)}
    if tasks:
        metrics.update(next_item_metrics(model, tasks[1], "test_"))
        popularity = np.bincount(np.concatenate(sequences.items), minlength=n_items + 1)[1:].astype(np.float64)
        try:
            metrics.update(sampled_metrics(model, tasks[1], popularity, "test_", seed=seed))
        except ValueError as error:  # a catalogue too small for 100 negatives (tiny synthetic data)
            print(f"sampled protocol skipped: {error}", flush=True)
        metrics["test_unknown_targets"] = int((tasks[1].targets == PAD).sum())
        metrics["test_users"] = len(tasks[1])
    save_weights(model, model_dir.weights_prefix)
    model_dir.finish(history, metrics)
    return TrainedBert4Rec(model, config, training, vocabulary, history, metrics, model_dir)


def _fit(model, dataset, model_dir: ModelDir, training: Bert4RecTrainingConfig, evaluate, verbose, callbacks) -> dict:
    from movielens.training import fit_resumable

    if evaluate is None:
        return fit_resumable(model, dataset, epochs=training.epochs, checkpoint_dir=model_dir.checkpoint_dir,
                             verbose=verbose, callbacks=callbacks)
    return fit_resumable(model, dataset, epochs=training.epochs, checkpoint_dir=model_dir.checkpoint_dir,
                         evaluate=evaluate, evaluate_every=training.evaluate_every, monitor=MONITOR, mode="max",
                         patience=training.patience, restore_best=True, verbose=verbose, callbacks=callbacks)


def load_trained(model_dir: ModelDir) -> TrainedBert4Rec:
    """Rebuilds the model of a finished `model_dir` and restores its weights."""
    key = model_dir.read_json("config.json")
    config = Bert4RecConfig.from_dict(key["model"])
    training = Bert4RecTrainingConfig.from_dict(key["training"])
    movie_ids = np.array(model_dir.read_json("vocabulary.json")["movie_ids"], dtype=object)
    model = build_model(config, training, len(movie_ids))
    load_weights(model, model_dir.weights_prefix)
    vocabulary = Vocabulary(np.zeros(0, object), movie_ids)
    return TrainedBert4Rec(model, config, training, vocabulary, model_dir.read_json("history.json"),
                           model_dir.read_json("metrics.json"), model_dir, loaded=True)


# --- recommendations -----------------------------------------------------------------------------------

class Bert4RecRecommender:
    """Next-movie recommendations from a watch history (the recommender contract of `movielens.recommender`).

    Args:
      model: a trained Bert4Rec.
      movie_ids: the model's items, item index i = movie_ids[i - 1].
      movies: the catalogue (movie_id, movie_title) for titles and title lookup.
      ratings: whose time-ordered movies are a user's history (`recommend(user_id)`),
        e.g. all of a data set's ratings.
    """

    def __init__(self, model: Bert4Rec, movie_ids: Sequence[str], movies: pd.DataFrame, ratings: pd.DataFrame):
        self.model = model
        self.movie_ids = np.asarray([str(m) for m in movie_ids], dtype=object)
        self.vocabulary = Vocabulary(np.zeros(0, object), self.movie_ids)
        self.users = UserHistory(ratings)
        self.titles = dict(zip(movies["movie_id"].astype(str), movies["movie_title"]))
        self.title_index = TitleIndex.from_movies(movies)

    @classmethod
    def from_trained(cls, trained: TrainedBert4Rec, data: MovieLensData, ratings: pd.DataFrame | None = None):
        return cls(trained.model, trained.vocabulary.movie_ids, data.movies,
                   data.ratings if ratings is None else ratings)

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]:
        """The k movies most likely next for this user's history (raises UnknownUserError)."""
        return self.recommend_for_history(list(self.users.seen_movies(user_id)), k, ids=True,
                                          exclude_seen=exclude_seen)

    def history_ids(self, history: Sequence[str], ids: bool = False) -> list[str]:
        """Titles (tolerant match; UnknownTitleError lists the closest) or movie ids -> movie ids."""
        if ids:
            unknown = [m for m in map(str, history) if m not in self.titles]
            if unknown:
                raise KeyError(f"unknown movie ids {unknown[:5]}; ids are MovieLens movie ids such as "
                               f"{', '.join(list(self.titles)[:3])}")
            return [str(m) for m in history]
        return [str(self.title_index.lookup(title)) for title in history]

    def recommend_for_history(self, history: Sequence[str], k: int = 10, ids: bool = False,
                              exclude_seen: bool = True) -> list[Recommendation]:
        """Recommendations after watching `history` in this order (titles, or movie ids with `ids=True`).

        Movies of the history the model never saw in training carry no information and are left out.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        movie_ids = self.history_ids(history, ids)
        items = self.vocabulary.encode_movies(movie_ids)
        items = items[items != PAD].astype(np.int32)
        if not len(items) and not ids and history:
            raise ValueError(f"none of {list(history)} was rated in the training data; the model cannot use them")
        scores = self.model.score_histories([items])[0].astype(np.float64)
        if exclude_seen and len(items):
            scores[items - 1] = -np.inf
        top = evaluation.top_k(scores[None, :], min(k, int(np.isfinite(scores).sum())))[0]
        return [Recommendation(self.movie_ids[i], self.titles.get(self.movie_ids[i], ""), float(scores[i]))
                for i in top]
