"""The rating models' data: ratings as vocabulary indices, the fit / validation / test parts, ML-100K's
canonical folds, and the side-feature matrices (`movielens.rating` trains on them).

Protocol pieces: the split's held-out part is the test set; a split without its own validation part
gets a seeded `validation_fraction` of train carved out for early stopping (`rating_parts`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens.data.splits import Split, Vocabulary
from movielens.data.table import MovieLensData
from movielens.models.rating_cf import side_matrix

FOLDS = tuple(f"u{i}" for i in range(1, 6))


@dataclasses.dataclass
class EncodedRatings:
    """Ratings as vocabulary indices. users, movies: [n] int64; ratings: [n] float32."""

    users: np.ndarray
    movies: np.ndarray
    ratings: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, vocabulary: Vocabulary) -> EncodedRatings:
        return cls(vocabulary.encode_users(frame["user_id"]), vocabulary.encode_movies(frame["movie_id"]),
                   frame["user_rating"].to_numpy(np.float32))

    def __len__(self) -> int:
        return len(self.ratings)

    def take(self, rows) -> EncodedRatings:
        return EncodedRatings(self.users[rows], self.movies[rows], self.ratings[rows])

    def inputs(self) -> dict[str, np.ndarray]:
        return {"user": self.users, "movie": self.movies}

    def concat(self, other: EncodedRatings) -> EncodedRatings:
        return EncodedRatings(np.concatenate([self.users, other.users]), np.concatenate([self.movies, other.movies]),
                              np.concatenate([self.ratings, other.ratings]))


@dataclasses.dataclass
class RatingParts:
    fit: EncodedRatings         # what gradient steps see
    validation: EncodedRatings  # early stopping / tuning only
    test: EncodedRatings        # reported once
    protocol: str

    def final_fit(self, refit_full: bool) -> EncodedRatings:
        """The ratings the returned model is fitted on: fit, or fit + validation when refitting."""
        return self.fit.concat(self.validation) if refit_full else self.fit


def rating_parts(split: Split, validation_fraction: float, seed: int) -> RatingParts:
    """Encodes the split; carves a seeded validation part out of train when the split has none."""
    vocabulary = split.vocabulary
    train = EncodedRatings.from_frame(split.train, vocabulary)
    test = EncodedRatings.from_frame(split.test, vocabulary)
    if split.validation_is_test or len(split.validation) == 0:
        order = np.random.default_rng(seed).permutation(len(train))
        n_val = int(round(validation_fraction * len(train)))
        fit, validation = train.take(np.sort(order[n_val:])), train.take(np.sort(order[:n_val]))
        protocol = (f"{split.name} split; early stopping on a {validation_fraction:.0%} validation part carved out "
                    f"of train (seed {seed}); test = the untouched held-out part")
    else:
        fit, validation = train, EncodedRatings.from_frame(split.validation, vocabulary)
        protocol = f"{split.name} split; early stopping on its validation part; test = its test part"
    return RatingParts(fit, validation, test, protocol)


def read_fold(folder: str | Path, fold: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (user_id, movie_id) pairs of ML-100K's canonical u{i}.base / u{i}.test files."""
    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; valid folds: {', '.join(FOLDS)}")
    folder = Path(folder)
    frames = []
    for part in ("base", "test"):
        path = folder / f"{fold}.{part}"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --fold needs the ML-100K folder (with u1..u5 files) "
                                    f"as --data_dir")
        frames.append(pd.read_csv(path, sep="\t", header=None, names=["user_id", "movie_id", "rating", "ts"],
                                  dtype=str, usecols=[0, 1]))
    return frames[0], frames[1]


def fold_folder(data_dir) -> Path:
    """The folder holding u1.base ... u5.test: `data_dir` itself or its ml-100k/ subfolder."""
    if not data_dir:
        raise ValueError("--fold needs --data_dir pointing at the ML-100K folder (with u1.base ... u5.test)")
    for folder in (Path(data_dir), Path(data_dir) / "ml-100k"):
        if (folder / "u1.base").is_file():
            return folder
    raise FileNotFoundError(f"no u1.base in {data_dir} or {Path(data_dir) / 'ml-100k'}")


def fold_split(data: MovieLensData, folder: str | Path, fold: str) -> Split:
    """Split from a canonical ML-100K fold: the rows of `data.ratings` whose (user, movie) pair is listed.

    ML-100K has one rating per (user, movie), so the fold files map 1:1 onto the schema rows;
    validation_is_test=True tells `rating_parts` to carve validation out of u{i}.base.
    """
    base, test = read_fold(folder, fold)
    keys = data.ratings["user_id"].astype(str) + ":" + data.ratings["movie_id"].astype(str)
    in_base = keys.isin(base["user_id"] + ":" + base["movie_id"]).to_numpy()
    in_test = keys.isin(test["user_id"] + ":" + test["movie_id"]).to_numpy()
    if in_base.sum() != len(base) or in_test.sum() != len(test) or (in_base & in_test).any():
        raise ValueError(f"{fold}.base/{fold}.test do not match the loaded ratings ({in_base.sum():,}/{len(base):,} "
                         f"base and {in_test.sum():,}/{len(test):,} test rows found); is --data_dir ML-100K?")
    train = data.ratings[in_base].reset_index(drop=True)
    test_frame = data.ratings[in_test].reset_index(drop=True)
    return Split(fold, train, test_frame, test_frame, Vocabulary.fit(train), validation_is_test=True)


def training_movies(part: EncodedRatings) -> np.ndarray:
    """The movie indices with fitting ratings: autorec's training examples (one column each)."""
    return np.unique(part.movies[part.movies > 0])


USER_SIDE_COLUMNS = ("bucketized_user_age", "user_gender", "user_occupation_label")


def side_matrices(data: MovieLensData, vocabulary: Vocabulary) -> tuple[tf.SparseTensor, tf.SparseTensor]:
    """User features (age bucket, gender, occupation: one-hot each, weight 1) and movie genres (weight 1/|G|).

    Returns ([num_users, F], [num_movies, G]) sparse matrices indexed by vocabulary index.
    """
    missing = [c for c in USER_SIDE_COLUMNS if c not in data.ratings.columns]
    if missing:
        raise ValueError(f"side_features needs the user columns {', '.join(USER_SIDE_COLUMNS)}; "
                         f"{data.variant} lacks {', '.join(missing)} (use 100k or 1m)")
    users = data.users
    rows = vocabulary.encode_users(users["user_id"])
    user_rows, user_features, offset = [], [], 0
    for column in USER_SIDE_COLUMNS:
        codes, levels = pd.factorize(users[column], sort=True)
        user_rows.append(rows)
        user_features.append(codes + offset)
        offset += len(levels)
    user_rows, user_features = np.concatenate(user_rows), np.concatenate(user_features)
    user_side = side_matrix(user_rows, user_features, np.ones(len(user_rows)), vocabulary.num_users, offset)
    movies = data.movies
    genres = [tuple(g) for g in movies["movie_genres"]]
    n_genres = 1 + max((max(g) for g in genres if len(g)), default=0)
    counts = np.array([len(g) for g in genres])
    movie_rows = np.repeat(vocabulary.encode_movies(movies["movie_id"]), counts)
    movie_features = np.array([x for g in genres for x in g], np.int64)
    weights = np.repeat(1.0 / np.maximum(counts, 1), counts)
    movie_side = side_matrix(movie_rows, movie_features, weights, vocabulary.num_movies, n_genres)
    return user_side, movie_side
