"""The one schema every source is converted to: TFDS's `movielens/<variant>-ratings`.

Feature names and dtypes follow TensorFlow Datasets, so code written against
`tfds.load("movielens/100k-ratings")` reads our tables unchanged:

| column                  | dtype    | variants        | meaning                                          |
|-------------------------|----------|-----------------|--------------------------------------------------|
| `user_id`               | str (1)  | all             | GroupLens user id as text ("196")                |
| `movie_id`              | str (1)  | all             | GroupLens movie id as text ("242")               |
| `movie_title`           | str (1)  | all             | "Title (Year)", surrounding whitespace stripped  |
| `movie_genres`          | tuple (1)| all             | TFDS genre label ints (`GENRES` below)           |
| `timestamp`             | int64    | all             | seconds since the Unix epoch (UTC)               |
| `user_rating`           | float32  | all             | 1-5 (half stars in 20m/25m/latest-small)         |
| `bucketized_user_age`   | float32  | 100k, 1m        | 1, 18, 25, 35, 45, 50 or 56                      |
| `raw_user_age`          | float32  | 100k            | exact age                                        |
| `user_gender`           | bool     | 100k, 1m        | True for male                                    |
| `user_occupation_label` | int64    | 100k, 1m        | TFDS occupation label int (`OCCUPATIONS`)        |
| `user_occupation_text`  | str      | 100k, 1m        | the variant's own occupation text                |
| `user_zip_code`         | str      | 100k, 1m        | zip code as given                                |

The movies table has `movie_id`, `movie_title`, `movie_genres` and `imdb_id`
("tt0114709", or "" where the variant ships no links.csv), as plain object columns.

(1) In the ratings table `user_id`, `movie_id` and `movie_title` are pandas Categoricals of str
(`table.string_categorical`): integer codes per row, each distinct text held once, categories
exactly the values present and sorted as text, so sorting by the codes sorts by the id text and a
cell reads as the str it always was; `movie_genres` is a Categorical of the genre tuples. At ML-25M
this is 0.6 GB instead of ~4 GB of Python strings; hashing (`pd.util.hash_pandas_object`), `==`,
`isin`, `groupby`, `astype(str)` and iteration give what the object columns gave.
"""

from __future__ import annotations

import numpy as np

SCHEMA_VERSION = 2  # 2: user_id, movie_id, movie_title are Categoricals; the cached users table is sorted

VARIANTS = ("100k", "1m", "20m", "25m", "latest-small")

# TFDS ClassLabel names for `movie_genres`, in label order.
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "Unknown", "War",
    "Western", "(no genres listed)",
)
GENRE_INDEX = {name: i for i, name in enumerate(GENRES)}
# Spellings the GroupLens files use for the same genres.
GENRE_ALIASES = {"Children's": "Children", "unknown": "Unknown"}

# TFDS ClassLabel names for `user_occupation_label`, consistent across 100k and 1m.
OCCUPATIONS = (
    "academic/educator", "artist", "clerical/admin", "customer service", "doctor/health care", "entertainment",
    "executive/managerial", "farmer", "homemaker", "lawyer", "librarian", "other/not specified", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "student", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)
OCCUPATION_INDEX = {name: i for i, name in enumerate(OCCUPATIONS)}

# ML-1M users.dat occupation codes -> text (TFDS merges the two student kinds in the label).
OCCUPATIONS_1M = (
    "other/not specified", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student",
    "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)
# ML-100K u.user occupation text -> TFDS label name.
OCCUPATIONS_100K = {
    "administrator": "clerical/admin", "artist": "artist", "doctor": "doctor/health care",
    "educator": "academic/educator", "engineer": "technician/engineer", "entertainment": "entertainment",
    "executive": "executive/managerial", "healthcare": "doctor/health care", "homemaker": "homemaker",
    "lawyer": "lawyer", "librarian": "librarian", "marketing": "sales/marketing", "none": "other/not specified",
    "other": "other/not specified", "programmer": "programmer", "retired": "retired",
    "salesman": "sales/marketing", "scientist": "scientist", "student": "student",
    "technician": "technician/engineer", "writer": "writer",
}
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)

RATING_COLUMNS = {
    "user_id": np.str_,
    "movie_id": np.str_,
    "movie_title": np.str_,
    "movie_genres": object,
    "timestamp": np.int64,
    "user_rating": np.float32,
}
DEMOGRAPHIC_COLUMNS = {
    "bucketized_user_age": np.float32,
    "user_gender": np.bool_,
    "user_occupation_label": np.int64,
    "user_occupation_text": np.str_,
    "user_zip_code": np.str_,
}
RAW_AGE_COLUMNS = {"raw_user_age": np.float32}
MOVIE_COLUMNS = {"movie_id": np.str_, "movie_title": np.str_, "movie_genres": object, "imdb_id": np.str_}


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown MovieLens variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    return variant


def rating_columns(variant: str) -> dict[str, object]:
    """Column name -> dtype of the ratings table for `variant`, in TFDS's feature set."""
    columns = dict(RATING_COLUMNS)
    if check_variant(variant) in ("100k", "1m"):
        columns.update(DEMOGRAPHIC_COLUMNS)
    if variant == "100k":
        columns.update(RAW_AGE_COLUMNS)
    return columns


def user_feature_columns(variant: str) -> list[str]:
    """Columns that describe a user (constant across that user's rows)."""
    return [c for c in rating_columns(variant) if c.startswith(("user_", "bucketized_", "raw_")) and c != "user_rating"]


def bucketize_age(age: np.ndarray) -> np.ndarray:
    """Exact ages -> the ML-1M/TFDS age buckets (lowest age of each range)."""
    buckets = np.asarray(AGE_BUCKETS)
    return buckets[np.searchsorted(buckets, np.asarray(age), side="right") - 1].astype(np.float32)


def genre_labels(names) -> tuple[int, ...]:
    """Genre names as written in the files -> TFDS label ints."""
    labels = []
    for name in names:
        name = GENRE_ALIASES.get(name, name)
        if name not in GENRE_INDEX:
            raise ValueError(f"unknown genre {name!r}; known genres: {', '.join(GENRES)}")
        labels.append(GENRE_INDEX[name])
    return tuple(labels)
