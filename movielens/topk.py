"""One top-k index for every model family, modelled on TFRS's `layers.factorized_top_k.TopK`.

Every family scores a person by a dot product of a query vector with one candidate
vector per movie (two-tower: towers; cf: user vector + bias; EASE: the history row
against the columns of B; popularity: 1 against the counts), so one index serves all.
The movie ids travel with the candidate rows, so a position always decodes to its own
movie. `BruteForce` is exact; `Scann` (when `import scann` works) is approximate and
over-fetches so that excluded movies never leave fewer than k results.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from movielens.evaluation import ItemSets, exclude_seen, top_k

BACKENDS = ("auto", "brute_force", "scann")


def scann_available() -> bool:
    try:
        import scann  # noqa: F401
    except ImportError:
        return False
    return True


class TopK(abc.ABC):
    """Candidates [m, d] with their identifiers; `search(queries [n, d], k, exclude)` -> best k per query."""

    def __init__(self, candidates: np.ndarray, identifiers: Sequence[str]):
        candidates = np.asarray(candidates, np.float32)
        if candidates.ndim != 2 or len(candidates) != len(identifiers):
            raise ValueError(f"candidates must be [m, d] with m identifiers, got {candidates.shape} and "
                             f"{len(identifiers)} identifiers")
        self.candidates = candidates
        self.identifiers = np.asarray([str(i) for i in identifiers], dtype=object)

    def __len__(self) -> int:
        return len(self.identifiers)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Exact scores float32 [n, m] (evaluation ranks every movie, so it needs them all)."""
        with np.errstate(invalid="ignore", over="ignore"):  # a broken model's NaN / inf: the protocol ranks them last
            return np.asarray(queries, np.float32) @ self.candidates.T

    @abc.abstractmethod
    def search(self, queries: np.ndarray, k: int, exclude: ItemSets | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top k per query, best first, never an excluded row (column) of that query.

        Returns (scores float32 [n, k'], positions int64 [n, k']), k' = min(k, m - most excluded);
        `identifiers[positions]` are the movie ids.
        """


class BruteForce(TopK):
    """Exact: one matmul, excluded columns set to -inf, then a partial sort."""

    def search(self, queries, k, exclude=None):
        scores = self.scores(queries)
        if exclude is not None:
            scores = exclude_seen(scores, exclude)
            k = min(k, len(self) - int(np.diff(exclude.indptr).max(initial=0)))
        if k <= 0:
            return np.zeros((len(scores), 0), np.float32), np.zeros((len(scores), 0), np.int64)
        top = top_k(scores, k)
        return np.take_along_axis(scores, top, axis=1), top


class Scann(TopK):
    """ScaNN's approximate search (dot product); excluded movies are dropped from an over-fetched list."""

    def __init__(self, candidates, identifiers, num_leaves: int | None = None):
        super().__init__(candidates, identifiers)
        import scann

        builder = scann.scann_ops_pybind.builder(self.candidates, 10, "dot_product")
        leaves = num_leaves or max(1, int(np.sqrt(len(self))))
        if len(self) > 2000:
            builder = builder.tree(num_leaves=leaves, num_leaves_to_search=max(1, leaves // 10),
                                   training_sample_size=len(self))
        self._searcher = builder.score_brute_force().build()

    def search(self, queries, k, exclude=None):
        queries = np.asarray(queries, np.float32)
        extra = int(np.diff(exclude.indptr).max(initial=0)) if exclude is not None else 0
        fetch = min(len(self), k + extra)
        positions, scores = self._searcher.search_batched(queries, final_num_neighbors=fetch)
        out_scores = np.full((len(queries), min(k, len(self) - extra)), -np.inf, np.float32)
        out_positions = np.zeros(out_scores.shape, np.int64)
        for row in range(len(queries)):  # per query, not per example: only for shell recommendations
            banned = set(exclude.row(row).tolist()) if exclude is not None else set()
            kept = [(p, s) for p, s in zip(positions[row], scores[row]) if p not in banned][:out_scores.shape[1]]
            out_positions[row, :len(kept)] = [p for p, _ in kept]
            out_scores[row, :len(kept)] = [s for _, s in kept]
        return out_scores, out_positions


def make_index(candidates: np.ndarray, identifiers: Sequence[str], backend: str = "auto") -> TopK:
    """The index for `backend`: "brute_force", "scann" (error when not importable) or "auto" (ScaNN if present)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "scann" or (backend == "auto" and scann_available() and len(identifiers) > 2000):
        if not scann_available():
            raise ValueError("--index_backend scann needs the scann package (pip install scann)")
        return Scann(candidates, identifiers)
    return BruteForce(candidates, identifiers)
