"""The processed-data cache under `datasets/processed/`, stored with `tf.data.Dataset.save`.

Layout of one entry (`<variant>-<source key>-s<schema version>/`):
  ratings/   tf.data snapshot: batches of (user_pos, movie_pos, timestamp, user_rating)
  tables/    tf.data snapshot, one element: the per-user columns ("users/...", one row per
             user) and the movies ("movies/...": id, title, imdb id, padded genre labels)
  meta.json  counts and the schema version, written last: an entry without it is partial

Each `Dataset.save` costs about a second however small, hence two snapshots, not three.

Ratings are stored normalised (integer positions into the users and movies
tables) so a cached load decodes a few thousand strings, not millions. The entry
is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data import schema
from movielens.data.table import MovieLensData, conform
from movielens.io import CorruptFileError, atomic_directory, atomic_write_json, read_json, remove_directory

log = logging.getLogger(__name__)
BATCH_ROWS = 1 << 16


class CorruptCacheError(RuntimeError):
    """A cache entry exists but is partial or unreadable."""


def entry_dir(cache_dir: Path, variant: str, source_key: str) -> Path:
    return Path(cache_dir) / "processed" / f"{variant}-{source_key}-s{schema.SCHEMA_VERSION}"


def _save(path: Path, columns: dict[str, np.ndarray], batched: bool = True) -> None:
    import tensorflow as tf

    if batched:
        dataset = tf.data.Dataset.from_tensor_slices(columns).batch(BATCH_ROWS)
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
    users = data.users
    user_pos = pd.Index(users["user_id"]).get_indexer(ratings["user_id"]).astype(np.int32)
    movie_pos = pd.Index(movies["movie_id"]).get_indexer(ratings["movie_id"]).astype(np.int32)
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
        tables = {f"users/{c}": _tensorable(users[c]) for c in users.columns}
        tables.update({
            "movies/movie_id": _tensorable(movies["movie_id"]),
            "movies/movie_title": _tensorable(movies["movie_title"]),
            "movies/imdb_id": _tensorable(movies["imdb_id"]),
            "movies/movie_genres": genres,
        })
        _save(tmp / "tables", tables, batched=False)
        atomic_write_json(tmp / "meta.json", {
            "schema_version": schema.SCHEMA_VERSION, "variant": data.variant, "source": data.source,
            "ratings": len(ratings), "users": len(users), "movies": len(movies),
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
    genre_rows = [tuple(int(g) for g in row if g >= 0) for row in movies.pop("movie_genres")]
    movies_frame = pd.DataFrame(movies)
    movies_frame.insert(2, "movie_genres", pd.Series(genre_rows, dtype=object))
    movies_frame = movies_frame[list(schema.MOVIE_COLUMNS)]
    user_pos, movie_pos = ratings["user_pos"], ratings["movie_pos"]
    frame = {
        "user_id": users["user_id"][user_pos],
        "movie_id": movies_frame["movie_id"].to_numpy(dtype=object)[movie_pos],
        "movie_title": movies_frame["movie_title"].to_numpy(dtype=object)[movie_pos],
        "movie_genres": movies_frame["movie_genres"].to_numpy(dtype=object)[movie_pos],
        "timestamp": ratings["timestamp"],
        "user_rating": ratings["user_rating"],
    }
    for name, values in users.items():
        if name != "user_id":
            frame[name] = values[user_pos]
    return MovieLensData(variant, meta["source"], conform(frame, variant), movies_frame)


def remove(cache_dir: Path, variant: str, source_key: str) -> None:
    """Deletes an entry (renamed away first, so a concurrent reader sees it whole or not at all)."""
    remove_directory(entry_dir(cache_dir, variant, source_key))
