"""EASE (Steck, WWW 2019): a closed-form item-item linear model, B = argmin ||X - XB||² + λ||B||², diag(B) = 0.

    P = (XᵀX + λI)⁻¹,  B = -P / diag(P) (column-wise),  diag(B) = 0;  scores = x_history · B.

λ is chosen on validation (the split's validation part, or a carve-out of train when the split has
none) from `l2_grid`; give one value to fix it. The dense n_items² matrices limit it to catalogues of
up to 20,000 movies (`item_item.MAX_ITEMS`; larger ones are refused before any work).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.config import Config
from movielens.families.item_item import ItemItemFamily, gram_matrix


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


class Ease(ItemItemFamily):
    name, kind = "ease", "baseline"
    summary = "EASE (Steck 2019): closed-form item-item regression, λ chosen on validation"
    fold_in = "the history's movies are the input row x; scores = x·B (no training needed for new people)"
    config_class = EaseConfig
    grid_field, setting = "l2_grid", "l2"
    version = 2

    def prepare(self, histories, n_items, config) -> np.ndarray:
        return gram_matrix(histories, n_items)

    def weights(self, prepared, value, config) -> np.ndarray:
        return ease_weights(prepared, value)
