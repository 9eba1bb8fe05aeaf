"""Concatenation rating model and a cosine nearest-neighbour index over learned embeddings.

The "recommender systems from learned embeddings" recipe: user and movie
embeddings are concatenated and a small dense network regresses the rating;
after training the embedding tables are read out and searched by cosine
similarity. The network, not a dot product, combines the two vectors, so users
and movies do *not* live in one metric space: user -> movie queries are a
cross-space lookup (measured in benchmarks/rating.py against the dot-product
CF model, whose user and movie vectors do share a space). Movie -> movie
similarity is within one table and is well defined for both.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movielens.models.rating_cf import ScaledSigmoid, _masked_table, _normal, known_mask

INDEX_BACKENDS = ("auto", "brute_force", "scann")


class ConcatRatingModel(tf.keras.Model):
    """[user embedding ; movie embedding] -> dense ReLU layers -> 1 -> scaled sigmoid rating.

    Args:
      num_users, num_movies: vocabulary sizes including the unknown slot 0 (masked to a zero vector).
      n_factors: embedding size d of each table.
      hidden_units: widths of the hidden dense layers (3 hidden + the output = 4 dense layers by default).
      dropout: dropout rate after the concatenation and each hidden layer.
      weight_decay: L2 coefficient on the looked-up embeddings and the dense kernels.

    Inputs: {"user": int64 [B], "movie": int64 [B]}. Output: ratings [B] float32.
    """

    def __init__(self, num_users: int, num_movies: int, n_factors: int = 32, hidden_units=(128, 64, 32),
                 dropout: float = 0.2, y_range=(0.5, 5.5), weight_decay: float = 1e-4, init_std: float = 0.05,
                 **kwargs):
        super().__init__(**kwargs)
        self.weight_decay = float(weight_decay)
        self.user_embedding = tf.keras.layers.Embedding(
            num_users, n_factors, embeddings_initializer=_normal(init_std), name="user_embedding")
        self.movie_embedding = tf.keras.layers.Embedding(
            num_movies, n_factors, embeddings_initializer=_normal(init_std), name="movie_embedding")
        regulariser = tf.keras.regularizers.L2(weight_decay) if weight_decay else None
        layers = [tf.keras.layers.Dropout(dropout)]
        for units in hidden_units:
            layers += [tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regulariser),
                       tf.keras.layers.Dropout(dropout)]
        layers.append(tf.keras.layers.Dense(1, kernel_regularizer=regulariser))
        self.mlp = tf.keras.Sequential(layers, name="mlp")
        self.output_layer = ScaledSigmoid(y_range)

    def call(self, inputs, training=False):
        users, movies = inputs["user"], inputs["movie"]
        p = self.user_embedding(users) * known_mask(users)     # [B, d]
        q = self.movie_embedding(movies) * known_mask(movies)  # [B, d]
        if training and self.weight_decay:
            self.add_loss(self.weight_decay * tf.reduce_mean(tf.reduce_sum(p * p + q * q, axis=1)))
        x = tf.concat([p, q], axis=1)                          # [B, 2d]
        return self.output_layer(tf.squeeze(self.mlp(x, training=training), axis=1))

    def user_vectors(self):
        return _masked_table(self.user_embedding)

    def movie_vectors(self):
        return _masked_table(self.movie_embedding)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is the cosine."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def scann_available() -> bool:
    try:
        import scann  # noqa: F401
    except ImportError:
        return False
    return True


class CosineIndex:
    """Cosine top-k over candidate vectors, identifiers travelling with the index (TFRS top-k layers).

    Args:
      identifiers: shape [n] str, one per candidate.
      vectors: shape [n, d]; L2-normalised here.
      backend: "brute_force" (exact, TFRS BruteForce), "scann" (approximate; needs the optional
        `scann` package) or "auto" (ScaNN when importable, else brute force).
    """

    def __init__(self, identifiers, vectors, backend: str = "auto"):
        if backend not in INDEX_BACKENDS:
            raise ValueError(f"unknown index backend {backend!r}; valid: {', '.join(INDEX_BACKENDS)}")
        if backend == "auto":
            backend = "scann" if scann_available() else "brute_force"
        elif backend == "scann" and not scann_available():
            raise ValueError("the scann index backend needs the optional `scann` package (pip install scann); "
                             "use --index_backend brute_force")
        self.backend = backend
        self.identifiers = np.asarray(identifiers, dtype=object)
        self.vectors = l2_normalise(vectors)
        if len(self.identifiers) != len(self.vectors):
            raise ValueError("identifiers and vectors differ in length")
        if backend == "scann":
            leaves = max(1, int(np.sqrt(len(self.vectors))))
            self.layer = tfrs.layers.factorized_top_k.ScaNN(k=10, distance_measure="dot_product", num_leaves=leaves,
                                                            num_leaves_to_search=min(10, leaves))
        else:
            self.layer = tfrs.layers.factorized_top_k.BruteForce(k=10)
        self.layer.index(tf.constant(self.vectors), identifiers=tf.constant(self.identifiers.astype(str)))

    def __len__(self) -> int:
        return len(self.identifiers)

    def query(self, queries, k: int = 10, exclude=None) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k candidates per query by cosine, best first.

        Args:
          queries: shape [q, d] (normalised here).
          exclude: optional list of q collections of identifiers to leave out (e.g. rated movies).

        Returns:
          scores: list of q float arrays (cosines), ids: list of q lists of identifiers; a row is
          shorter than k only when fewer than k candidates remain after exclusion.
        """
        queries = l2_normalise(np.atleast_2d(queries))
        exclude = [set(map(str, e)) for e in exclude] if exclude is not None else [set()] * len(queries)
        if len(exclude) != len(queries):
            raise ValueError("exclude needs one collection per query")
        # Over-fetch by the largest exclusion set so k survive the filter.
        fetch = min(len(self), k + max((len(e) for e in exclude), default=0))
        scores, ids = self.layer(tf.constant(queries), k=fetch)
        scores, ids = scores.numpy(), ids.numpy().astype(str)
        out_scores, out_ids = [], []
        for row_scores, row_ids, excluded in zip(scores, ids, exclude):
            keep = [i for i, identifier in enumerate(row_ids) if identifier not in excluded][:k]
            out_scores.append(row_scores[keep])
            out_ids.append([str(row_ids[i]) for i in keep])
        return out_scores, out_ids
