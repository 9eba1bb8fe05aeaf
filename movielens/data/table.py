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


def assemble(variant: str, source: str, ratings: pd.DataFrame, movies: pd.DataFrame, users: pd.DataFrame | None):
    """Joins raw ratings (user_id, movie_id, user_rating, timestamp) with movies and users.

    Vectorised: movie and user attributes are gathered by integer position, and
    `movie_genres` cells share one tuple object per movie.
    """
    schema.check_variant(variant)
    frame = {
        "user_id": ratings["user_id"].astype(str).to_numpy(dtype=object),
        "movie_id": ratings["movie_id"].astype(str).to_numpy(dtype=object),
    }
    movie_pos = pd.Index(movies["movie_id"]).get_indexer(frame["movie_id"])
    if (movie_pos < 0).any():
        missing = frame["movie_id"][movie_pos < 0][0]
        raise ValueError(f"ratings refer to movie id {missing!r}, which the movies file does not have")
    frame["movie_title"] = movies["movie_title"].to_numpy(dtype=object)[movie_pos]
    frame["movie_genres"] = movies["movie_genres"].to_numpy(dtype=object)[movie_pos]
    frame["timestamp"] = ratings["timestamp"].to_numpy(dtype=np.int64)
    frame["user_rating"] = ratings["user_rating"].to_numpy(dtype=np.float32)
    columns = schema.rating_columns(variant)
    if users is not None and "user_gender" in columns:
        user_pos = pd.Index(users["user_id"].astype(str)).get_indexer(frame["user_id"])
        if (user_pos < 0).any():
            missing = frame["user_id"][user_pos < 0][0]
            raise ValueError(f"ratings refer to user id {missing!r}, which the users file does not have")
        for column in columns:
            if column in users.columns and column != "user_id":
                frame[column] = users[column].to_numpy()[user_pos]
    return MovieLensData(variant, source, conform(frame, variant), movies.reset_index(drop=True))


def conform(frame, variant: str) -> pd.DataFrame:
    """Checks the columns (a DataFrame or a dict of arrays) against the schema and casts them to its dtypes."""
    columns = schema.rating_columns(variant)
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"{variant} ratings lack columns {missing}")
    out = {}
    for name, dtype in columns.items():
        values = np.asarray(frame[name])
        if dtype in (np.str_, object):
            # Plain object columns: pandas' inferred Arrow strings cost ~0.1 s per million cells to build.
            out[name] = pd.Series(values if values.dtype == object else values.astype(object), dtype=object)
        else:
            out[name] = pd.Series(values.astype(dtype, copy=False))
    return pd.DataFrame(out, copy=False)
