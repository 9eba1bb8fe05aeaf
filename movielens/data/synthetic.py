"""Small synthetic MovieLens-shaped data with planted structure, and writers for the GroupLens layouts.

The planted structure, which tests can check a model recovers:
- users and movies fall into `n_clusters` taste clusters; a user rates movies of
  their own cluster with probability `in_cluster_prob` (retrieval signal);
- ratings = global mean + user bias + movie bias + 1.0 if same cluster, plus
  noise, rounded and clipped to 1..5 (rating signal);
- each user's ratings come in time order through their cluster's movies in a
  fixed cyclic order (sequence signal: the next movie follows from the last).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data import schema
from movielens.data.table import MovieLensData, assemble, make_movies

LATIN1_TITLES = ("Cité des enfants perdus, La", "Misérables, Les", "Amélie", "Niño, El", "Señorita Extraviada")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    n_users: int = 60
    n_movies: int = 40
    ratings_per_user: int = 15
    n_clusters: int = 4
    in_cluster_prob: float = 0.9
    noise: float = 0.3
    seed: int = 0


@dataclasses.dataclass
class PlantedTruth:
    user_cluster: np.ndarray   # [n_users] int, indexed by user number - 1
    movie_cluster: np.ndarray  # [n_movies] int
    user_bias: np.ndarray      # [n_users] float
    movie_bias: np.ndarray     # [n_movies] float
    expected_rating: np.ndarray  # [n_users, n_movies] noiseless rating before rounding


def synthetic_movielens(
    spec: SyntheticSpec = SyntheticSpec(), variant: str = "100k"
) -> tuple[MovieLensData, PlantedTruth]:
    """Builds a MovieLens-shaped data set in the TFDS schema of `variant`."""
    rng = np.random.default_rng(spec.seed)
    user_cluster = rng.integers(0, spec.n_clusters, spec.n_users)
    movie_cluster = np.arange(spec.n_movies) % spec.n_clusters
    user_bias = rng.normal(0, 0.5, spec.n_users)
    movie_bias = rng.normal(0, 0.4, spec.n_movies)
    expected = 3.0 + user_bias[:, None] + movie_bias[None, :] + (user_cluster[:, None] == movie_cluster[None, :])
    rows = []
    start_time = 880_000_000
    for user in range(spec.n_users):
        own = np.flatnonzero(movie_cluster == user_cluster[user])
        other = np.flatnonzero(movie_cluster != user_cluster[user])
        offset = rng.integers(0, len(own))
        seen: set[int] = set()
        for step in range(min(spec.ratings_per_user, spec.n_movies)):
            if rng.random() < spec.in_cluster_prob and len(seen.intersection(own)) < len(own):
                movie = own[(offset + len(seen.intersection(own))) % len(own)]
            else:
                choices = [m for m in other if m not in seen] or [m for m in own if m not in seen]
                movie = rng.choice(choices)
            seen.add(int(movie))
            rating = np.clip(np.round(expected[user, movie] + rng.normal(0, spec.noise)), 1, 5)
            rows.append((str(user + 1), str(movie + 1), float(rating), start_time + user * 10_000 + step * 60))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "user_rating", "timestamp"])
    titles = [
        f"{LATIN1_TITLES[m] if m < len(LATIN1_TITLES) else f'Movie {m + 1}'} ({1980 + m % 20})"
        for m in range(spec.n_movies)
    ]
    titles[min(5, spec.n_movies - 1)] = f"Matrix, The ({1980 + min(5, spec.n_movies - 1) % 20})"
    genre_names = [[schema.GENRES[c % 17], schema.GENRES[(c + 3) % 17]] for c in movie_cluster]
    movies = make_movies([str(m + 1) for m in range(spec.n_movies)], titles, genre_names,
                         [f"tt{m + 1:07d}" for m in range(spec.n_movies)])
    # Each layout has its own occupation texts; the TFDS label is shared.
    occupations = list(schema.OCCUPATIONS_1M) if variant == "1m" else sorted(schema.OCCUPATIONS_100K)
    to_label = {**{o: o for o in schema.OCCUPATIONS_1M}, "K-12 student": "student",
                "college/grad student": "student", **schema.OCCUPATIONS_100K}
    ages = rng.integers(15, 70, spec.n_users)
    users = pd.DataFrame({
        "user_id": [str(u + 1) for u in range(spec.n_users)],
        "bucketized_user_age": schema.bucketize_age(ages),
        "raw_user_age": ages.astype(np.float32),
        "user_gender": rng.random(spec.n_users) < 0.5,
        "user_occupation_text": [occupations[u % len(occupations)] for u in range(spec.n_users)],
        "user_zip_code": [f"{10000 + u}" for u in range(spec.n_users)],
    })
    users["user_occupation_label"] = [schema.OCCUPATION_INDEX[to_label[o]] for o in users["user_occupation_text"]]
    data = assemble(variant, "synthetic", ratings, movies, users)
    return data, PlantedTruth(user_cluster, movie_cluster, user_bias, movie_bias, expected)


def write_grouplens(data: MovieLensData, folder: Path, layout: str) -> Path:
    """Writes `data` in a GroupLens layout ("100k", "1m" or "latest-small") into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings, movies, users = data.ratings, data.movies, data.users
    if layout == "100k":
        names = ("Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                 "Thriller", "War", "Western")
        lines = []
        for movie_id, title, genres in zip(movies["movie_id"], movies["movie_title"], movies["movie_genres"]):
            flags = ["1" if schema.GENRE_INDEX[n] in genres else "0" for n in names]
            lines.append("|".join([movie_id, title, "01-Jan-1995", "", "http://example.invalid", *flags]))
        (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
        (folder / "u.user").write_text("".join(
            f"{u.user_id}|{int(u.raw_user_age)}|{'M' if u.user_gender else 'F'}|{u.user_occupation_text}|"
            f"{u.user_zip_code}\n" for u in users.itertuples()))
        (folder / "u.data").write_text("".join(
            f"{r.user_id}\t{r.movie_id}\t{int(r.user_rating)}\t{r.timestamp}\n" for r in ratings.itertuples()))
    elif layout == "1m":
        def genre_text(labels):
            return "|".join("Children's" if schema.GENRES[g] == "Children" else schema.GENRES[g] for g in labels)
        (folder / "movies.dat").write_bytes("".join(
            f"{m}::{t}::{genre_text(g)}\n" for m, t, g in
            zip(movies["movie_id"], movies["movie_title"], movies["movie_genres"])).encode("latin-1"))
        codes = {text: i for i, text in enumerate(schema.OCCUPATIONS_1M)}
        (folder / "users.dat").write_text("".join(
            f"{u.user_id}::{'M' if u.user_gender else 'F'}::{int(u.bucketized_user_age)}::"
            # 100k-style occupation texts fall back to their TFDS label's 1m code (lossy, like real data)
            f"{codes.get(u.user_occupation_text, codes.get(schema.OCCUPATIONS[u.user_occupation_label], 0))}::"
            f"{u.user_zip_code}\n"
            for u in users.itertuples()))
        (folder / "ratings.dat").write_text("".join(
            f"{r.user_id}::{r.movie_id}::{int(r.user_rating)}::{r.timestamp}\n" for r in ratings.itertuples()))
    elif layout == "latest-small":
        frame = pd.DataFrame({"movieId": movies["movie_id"], "title": movies["movie_title"],
                              "genres": ["|".join(schema.GENRES[g] for g in gs) for gs in movies["movie_genres"]]})
        frame.to_csv(folder / "movies.csv", index=False)
        pd.DataFrame({"movieId": movies["movie_id"], "imdbId": [i[2:] for i in movies["imdb_id"]],
                      "tmdbId": movies["movie_id"]}).to_csv(folder / "links.csv", index=False)
        pd.DataFrame({"userId": ratings["user_id"], "movieId": ratings["movie_id"], "rating": ratings["user_rating"],
                      "timestamp": ratings["timestamp"]}).to_csv(folder / "ratings.csv", index=False)
    else:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: 100k, 1m, latest-small")
    return folder
