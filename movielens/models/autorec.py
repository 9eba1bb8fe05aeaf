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

The fitting ratings live in the model as a dense constant [num_movies, num_users]: 6 MB for ML-100K,
44 MB for ML-1M (users 1-2999); rebuilt from the data on load, never saved with the weights.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from movielens.models.rating_cf import _normal


def rating_matrix(users, movies, ratings, num_users: int, num_movies: int) -> np.ndarray:
    """[num_movies, num_users] float32 with the rating at (movie, user) and 0 elsewhere (index 0 rows stay 0)."""
    matrix = np.zeros((num_movies, num_users), np.float32)
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    keep = (users > 0) & (movies > 0)
    matrix[movies[keep], users[keep]] = np.asarray(ratings, np.float32)[keep]
    return matrix


class ItemAutoRec(tf.keras.Model):
    """I-AutoRec over a fixed fitting-rating matrix.

    Args:
      ratings: [num_movies, num_users] fitting ratings from `rating_matrix` (0 = not rated; ratings > 0).
      n_factors: code size (the paper's hidden units, 500).
      weight_decay: the paper's lambda: L2 (lambda / 2) on the encoder and decoder kernels per epoch.
      init_std: standard deviation of the normal kernel initialiser.

    Inputs (prediction): {"user": int64 [B], "movie": int64 [B]}. Output: ratings [B] float32.
    Training data: int64 [B] movie indices (a batch of columns), see `train_step`.
    """

    def __init__(self, ratings: np.ndarray, n_factors: int = 500, weight_decay: float = 200.0,
                 init_std: float = 0.03, **kwargs):
        super().__init__(**kwargs)
        ratings = np.asarray(ratings, np.float32)
        num_movies, num_users = ratings.shape
        observed = ratings > 0
        counts = observed.sum(axis=1)
        if not counts.any():
            raise ValueError("I-AutoRec needs at least one fitting rating")
        self.weight_decay = float(weight_decay)
        self.n_rated_movies = float(max(1, int((counts > 0).sum())))
        self.ratings = tf.constant(ratings)                                    # [M, U]
        self.rating_range = (float(ratings[observed].min()), float(ratings[observed].max()))
        global_mean = float(ratings[observed].mean())
        movie_mean = np.where(counts > 0, ratings.sum(axis=1) / np.maximum(counts, 1), global_mean)
        movie_mean[0] = global_mean
        self.fallback = tf.constant(movie_mean.astype(np.float32))             # [M] for untrained users/movies
        self.movie_known = tf.constant(counts > 0)                              # [M]
        self.user_known = tf.constant(observed.any(axis=0))                     # [U]
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

    def reconstruct(self, movies: tf.Tensor) -> tf.Tensor:
        """movies [B] -> rebuilt rating columns [B, U] (unclipped)."""
        return self.decoder(self.encoder(tf.gather(self.ratings, movies)))

    def call(self, inputs, training=False):
        users, movies = inputs["user"], inputs["movie"]
        # Encode each distinct movie once: a prediction batch repeats movies many times.
        unique, position = tf.unique(movies)
        codes = tf.gather(self.encoder(tf.gather(self.ratings, unique)), position)           # [B, d]
        user_rows = tf.transpose(tf.gather(self.decoder.kernel, users, axis=1))              # [B, d]
        predicted = tf.reduce_sum(codes * user_rows, axis=1) + tf.gather(self.decoder.bias, users)
        predicted = tf.clip_by_value(predicted, *self.rating_range)
        known = tf.gather(self.user_known, users) & tf.gather(self.movie_known, movies)
        return tf.where(known, predicted, tf.gather(self.fallback, movies))

    def train_step(self, movies):
        rows = tf.gather(self.ratings, movies)                                  # [B, U]
        observed = tf.cast(rows > 0, tf.float32)
        n_observed = tf.maximum(tf.reduce_sum(observed), 1.0)
        # The paper's objective is over all movies per epoch; a batch carries its share of the L2 term.
        share = tf.cast(tf.shape(movies)[0], tf.float32) / self.n_rated_movies
        with tf.GradientTape() as tape:
            squared_error = tf.reduce_sum(observed * tf.square(self.reconstruct(movies) - rows))
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
        table = self.encoder(self.ratings).numpy()
        table[0] = 0.0
        return table

    def user_biases(self) -> np.ndarray:
        table = self.decoder.bias.numpy().copy()
        table[0] = 0.0
        return table

    def movie_biases(self) -> np.ndarray:
        return np.zeros(int(self.ratings.shape[0]), np.float32)
