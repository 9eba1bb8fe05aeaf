"""Train/validation/test splits, with id vocabularies fitted on the training part only.

- `random`: the TFRS tutorial split: shuffle with seed 42, then cut by fractions.
  With two fractions (the tutorial's 80/20) there is no separate validation
  part: validation *is* the test part, and `Split.validation_is_test` says so.
- `temporal`: one global cut by timestamp quantiles; every rating at a cutoff
  timestamp goes to the later part, so no training rating is newer than any
  evaluation rating.
- `leave_last_out`: per user, ordered by time: test = last, validation =
  second-to-last, train = the rest (users with fewer than 3 ratings stay in train).
  `validation_users` N > 0 is the gSASRec / aprec protocol (Petrov & Macdonald, RecSys 2022 and 2023):
  only N users, a seeded draw, hold out their second-to-last rating for validation; every other user's
  goes to train, so the models learn from each user's most recent step before the test one. The test
  part is the same; validation is on fewer users.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from movielens.data.table import MovieLensData, prune_categories

SPLITS = ("random", "temporal", "leave_last_out")
UNKNOWN_INDEX = 0  # index of every id not seen in training


@dataclasses.dataclass
class Vocabulary:
    """Sorted unique ids seen in training; index 0 is reserved for unknown ids.

    Attributes:
      user_ids: shape [n_users] str.
      movie_ids: shape [n_movies] str.
    """

    user_ids: np.ndarray
    movie_ids: np.ndarray

    @classmethod
    def fit(cls, train: pd.DataFrame) -> Vocabulary:
        return cls(_sorted_ids(train["user_id"]), _sorted_ids(train["movie_id"]))

    @property
    def num_users(self) -> int:
        return len(self.user_ids) + 1

    @property
    def num_movies(self) -> int:
        return len(self.movie_ids) + 1

    @staticmethod
    def _encode(vocabulary: np.ndarray, ids) -> np.ndarray:
        values = ids.array if isinstance(ids, pd.Series) else ids
        if isinstance(values, pd.Categorical):  # each distinct id looked up once, then gathered by code
            where = pd.Index(vocabulary).get_indexer(np.asarray(values.categories).astype(str).astype(object))
            return (np.r_[where, -1][values.codes] + 1).astype(np.int64)  # code -1 (missing) is unknown too
        positions = pd.Index(vocabulary).get_indexer(pd.Series(ids, dtype=object).astype(str))
        return (positions + 1).astype(np.int64)  # -1 (unknown) becomes 0

    def encode_users(self, ids) -> np.ndarray:
        """ids shape [n] -> int64 [n], 1..len(user_ids) for known ids, 0 for unknown."""
        return self._encode(self.user_ids, ids)

    def encode_movies(self, ids) -> np.ndarray:
        return self._encode(self.movie_ids, ids)


@dataclasses.dataclass
class Split:
    name: str
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    vocabulary: Vocabulary
    validation_is_test: bool = False
    validation_users: int = 0  # leave_last_out: N users validate, the others train on that rating; 0 = all

    def describe(self) -> str:
        note = " (validation = test, tutorial protocol)" if self.validation_is_test else ""
        if self.validation_users:
            note = (f" (validation on {self.validation_users:,} sampled users; every other user's second-to-last "
                    f"rating in train)")
        return (f"{self.name} split: train {len(self.train):,}, validation {len(self.validation):,}, "
                f"test {len(self.test):,}{note}")


def _sorted_ids(column: pd.Series) -> np.ndarray:
    """The distinct ids of a column, sorted as text, as an object array."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = prune_categories(column)
        return np.asarray(column.cat.categories, dtype=object)  # canonical: sorted, all present
    return np.sort(column.unique()).astype(object)


def _part(ratings: pd.DataFrame, mask) -> pd.DataFrame:
    """The rows of `mask`, renumbered; categorical columns keep only the categories of these rows, so a
    part's `value_counts`, `groupby` (on any pandas) and categories are those of its own rows."""
    part = ratings[mask].reset_index(drop=True)
    for column in part.columns:
        if isinstance(part[column].dtype, pd.CategoricalDtype):
            part[column] = prune_categories(part[column])
    return part


def _make(name: str, ratings: pd.DataFrame, train_mask, val_mask, test_mask, validation_is_test=False,
          validation_users: int = 0) -> Split:
    train = _part(ratings, train_mask)
    test = _part(ratings, test_mask)
    validation = test if validation_is_test else _part(ratings, val_mask)
    return Split(name, train, validation, test, Vocabulary.fit(train), validation_is_test, validation_users)


def _check_fractions(fractions) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) not in (2, 3) or any(f < 0 for f in fractions) or not 0.99 <= sum(fractions) <= 1.0 + 1e-9:
        raise ValueError(f"fractions must be 2 (train, test) or 3 (train, validation, test) non-negative numbers "
                         f"summing to 1, got {fractions}")
    return fractions


def random_split(data: MovieLensData, fractions=(0.8, 0.2), seed: int = 42) -> Split:
    """The TFRS tutorial split: a seeded shuffle of all ratings, cut by `fractions`."""
    fractions = _check_fractions(fractions)
    n = len(data.ratings)
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.floor(np.cumsum(fractions) * n + 1e-9).astype(int)
    train = np.zeros(n, dtype=bool)  # rows whose place in the shuffle is before the first cut
    train[order[: cuts[0]]] = True
    if len(fractions) == 2:
        return _make("random", data.ratings, train, None, ~train, validation_is_test=True)
    val = np.zeros(n, dtype=bool)
    val[order[cuts[0]: cuts[1]]] = True
    return _make("random", data.ratings, train, val, ~(train | val))


def temporal_split(data: MovieLensData, fractions=(0.8, 0.1, 0.1)) -> Split:
    """A global cut by timestamp: the first `fractions[0]` of time for training, and so on."""
    fractions = _check_fractions(fractions)
    timestamps = data.ratings["timestamp"].to_numpy()
    bounds = np.quantile(timestamps, np.cumsum(fractions)[:-1])
    train = timestamps < bounds[0]
    if len(fractions) == 2:
        return _make("temporal", data.ratings, train, None, ~train, validation_is_test=True)
    val = (timestamps >= bounds[0]) & (timestamps < bounds[1])
    return _make("temporal", data.ratings, train, val, timestamps >= bounds[1])


def leave_last_out_split(data: MovieLensData, validation_users: int = 0, seed: int = 42) -> Split:
    """Per user: test = the latest rating, validation = the one before, train = the rest.

    Ties in timestamp keep file order, so the result is deterministic. `validation_users` N > 0: only N
    users drawn with `seed` (among those with a validation rating) keep it as validation; the others' goes to
    train (see the module docstring). N at least the number of such users is the plain split.
    """
    if isinstance(validation_users, bool) or not isinstance(validation_users, (int, np.integer)) \
            or validation_users < 0:
        raise ValueError(f"validation_users must be an integer >= 0 (0 = every user), got {validation_users!r}")
    ratings = data.ratings
    users = ratings["user_id"]
    # Categorical codes sort as the ids' text (canonical categories): integers, not strings, are compared.
    users = users.cat.codes.to_numpy() if isinstance(users.dtype, pd.CategoricalDtype) else users.to_numpy()
    order = np.lexsort((np.arange(len(ratings)), ratings["timestamp"].to_numpy(), users))
    users = users[order]
    # rank from the end within each user: 0 = last, 1 = second-to-last, ...
    ends = np.r_[np.flatnonzero(users[1:] != users[:-1]), len(users) - 1]
    starts = np.r_[0, ends[:-1] + 1]
    sizes = ends - starts + 1
    from_end = np.repeat(ends, sizes) - np.arange(len(users))
    eligible = np.repeat(sizes >= 3, sizes)
    rank_from_end = np.empty(len(ratings), dtype=np.int64)
    rank_from_end[order] = np.where(eligible, from_end, 2)
    train, validation = rank_from_end >= 2, rank_from_end == 1
    with_validation = np.flatnonzero(sizes >= 3)  # users (in code order: sorted ids) holding a validation rating
    if not 0 < validation_users < len(with_validation):
        return _make("leave_last_out", ratings, train, validation, rank_from_end == 0)
    # The draw depends on the seed and the data only.
    validating = np.zeros(len(sizes), dtype=bool)
    validating[np.random.default_rng(seed).choice(with_validation, validation_users, replace=False)] = True
    user_of_row = np.empty(len(ratings), dtype=np.int64)
    user_of_row[order] = np.repeat(np.arange(len(sizes)), sizes)
    moved = validation & ~validating[user_of_row]
    return _make("leave_last_out", ratings, train | moved, validation & ~moved, rank_from_end == 0,
                 validation_users=int(validation_users))


def make_split(data: MovieLensData, name: str, fractions=None, seed: int = 42, validation_users: int = 0) -> Split:
    """Dispatches on the split name (the `--split` flag); `validation_users` (`--split_validation_users`) is
    leave_last_out's only (see `leave_last_out_split`)."""
    if validation_users and name != "leave_last_out":
        raise ValueError(f"--split_validation_users applies to the leave_last_out split only, not {name!r}")
    if name == "random":
        return random_split(data, fractions or (0.8, 0.2), seed)
    if name == "temporal":
        return temporal_split(data, fractions or (0.8, 0.1, 0.1))
    if name == "leave_last_out":
        if fractions:
            raise ValueError("leave_last_out takes no fractions")
        return leave_last_out_split(data, validation_users, seed)
    raise ValueError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
