"""`Histories`: what a scorer is asked about, a batch of people and the movies each has rated.

Every model family scores in one column space, the split's training vocabulary:
column j is `Split.vocabulary.movie_ids[j]` (vocabulary index j + 1). A movie with no
training rating has no column, so no family can recommend it, and as a held-out target it
counts as a miss for every family alike.

A history row is one person: a known user (their `user_id`, for families with user
embeddings) or someone typed in from the shell (`user_id` ""), with their movies oldest
first, the time of each and the rating given (NaN when unknown, e.g. typed titles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from movielens.data.splits import Vocabulary
from movielens.evaluation import ItemSets

NEW_PERSON = ""  # the user id of a history typed in, not from the data


@dataclasses.dataclass
class Histories:
    """n people's time-ordered movies in CSR form.

    Attributes:
      user_ids: object [n] user ids ("" for someone not in the data).
      indptr: int64 [n + 1]; row r's movies are items[indptr[r]:indptr[r + 1]], oldest first.
      items: int64 [nnz] columns (vocabulary index - 1).
      timestamps: float64 [nnz] when each was rated.
      ratings: float32 [nnz] the rating given (NaN: unknown).
      query_times: float64 [n] the moment the recommendation is for (the latest timestamp known).
    """

    user_ids: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray
    query_times: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, vocabulary: Vocabulary, user_ids: Sequence[str]) -> Histories:
        """The rows of `frame` (ratings) of each user in `user_ids`, in that order; movies outside the
        vocabulary are dropped. A user with no rows gets an empty history."""
        user_ids = np.asarray([str(u) for u in user_ids], dtype=object)
        row_of = pd.Index(user_ids).get_indexer(frame["user_id"].astype(str))
        columns = vocabulary.encode_movies(frame["movie_id"]) - 1
        keep = (row_of >= 0) & (columns >= 0)
        rows, columns = row_of[keep], columns[keep]
        times = frame["timestamp"].to_numpy(np.float64)[keep]
        ratings = frame["user_rating"].to_numpy(np.float32)[keep]
        order = np.lexsort((np.arange(len(rows)), times, rows))  # stable: file order within a second
        rows, columns, times, ratings = rows[order], columns[order], times[order], ratings[order]
        indptr = np.zeros(len(user_ids) + 1, np.int64)
        np.add.at(indptr, rows + 1, 1)
        indptr = np.cumsum(indptr)
        query_times = np.full(len(user_ids), np.nan)
        nonempty = np.diff(indptr) > 0
        query_times[nonempty] = times[indptr[1:][nonempty] - 1]
        return cls(user_ids, indptr, columns.astype(np.int64), times, ratings, query_times)

    @classmethod
    def from_lists(cls, histories: Sequence[Sequence[int]], user_ids: Sequence[str] | None = None,
                   ratings: Sequence[Sequence[float]] | None = None, query_time: float = np.nan) -> Histories:
        """Histories from column lists (oldest first), e.g. typed titles; times are 0, 1, 2, ... in list order."""
        lists = [np.asarray(h, np.int64) for h in histories]
        indptr = np.r_[0, np.cumsum([len(h) for h in lists])].astype(np.int64)
        items = np.concatenate(lists) if lists else np.zeros(0, np.int64)
        times = np.concatenate([np.arange(len(h), dtype=np.float64) for h in lists]) if lists else np.zeros(0)
        given = (np.concatenate([np.asarray(r, np.float32) for r in ratings]) if ratings is not None
                 else np.full(len(items), np.nan, np.float32))
        ids = np.asarray(list(user_ids) if user_ids is not None else [NEW_PERSON] * len(lists), dtype=object)
        return cls(ids, indptr, items, times, given, np.full(len(lists), query_time, np.float64))

    def row(self, r: int) -> np.ndarray:
        return self.items[self.indptr[r]:self.indptr[r + 1]]

    def lists(self) -> list[np.ndarray]:
        """Each person's columns, oldest first."""
        return [self.row(r) for r in range(len(self))]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row_ids(self) -> np.ndarray:
        """The row of every stored movie: int64 [nnz]."""
        return np.repeat(np.arange(len(self)), self.lengths())

    def take(self, rows) -> Histories:
        rows = np.asarray(rows, np.int64)
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        starts = np.repeat(self.indptr[rows], lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = starts + offsets
        return Histories(self.user_ids[rows], np.r_[0, np.cumsum(lengths)].astype(np.int64), self.items[positions],
                         self.timestamps[positions], self.ratings[positions], self.query_times[rows])

    def seen(self) -> ItemSets:
        """The movies of each row as a set (for excluding them from the ranking)."""
        return ItemSets.from_pairs(self.row_ids(), self.items, len(self))

    def binary_matrix(self, n_items: int):
        """scipy CSR [n, n_items] with 1 at every movie of the row (repeats counted once)."""
        from scipy import sparse

        matrix = sparse.csr_matrix((np.ones(len(self.items), np.float32), (self.row_ids(), self.items)),
                                   shape=(len(self), n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def concat(self, other: Histories) -> Histories:
        """Row-wise union of two batches of the same people (e.g. train + validation), kept in time order."""
        if not np.array_equal(self.user_ids, other.user_ids):
            raise ValueError("concat needs the same people in the same order")
        rows = np.r_[self.row_ids(), other.row_ids()]
        items = np.r_[self.items, other.items]
        times = np.r_[self.timestamps, other.timestamps]
        ratings = np.r_[self.ratings, other.ratings]
        order = np.lexsort((np.arange(len(rows)), times, rows))
        indptr = np.r_[0, np.cumsum(self.lengths() + other.lengths())].astype(np.int64)
        return Histories(self.user_ids, indptr, items[order], times[order], ratings[order],
                         np.fmax(self.query_times, other.query_times))
