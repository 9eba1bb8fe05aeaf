"""EASE (Steck, WWW 2019): a closed-form item-item linear model, B = argmin ||X - XB||² + λ||B||², diag(B) = 0.

    P = (XᵀX + λI)⁻¹,  B = -P / diag(P) (column-wise),  diag(B) = 0;  scores = x_history · B.

λ is chosen on validation (the split's validation part, or a carve-out of train when the split has
none) from `l2_grid`; give one value to fix it. The dense n_items² matrix limits it to catalogues of
a few tens of thousands of movies.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.config import Config
from movielens.families.base import Context, Family, Fitted, read_arrays, write_arrays
from movielens.families.histories import Histories

MAX_ITEMS = 30_000  # B is n_items² float32: 3.6 GB at this size


@dataclasses.dataclass(frozen=True)
class EaseConfig(Config):
    l2_grid: tuple[float, ...] = (100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)  # λ candidates; one value = fixed

    def __post_init__(self):
        if not self.l2_grid or any(not np.isfinite(v) or v <= 0 for v in self.l2_grid):
            raise ValueError(f"l2_grid must be finite numbers > 0, got {list(self.l2_grid)}")


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B from the Gram matrix XᵀX (float64 [m, m]): float32 [m, m]."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


class EaseScorer:
    """query = the history's 0/1 row, candidate j = column j of B."""

    def __init__(self, weights: np.ndarray):
        self.weights = weights

    def candidates(self) -> np.ndarray:
        return self.weights.T

    def queries(self, histories: Histories) -> np.ndarray:
        return histories.binary_matrix(len(self.weights)).toarray()


class Ease(Family):
    name, kind = "ease", "baseline"
    summary = "EASE (Steck 2019): closed-form item-item regression, λ chosen on validation"
    fold_in = "the history's movies are the input row x; scores = x·B (no training needed for new people)"
    config_class = EaseConfig

    def check(self, config, data) -> None:
        if data.movies.shape[0] > MAX_ITEMS:
            raise ValueError(f"ease keeps a dense movies x movies matrix; {len(data.movies):,} movies is more than "
                             f"{MAX_ITEMS:,}")

    def fit(self, config: EaseConfig, context: Context, model_dir) -> Fitted:
        from movielens import protocol

        history, l2 = {}, config.l2_grid[0]
        if len(config.l2_grid) > 1:
            selection = protocol.selection_split(context.split)
            gram = _gram(Context(context.data, selection).train_histories, context.n_items)
            task = protocol.evaluation_task(selection, "validation")
            scores = []
            for value in config.l2_grid:
                ranking = protocol.rank(EaseScorer(ease_weights(gram, value)), task)
                scores.append(float(ranking.per_user[protocol.PRIMARY].mean()))
                if context.verbose:
                    print(f"  ease λ={value:g}: validation {protocol.PRIMARY} {scores[-1]:.4f}", flush=True)
            l2 = config.l2_grid[int(np.argmax(scores))]
            history = {"l2": list(config.l2_grid), f"val_{protocol.PRIMARY}": scores}
        weights = ease_weights(_gram(context.train_histories, context.n_items), l2)
        return Fitted(weights, history, {"l2": float(l2)})

    def save(self, state, model_dir) -> None:
        write_arrays(model_dir, "weights", b=state)

    def load(self, config, context, model_dir):
        weights = read_arrays(model_dir, "weights")["b"]
        if weights.shape != (context.n_items, context.n_items):
            raise ValueError(f"saved B is {weights.shape}, the split has {context.n_items} movies")
        return weights

    def scorer(self, state, config, context) -> EaseScorer:
        return EaseScorer(state)


def _gram(histories: Histories, n_items: int) -> np.ndarray:
    x = histories.binary_matrix(n_items)
    return (x.T @ x).toarray().astype(np.float64)
