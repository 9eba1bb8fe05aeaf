"""What EASE and item-KNN share: an item × item matrix W, scores = x_history · W, and one setting chosen
on validation from a grid.

A subclass supplies `prepare(histories, n_items, config)` (what every grid value starts from, computed
once: a Gram or similarity matrix) and `weights(prepared, value, config)` (W for one grid value).
"""

from __future__ import annotations

import numpy as np

from movielens.families.base import Context, Family, Fitted, read_arrays, write_arrays
from movielens.families.histories import Histories


class ItemItemScorer:
    """query = the history's 0/1 row, candidate j = column j of W."""

    def __init__(self, weights: np.ndarray):
        self.weights = weights

    def candidates(self) -> np.ndarray:
        return self.weights.T

    def queries(self, histories: Histories) -> np.ndarray:
        return histories.binary_matrix(len(self.weights)).toarray()


# Fitting holds about three dense float64 movies x movies matrices (Gram, its inverse or the similarities,
# and W): 12 GB at 22,000 movies. Larger catalogues (ML-20M: 27,278 movies; ML-25M: 62,423) are refused
# before any work rather than run out of memory.
MAX_ITEMS = 20_000
MATRICES_IN_MEMORY = 3


class ItemItemFamily(Family):
    grid_field = ""  # the config field holding the grid; one value = fixed
    setting = ""     # what a grid value is called in the metrics and progress lines

    def check(self, config, data) -> None:
        movies = len(data.movies)
        if movies > MAX_ITEMS:
            needed = MATRICES_IN_MEMORY * 8 * movies**2 / 1e9
            raise ValueError(f"{self.name} keeps dense movies x movies matrices: {movies:,} movies would need about "
                             f"{needed:,.0f} GB; it runs up to {MAX_ITEMS:,} movies (use two_tower, sasrec, cf or "
                             f"popularity on catalogues this size)")

    def prepare(self, histories: Histories, n_items: int, config):
        raise NotImplementedError

    def weights(self, prepared, value, config) -> np.ndarray:
        raise NotImplementedError

    def fit(self, config, context: Context, model_dir) -> Fitted:
        from movielens import protocol

        grid = list(getattr(config, self.grid_field))
        history, value = {}, grid[0]
        if len(grid) > 1:
            selection = protocol.selection_split(context.split)
            prepared = self.prepare(Context(context.data, selection).train_histories, context.n_items, config)
            task = protocol.evaluation_task(selection, "validation")
            scores = []
            for candidate in grid:
                ranking = protocol.rank(ItemItemScorer(self.weights(prepared, candidate, config)), task)
                scores.append(float(ranking.per_user[protocol.PRIMARY].mean()))
                if context.verbose:
                    print(f"  {self.name} {self.setting}={candidate:g}: validation {protocol.PRIMARY} "
                          f"{scores[-1]:.4f}", flush=True)
            value = grid[int(np.argmax(scores))]
            history = {self.setting: grid, f"val_{protocol.PRIMARY}": scores}
        prepared = self.prepare(context.train_histories, context.n_items, config)
        return Fitted(self.weights(prepared, value, config), history, {self.setting: value})

    def save(self, state, model_dir) -> None:
        write_arrays(model_dir, "weights", w=state)

    def load(self, config, context, model_dir):
        weights = read_arrays(model_dir, "weights")["w"]
        if weights.shape != (context.n_items, context.n_items):
            raise ValueError(f"saved weights are {weights.shape}, the split has {context.n_items} movies")
        return weights

    def scorer(self, state, config, context) -> ItemItemScorer:
        return ItemItemScorer(state)


def gram_matrix(histories: Histories, n_items: int) -> np.ndarray:
    """XᵀX of the histories' 0/1 matrix: float64 [n_items, n_items] co-occurrence counts."""
    x = histories.binary_matrix(n_items)
    return (x.T @ x).toarray().astype(np.float64)
