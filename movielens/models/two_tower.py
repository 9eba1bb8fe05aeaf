"""Two-tower retrieval model (TFRS): query tower, candidate tower, `tfrs.tasks.Retrieval`.

Inputs are integer indices prepared once by `movielens.features` (no string
lookups per batch):

    features = {"user": int64 [B] user index, "timestamp": int64 [B] seconds, "movie": int64 [B] catalogue row}

(timestamps stay whole int64 seconds: the history feature compares them exactly; float32 would round
them to 64 s). Each tower gathers its per-user / per-movie feature values from constant tables,
embeds each feature, concatenates, and runs a dense stack (`layer_sizes`: ReLU between layers, the
last layer linear; no layers: the concatenation itself).

History (`history` feature, YouTube-DNN style): the query tower averages a history embedding table over
the movies the user rated STRICTLY before the query timestamp (at most the last `history_length`),
looked up in-graph from the training ratings (`tf.searchsorted` over sorted (user, timestamp) keys), or
over a history given directly as `inputs["history"]`: int64 [B, H] catalogue rows, -1 = padding (or a
`tf.RaggedTensor`), which is how people who are not in the data (user index 0) are served.
Two training-only regularisers of that history (`history_gap_seconds`, `history_dropout`): a known
user's training query at time t sees only the movies rated before t - gap, and a share of them see no
history at all (the unknown user's training queries keep theirs whole: they train serving people typed
in). MovieLens users rate in sessions, so the movies rated just before t predict the movie at t far better
than a user's whole history predicts a movie held out from anywhere in it; without them the tower learns
that session order and leans on it instead of the user's own embedding. At recommendation time the query
sees the user's whole training history (the last `history_length` movies).

Loss: in-batch softmax with the logQ sampling-probability correction (Yi et al., RecSys 2019): every
other positive of the batch is a negative, sampled in proportion to its popularity, so the task is given
each candidate's share of the training ratings and subtracts log(p) from its logits; optionally the
logits of accidental hits (the same movie elsewhere in the batch) are masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movielens.distribute import cross_replica_candidates, per_replica_penalty
from movielens.features import CANDIDATE, HISTORY_LENGTH, QUERY, FeatureTables, tower_features

_USER_SHIFT = 2**32  # movielens.features.history_key: user index * 2^32 + timestamp


def dense_stack(layer_sizes: Sequence[int], name: str) -> tf.keras.Sequential:
    """Dense layers, ReLU on all but the last (linear) one; empty -> identity."""
    layers = [tf.keras.layers.Dense(size, activation="relu" if i < len(layer_sizes) - 1 else None)
              for i, size in enumerate(layer_sizes)]
    return tf.keras.Sequential(layers, name=name)


class _BucketAndValue(tf.keras.layers.Layer):
    """A scalar as [bucket embedding, normalised value]: [B] float -> [B, d + 1]."""

    def __init__(self, boundaries, mean: float, std: float, embedding_size: int, **kwargs):
        super().__init__(**kwargs)
        self.boundaries = [float(b) for b in boundaries]
        self.mean, self.std = float(mean), float(std)
        self.embedding = tf.keras.layers.Embedding(len(self.boundaries) + 1, embedding_size)

    def call(self, values):
        values = tf.cast(values, tf.float32)
        buckets = tf.raw_ops.Bucketize(input=values, boundaries=self.boundaries)
        normalised = (values - self.mean) / self.std
        return tf.concat([self.embedding(buckets), normalised[:, None]], axis=1)


class _MeanEmbedding(tf.keras.layers.Layer):
    """Mean of the embeddings of the non-zero ids per row: [B, L] int -> [B, d] (all-padding rows -> 0)."""

    def __init__(self, input_dim: int, embedding_size: int, **kwargs):
        super().__init__(**kwargs)
        self.embedding = tf.keras.layers.Embedding(max(input_dim, 2), embedding_size)

    def call(self, ids):
        mask = tf.cast(ids > 0, tf.float32)[:, :, None]
        summed = tf.reduce_sum(self.embedding(ids) * mask, axis=1)
        return summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class _HistoryMean(tf.keras.layers.Layer):
    """Mean of the history embeddings of up to `length` movies per query -> [B, d] (no history -> zeros).

    The history is either given (`rows`: int64 [B, L] catalogue rows, -1 padding) or looked up from the
    training ratings: the user's last `length` movies with a timestamp strictly below the query's.
    """

    def __init__(self, tables: FeatureTables, embedding_size: int, length: int, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)
        self.keys = tf.constant(tables.history_keys, tf.int64)
        self.rows = tf.constant(tables.history_rows, tf.int64)
        self.vocab_index = tf.constant(tables.movie_vocab_index, tf.int64)
        self.embedding = tf.keras.layers.Embedding(
            tables.num_movies, embedding_size, name="history_movie",
            embeddings_regularizer=tf.keras.regularizers.l2(l2) if l2 else None)

    def lookup(self, user, timestamp, gap=0):
        """The training movies of each user rated strictly before `timestamp` - `gap` (seconds, a scalar or
        [B]): int64 [B, length], -1 padding."""
        user = tf.cast(user, tf.int64)
        timestamp = tf.maximum(tf.cast(timestamp, tf.int64) - tf.cast(gap, tf.int64), 0)
        begin = tf.searchsorted(self.keys, user * _USER_SHIFT, side="left", out_type=tf.int64)
        end = tf.searchsorted(self.keys, user * _USER_SHIFT + timestamp, side="left", out_type=tf.int64)
        positions = tf.maximum(begin, end - self.length)[:, None] + tf.range(self.length, dtype=tf.int64)
        last = tf.maximum(tf.size(self.rows, out_type=tf.int64) - 1, 0)
        rows = tf.gather(self.rows, tf.minimum(positions, last)) if self.rows.shape[0] else tf.zeros_like(positions)
        return tf.where(positions < end[:, None], rows, -1)

    def call(self, rows):
        rows = tf.cast(rows, tf.int64)
        vocab = tf.gather(self.vocab_index, tf.maximum(rows, 0))
        mask = tf.cast((rows >= 0) & (vocab > 0), tf.float32)[:, :, None]  # padding and untrained movies out
        summed = tf.reduce_sum(self.embedding(vocab) * mask, axis=1)
        return summed / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class QueryTower(tf.keras.Model):
    """{"user": int [B], "timestamp": int64 [B] seconds, optional "history"} -> query embeddings float32 [B, out].

    Per-user features (age bucket, gender, occupation) are gathered from constant tables by user index.
    `history` (only read with the history feature): int64 [B, H] catalogue rows, -1 padding, or a ragged
    [B, None] tensor; only its last `history_length` movies count. Without it, the history is the user's
    training movies rated strictly before `timestamp`.
    """

    def __init__(self, features: Sequence[str], tables: FeatureTables, embedding_size: int,
                 layer_sizes: Sequence[int], history_length: int = HISTORY_LENGTH, l2: float = 0.0,
                 unknown_user_rate: float = 0.0, history_gap_seconds: int = 0, history_dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.feature_names = tower_features(features, QUERY)
        d = embedding_size
        self.history_length = int(history_length)
        self.unknown_user_rate = float(unknown_user_rate)
        self.history_gap_seconds = int(history_gap_seconds)
        self.history_dropout = float(history_dropout) if "history" in self.feature_names else 0.0
        if self.history_dropout > 0:  # checkpointed like unknown_generator below: resumed runs draw the same
            self.history_generator = tf.random.Generator.from_seed(int(np.random.randint(2**31 - 1)))
        if self.unknown_user_rate > 0:
            # Which examples become the unknown user is drawn from a generator whose state is a variable:
            # checkpointed, so a resumed run draws what an uninterrupted one would (tf.random.uniform's
            # kernel state is not). Seeded from numpy, so `tf.keras.utils.set_random_seed` repeats runs.
            self.unknown_generator = tf.random.Generator.from_seed(int(np.random.randint(2**31 - 1)))
        self.user_embedding = tf.keras.layers.Embedding(
            tables.num_users, d, name="user_id", embeddings_regularizer=tf.keras.regularizers.l2(l2) if l2 else None)
        if "history" in self.feature_names:
            self.history = _HistoryMean(tables, d, history_length, l2, name="history")
        if "timestamp" in self.feature_names:
            self.timestamp = _BucketAndValue(tables.timestamp_boundaries, tables.timestamp_mean,
                                             tables.timestamp_std, d, name="timestamp")
        self.categories = []
        for name, table, size in (("bucketized_user_age", tables.user_age, tables.num_age),
                                  ("user_gender", tables.user_gender, 3),
                                  ("user_occupation_label", tables.user_occupation, tables.num_occupation)):
            if name in self.feature_names:
                self.categories.append((tf.constant(table, tf.int64), tf.keras.layers.Embedding(size, d, name=name)))
        self.dense = dense_stack(layer_sizes, "query_dense")

    @property
    def uses_history(self) -> bool:
        return "history" in self.feature_names

    def history_rows(self, inputs, gap=0) -> tf.Tensor:
        """The history the tower averages: int64 [B, history_length] catalogue rows, -1 padding; looked up
        (no `inputs["history"]`), it ends `gap` seconds (a scalar or [B]) before each query's timestamp."""
        if "history" not in inputs:
            return self.history.lookup(inputs["user"], inputs["timestamp"], gap)
        rows = inputs["history"]
        if not isinstance(rows, tf.RaggedTensor):  # padded: drop the -1 entries wherever they are
            rows = tf.cast(tf.convert_to_tensor(rows), tf.int64)
            rows = tf.ragged.boolean_mask(rows, rows >= 0)
        rows = tf.cast(rows, tf.int64)[:, -self.history_length:]  # the latest history_length movies
        return rows.to_tensor(default_value=-1, shape=[None, self.history_length])

    def call(self, inputs, training=None):
        user = tf.cast(inputs["user"], tf.int64)
        if training and self.unknown_user_rate > 0:  # train the unknown-user slot 0 (people not in the data)
            unknown = self.unknown_generator.uniform(tf.shape(user)) < self.unknown_user_rate
            user = tf.where(unknown, tf.zeros_like(user), user)
        parts = [self.user_embedding(user)]
        if "timestamp" in self.feature_names:
            parts.append(self.timestamp(inputs["timestamp"]))
        if self.uses_history:
            # The regularisers act on known users' training queries only. The unknown user (slot 0, see
            # unknown_user_rate) has no embedding of its own to fall back on, and its queries, with the whole
            # earlier history, are what train serving people typed in from the movies they name.
            known = user > 0
            gap = tf.where(known, tf.constant(self.history_gap_seconds, tf.int64), 0) if training else 0
            rows = self.history_rows(inputs, gap)
            if training and self.history_dropout > 0:  # these queries see no history: the user embedding alone
                dropped = (self.history_generator.uniform(tf.shape(rows)[:1]) < self.history_dropout) & known
                rows = tf.where(dropped[:, None], tf.constant(-1, tf.int64), rows)
            parts.append(self.history(rows))
        for table, embedding in self.categories:
            parts.append(embedding(tf.gather(table, user)))
        return self.dense(tf.concat(parts, axis=1) if len(parts) > 1 else parts[0])


class CandidateTower(tf.keras.Model):
    """Catalogue rows int [B] -> candidate embeddings float32 [B, out].

    Per-movie features (vocabulary index, title tokens, genres, runtime) are constant tables indexed by row.
    """

    def __init__(self, features: Sequence[str], tables: FeatureTables, embedding_size: int,
                 layer_sizes: Sequence[int], l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.feature_names = tower_features(features, CANDIDATE)
        d = embedding_size
        self.vocab_index = tf.constant(tables.movie_vocab_index, tf.int64)
        regularizer = tf.keras.regularizers.l2(l2) if l2 else None
        self.movie_embedding = tf.keras.layers.Embedding(tables.num_movies, d, name="movie_title",
                                                         embeddings_regularizer=regularizer)
        if "movie_title_text" in self.feature_names:
            self.title_tokens = tf.constant(tables.title_tokens, tf.int64)
            self.title_text = _MeanEmbedding(len(tables.title_vocabulary), d, name="movie_title_text")
        if "movie_genres" in self.feature_names:
            self.genres = tf.constant(tables.genres, tf.int64)
            self.genre_embedding = _MeanEmbedding(tables.num_genres, d, name="movie_genres")
        if "movie_length" in self.feature_names:
            self.minutes = tf.constant(tables.movie_minutes, tf.float32)
            self.length = _BucketAndValue(tables.length_boundaries, tables.length_mean, tables.length_std, d,
                                          name="movie_length")
        self.dense = dense_stack(layer_sizes, "candidate_dense")

    def call(self, rows):
        rows = tf.cast(rows, tf.int64)
        parts = [self.movie_embedding(tf.gather(self.vocab_index, rows))]
        if "movie_title_text" in self.feature_names:
            parts.append(self.title_text(tf.gather(self.title_tokens, rows)))
        if "movie_genres" in self.feature_names:
            parts.append(self.genre_embedding(tf.gather(self.genres, rows)))
        if "movie_length" in self.feature_names:
            parts.append(self.length(tf.gather(self.minutes, rows)))
        return self.dense(tf.concat(parts, axis=1) if len(parts) > 1 else parts[0])


class InBatchSoftmax(tf.keras.losses.Loss):
    """The Retrieval task's in-batch softmax cross-entropy (summed), with integer labels.

    `tfrs.tasks.Retrieval` passes `y_true = tf.eye(B, B)` and the [B, B] scores; its
    default `CategoricalCrossentropy(from_logits=True, reduction=SUM)` multiplies by
    that dense identity. Row i's positive is column i, so the sparse form gives the
    same value without touching the B x B label matrix (graph pruning drops the unused
    `tf.eye`), which at batch 8192 is a large part of a step.
    """

    def __init__(self, name: str = "in_batch_softmax"):
        super().__init__(name=name, reduction=tf.keras.losses.Reduction.NONE)

    def __call__(self, y_true, y_pred, sample_weight=None):
        labels = tf.range(tf.shape(y_pred)[0])
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
        if sample_weight is not None:
            losses = losses * tf.cast(tf.reshape(sample_weight, [-1]), losses.dtype)
        return tf.reduce_sum(losses)


class TwoTowerModel(tfrs.Model):
    """A `tfrs.Model`: loss = `tasks.Retrieval` on in-batch negatives.

    Args:
      sampling_probability: float [n_rows] per catalogue row (`FeatureTables.sampling_probabilities`):
        given, the task subtracts log(p) of each in-batch candidate from its logits (logQ correction).
      remove_accidental_hits: mask the logits of a row's positive movie where it appears again in the batch
        (the same movie rated by two users of one batch is not a negative of either).
      temperature: logits are divided by it before the correction (None or 1: unchanged).

    FactorizedTopK metrics are computed only when evaluating (`compute_metrics=not training`),
    and only if the task was given them (the trainer evaluates with `retrieval.evaluate_top_k`).
    """

    def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower,
                 task: tfrs.tasks.Retrieval | None = None, sampling_probability=None,
                 remove_accidental_hits: bool = False, temperature: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        temperature = None if temperature in (None, 1, 1.0) else float(temperature)
        self.task = task or tfrs.tasks.Retrieval(loss=InBatchSoftmax(), temperature=temperature)
        self.sampling_probability = (None if sampling_probability is None
                                     else tf.constant(sampling_probability, tf.float32))
        self.remove_accidental_hits = bool(remove_accidental_hits)

    def compute_loss(self, features, training=False):
        query = self.query_tower(features, training=training)
        rows = tf.cast(features["movie"], tf.int64)
        # Under tf.distribute: the candidates of the whole global batch, this replica's first (else unchanged).
        candidate, candidate_rows = cross_replica_candidates(self.candidate_tower(rows), rows)
        extra = {}
        if self.sampling_probability is not None:
            extra["candidate_sampling_probability"] = tf.gather(self.sampling_probability, candidate_rows)
        if self.remove_accidental_hits:
            extra["score_mask"] = accidental_hit_mask(rows, candidate_rows)
        return self.task(query, candidate, compute_metrics=not training, **extra)


def accidental_hit_mask(rows: tf.Tensor, candidate_rows: tf.Tensor | None = None) -> tf.Tensor:
    """bool [B, C]: False where candidate j is the same movie as row i's positive but j != i (not a negative).

    candidate_rows: [C >= B] the candidates' movies, row i's positive at column i (default: `rows`).
    """
    candidate_rows = rows if candidate_rows is None else candidate_rows
    same = tf.equal(rows[:, None], candidate_rows[None, :])
    return tf.logical_or(tf.logical_not(same), tf.eye(tf.shape(rows)[0], tf.shape(candidate_rows)[0], dtype=tf.bool))


def build_two_tower(features: Sequence[str], tables: FeatureTables, embedding_size: int,
                    layer_sizes: Sequence[int], *, sampling_correction: bool = False,
                    remove_accidental_hits: bool = False, temperature: float | None = None,
                    history_length: int = HISTORY_LENGTH, l2: float = 0.0,
                    unknown_user_rate: float = 0.0, history_gap_seconds: int = 0,
                    history_dropout: float = 0.0) -> TwoTowerModel:
    """Builds (and calls once, so variables exist) a two-tower model for one feature set.

    sampling_correction: logQ correction with each movie's share of the training ratings (see TwoTowerModel).
    Build it inside a `tf.distribute` strategy's scope to train on its replicas (`movielens.distribute`).
    """
    l2 = per_replica_penalty(l2)  # every replica adds the penalty; the summed gradients count it once
    query = QueryTower(features, tables, embedding_size, layer_sizes, history_length, l2, unknown_user_rate,
                       history_gap_seconds, history_dropout, name="query_tower")
    candidate = CandidateTower(features, tables, embedding_size, layer_sizes, l2, name="candidate_tower")
    model = TwoTowerModel(query, candidate,
                          sampling_probability=tables.sampling_probabilities() if sampling_correction else None,
                          remove_accidental_hits=remove_accidental_hits, temperature=temperature)
    sample = {"user": tf.zeros([1], tf.int64), "timestamp": tf.zeros([1], tf.int64),
              "movie": tf.zeros([1], tf.int64)}
    query_dim = query(sample).shape[-1]
    candidate_dim = candidate(sample["movie"]).shape[-1]
    if query_dim != candidate_dim:
        raise ValueError(f"query embeddings have {query_dim} dimensions but candidate embeddings {candidate_dim}: "
                         f"with features {list(features)} give --layer_sizes so both towers end in the same size")
    return model


OPTIMIZERS = ("adagrad", "adam", "sgd")


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    optimizers = dict(zip(OPTIMIZERS, (tf.keras.optimizers.Adagrad, tf.keras.optimizers.Adam,
                                       tf.keras.optimizers.SGD)))
    if name.lower() not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(optimizers)}")
    return optimizers[name.lower()](learning_rate=learning_rate)
