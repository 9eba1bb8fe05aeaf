"""Evaluation as pure functions: scores and held-out items in, `dict[str, float]` out.

Conventions, shared by every model family:
- Items are integer indices into a candidate list (the model's own catalogue).
- "Seen" items (a user's training interactions, or a sequence model's input
  history) are excluded from the ranking by setting their score to -inf; a
  held-out item that is also "seen" is never excluded.
- Ties count against the target (pessimistic rank), so a model that scores
  everything equal gets no credit.
- A non-finite score (nan, +inf, -inf) is a broken score, never a good one: it
  ranks below every finite score, and a target whose own score is non-finite
  is a miss at every cut-off (rank = number of candidates). A model that
  outputs nan or inf everywhere scores 0 on every metric.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np


@dataclasses.dataclass
class ItemSets:
    """Per-row sets of item indices in CSR form.

    Attributes:
      indptr: shape [n_rows + 1] int64.
      indices: shape [nnz] int64; row r's items are indices[indptr[r]:indptr[r+1]].
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_pairs(cls, rows: np.ndarray, items: np.ndarray, n_rows: int) -> ItemSets:
        rows, items = np.asarray(rows, np.int64), np.asarray(items, np.int64)
        order = np.lexsort((items, rows))
        rows, items = rows[order], items[order]
        keep = np.r_[True, (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])] if len(rows) else np.zeros(0, bool)
        rows, items = rows[keep], items[keep]
        indptr = np.zeros(n_rows + 1, np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls(np.cumsum(indptr), items)

    @classmethod
    def from_lists(cls, lists: Iterable[Sequence[int]]) -> ItemSets:
        lists = [np.asarray(x, np.int64) for x in lists]
        rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
        return cls.from_pairs(rows, np.concatenate(lists) if lists else np.zeros(0, np.int64), len(lists))

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def row(self, r: int) -> np.ndarray:
        return self.indices[self.indptr[r] : self.indptr[r + 1]]

    def take(self, rows: np.ndarray) -> ItemSets:
        rows = np.asarray(rows, np.int64)
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        starts = np.repeat(self.indptr[rows], lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return ItemSets(np.r_[0, np.cumsum(lengths)].astype(np.int64), self.indices[starts + offsets])

    def row_ids(self) -> np.ndarray:
        """The row of every stored item: shape [nnz]."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))


def finite_or_worst(scores: np.ndarray) -> np.ndarray:
    """`scores` as floats with every non-finite value (nan, +inf, -inf) replaced by -inf, the worst score.

    Returns the input itself when it is already a float array without nan or +inf.
    """
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        return scores.astype(np.float64)
    broken = np.isnan(scores) | np.isposinf(scores)
    return np.where(broken, -np.inf, scores).astype(scores.dtype, copy=False) if broken.any() else scores


def top_k(scores: np.ndarray, k: int, non_finite: int | None = None) -> np.ndarray:
    """Indices of the k highest scores per row, best first. scores [n, m] -> [n, min(k, m)].

    Non-finite scores rank last (nan and +inf count as -inf). `non_finite`, when given (e.g. -1),
    replaces the index of every returned item whose score is non-finite, so that evaluation can tell
    "no item" from an item (`recall_ndcg_at_k` counts negative indices as misses); recommenders leave it
    None and drop those items themselves.
    """
    scores = finite_or_worst(scores)
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1)
    if non_finite is not None:
        top = np.where(np.isfinite(np.take_along_axis(scores, top, axis=1)), top, non_finite)
    return top


def exclude_seen(scores: np.ndarray, seen: ItemSets, targets: ItemSets | None = None) -> np.ndarray:
    """Returns a copy of scores [n, m] with seen items at -inf (held-out targets are never excluded)."""
    out = np.array(scores, dtype=np.float64 if scores.dtype == np.float64 else np.float32, copy=True)
    rows = seen.row_ids()
    if targets is not None:
        target_rows = targets.row_ids()
        saved = out[target_rows, targets.indices].copy()
    out[rows, seen.indices] = -np.inf
    if targets is not None:
        out[target_rows, targets.indices] = saved
    return out


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's single target item. scores [n, m], targets [n] -> [n] int.

    Pessimistic: every other item scoring >= the target ranks ahead of it. A target with a
    non-finite score gets rank m (a miss at every cut-off); other non-finite scores rank last.
    """
    scores = finite_or_worst(scores)
    target_scores = scores[np.arange(len(targets)), targets]
    ahead = (scores >= target_scores[:, None]).sum(axis=1) - 1
    return np.where(np.isfinite(target_scores), ahead, scores.shape[1]).astype(np.int64)


def leave_one_out_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """HR@k, NDCG@k and MRR from 0-based target ranks (one held-out item per user)."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["mrr"] = float((1.0 / (ranks + 1.0)).mean())
    return out


def recall_ndcg_at_k(top: np.ndarray, targets: ItemSets, ks: Sequence[int] = (10, 100)) -> dict[str, float]:
    """Recall@k and NDCG@k for rows with one or more held-out items.

    Args:
      top: shape [n, K] ranked item indices (K >= max(ks)), seen items already excluded; a negative
        index is "no item" (see `top_k(..., non_finite=-1)`) and never a hit.
      targets: the held-out items of each of the n rows (rows with none are skipped).

    Recall@k = |top k ∩ targets| / min(k, |targets|) would inflate small k, so
    the plain definition |top k ∩ targets| / |targets| is used (as in TFRS and
    most papers); NDCG@k uses binary gains and the ideal DCG of min(k, |targets|) hits.
    The means of `recall_ndcg_per_row` over the rows with targets (so batches of rows can be scored apart).
    """
    per_row = recall_ndcg_per_row(top, targets, ks)
    valid = np.diff(targets.indptr) > 0
    out = {name: float(values[valid].mean()) if valid.any() else 0.0 for name, values in per_row.items()}
    out["users_evaluated"] = float(valid.sum() if top.shape[0] else 0)
    return out


def recall_ndcg_per_row(top: np.ndarray, targets: ItemSets, ks: Sequence[int] = (10, 100)) -> dict[str, np.ndarray]:
    """Per-row Recall@k and NDCG@k (see `recall_ndcg_at_k`): name -> float64 [n], nan for a row without targets.

    Hits are found by looking (row, item) keys up among the targets' keys: memory O(n x K + targets), never a
    dense [n, n_items] array.
    """
    n = top.shape[0]
    sizes = np.diff(targets.indptr)
    present = top >= 0
    n_items = int(max(top.max(initial=0), targets.indices.max(initial=0))) + 1
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + np.where(present, top, 0)
    hits = np.isin(keys, targets.row_ids() * n_items + targets.indices) & present
    discounts = 1.0 / np.log2(np.arange(top.shape[1]) + 2.0)
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):  # rows without targets: 0 / 0 -> nan, skipped
        for k in ks:
            out[f"recall@{k}"] = hits[:, :k].sum(axis=1) / sizes
            dcg = (hits[:, :k] * discounts[:k]).sum(axis=1)
            out[f"ndcg@{k}"] = dcg / np.r_[0.0, np.cumsum(discounts[:k])][np.minimum(sizes, k)]
    return out


def sample_rows(n_rows: int, n: int, seed: int) -> np.ndarray:
    """int64 [min(n, n_rows)]: `n` of the rows 0..n_rows-1 drawn without replacement with `seed`, ascending
    (all rows when n is 0 or >= n_rows). Which users a sampled validation ranks, the same on every call."""
    if n <= 0 or n >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_rows, n, replace=False)).astype(np.int64)


def rmse(predictions: np.ndarray, ratings: np.ndarray) -> dict[str, float]:
    """MSE, RMSE and MAE; a non-finite prediction makes them inf (never a good score, never nan)."""
    predictions = np.asarray(predictions, np.float64)
    predictions = np.where(np.isfinite(predictions), predictions, np.inf)
    errors = predictions - np.asarray(ratings, np.float64)
    mse = float(np.mean(errors**2))
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(errors)))}


def sample_negatives(seen: ItemSets, targets: np.ndarray, popularity: np.ndarray, n: int = 100,
                     seed: int = 0) -> np.ndarray:
    """`n` distinct negatives per row, drawn with probability proportional to `popularity`, never a seen item
    or the row's target (the sampled protocol of BERT4Rec / SASRec papers).

    Args:
      seen: per-row items to avoid (e.g. the input history).
      targets: shape [n_rows] the held-out item of each row.
      popularity: shape [m] non-negative sampling weights of the m candidate items.

    Returns:
      int64 [n_rows, n]. Raises ValueError when a row has fewer than `n` eligible items.
    """
    popularity = np.asarray(popularity, np.float64)
    cdf = np.cumsum(popularity)
    if cdf[-1] <= 0:
        raise ValueError("popularity weights are all zero")
    cdf /= cdf[-1]
    positive = popularity > 0
    rng = np.random.default_rng(seed)
    out = np.empty((len(targets), n), np.int64)
    for row, target in enumerate(np.asarray(targets, np.int64)):
        excluded = np.zeros(len(popularity), bool)
        excluded[seen.row(row)] = True
        excluded[target] = True
        available = int((positive & ~excluded).sum())
        if available < n:
            raise ValueError(f"row {row} has only {available} eligible negatives, {n} needed")
        chosen: list[int] = []
        taken = excluded.copy()
        while len(chosen) < n:  # rejection sampling: a few rounds at most unless popularity is very skewed
            draws = np.minimum(np.searchsorted(cdf, rng.random(2 * n), side="right"), len(cdf) - 1)
            for item in draws:
                if not taken[item]:
                    taken[item] = True
                    chosen.append(int(item))
                    if len(chosen) == n:
                        break
        out[row] = chosen
    return out


def sampled_target_ranks(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """0-based rank of each target among itself and its sampled negatives (pessimistic ties).

    scores [n, m], targets [n], negatives [n, s] -> [n] int in 0..s. A target with a non-finite
    score gets s (last); a negative's non-finite score ranks below every finite one.
    """
    scores = finite_or_worst(scores)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets]
    ahead = (np.take_along_axis(scores, negatives, axis=1) >= target_scores[:, None]).sum(axis=1)
    return np.where(np.isfinite(target_scores), ahead, negatives.shape[1]).astype(np.int64)
