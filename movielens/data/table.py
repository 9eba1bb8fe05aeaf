"""`MovieLensData`: the ratings and movies tables in the TFDS schema, whatever the source."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from movielens.data import schema


@dataclasses.dataclass
class MovieLensData:
    """One MovieLens variant in the TFDS schema (see `movielens.data.schema`).

    Attributes:
      variant: "100k", "1m", "20m", "25m" or "latest-small".
      source: where it came from ("local:<path>", "tfds", "registry:recbole==1.2.1", "synthetic").
      ratings: one row per rating, columns `schema.rating_columns(variant)`, in file order.
      movies: one row per movie of the variant (rated or not), columns `schema.MOVIE_COLUMNS`.
    """

    variant: str
    source: str
    ratings: pd.DataFrame
    movies: pd.DataFrame

    @property
    def users(self) -> pd.DataFrame:
        """One row per user with the user's feature columns."""
        return self.ratings[schema.user_feature_columns(self.variant)].drop_duplicates("user_id").reset_index(drop=True)

    def summary(self) -> dict[str, object]:
        ratings = self.ratings
        return {
            "variant": self.variant,
            "source": self.source,
            "ratings": int(len(ratings)),
            "users": int(ratings["user_id"].nunique()),
            "movies_rated": int(ratings["movie_id"].nunique()),
            "movies_in_catalogue": int(len(self.movies)),
            "mean_rating": round(float(ratings["user_rating"].mean()), 4) if len(ratings) else None,
            "first_timestamp": int(ratings["timestamp"].min()) if len(ratings) else None,
            "last_timestamp": int(ratings["timestamp"].max()) if len(ratings) else None,
        }


def make_movies(movie_id, movie_title, genre_names, imdb_id=None) -> pd.DataFrame:
    """Builds the movies table; `genre_names` is an iterable of iterables of genre names."""
    movie_id = pd.Series(movie_id).astype(str).str.strip().to_numpy(dtype=object)
    titles = pd.Series(movie_title).astype(str).str.strip().to_numpy(dtype=object)
    genres = [schema.genre_labels(names) for names in genre_names]
    imdb = [""] * len(movie_id) if imdb_id is None else list(imdb_id)
    movies = pd.DataFrame({"movie_id": movie_id, "movie_title": titles, "imdb_id": imdb})
    movies.insert(2, "movie_genres", pd.Series(genres, dtype=object))
    if movies["movie_id"].duplicated().any():
        dup = movies.loc[movies["movie_id"].duplicated(), "movie_id"].iloc[0]
        raise ValueError(f"movie id {dup!r} appears twice in the movies file")
    return movies


# Columns held as pandas Categoricals of str: integer codes, the text of each distinct id or title kept once.
CATEGORICAL_COLUMNS = ("user_id", "movie_id", "movie_title")
_DENSE_ID_LIMIT = 1 << 26  # integer ids up to this are mapped with lookup arrays, larger ones by hashing


def string_categorical(values) -> pd.Categorical:
    """`values` (ints, strings, or a Categorical) as a Categorical of str in canonical form: its categories are
    exactly the values present, sorted as text ("10" < "9", as `np.sort` orders the strings), so sorting by
    the codes is sorting by the text. A canonical Categorical is returned as is.

    Vectorised: one pass over the values; only the distinct values become Python strings.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.array
    if isinstance(values, pd.Categorical):
        categories = values.categories
        codes = values.codes
        if categories.dtype == object and categories.is_monotonic_increasing and _all_used(codes, len(categories)):
            return values
        return categorical_from_codes(codes, np.asarray(categories, dtype=object))
    array = np.asarray(values)
    if array.dtype.kind in "iu" and len(array) and 0 <= array.min() and array.max() < _DENSE_ID_LIMIT:
        present = np.bincount(array) > 0
        uniques = np.flatnonzero(present)
        text = uniques.astype(str).astype(object)
        order = np.argsort(text, kind="stable")
        code_of = np.zeros(len(present), np.int32)
        code_of[uniques[order]] = np.arange(len(uniques), dtype=np.int32)
        return pd.Categorical.from_codes(code_of[array], pd.Index(text[order], dtype=object), validate=False)
    codes, uniques = pd.factorize(array)
    return categorical_from_codes(codes, np.asarray(uniques, dtype=object))


def _all_used(codes: np.ndarray, n: int) -> bool:
    return n == 0 or bool(_used(codes, n).all())


def _used(codes: np.ndarray, n: int) -> np.ndarray:
    """[n] bool: category i has a row (code -1, missing, is ignored)."""
    seen = np.zeros(n + 1, bool)
    seen[codes] = True  # -1 marks the extra last slot
    return seen[:n]


def categorical_from_codes(codes: np.ndarray, labels: np.ndarray) -> pd.Categorical:
    """Codes into `labels` (any values; -1 = missing) -> the canonical Categorical of their text."""
    used = np.flatnonzero(_used(codes, len(labels)))
    text = np.asarray([label if isinstance(label, str) else str(label) for label in labels[used]], dtype=object)
    categories, inverse = np.unique(text, return_inverse=True)  # sorted; equal texts merge
    code_of = np.full(len(labels) + 1, -1, np.int32)  # the last slot: code -1 stays -1
    code_of[used] = inverse.astype(np.int32)
    return pd.Categorical.from_codes(code_of[codes], pd.Index(categories, dtype=object), validate=False)


def tuple_categorical(values) -> pd.Categorical:
    """Genre tuples as a Categorical (each distinct tuple held once, integer codes per row)."""
    if isinstance(values, pd.Series):
        values = values.array
    if isinstance(values, pd.Categorical):
        return values
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return pd.Categorical.from_codes(codes, pd.Index(uniques, dtype=object, tupleize_cols=False), validate=False)


def prune_categories(column: pd.Series) -> pd.Series:
    """A categorical column without the categories no row uses (after filtering rows), the others in their
    order (a canonical column stays canonical); other columns unchanged."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column
    values = column.array
    categories, codes = values.categories, values.codes
    used = _used(codes, len(categories))
    if used.all():
        return column
    kept = np.flatnonzero(used)
    code_of = np.full(len(categories) + 1, -1, np.int32)
    code_of[kept] = np.arange(len(kept), dtype=np.int32)
    pruned = pd.Categorical.from_codes(code_of[codes], categories[kept], validate=False)
    return pd.Series(pruned, index=column.index, name=column.name)


def rows_in_catalogue(ids: pd.Series, catalogue: pd.Series) -> np.ndarray:
    """Position of each of `ids` in `catalogue` (its str ids), -1 where absent; integer ids by lookup array."""
    values = ids.array if isinstance(ids, pd.Series) else ids
    keys = np.asarray(catalogue, dtype=object)
    if isinstance(values, pd.Categorical):
        where = pd.Index(keys).get_indexer(np.asarray(values.categories).astype(str).astype(object))
        where = np.r_[where, -1]  # code -1 (missing) -> -1
        return where[values.codes]
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values):
        numbers = pd.to_numeric(pd.Series(keys, dtype=object), errors="coerce").to_numpy(np.float64, na_value=np.nan)
        canonical = np.isfinite(numbers) & (numbers >= 0) & (numbers < _DENSE_ID_LIMIT)
        integers = np.where(canonical, numbers, 0).astype(np.int64)
        canonical &= integers.astype(str).astype(object) == keys  # "7", not "07" or "7.0"
        if values.min() >= 0 and values.max() < _DENSE_ID_LIMIT:
            lookup = np.full(max(int(values.max()), int(integers.max(initial=0))) + 1, -1, np.int64)
            lookup[integers[canonical]] = np.flatnonzero(canonical)  # movie ids are unique
            return lookup[values]
        return pd.Index(integers[canonical]).get_indexer(values) if canonical.any() else np.full(len(values), -1)
    return pd.Index(keys).get_indexer(pd.Series(values, dtype=object).astype(str).to_numpy(dtype=object))


def movie_columns(movies: pd.DataFrame, movie_pos: np.ndarray) -> dict[str, pd.Categorical]:
    """The movie columns of ratings of the catalogue rows `movie_pos` (all valid positions into `movies`):
    canonical Categoricals of `movie_id` and `movie_title` (`string_categorical`'s form) and a Categorical
    of the `movie_genres` tuples. Per column one gather over the ratings; the rest is per movie."""
    rated = np.flatnonzero(_used(movie_pos, len(movies)))  # catalogue rows with ratings
    columns = {}
    for name in ("movie_id", "movie_title", "movie_genres"):
        values = movies[name].to_numpy(dtype=object)[rated]
        if name == "movie_genres":
            inverse, uniques = pd.factorize(values)
            categories = pd.Index(uniques, dtype=object, tupleize_cols=False)
        else:
            text = np.asarray([v if isinstance(v, str) else str(v) for v in values], dtype=object)
            uniques, inverse = np.unique(text, return_inverse=True)  # sorted as text; repeated titles merge
            categories = pd.Index(uniques, dtype=object)
        code_of_row = np.full(len(movies), -1, np.int32)
        code_of_row[rated] = inverse
        columns[name] = pd.Categorical.from_codes(code_of_row[movie_pos], categories, validate=False)
    return columns


def assemble(variant: str, source: str, ratings: pd.DataFrame, movies: pd.DataFrame, users: pd.DataFrame | None):
    """Joins raw ratings (user_id, movie_id, user_rating, timestamp) with movies and users.

    Ids may be integers (the GroupLens parser's) or strings. Vectorised: movie and user attributes are
    gathered by integer position; `user_id`, `movie_id` and `movie_title` become Categoricals
    (`string_categorical`), `movie_genres` a Categorical of genre tuples (`movie_columns`).
    """
    schema.check_variant(variant)
    movie_pos = rows_in_catalogue(ratings["movie_id"], movies["movie_id"])
    if (movie_pos < 0).any():
        missing = np.asarray(ratings["movie_id"])[np.flatnonzero(movie_pos < 0)[0]]
        raise ValueError(f"ratings refer to movie id {str(missing)!r}, which the movies file does not have")
    frame = {
        "user_id": string_categorical(ratings["user_id"]),
        **movie_columns(movies, movie_pos),
        "timestamp": ratings["timestamp"].to_numpy(dtype=np.int64),
        "user_rating": ratings["user_rating"].to_numpy(dtype=np.float32),
    }
    columns = schema.rating_columns(variant)
    if users is not None and "user_gender" in columns:
        user_pos = rows_in_catalogue(frame["user_id"], users["user_id"].astype(str))
        if (user_pos < 0).any():
            missing = frame["user_id"][int(np.flatnonzero(user_pos < 0)[0])]
            raise ValueError(f"ratings refer to user id {missing!r}, which the users file does not have")
        for column in columns:
            if column in users.columns and column != "user_id":
                frame[column] = users[column].to_numpy()[user_pos]
    return MovieLensData(variant, source, conform(frame, variant, canonical=True), movies.reset_index(drop=True))


def conform(frame, variant: str, canonical: bool = False) -> pd.DataFrame:
    """Checks the columns (a DataFrame or a dict of arrays) against the schema and casts them to its dtypes:
    `CATEGORICAL_COLUMNS` to canonical Categoricals of str, `movie_genres` to a Categorical of tuples, other
    text columns to object.

    Args:
      canonical: the caller built the Categoricals canonical (`movie_columns`, `string_categorical`): they are
        taken as they are, without another pass over the rows.
    """
    columns = schema.rating_columns(variant)
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"{variant} ratings lack columns {missing}")
    out = {}
    for name, dtype in columns.items():
        if name in CATEGORICAL_COLUMNS:
            values = frame[name]
            trusted = canonical and isinstance(values, pd.Categorical)
            out[name] = pd.Series(values if trusted else string_categorical(values), copy=False)
            continue
        if name == "movie_genres":
            out[name] = pd.Series(tuple_categorical(frame[name]), copy=False)
            continue
        values = np.asarray(frame[name])
        if dtype in (np.str_, object):
            # Plain object columns: pandas' inferred Arrow strings cost ~0.1 s per million cells to build.
            out[name] = pd.Series(values if values.dtype == object else values.astype(object), dtype=object)
        else:
            out[name] = pd.Series(values.astype(dtype, copy=False))
    return pd.DataFrame(out, copy=False)
