"""The rating families (`cf`, `autorec`; models and training in `movielens.rating`) as scorers.

Both predict a rating as a dot product of a user vector and a movie vector, plus biases. A known
user is ranked by predicted rating; someone typed in is folded in by solving for their user vector
(ridge regression of the history's movie vectors onto the ratings given, 5 stars for typed titles).
"""

from __future__ import annotations

import numpy as np

from movielens import rating
from movielens.families.base import Context, Family, Fitted
from movielens.families.histories import Histories
from movielens.persistence import save_weights

TYPED_RATING = 5.0  # a title typed as part of a history is taken as a movie the person liked
RIDGE = 0.1         # fold-in ridge, relative to the mean squared norm of the history's movie vectors


class DotProductScorer:
    """cf / autorec: score(u, m) = p_u . q_m + b_u + b_m (+ global), the order of the predicted rating.

    candidate m = [q_m, b_m, 1]; query = [p, 1, b_u]. For people the model has no vector for, p solves
    min_p sum_m (p . q_m + b_m + g - t_m)^2 + lambda |p|^2 over the history (t = the rating on the model's
    pre-output scale).
    """

    def __init__(self, model, vocabulary, config: rating.RatingConfig):
        self.vocabulary, self.config = vocabulary, config
        self.user_vectors = np.asarray(model.user_vectors(), np.float32)
        self.user_biases = np.asarray(model.user_biases(), np.float32)
        self.movie_vectors = np.asarray(model.movie_vectors(), np.float32)[1:]
        self.movie_biases = np.asarray(model.movie_biases(), np.float32)[1:]
        self.global_bias = float(np.asarray(getattr(model, "global_bias", 0.0)))
        self.logit_scale = config.model == "cf"  # cf predicts y_min + range * sigmoid(logit)

    def candidates(self) -> np.ndarray:
        ones = np.ones((len(self.movie_vectors), 1), np.float32)
        return np.hstack([self.movie_vectors, self.movie_biases[:, None], ones])

    def _target(self, ratings: np.ndarray) -> np.ndarray:
        ratings = np.where(np.isnan(ratings), TYPED_RATING, ratings)
        if not self.logit_scale:
            return ratings
        low, high = self.config.y_min, self.config.y_max
        fraction = np.clip((ratings - low) / (high - low), 0.01, 0.99)
        return np.log(fraction / (1.0 - fraction))

    def queries(self, histories: Histories) -> np.ndarray:
        users = self.vocabulary.encode_users(histories.user_ids)
        d = self.movie_vectors.shape[1]
        out = np.zeros((len(histories), d + 2), np.float32)
        out[:, d] = 1.0
        known = users > 0
        out[known, :d] = self.user_vectors[users[known]]
        out[known, d + 1] = self.user_biases[users[known]] + self.global_bias
        for row in np.flatnonzero(~known):  # only people typed in or new to the model: rare, small
            items = histories.row(row)
            out[row, d + 1] = self.global_bias
            if len(items):
                q = self.movie_vectors[items]
                residual = self._target(histories.ratings[histories.indptr[row]:histories.indptr[row + 1]]) \
                    - self.movie_biases[items] - self.global_bias
                ridge = RIDGE * float((q * q).sum(axis=1).mean()) + 1e-6
                out[row, :d] = np.linalg.solve(q.T @ q + ridge * np.eye(d), q.T @ residual)
        return out


class RatingFamily(Family):
    """cf / autorec: `movielens.rating` trains them; this supplies the protocol's pieces."""

    kind = "rating"
    config_class = rating.RatingConfig
    version = 2
    # The rating protocol (RMSE on a 90/10 split, validation carved out of train) keeps its own default split.
    default_fractions = rating.DEFAULT_RANDOM_FRACTIONS
    headline_metrics = ("test_rmse", "val_rmse", "test_rmse_global_mean", "fit_seconds")
    # sparse_optimizer is in the identity through what it resolves to (identity_extras), so the models trained
    # before it existed (plain Adam, which "auto" still is on small data) keep their cache entry.
    not_identity = ("sparse_optimizer",)

    def __init__(self, name: str, summary: str, fold_in: str):
        self.name, self.summary, self.fold_in = name, summary, fold_in

    def default_config(self) -> rating.RatingConfig:
        return rating.default_config(self.name)

    def check(self, config, data) -> None:
        config.check()
        if config.model != self.name:
            raise ValueError(f"a {config.model} config given to the {self.name} family")
        if config.side_features and data.variant not in ("100k", "1m"):
            raise ValueError(f"side_features needs user age/gender/occupation: 100k or 1m, not {data.variant}")

    def identity_extras(self, config, context: Context) -> dict:
        return {"sparse_updates": True} if rating.sparse_updates(config, context.split.vocabulary) else {}

    def fit(self, config, context: Context, model_dir) -> Fitted:
        model, history, metrics = rating.fit_model(config, context.data, context.split, model_dir, context.verbose)
        return Fitted(model, history, metrics)

    def save(self, state, model_dir) -> None:
        save_weights(state, model_dir.weights_prefix)

    def load(self, config, context, model_dir):
        return rating.load_model(config, context.data, context.split, model_dir)

    def report_extras(self, trained, folder, plots: bool = True) -> list[str]:
        """A 2-D picture of the movie vectors (PCA), coloured by average rating, titles on hover."""
        if not plots:
            return []
        from movielens import embedding_plot

        context = trained.context
        figure = embedding_plot.embedding_figure(context.split.vocabulary.movie_ids,
                                                 np.asarray(trained.state.movie_vectors())[1:], context.data.movies,
                                                 context.split.train, "rating", "pca")
        path = embedding_plot.write_embedding_plot(figure, f"embeddings-{self.name}", folder)
        return [f"[{self.name}] movie embeddings (PCA): {path}"]

    def scorer(self, state, config, context: Context):
        return DotProductScorer(state, context.split.vocabulary, config)


FAMILIES = (
    RatingFamily("cf", "embedding collaborative filtering (fastai EmbeddingDotBias), trained on ratings",
                 "solves for the person's user vector from the history's movie vectors (typed titles = 5 stars)"),
    RatingFamily("autorec", "I-AutoRec (Sedhain et al. 2015), item autoencoder trained on ratings",
                 "solves for the person's decoder row from the history's movie codes (typed titles = 5 stars)"),
)
