"""Two-tower retrieval model (TFRS): query tower, candidate tower, `tfrs.tasks.Retrieval`.

Inputs are integer indices prepared once by `movielens.features` (no string
lookups per batch):

    features = {"user": int64 [B] user index, "timestamp": float32 [B], "movie": int64 [B] catalogue row}

Each tower gathers its per-user / per-movie feature values from constant tables,
embeds each feature, concatenates, and runs a dense stack (`layer_sizes`: ReLU
between layers, the last layer linear; no layers: the concatenation itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from movielens.features import CANDIDATE, QUERY, FeatureTables, tower_features


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


class QueryTower(tf.keras.Model):
    """{"user": int [B], "timestamp": float [B]} -> query embeddings float32 [B, out].

    Per-user features (age bucket, gender, occupation) are gathered from constant tables by user index.
    """

    def __init__(self, features: Sequence[str], tables: FeatureTables, embedding_size: int,
                 layer_sizes: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.feature_names = tower_features(features, QUERY)
        d = embedding_size
        self.user_embedding = tf.keras.layers.Embedding(tables.num_users, d, name="user_id")
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

    def call(self, inputs):
        user = tf.cast(inputs["user"], tf.int64)
        parts = [self.user_embedding(user)]
        if "timestamp" in self.feature_names:
            parts.append(self.timestamp(inputs["timestamp"]))
        for table, embedding in self.categories:
            parts.append(embedding(tf.gather(table, user)))
        return self.dense(tf.concat(parts, axis=1) if len(parts) > 1 else parts[0])


class CandidateTower(tf.keras.Model):
    """Catalogue rows int [B] -> candidate embeddings float32 [B, out].

    Per-movie features (vocabulary index, title tokens, genres, runtime) are constant tables indexed by row.
    """

    def __init__(self, features: Sequence[str], tables: FeatureTables, embedding_size: int,
                 layer_sizes: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.feature_names = tower_features(features, CANDIDATE)
        d = embedding_size
        self.vocab_index = tf.constant(tables.movie_vocab_index, tf.int64)
        self.movie_embedding = tf.keras.layers.Embedding(tables.num_movies, d, name="movie_title")
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

    FactorizedTopK metrics are computed only when evaluating (`compute_metrics=not training`),
    and only if the task was given them (the trainer evaluates with `retrieval.evaluate_top_k`).
    """

    def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower,
                 task: tfrs.tasks.Retrieval | None = None, **kwargs):
        super().__init__(**kwargs)
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = task or tfrs.tasks.Retrieval(loss=InBatchSoftmax())

    def compute_loss(self, features, training=False):
        query = self.query_tower(features)
        candidate = self.candidate_tower(features["movie"])
        return self.task(query, candidate, compute_metrics=not training)


def build_two_tower(features: Sequence[str], tables: FeatureTables, embedding_size: int,
                    layer_sizes: Sequence[int]) -> TwoTowerModel:
    """Builds (and calls once, so variables exist) a two-tower model for one feature set."""
    query = QueryTower(features, tables, embedding_size, layer_sizes, name="query_tower")
    candidate = CandidateTower(features, tables, embedding_size, layer_sizes, name="candidate_tower")
    model = TwoTowerModel(query, candidate)
    sample = {"user": tf.zeros([1], tf.int64), "timestamp": tf.zeros([1], tf.float32),
              "movie": tf.zeros([1], tf.int64)}
    query_dim = query(sample).shape[-1]
    candidate_dim = candidate(sample["movie"]).shape[-1]
    if query_dim != candidate_dim:
        raise ValueError(f"query embeddings have {query_dim} dimensions but candidate embeddings {candidate_dim}: "
                         f"with features {list(features)} give --layer_sizes so both towers end in the same size")
    return model


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    optimizers = {"adagrad": tf.keras.optimizers.Adagrad, "adam": tf.keras.optimizers.Adam,
                  "sgd": tf.keras.optimizers.SGD}
    if name.lower() not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(optimizers)}")
    return optimizers[name.lower()](learning_rate=learning_rate)
