"""The feature registry of the two-tower model, and the tables fitted for it on the training split.

Every feature is declared once, in `FEATURES`: its name (the `--additional_feature_sets`
value), its tower, how it is encoded, the data column it reads and what has to be
fitted on the training split. The towers (`movielens.models.two_tower`), the CLI's
argument validation and the tests all read this declaration.

Speed design: ids are encoded to integer indices once, up front. A training
example is just `(user index, timestamp, movie row)`; every per-user feature
(age bucket, gender, occupation) and per-movie feature (title tokens, genres,
length) lives in a constant table indexed by user index / movie row, which the
towers gather from. So no string is looked up per batch.

Index spaces:
- user index: `Split.vocabulary.encode_users` (0 = unknown user, 1..n train users).
- movie row: the row of the movie in `MovieLensData.movies` (the whole catalogue,
  every candidate, rated in training or not). Its id embedding uses the train
  vocabulary index (`movie_vocab_index[row]`, 0 for movies with no training rating).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

QUERY, CANDIDATE = "query", "candidate"
NONE_FEATURE_SET = "None"  # `--additional_feature_sets None`: the id-only baseline

# Encoders (how a feature becomes part of its tower's concatenated input).
ID = "id_embedding"
BUCKET_AND_NORMALISED = "bucket_embedding+normalised_value"
CATEGORY = "category_embedding"
TEXT = "text_vectorization+mean_pooled_token_embeddings"
MULTI_CATEGORY = "mean_of_category_embeddings"
HISTORY_MEAN = "mean_of_history_movie_embeddings"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One declared feature.

    Attributes:
      name: the feature name used on the command line and in model names.
      tower: QUERY or CANDIDATE.
      encoder: how the tower encodes it (one of the encoder constants above).
      column: the `MovieLensData.ratings` / `.movies` column it reads.
      fitted: what is fitted on the training split (documentation and `describe_features`).
      always: part of every model (the tower's identity feature).
      variants: MovieLens variants that have the column (None: all).
    """

    name: str
    tower: str
    encoder: str
    column: str
    fitted: str
    always: bool = False
    variants: tuple[str, ...] | None = None


_USER_FEATURE_VARIANTS = ("100k", "1m")
FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("user_id", QUERY, ID, "user_id", "user vocabulary (train users; 0 = unknown)", always=True),
        Feature("timestamp", QUERY, BUCKET_AND_NORMALISED, "timestamp",
                "quantile bucket boundaries, mean and std of train timestamps"),
        Feature("bucketized_user_age", QUERY, CATEGORY, "bucketized_user_age", "age bucket vocabulary",
                variants=_USER_FEATURE_VARIANTS),
        Feature("user_gender", QUERY, CATEGORY, "user_gender", "two values", variants=_USER_FEATURE_VARIANTS),
        Feature("user_occupation_label", QUERY, CATEGORY, "user_occupation_label", "occupation label vocabulary",
                variants=_USER_FEATURE_VARIANTS),
        Feature("history", QUERY, HISTORY_MEAN, "user_id, movie_id, timestamp",
                "each user's training movies in time order; a query sees only the last `history_length` movies "
                "rated STRICTLY before its timestamp (or a history given directly)"),
        Feature("movie_title", CANDIDATE, ID, "movie_id",
                "movie vocabulary (train movies; 0 = unknown); keyed by movie_id because titles repeat", always=True),
        Feature("movie_title_text", CANDIDATE, TEXT, "movie_title", "TextVectorization vocabulary of train titles"),
        Feature("movie_genres", CANDIDATE, MULTI_CATEGORY, "movie_genres", "genre label vocabulary"),
        Feature("movie_length", CANDIDATE, BUCKET_AND_NORMALISED, "movie_length (runtime provider)",
                "runtime minutes per movie (movielens.movie_length), bucket boundaries, mean and std"),
    )
}
OPTIONAL_FEATURES = tuple(name for name, f in FEATURES.items() if not f.always)
# Quantile buckets of the train timestamps. 20 was chosen on validation NDCG@10 (ML-100K random 80/10/10,
# benchmarks/two_tower_quality.py: 20 > 100 > 1000); the tutorials use 1000 linspace buckets, which fit
# the rating sessions and hurt the per-user ranking.
TIMESTAMP_BUCKETS = 20
LENGTH_BUCKETS = 20
TITLE_MAX_TOKENS = 16
HISTORY_LENGTH = 50  # default cap H of the history feature: the mean of at most the last H movies
# The history feature's training-only regularisers (movielens.models.two_tower), by split: where the
# held-out movies come from anywhere in a user's history (random) or after everyone's (temporal), training
# queries see the movies rated at least a day before them and 90% of them no history; where the held-out
# movie is the next one (leave_last_out), that next-movie signal is the task, and both are off. Chosen on
# the validation parts (benchmarks/README.md, "The history feature").
HISTORY_REGULARISATION = {"leave_last_out": (0, 0.0)}
HISTORY_REGULARISATION_DEFAULT = (86_400, 0.9)  # (history_gap_seconds, history_dropout)
_USER_SHIFT = np.int64(2**32)  # history key = user index * 2^32 + timestamp (timestamps are < 2^32 seconds)


def validate_feature_set(names: Iterable[str], variant: str | None = None) -> tuple[str, ...]:
    """Checks and normalises one feature set: sorted unique names; "None" (alone) is the id-only baseline.

    Raises:
      ValueError: an unknown name, listing the valid ones, or a feature the variant lacks.
    """
    names = [str(n) for n in names]
    if names == [NONE_FEATURE_SET] or not names:
        return ()
    unknown = [n for n in names if n not in OPTIONAL_FEATURES]
    if unknown:
        always = [n for n in unknown if n in FEATURES]
        detail = f" ({', '.join(always)} is always included)" if always else ""
        raise ValueError(f"unknown feature {', '.join(map(repr, unknown))}{detail}; valid features: "
                         f"{', '.join(OPTIONAL_FEATURES)}, or {NONE_FEATURE_SET} for the id-only baseline")
    if variant is not None:
        missing = [n for n in names if FEATURES[n].variants and variant not in FEATURES[n].variants]
        if missing:
            only = ", ".join(_USER_FEATURE_VARIANTS)
            raise ValueError(f"MovieLens {variant} has no {', '.join(missing)} (only {only})")
    return tuple(sorted(set(names), key=list(FEATURES).index))


def feature_name(value: str) -> str:
    """argparse `type` for one feature name: an unknown name is an argparse error listing the valid ones."""
    if value != NONE_FEATURE_SET and value not in OPTIONAL_FEATURES:
        raise argparse.ArgumentTypeError(
            f"unknown feature {value!r}; valid features: {', '.join(OPTIONAL_FEATURES)}, "
            f"or {NONE_FEATURE_SET} for the id-only baseline")
    return value


def feature_set_label(features: Sequence[str]) -> str:
    return "+".join(features) if features else "id_only"


def tower_features(features: Sequence[str], tower: str) -> tuple[str, ...]:
    """The features of one tower in registry order, the `always` identity feature first."""
    chosen = set(features)
    return tuple(n for n, f in FEATURES.items() if f.tower == tower and (f.always or n in chosen))


def describe_features() -> str:
    lines = [f"{'feature':24s} {'tower':10s} encoder / fitted on train"]
    for f in FEATURES.values():
        lines.append(f"{f.name:24s} {f.tower:10s} {f.encoder}; {f.fitted}{' (always)' if f.always else ''}")
    return "\n".join(lines)


@dataclasses.dataclass
class FeatureTables:
    """Everything fitted on the training split, as arrays the towers turn into constants.

    Attributes (n_users = vocabulary.num_users incl. the unknown slot 0; n_rows = catalogue size):
      movie_ids, movie_titles: str [n_rows], the candidate catalogue (`MovieLensData.movies` order).
      movie_vocab_index: int64 [n_rows], train vocabulary index of each movie (0: no training rating).
      num_users, num_movies: id embedding input sizes (vocabulary sizes incl. slot 0).
      user_age, user_gender, user_occupation: int64 [n_users], category index per user (0 = unknown).
      num_age, num_occupation: category vocabulary sizes incl. slot 0.
      timestamp_boundaries: float64 [b], quantile bucket boundaries; timestamp_mean/std: normalisation.
      title_tokens: int64 [n_rows, TITLE_MAX_TOKENS], TextVectorization ids (0 pad, 1 OOV); title_vocabulary.
      genres: int64 [n_rows, max genres], genre label + 1 (0 pad); num_genres incl. pad.
      movie_minutes: float32 [n_rows]; length_boundaries, length_mean, length_std; length_summary text.
      movie_train_counts: int64 [n_rows], training ratings per movie (the sampling probabilities' numerators).
      history_keys: int64 [n_train], `history_key(user index, timestamp)` of every training rating, sorted;
        history_rows: int64 [n_train], the catalogue row of each (per user in time order, ties by movie row).
    """

    movie_ids: np.ndarray
    movie_titles: np.ndarray
    movie_vocab_index: np.ndarray
    num_users: int
    num_movies: int
    user_age: np.ndarray
    user_gender: np.ndarray
    user_occupation: np.ndarray
    num_age: int
    num_occupation: int
    timestamp_boundaries: np.ndarray
    timestamp_mean: float
    timestamp_std: float
    title_tokens: np.ndarray
    title_vocabulary: list[str]
    genres: np.ndarray
    num_genres: int
    movie_minutes: np.ndarray
    length_boundaries: np.ndarray
    length_mean: float
    length_std: float
    length_summary: str = ""
    movie_train_counts: np.ndarray | None = None
    history_keys: np.ndarray | None = None
    history_rows: np.ndarray | None = None

    @property
    def num_candidates(self) -> int:
        return len(self.movie_ids)

    def sampling_probabilities(self) -> np.ndarray:
        """float32 [n_rows]: each movie's share of the training ratings (count / number of training ratings).

        The chance that a given in-batch candidate is this movie: what the logQ correction subtracts.
        """
        counts = np.asarray(self.movie_train_counts, np.float64)
        return (counts / max(counts.sum(), 1.0)).astype(np.float32)

    def user_histories(self, users: np.ndarray, timestamps: np.ndarray | None = None,
                       length: int = HISTORY_LENGTH) -> np.ndarray:
        """Padded histories int64 [n, length] (catalogue rows, -1 = padding) of user indices [n].

        With `timestamps` [n]: the last `length` training movies each user rated STRICTLY before that time;
        without: the last `length` of all the user's training movies (the recommendation-time history).
        """
        users = np.asarray(users, np.int64)
        begin = np.searchsorted(self.history_keys, users * _USER_SHIFT, side="left")
        if timestamps is None:
            end = np.searchsorted(self.history_keys, (users + 1) * _USER_SHIFT, side="left")
        else:
            end = np.searchsorted(self.history_keys, history_key(users, timestamps), side="left")
        start = np.maximum(begin, end - length)
        positions = start[:, None] + np.arange(length)
        valid = positions < end[:, None]
        rows = self.history_rows[np.minimum(positions, max(len(self.history_rows) - 1, 0))] if len(
            self.history_rows) else np.zeros(positions.shape, np.int64)
        return np.where(valid, rows, -1).astype(np.int64)

    def movie_rows(self, movie_ids) -> np.ndarray:
        """movie ids [n] -> catalogue rows int64 [n]; raises KeyError for ids outside the catalogue."""
        rows = pd.Index(self.movie_ids).get_indexer(pd.Series(movie_ids, dtype=object).astype(str))
        if (rows < 0).any():
            bad = pd.Series(movie_ids, dtype=object)[rows < 0].unique()[:5]
            raise KeyError(f"movie ids not in the catalogue: {list(bad)}")
        return rows.astype(np.int64)


def history_key(users, timestamps) -> np.ndarray:
    """int64 sort key of (user index, timestamp): user * 2^32 + timestamp (timestamps in whole seconds)."""
    timestamps = np.asarray(timestamps)
    if timestamps.size and (timestamps.min() < 0 or timestamps.max() >= _USER_SHIFT):
        raise ValueError("timestamps must be whole seconds in [0, 2^32) for the history feature")
    return np.asarray(users, np.int64) * _USER_SHIFT + timestamps.astype(np.int64)


def pad_histories(histories: Sequence[Sequence[int]], length: int = HISTORY_LENGTH) -> np.ndarray:
    """Lists of catalogue rows (oldest first) -> int64 [n, length], the last `length` of each, -1 padding."""
    out = np.full((len(histories), length), -1, np.int64)
    for i, rows in enumerate(histories):
        rows = np.asarray(rows, np.int64).reshape(-1)[-length:] if length else np.zeros(0, np.int64)
        out[i, : len(rows)] = rows
    return out


def _category_table(users: pd.DataFrame, vocabulary, column: str) -> tuple[np.ndarray, int]:
    """Per-user category index [n_users] (0 unknown) and the category vocabulary size incl. slot 0."""
    table = np.zeros(vocabulary.num_users, np.int64)
    if column not in users.columns:
        return table, 1
    values = users[column].astype(np.int64) if users[column].dtype == bool else users[column]
    categories = np.sort(pd.unique(values.dropna()))
    codes = pd.Index(categories).get_indexer(values) + 1
    index = vocabulary.encode_users(users["user_id"])
    known = index > 0
    table[index[known]] = codes[known]
    return table, len(categories) + 1


def _normalise_stats(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    std = float(values.std()) if len(values) else 1.0
    return (float(values.mean()) if len(values) else 0.0), (std if std > 0 else 1.0)


def _quantile_boundaries(values: np.ndarray, buckets: int) -> np.ndarray:
    if not len(values):
        return np.zeros(1)
    return np.unique(np.quantile(np.asarray(values, np.float64), np.linspace(0, 1, buckets + 1)[1:-1]))


def _title_tokens(train_titles: Sequence[str], all_titles: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """TextVectorization adapted on the train titles, applied once to every catalogue title."""
    import tensorflow as tf

    vectorize = tf.keras.layers.TextVectorization(output_sequence_length=TITLE_MAX_TOKENS)
    vectorize.adapt(tf.constant(list(train_titles) or [""], dtype=tf.string))
    tokens = vectorize(tf.constant(list(all_titles), dtype=tf.string)).numpy().astype(np.int64)
    return tokens, [str(t) for t in vectorize.get_vocabulary()]


def fit_feature_tables(data, split, features: Sequence[str] = (), movie_minutes: np.ndarray | None = None,
                       length_summary: str = "", timestamp_buckets: int = TIMESTAMP_BUCKETS) -> FeatureTables:
    """Fits the tables of `features` on `split.train` (vocabularies, buckets, normalisation).

    Args:
      data: `MovieLensData` (its `movies` frame is the candidate catalogue).
      split: the split; only its train part and vocabulary are read.
      features: the optional features in use (unused ones get empty placeholder tables).
      movie_minutes: float [n_rows] runtimes aligned with `data.movies` (needed for movie_length).
      timestamp_buckets: number of quantile buckets of the train timestamps.
    """
    features = validate_feature_set(features, data.variant)
    train, vocabulary, movies = split.train, split.vocabulary, data.movies
    n_rows = len(movies)
    movie_ids = movies["movie_id"].astype(str).to_numpy(dtype=object)
    titles = movies["movie_title"].astype(str).to_numpy(dtype=object)
    users = train.drop_duplicates("user_id")

    age, num_age = _category_table(users, vocabulary, "bucketized_user_age")
    gender, _ = _category_table(users, vocabulary, "user_gender")
    occupation, num_occupation = _category_table(users, vocabulary, "user_occupation_label")

    timestamps = train["timestamp"].to_numpy(np.float64)
    ts_mean, ts_std = _normalise_stats(timestamps)
    ts_boundaries = _quantile_boundaries(timestamps, timestamp_buckets)

    train_rows = np.isin(movie_ids, vocabulary.movie_ids)
    if "movie_title_text" in features:
        title_tokens, title_vocabulary = _title_tokens(titles[train_rows], titles)
    else:
        title_tokens, title_vocabulary = np.zeros((n_rows, 1), np.int64), []

    genre_lists = [tuple(int(g) for g in genres) for genres in movies["movie_genres"]]
    width = max([len(g) for g in genre_lists] + [1])
    genres = np.zeros((n_rows, width), np.int64)
    for row, labels in enumerate(genre_lists):
        genres[row, : len(labels)] = np.asarray(labels, np.int64) + 1
    seen_labels = genres[train_rows]
    num_genres = int(seen_labels.max(initial=0)) + 1
    genres[genres >= num_genres] = 0  # a genre no training movie has stays out of the vocabulary

    if movie_minutes is None:
        if "movie_length" in features:
            raise ValueError("movie_length needs movie_minutes (see movielens.movie_length.resolve_movie_lengths)")
        movie_minutes = np.zeros(n_rows, np.float32)
    movie_minutes = np.asarray(movie_minutes, np.float32)
    if movie_minutes.shape != (n_rows,):
        raise ValueError(f"movie_minutes must have one value per catalogue movie ({n_rows}), got {movie_minutes.shape}")
    train_minutes = movie_minutes[train_rows]
    length_mean, length_std = _normalise_stats(train_minutes)
    length_boundaries = _quantile_boundaries(train_minutes, LENGTH_BUCKETS)

    train_users = vocabulary.encode_users(train["user_id"])
    rating_rows = pd.Index(movie_ids).get_indexer(train["movie_id"].astype(str))
    if (rating_rows < 0).any():
        bad = train["movie_id"][rating_rows < 0].unique()[:5]
        raise KeyError(f"training ratings of movies outside the catalogue: {list(bad)}")
    keys = history_key(train_users, train["timestamp"].to_numpy())
    order = np.lexsort((rating_rows, keys))
    movie_train_counts = np.bincount(rating_rows, minlength=n_rows).astype(np.int64)

    return FeatureTables(
        movie_ids=movie_ids, movie_titles=titles, movie_vocab_index=vocabulary.encode_movies(movie_ids),
        num_users=vocabulary.num_users, num_movies=vocabulary.num_movies,
        user_age=age, user_gender=gender, user_occupation=occupation, num_age=num_age,
        num_occupation=num_occupation, timestamp_boundaries=ts_boundaries, timestamp_mean=ts_mean,
        timestamp_std=ts_std, title_tokens=title_tokens, title_vocabulary=title_vocabulary, genres=genres,
        num_genres=num_genres, movie_minutes=movie_minutes, length_boundaries=length_boundaries,
        length_mean=length_mean, length_std=length_std, length_summary=length_summary,
        movie_train_counts=movie_train_counts, history_keys=keys[order],
        history_rows=rating_rows[order].astype(np.int64),
    )


def movie_minutes_for(data, features: Sequence[str], length_config=None, constant_minutes: bool = False,
                      verbose: bool = True) -> tuple[np.ndarray | None, str]:
    """Runtimes for the movie_length feature (None when it is not used), and a one-line summary.

    `constant_minutes` forces the default runtime for every movie (the "constant 90"
    baseline the movie_length benchmark compares against), with a loud warning.
    """
    if "movie_length" not in features:
        return None, ""
    from movielens.movie_length import MovieLengthConfig, resolve_movie_lengths

    config = length_config or MovieLengthConfig()
    if constant_minutes:
        message = (f"WARNING: movie_length uses the constant {config.default_minutes:g} minutes for EVERY movie "
                   f"(constant_movie_length): the feature carries no information")
        _warn(message, verbose)
        return np.full(len(data.movies), config.default_minutes, np.float32), message
    # The provider prints nothing itself (verbose=False): exactly one summary comes from here, a WARNING
    # instead of the summary when every length is the default. Its tqdm bar shows only when it looks up.
    lengths = resolve_movie_lengths(data.movies, data.variant, config, progress=verbose, verbose=False)
    summary = lengths.summary()
    if lengths.report.get("n_real", 0) == 0:
        first, *notes = summary.split("\n")
        _warn("\n".join([f"WARNING: {first}; the movie_length feature carries no information", *notes]), verbose)
        return np.asarray(lengths.minutes, np.float32), summary
    if verbose:
        print(summary, flush=True)
    return np.asarray(lengths.minutes, np.float32), summary


def _warn(message: str, verbose: bool) -> None:
    """Printed when the run is verbose (CLI output), otherwise a UserWarning."""
    if verbose:
        print(message, flush=True)
    else:
        warnings.warn(message, stacklevel=3)
