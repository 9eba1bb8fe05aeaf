"""Item-based KNN (Deshpande & Karypis 2004; LensKit's ItemKNN, implicit form).

similarity(i, j) = |U(i) ∩ U(j)| / (sqrt(|U(i)| |U(j)|) + shrinkage): cosine of the two movies'
0/1 rater columns, shrunk towards 0 when few users rated both; each movie keeps its `neighbours`
most similar movies. A person's score for movie j is the sum of j's similarity to the movies in
their history. `neighbours` is chosen on validation from the grid when more than one is given.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.config import Config
from movielens.families.base import Context, Family, Fitted, read_arrays, write_arrays
from movielens.families.histories import Histories


@dataclasses.dataclass(frozen=True)
class ItemKnnConfig(Config):
    neighbours_grid: tuple[int, ...] = (20, 50, 100, 200)  # neighbours kept per movie; one value = fixed
    shrinkage: float = 10.0                                # added to the cosine's denominator

    def __post_init__(self):
        if not self.neighbours_grid or any(int(n) < 1 for n in self.neighbours_grid):
            raise ValueError(f"neighbours_grid must be integers >= 1, got {list(self.neighbours_grid)}")
        if not np.isfinite(self.shrinkage) or self.shrinkage < 0:
            raise ValueError(f"shrinkage must be a finite number >= 0, got {self.shrinkage}")


def item_similarities(histories: Histories, n_items: int, shrinkage: float) -> np.ndarray:
    """Shrunk cosine of the movies' rater columns: float32 [m, m], 0 on the diagonal."""
    x = histories.binary_matrix(n_items)
    co = (x.T @ x).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(co))
    similarity = co / (norms[:, None] * norms[None, :] + shrinkage + 1e-9)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def keep_neighbours(similarity: np.ndarray, neighbours: int) -> np.ndarray:
    """Row i keeps only its `neighbours` largest similarities (the others become 0)."""
    if neighbours >= similarity.shape[1]:
        return similarity
    cut = np.argpartition(-similarity, neighbours - 1, axis=1)[:, :neighbours]
    kept = np.zeros_like(similarity)
    np.put_along_axis(kept, cut, np.take_along_axis(similarity, cut, axis=1), axis=1)
    return kept


class ItemKnnScorer:
    """query = the history's 0/1 row; candidate j = similarities of every movie to j (column j of S)."""

    def __init__(self, weights: np.ndarray):
        self.weights = weights

    def candidates(self) -> np.ndarray:
        return self.weights.T

    def queries(self, histories: Histories) -> np.ndarray:
        return histories.binary_matrix(len(self.weights)).toarray()


class ItemKnn(Family):
    name, kind = "item_knn", "baseline"
    summary = "item-based KNN: shrunk cosine between movies' raters, top-N neighbours per movie"
    fold_in = "the history's movies vote for their neighbours (sum of similarities)"
    config_class = ItemKnnConfig

    def fit(self, config: ItemKnnConfig, context: Context, model_dir) -> Fitted:
        from movielens import protocol

        history, neighbours = {}, int(config.neighbours_grid[0])
        if len(config.neighbours_grid) > 1:
            selection = protocol.selection_split(context.split)
            similarity = item_similarities(Context(context.data, selection).train_histories, context.n_items,
                                           config.shrinkage)
            task = protocol.evaluation_task(selection, "validation")
            scores = []
            for value in config.neighbours_grid:
                ranking = protocol.rank(ItemKnnScorer(keep_neighbours(similarity, int(value))), task)
                scores.append(float(ranking.per_user[protocol.PRIMARY].mean()))
                if context.verbose:
                    print(f"  item_knn neighbours={value}: validation {protocol.PRIMARY} {scores[-1]:.4f}", flush=True)
            neighbours = int(config.neighbours_grid[int(np.argmax(scores))])
            history = {"neighbours": [int(v) for v in config.neighbours_grid], f"val_{protocol.PRIMARY}": scores}
        similarity = item_similarities(context.train_histories, context.n_items, config.shrinkage)
        return Fitted(keep_neighbours(similarity, neighbours), history, {"neighbours": neighbours})

    def save(self, state, model_dir) -> None:
        write_arrays(model_dir, "similarities", s=state)

    def load(self, config, context, model_dir):
        weights = read_arrays(model_dir, "similarities")["s"]
        if weights.shape != (context.n_items, context.n_items):
            raise ValueError(f"saved similarities are {weights.shape}, the split has {context.n_items} movies")
        return weights

    def scorer(self, state, config, context) -> ItemKnnScorer:
        return ItemKnnScorer(state)
