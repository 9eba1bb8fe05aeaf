"""I-AutoRec (Sedhain et al., WWW 2015): an item-based autoencoder for rating prediction.

Each movie m is its column of the fitting ratings, r_m in R^U (0 where user u has not rated it).
The encoder squeezes it to a code and the decoder rebuilds every user's rating:

    h_m = sigmoid(V r_m + mu)          code of movie m, [n_factors]
    r_hat(u, m) = <W_u, h_m> + b_u     W_u: user u's decoder row, [n_factors]

The loss is the squared error on the *observed* entries only, plus (weight_decay / 2)(|V|^2 + |W|^2).
Written this way the model is embedding collaborative filtering: a dot product of a user vector W_u
(plus a user bias b_u) and a movie vector h_m, except that the movie vector is computed from the
movie's ratings rather than looked up. So it plugs into the same rating, ranking and KNN machinery
(`user_vectors`, `movie_vectors`, biases) as `EmbeddingDotBias`.

Training batches are movies (a batch of columns), not (user, movie) pairs; `train_step` does that.
Prediction takes pairs like the other rating models. A user or movie without fitting ratings has no
trained representation and gets the movie's mean fitting rating (the global mean for an unknown movie).
Predictions are clipped to the rating scale seen in the fitting data.

The fitting ratings live in the model as a sparse matrix (CSR by movie: the row pointers, the users and the
ratings of each movie's column, 16 bytes per rating), so memory grows with the number of ratings, not with
movies x users (the dense [num_movies, num_users] matrix would be 35.8 GiB at ML-25M). A batch gathers its
movies' ratings, encodes them with a sparse x dense product and decodes only at the observed (user, movie)
entries, the only ones the loss reads: the same objective as the dense computation, summed in another
order. Rebuilt from the data on load, never saved with the weights.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from movielens.models.rating_cf import _normal

ENCODE_BATCH = 2048  # movies encoded at once when exporting every movie's code


def rating_matrix(users, movies, ratings, num_users: int, num_movies: int) -> np.ndarray:
    """[num_movies, num_users] float32 with the rating at (movie, user) and 0 elsewhere (index 0 rows stay 0).

    Dense: small data and tests only; the model reads `rating_columns`.
    """
    matrix = np.zeros((num_movies, num_users), np.float32)
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    keep = (users > 0) & (movies > 0)
    matrix[movies[keep], users[keep]] = np.asarray(ratings, np.float32)[keep]
    return matrix


def rating_columns(users, movies, ratings, num_users: int, num_movies: int):
    """The fitting ratings as scipy CSR [num_movies, num_users]: row m = movie m's ratings by user.

    Index 0 (unknown) and non-positive ratings are left out; a repeated (user, movie) pair keeps its last
    rating, as `rating_matrix` does.
    """
    from scipy import sparse

    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    ratings = np.asarray(ratings, np.float32)
    keep = (users > 0) & (movies > 0) & (ratings > 0)
    users, movies, ratings = users[keep], movies[keep], ratings[keep]
    keys = movies * num_users + users
    # The last occurrence of each key: the first in reversed order.
    _, last = np.unique(keys[::-1], return_index=True)
    last = len(keys) - 1 - last
    matrix = sparse.csr_matrix((ratings[last], (movies[last], users[last])), shape=(num_movies, num_users))
    matrix.sort_indices()
    return matrix


class ItemAutoRec(tf.keras.Model):
    """I-AutoRec over a fixed fitting-rating matrix, read sparsely.

    Args:
      ratings: [num_movies, num_users] fitting ratings, a scipy sparse matrix (`rating_columns`) or a dense
        array (`rating_matrix`, converted); 0 / absent = not rated, ratings > 0.
      n_factors: code size (the paper's hidden units, 500).
      weight_decay: the paper's lambda: L2 (lambda / 2) on the encoder and decoder kernels per epoch.
      init_std: standard deviation of the normal kernel initialiser.

    Inputs (prediction): {"user": int64 [B], "movie": int64 [B]}. Output: ratings [B] float32.
    Training data: int64 [B] movie indices (a batch of columns), see `train_step`.
    """

    def __init__(self, ratings, n_factors: int = 500, weight_decay: float = 200.0,
                 init_std: float = 0.03, **kwargs):
        super().__init__(**kwargs)
        from scipy import sparse

        matrix = sparse.csr_matrix(ratings, dtype=np.float32)
        matrix.data[matrix.data < 0] = 0.0  # only ratings > 0 are observed
        matrix.eliminate_zeros()
        matrix.sort_indices()
        num_movies, num_users = matrix.shape
        if matrix.nnz == 0:
            raise ValueError("I-AutoRec needs at least one fitting rating")
        counts = np.diff(matrix.indptr)
        values = matrix.data.astype(np.float32)
        self.num_movies, self.num_users = int(num_movies), int(num_users)
        self.weight_decay = float(weight_decay)
        self.n_rated_movies = float(max(1, int((counts > 0).sum())))
        self.indptr = tf.constant(matrix.indptr.astype(np.int64))               # [M + 1]
        self.rating_users = tf.constant(matrix.indices.astype(np.int64))        # [nnz]
        self.rating_values = tf.constant(values)                                # [nnz]
        self.rating_range = (float(values.min()), float(values.max()))
        global_mean = float(values.mean())
        sums = np.bincount(np.repeat(np.arange(num_movies), counts), weights=values, minlength=num_movies)
        movie_mean = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
        movie_mean[0] = global_mean
        self.fallback = tf.constant(movie_mean.astype(np.float32))             # [M] for untrained users/movies
        self.movie_known = tf.constant(counts > 0)                              # [M]
        self.user_known = tf.constant(np.bincount(matrix.indices, minlength=num_users) > 0)  # [U]
        self.encoder = tf.keras.layers.Dense(n_factors, activation="sigmoid", name="encoder",
                                             kernel_initializer=_normal(init_std))
        self.decoder = tf.keras.layers.Dense(num_users, name="decoder", kernel_initializer=_normal(init_std))
        self.encoder.build((None, num_users))
        self.decoder.build((None, n_factors))
        # Epoch totals for the progress line (Keras resets `metrics` each epoch).
        self.objective_sum = tf.keras.metrics.Sum(name="objective_sum")
        self.squared_error_sum = tf.keras.metrics.Sum(name="squared_error_sum")
        self.observed_sum = tf.keras.metrics.Sum(name="observed_sum")

    @property
    def metrics(self):
        return [self.objective_sum, self.squared_error_sum, self.observed_sum]

    def columns(self, movies: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """movies [B] -> their observed entries: (batch row [n] int64, user [n] int64, rating [n] float32)."""
        movies = tf.cast(movies, tf.int64)
        starts = tf.gather(self.indptr, movies)
        lengths = tf.gather(self.indptr, movies + 1) - starts
        positions = tf.ragged.range(starts, starts + lengths).flat_values
        rows = tf.repeat(tf.range(tf.size(movies, out_type=tf.int64)), lengths)
        return rows, tf.gather(self.rating_users, positions), tf.gather(self.rating_values, positions)

    def encode(self, movies: tf.Tensor, entries=None) -> tf.Tensor:
        """movies [B] -> codes sigmoid(V r_m + mu) [B, d], from the sparse columns (sparse x dense product)."""
        rows, users, values = self.columns(movies) if entries is None else entries
        shape = tf.stack([tf.size(movies, out_type=tf.int64), tf.constant(self.num_users, tf.int64)])
        columns = tf.SparseTensor(tf.stack([rows, users], axis=1), values, shape)
        return tf.sigmoid(tf.sparse.sparse_dense_matmul(columns, self.encoder.kernel) + self.encoder.bias)

    def decode_at(self, codes: tf.Tensor, rows: tf.Tensor, users: tf.Tensor) -> tf.Tensor:
        """codes [B, d], entries (rows, users) [n] -> <W_u, h_row> + b_u [n] (unclipped): only where asked."""
        user_rows = tf.transpose(tf.gather(self.decoder.kernel, users, axis=1))              # [n, d]
        return tf.reduce_sum(tf.gather(codes, rows) * user_rows, axis=1) + tf.gather(self.decoder.bias, users)

    def call(self, inputs, training=False):
        users, movies = inputs["user"], inputs["movie"]
        # Encode each distinct movie once: a prediction batch repeats movies many times.
        unique, position = tf.unique(movies)
        return self._predict(self.encode(unique), tf.cast(position, tf.int64), users, movies)

    def predict_pairs(self, users: np.ndarray, movies: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """`call` for many pairs at once: every movie is encoded once (not once per batch). [n], [n] -> [n]."""
        codes = tf.constant(self._codes())
        predict = tf.function(lambda u, m: self._predict(codes, m, u, m), reduce_retracing=True)
        users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
        out = [predict(tf.constant(users[i:i + batch_size]), tf.constant(movies[i:i + batch_size])).numpy()
               for i in range(0, len(users), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _predict(self, codes, code_rows, users, movies):
        """Clipped rating of each (user, movie) from the movie's code `codes[code_rows]`; fallbacks when untrained."""
        predicted = tf.clip_by_value(self.decode_at(codes, code_rows, users), *self.rating_range)
        known = tf.gather(self.user_known, users) & tf.gather(self.movie_known, movies)
        return tf.where(known, predicted, tf.gather(self.fallback, movies))

    def _codes(self) -> np.ndarray:
        """[num_movies, d] every movie's code (row 0 included), encoded in batches of movies."""
        return np.concatenate([self.encode(tf.range(start, min(start + ENCODE_BATCH, self.num_movies),
                                                    dtype=tf.int64)).numpy()
                               for start in range(0, self.num_movies, ENCODE_BATCH)])

    def train_step(self, movies):
        entries = self.columns(movies)
        rows, users, values = entries
        n_observed = tf.maximum(tf.cast(tf.size(values), tf.float32), 1.0)
        # The paper's objective is over all movies per epoch; a batch carries its share of the L2 term.
        share = tf.cast(tf.shape(movies)[0], tf.float32) / self.n_rated_movies
        with tf.GradientTape() as tape:
            rebuilt = self.decode_at(self.encode(movies, entries), rows, users)
            squared_error = tf.reduce_sum(tf.square(rebuilt - values))
            penalty = 0.5 * self.weight_decay * share * (tf.reduce_sum(tf.square(self.encoder.kernel))
                                                         + tf.reduce_sum(tf.square(self.decoder.kernel)))
            objective = squared_error + penalty
        gradients = tape.gradient(objective, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.objective_sum.update_state(objective)
        self.squared_error_sum.update_state(squared_error)
        self.observed_sum.update_state(n_observed)
        # Per observed rating over the epoch so far: the objective and the training RMSE.
        observed_so_far = tf.maximum(self.observed_sum.result(), 1.0)
        return {"loss": self.objective_sum.result() / observed_so_far,
                "rmse": tf.sqrt(self.squared_error_sum.result() / observed_so_far)}

    # Exported tables (row i = vocabulary index i; row 0, the unknown slot, is zero).
    def user_vectors(self) -> np.ndarray:
        table = self.decoder.kernel.numpy().T.copy()
        table[0] = 0.0
        return table

    def movie_vectors(self) -> np.ndarray:
        table = self._codes()
        table[0] = 0.0
        return table

    def user_biases(self) -> np.ndarray:
        table = self.decoder.bias.numpy().copy()
        table[0] = 0.0
        return table

    def movie_biases(self) -> np.ndarray:
        return np.zeros(self.num_movies, np.float32)
