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
from movielens.families.histories import Histories
from movielens.families.item_item import ItemItemFamily, gram_matrix


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
    co = gram_matrix(histories, n_items).astype(np.float32)
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


class ItemKnn(ItemItemFamily):
    name, kind = "item_knn", "baseline"
    summary = "item-based KNN: shrunk cosine between movies' raters, top-N neighbours per movie"
    fold_in = "the history's movies vote for their neighbours (sum of similarities)"
    config_class = ItemKnnConfig
    grid_field, setting = "neighbours_grid", "neighbours"
    version = 2

    def prepare(self, histories, n_items, config) -> np.ndarray:
        return item_similarities(histories, n_items, config.shrinkage)

    def weights(self, prepared, value, config) -> np.ndarray:
        return keep_neighbours(prepared, int(value))
