"""Most popular: every person gets the movies with the most training ratings (the bar every model must pass)."""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.config import Config
from movielens.families.base import Context, Family, Fitted, read_arrays, write_arrays
from movielens.families.histories import Histories


@dataclasses.dataclass(frozen=True)
class PopularityConfig(Config):
    """Nothing to set: the ranking is the training interaction count."""


class PopularityScorer:
    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, np.float32)

    def candidates(self) -> np.ndarray:
        return self.counts[:, None]

    def queries(self, histories: Histories) -> np.ndarray:
        return np.ones((len(histories), 1), np.float32)


class Popularity(Family):
    name, kind = "popularity", "baseline"
    summary = "most popular: movies ranked by their number of training ratings"
    fold_in = "the same list for everyone, minus the movies in the history"
    config_class = PopularityConfig

    def fit(self, config, context: Context, model_dir) -> Fitted:
        return Fitted(context.item_counts.astype(np.float32), {}, {})

    def save(self, state, model_dir) -> None:
        write_arrays(model_dir, "counts", counts=state)

    def load(self, config, context, model_dir):
        counts = read_arrays(model_dir, "counts")["counts"]
        if len(counts) != context.n_items:
            raise ValueError(f"saved counts cover {len(counts)} movies, the split has {context.n_items}")
        return counts

    def scorer(self, state, config, context) -> PopularityScorer:
        return PopularityScorer(state)
