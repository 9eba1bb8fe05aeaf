"""The processed-data cache under `datasets/processed/`, stored with `tf.data.Dataset.save`.

Layout of one entry (`<variant>-<source key>-s<schema version>/`):
  ratings/   tf.data snapshot: batches of (user_pos, movie_pos, timestamp, user_rating)
  tables/    tf.data snapshot, one element: the per-user columns ("users/...", one row per
             user) and the movies ("movies/...": id, title, imdb id, padded genre labels)
  meta.json  counts and the schema version, written last: an entry without it is partial

Each `Dataset.save` costs about a second however small, hence two snapshots, not three.

Ratings are stored normalised (integer positions into the users and movies
tables: the users table is the sorted user ids, i.e. the categories of the
`user_id` column) so a cached load decodes a few hundred thousand strings, not
millions, and rebuilds the categorical columns from the positions (ML-25M:
~4 s). The entry is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data import schema
from movielens.data.table import (
    MovieLensData,
    conform,
    movie_columns,
    rows_in_catalogue,
    string_categorical,
)
from movielens.io import CorruptFileError, atomic_directory, atomic_write_json, read_json, remove_directory

log = logging.getLogger(__name__)
BATCH_ROWS = 1 << 16


class CorruptCacheError(RuntimeError):
    """A cache entry exists but is partial or unreadable."""


def entry_dir(cache_dir: Path, variant: str, source_key: str) -> Path:
    return Path(cache_dir) / "processed" / f"{variant}-{source_key}-s{schema.SCHEMA_VERSION}"


def _save(path: Path, columns: dict[str, np.ndarray], batched: bool = True) -> None:
    import tensorflow as tf

    if batched:  # batches cut here, not by tf.data: `from_tensor_slices(...).batch` costs ~4 µs a row (ML-25M: 100 s)
        rows = len(next(iter(columns.values())))
        whole = rows // BATCH_ROWS * BATCH_ROWS
        dataset = tf.data.Dataset.from_tensors({name: values[whole:] for name, values in columns.items()})
        if whole:
            full = tf.data.Dataset.from_tensor_slices(
                {name: values[:whole].reshape(-1, BATCH_ROWS, *values.shape[1:]) for name, values in columns.items()})
            dataset = full.concatenate(dataset) if rows > whole else full
    else:
        dataset = tf.data.Dataset.from_tensors(columns)
    dataset.save(str(path))


def _load(path: Path) -> dict[str, np.ndarray]:
    """The rows of a snapshot: batches concatenated (a one-element snapshot is one batch)."""
    import tensorflow as tf

    parts: dict[str, list[np.ndarray]] = {}
    for batch in tf.data.Dataset.load(str(path)).as_numpy_iterator():
        for name, values in batch.items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") for v in values], dtype=object)


def write(data: MovieLensData, cache_dir: Path, source_key: str) -> Path:
    """Writes `data` as a cache entry, atomically."""
    final = entry_dir(cache_dir, data.variant, source_key)
    ratings, movies = data.ratings, data.movies
    user = string_categorical(ratings["user_id"])  # users table = the categories, in order
    user_pos = np.asarray(user.codes, dtype=np.int32)
    users = {"user_id": np.asarray(user.categories, dtype=object)}
    user_columns = [c for c in schema.user_feature_columns(data.variant) if c != "user_id" and c in ratings]
    if user_columns:
        first = np.unique(user_pos, return_index=True)[1]  # each user's first rating row
        users.update({c: ratings[c].to_numpy()[first] for c in user_columns})
    movie_pos = rows_in_catalogue(ratings["movie_id"], movies["movie_id"]).astype(np.int32)
    width = max([len(g) for g in movies["movie_genres"]] + [1])
    genres = np.full((len(movies), width), -1, dtype=np.int64)
    for row, labels in enumerate(movies["movie_genres"]):
        genres[row, : len(labels)] = labels
    with atomic_directory(final, replace=False) as tmp:
        _save(tmp / "ratings", {
            "user_pos": user_pos, "movie_pos": movie_pos,
            "timestamp": ratings["timestamp"].to_numpy(np.int64),
            "user_rating": ratings["user_rating"].to_numpy(np.float32),
        })
        tables = {f"users/{c}": _tensorable(pd.Series(v)) for c, v in users.items()}
        tables.update({
            "movies/movie_id": _tensorable(movies["movie_id"]),
            "movies/movie_title": _tensorable(movies["movie_title"]),
            "movies/imdb_id": _tensorable(movies["imdb_id"]),
            "movies/movie_genres": genres,
        })
        _save(tmp / "tables", tables, batched=False)
        atomic_write_json(tmp / "meta.json", {
            "schema_version": schema.SCHEMA_VERSION, "variant": data.variant, "source": data.source,
            "ratings": len(ratings), "users": len(users["user_id"]), "movies": len(movies),
        })
    return final


def _tensorable(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    return values.astype(str).astype(object) if values.dtype == object or series.dtype == "str" else values


def read(cache_dir: Path, variant: str, source_key: str) -> MovieLensData | None:
    """Returns the cached data, None when there is no entry.

    Raises:
      CorruptCacheError: the entry is partial or unreadable.
    """
    path = entry_dir(cache_dir, variant, source_key)
    if not path.exists():
        return None
    try:
        meta = read_json(path / "meta.json")
        ratings = _load(path / "ratings")
        tables = _load(path / "tables")
        users = {k.split("/", 1)[1]: v for k, v in tables.items() if k.startswith("users/")}
        movies = {k.split("/", 1)[1]: v for k, v in tables.items() if k.startswith("movies/")}
    except (CorruptFileError, FileNotFoundError, ValueError, KeyError, OSError) as error:
        raise CorruptCacheError(f"cache entry {path} is unreadable: {error}") from error
    except Exception as error:  # tf.errors.* for truncated snapshot files
        raise CorruptCacheError(f"cache entry {path} is unreadable: {type(error).__name__}: {error}") from error
    counts = (len(ratings.get("user_pos", [])), len(users.get("user_id", [])), len(movies.get("movie_id", [])))
    expected = (meta.get("ratings"), meta.get("users"), meta.get("movies"))
    if meta.get("schema_version") != schema.SCHEMA_VERSION or counts != expected:
        raise CorruptCacheError(f"cache entry {path} is partial: counts {counts} do not match {meta}")
    for table in (users, movies):
        for name, values in table.items():
            if values.dtype == object:
                table[name] = _decode(values)
    user_pos, movie_pos = ratings["user_pos"], ratings["movie_pos"]
    if counts[0] and (user_pos.min() < 0 or user_pos.max() >= counts[1] or movie_pos.min() < 0
                      or movie_pos.max() >= counts[2]):
        raise CorruptCacheError(f"cache entry {path} is corrupt: positions outside the users or movies table")
    genre_rows = [tuple(g for g in row if g >= 0) for row in movies.pop("movie_genres").tolist()]
    movies_frame = pd.DataFrame(movies)
    movies_frame.insert(2, "movie_genres", pd.Series(genre_rows, dtype=object))
    movies_frame = movies_frame[list(schema.MOVIE_COLUMNS)]
    frame = {
        "user_id": string_categorical(pd.Categorical.from_codes(user_pos, pd.Index(users["user_id"], dtype=object))),
        **movie_columns(movies_frame, movie_pos),
        "timestamp": ratings["timestamp"],
        "user_rating": ratings["user_rating"],
    }
    for name, values in users.items():
        if name != "user_id":
            frame[name] = values[user_pos]
    return MovieLensData(variant, meta["source"], conform(frame, variant, canonical=True), movies_frame)


def remove(cache_dir: Path, variant: str, source_key: str) -> None:
    """Deletes an entry (renamed away first, so a concurrent reader sees it whole or not at all)."""
    remove_directory(entry_dir(cache_dir, variant, source_key))
