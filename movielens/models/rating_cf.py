"""Embedding collaborative filtering for rating prediction (fastai's `EmbeddingDotBias` in tf.keras).

    rating(u, m) = lo + (hi - lo) * sigmoid(<p_u, q_m> + b_u + b_m + b_0)

with user and movie vectors p, q of size `n_factors`, per-user and per-movie
biases b_u, b_m and a global offset b_0 started at the logit of the training
mean. Index 0 is the vocabulary's "unknown id" slot: its vector and bias are
masked to zero, so an unknown user gets the movie's bias-only prediction and an
unknown pair the global mean (not a random untrained vector).

Weight decay is the Funk-SVD / Surprise form: an L2 penalty on the vectors and
biases a batch looks up (mean over the batch), i.e. each parameter is decayed in
proportion to how often it is used, which suits the long-tailed rating counts.

Optional implicit feedback (SVD++, Koren 2008): the user vector becomes
p_u + |N(u)|^-1/2 * sum_{j in N(u)} y_j over the movies N(u) the user rated in the
*fitting* data (which movies, not how), so every rating a user gave informs the
user vector through shared movie factors y.

Optional side features (SVDFeature style, Chen et al. 2012; a variant beyond plain CF, labelled so):
p_u += sum_f x_uf w_f and b_u += sum_f x_uf c_f over the user's features (age bucket, gender,
occupation), q_m += sum_g x_mg v_g and b_m += sum_g x_mg d_g over the movie's genres
(x_mg = 1/|G(m)|), so sparse users/movies borrow from others sharing their features.
"""

from __future__ import annotations

import math

import tensorflow as tf


def logit(fraction: float) -> float:
    fraction = min(max(fraction, 1e-4), 1 - 1e-4)
    return math.log(fraction / (1 - fraction))


class ScaledSigmoid(tf.keras.layers.Layer):
    """x [...] -> lo + (hi - lo) * sigmoid(x), the rating range (fastai's `y_range`)."""

    def __init__(self, y_range: tuple[float, float], **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = float(y_range[0]), float(y_range[1])
        if not self.high > self.low:
            raise ValueError(f"y_range must be (low, high) with high > low, got {y_range}")

    def call(self, x):
        return self.low + (self.high - self.low) * tf.sigmoid(x)


def _normal(stddev: float) -> tf.keras.initializers.Initializer:
    # One instance per table: a shared unseeded instance would give both tables identical values.
    return tf.keras.initializers.RandomNormal(stddev=stddev)


def known_mask(indices: tf.Tensor) -> tf.Tensor:
    """indices [B] int -> [B, 1] float, 0.0 for the unknown-id slot 0."""
    return tf.cast(indices > 0, tf.float32)[:, None]


class EmbeddingDotBias(tf.keras.Model):
    """Dot product of user and movie embeddings plus biases, through a scaled sigmoid.

    Args:
      num_users, num_movies: vocabulary sizes including the unknown slot 0.
      n_factors: embedding size d.
      y_range: (low, high) of the predicted rating.
      weight_decay: L2 coefficient on the looked-up vectors.
      bias_decay: L2 coefficient on the looked-up biases.
      global_mean: training mean rating; b_0 starts at its logit.
      init_std: standard deviation of the normal embedding initialiser.
      implicit: optional [num_users, num_movies] tf.SparseTensor, row u = |N(u)|^-1/2 on the movies u
        rated (see `implicit_matrix`); None is the plain dot-product model.
      user_side, movie_side: optional [num_users, F] / [num_movies, G] tf.SparseTensor feature weights
        (see `side_matrix`); each adds a feature vector and bias table summed into the user / movie side.

    Inputs: {"user": int64 [B], "movie": int64 [B]} (vocabulary indices). Output: ratings [B] float32.
    """

    def __init__(self, num_users: int, num_movies: int, n_factors: int = 64, y_range=(0.5, 5.5),
                 weight_decay: float = 0.05, bias_decay: float = 0.01, global_mean: float = 3.5,
                 init_std: float = 0.01, implicit: tf.SparseTensor | None = None,
                 user_side: tf.SparseTensor | None = None, movie_side: tf.SparseTensor | None = None, **kwargs):
        super().__init__(**kwargs)
        self.user_side, self.movie_side = user_side, movie_side
        self.side_tables = {}
        for name, matrix in (("user", user_side), ("movie", movie_side)):
            if matrix is not None:
                n_features = int(matrix.dense_shape[1])
                vectors = tf.keras.layers.Embedding(n_features, n_factors, embeddings_initializer=_normal(init_std),
                                                    name=f"{name}_side_embedding")
                biases = tf.keras.layers.Embedding(n_features, 1, embeddings_initializer="zeros",
                                                   name=f"{name}_side_bias")
                vectors.build((None,))  # read whole, never through __call__
                biases.build((None,))
                self.side_tables[name] = (matrix, vectors, biases)
        self.weight_decay, self.bias_decay = float(weight_decay), float(bias_decay)
        self.implicit = implicit
        self.implicit_embedding = None
        if implicit is not None:
            self.implicit_embedding = tf.keras.layers.Embedding(
                num_movies, n_factors, embeddings_initializer=_normal(init_std), name="implicit_embedding")
            self.implicit_embedding.build((None,))  # its table is read whole, never through __call__
        self.user_embedding = tf.keras.layers.Embedding(
            num_users, n_factors, embeddings_initializer=_normal(init_std), name="user_embedding")
        self.movie_embedding = tf.keras.layers.Embedding(
            num_movies, n_factors, embeddings_initializer=_normal(init_std), name="movie_embedding")
        self.user_bias = tf.keras.layers.Embedding(num_users, 1, embeddings_initializer="zeros", name="user_bias")
        self.movie_bias = tf.keras.layers.Embedding(num_movies, 1, embeddings_initializer="zeros", name="movie_bias")
        offset = logit((global_mean - y_range[0]) / (y_range[1] - y_range[0]))
        self.global_bias = tf.Variable(offset, dtype=tf.float32, name="global_bias")
        self.output_layer = ScaledSigmoid(y_range)

    def logits(self, users: tf.Tensor, movies: tf.Tensor, training: bool = False) -> tf.Tensor:
        """users, movies [B] int -> pre-sigmoid scores [B]; adds the L2 penalty when training."""
        user_known, movie_known = known_mask(users), known_mask(movies)
        p = self.user_embedding(users) * user_known          # [B, d]
        q = self.movie_embedding(movies) * movie_known       # [B, d]
        b_u = self.user_bias(users) * user_known              # [B, 1]
        b_m = self.movie_bias(movies) * movie_known           # [B, 1]
        penalty = tf.reduce_sum(p * p + q * q, axis=1)
        bias_penalty = tf.squeeze(b_u * b_u + b_m * b_m, axis=1)
        if self.side_tables:
            side = {name: self._side_offsets(name) for name in self.side_tables}  # ([n, d], [n, 1])
            for name, ids, known in (("user", users, user_known), ("movie", movies, movie_known)):
                if name in side:
                    vector, bias = tf.gather(side[name][0], ids) * known, tf.gather(side[name][1], ids) * known
                    penalty += tf.reduce_sum(vector * vector, axis=1)
                    bias_penalty += tf.squeeze(bias * bias, axis=1)
                    if name == "user":
                        p, b_u = p + vector, b_u + bias
                    else:
                        q, b_m = q + vector, b_m + bias
        if self.implicit is not None:
            implicit = tf.gather(self._implicit_offsets(), users) * user_known  # [B, d]
            penalty += tf.reduce_sum(implicit * implicit, axis=1)
            p = p + implicit
        if training:
            self.add_loss(self.weight_decay * tf.reduce_mean(penalty)
                          + self.bias_decay * tf.reduce_mean(bias_penalty))
        return tf.reduce_sum(p * q, axis=1) + tf.squeeze(b_u + b_m, axis=1) + self.global_bias

    def call(self, inputs, training=False):
        return self.output_layer(self.logits(inputs["user"], inputs["movie"], training=training))

    def _implicit_offsets(self) -> tf.Tensor:
        """[num_users, d]: |N(u)|^-1/2 sum_j y_j for every user (one sparse matmul; cheap at MovieLens sizes)."""
        return tf.sparse.sparse_dense_matmul(self.implicit, self.implicit_embedding.embeddings)

    def _side_offsets(self, name: str) -> tuple[tf.Tensor, tf.Tensor]:
        """[n, d] feature-vector sums and [n, 1] feature-bias sums of every user or movie."""
        matrix, vectors, biases = self.side_tables[name]
        return (tf.sparse.sparse_dense_matmul(matrix, vectors.embeddings),
                tf.sparse.sparse_dense_matmul(matrix, biases.embeddings))

    def _with_side(self, name: str, table, column: int | None = None):
        if name not in self.side_tables:
            return table
        offsets = self._side_offsets(name)[0 if column is None else 1].numpy()
        table[1:] += offsets[1:] if column is None else offsets[1:, column]
        return table

    # Exported tables, used by the KNN index and the rating ranking (row i = vocabulary index i).
    def user_vectors(self):
        """[num_users, d] with row 0 (unknown) zero: the vector the dot product uses (p_u [+ implicit])."""
        table = _masked_table(self.user_embedding)
        if self.implicit is not None:
            table[1:] += self._implicit_offsets().numpy()[1:]
        return self._with_side("user", table)

    def movie_vectors(self):
        return self._with_side("movie", _masked_table(self.movie_embedding))

    def user_biases(self):
        return self._with_side("user", _masked_table(self.user_bias)[:, 0], column=0)

    def movie_biases(self):
        return self._with_side("movie", _masked_table(self.movie_bias)[:, 0], column=0)


def implicit_matrix(users, movies, num_users: int, num_movies: int) -> tf.SparseTensor:
    """[num_users, num_movies] sparse, row u = |N(u)|^-1/2 at the movies u rated (indices 0 skipped)."""
    import numpy as np

    pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(movies, np.int64)], axis=1), axis=0)
    pairs = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)]
    counts = np.bincount(pairs[:, 0], minlength=num_users)
    values = (1.0 / np.sqrt(counts[pairs[:, 0]])).astype(np.float32)
    return tf.sparse.reorder(tf.SparseTensor(pairs, values, [num_users, num_movies]))


def side_matrix(rows, features, weights, num_rows: int, num_features: int) -> tf.SparseTensor:
    """[num_rows, num_features] sparse feature weights from (row, feature, weight) triples (row 0 skipped)."""
    import numpy as np

    rows, features = np.asarray(rows, np.int64), np.asarray(features, np.int64)
    keep = rows > 0
    indices = np.stack([rows[keep], features[keep]], axis=1)
    return tf.sparse.reorder(tf.SparseTensor(indices, np.asarray(weights, np.float32)[keep],
                                             [num_rows, num_features]))


def _masked_table(layer: tf.keras.layers.Embedding):
    table = layer.embeddings.numpy().copy()
    table[0] = 0.0
    return table
