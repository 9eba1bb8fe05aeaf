"""MovieLens through TensorFlow Datasets (`movielens/<variant>-ratings`).

TFDS retries downloads for a long time when the network is down, so the
GroupLens host is probed first with a short connect timeout: an unreachable
host fails in seconds with a clear message instead of hanging.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data import schema
from movielens.data.table import MovieLensData, conform

GROUPLENS_HOST = ("files.grouplens.org", 443)
PROBE_TIMEOUT_S = 3.0


class TfdsUnavailableError(RuntimeError):
    """TFDS has no prepared copy and the download host is unreachable."""


def host_reachable(address=GROUPLENS_HOST, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def load(variant: str, cache_dir: Path) -> MovieLensData:
    import tensorflow_datasets as tfds

    data_dir = cache_dir / "tfds"
    ratings_name, movies_name = f"movielens/{variant}-ratings", f"movielens/{variant}-movies"
    try:
        prepared = tfds.builder(ratings_name, data_dir=str(data_dir)).is_prepared()
    except Exception as error:  # noqa: BLE001 - TFDS raises many kinds; all mean "not usable"
        raise TfdsUnavailableError(f"TFDS cannot build {ratings_name}: {error}") from error
    if not prepared and not host_reachable():
        raise TfdsUnavailableError(
            f"TFDS has no prepared {ratings_name} in {data_dir} and {GROUPLENS_HOST[0]} is unreachable")
    try:
        ratings = tfds.as_dataframe(tfds.load(ratings_name, split="train", data_dir=str(data_dir)))
        movies = tfds.as_dataframe(tfds.load(movies_name, split="train", data_dir=str(data_dir)))
    except Exception as error:  # noqa: BLE001 - download/extract errors of many kinds
        raise TfdsUnavailableError(f"TFDS could not provide {ratings_name}: {type(error).__name__}: {error}") from error
    for frame in (ratings, movies):
        for column in frame.columns:
            if frame[column].dtype == object and len(frame) and isinstance(frame[column].iloc[0], bytes):
                frame[column] = frame[column].str.decode("utf-8").str.strip()
        frame["movie_genres"] = [tuple(int(g) for g in genres) for genres in frame["movie_genres"]]
    movies["imdb_id"] = ""
    movies = movies[list(schema.MOVIE_COLUMNS)]
    ratings["timestamp"] = ratings["timestamp"].astype(np.int64)
    return MovieLensData(variant, "tfds", conform(ratings, variant), pd.DataFrame(movies).reset_index(drop=True))
