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

from movielens.data import grouplens, schema
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


# ---------------------------------------------------------------- GroupLens-shaped data at any scale


@dataclasses.dataclass(frozen=True)
class GroupLensShape:
    """The size of one GroupLens release, which `generate_grouplens` reproduces (or scales).

    Attributes:
      n_ratings: ratings in the file; no (user, movie) pair repeats.
      n_users: users, ids 1..n_users, each with at least `min_user_ratings` ratings.
      n_movies: movies in the catalogue (the movies file); `n_rated_movies` of them have a rating.
      max_movie_id: catalogue ids are drawn from 1..max_movie_id (sparse from ML-20M on).
      first_timestamp, last_timestamp: the time range of the ratings.
    """

    n_ratings: int
    n_users: int
    n_movies: int
    n_rated_movies: int
    max_movie_id: int
    first_timestamp: int
    last_timestamp: int
    min_user_ratings: int = 20


# The real releases' counts (latest-small: the 2018 snapshot).
GROUPLENS_SHAPES = {
    "100k": GroupLensShape(100_000, 943, 1_682, 1_682, 1_682, 874_724_710, 893_286_638),
    "1m": GroupLensShape(1_000_209, 6_040, 3_883, 3_706, 3_952, 956_703_932, 1_046_454_590),
    "20m": GroupLensShape(20_000_263, 138_493, 27_278, 26_744, 131_262, 789_652_009, 1_427_784_002),
    "25m": GroupLensShape(25_000_095, 162_541, 62_423, 59_047, 209_171, 789_652_009, 1_574_327_703),
    "latest-small": GroupLensShape(100_836, 610, 9_742, 9_724, 193_609, 828_124_615, 1_537_799_250),
}
# Share of each rating value, as in ML-25M (half stars) and ML-1M (whole stars).
HALF_STAR_SHARES = (0.0157, 0.0311, 0.0160, 0.0656, 0.0505, 0.1959, 0.1271, 0.2656, 0.0880, 0.1445)
WHOLE_STAR_SHARES = (0.056, 0.108, 0.261, 0.349, 0.226)
# Genres each layout's files can name (ML-100K's u.item has 19 flag columns; ML-1M 18 genres).
LAYOUT_GENRES = {
    "100k": ("Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
             "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
             "Western"),
    "1m": ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
           "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"),
}
LAYOUT_GENRES["20m"] = LAYOUT_GENRES["25m"] = LAYOUT_GENRES["latest-small"] = (
    *LAYOUT_GENRES["1m"], "IMAX", "(no genres listed)")
_TITLE_WORDS = (
    "Love", "Night", "Dark", "Last", "Man", "Woman", "City", "Story", "Day", "War", "King", "Girl", "Boy", "Dead",
    "Life", "Time", "House", "Blood", "Star", "Heart", "Road", "Game", "World", "Street", "Summer", "Winter",
    "Dream", "River", "Secret", "Lost", "Black", "White", "Red", "Blue", "Big", "Little", "Wild", "Lady", "Ghost",
    "Shadow", "Fire", "Water", "Moon", "Sun", "Island", "Mountain", "Hotel", "Train", "Money", "Family",
    "Brother", "Sister", "Father", "Mother", "Angel", "Devil", "Storm", "Kiss", "Murder", "Mystery", "Return",
    "Revenge", "Escape", "Journey", "Hunter", "Soldier", "Doctor", "Captain", "Queen", "Prince", "Empire",
    "Garden", "Paradise", "Circus", "Jazz", "Rock", "Machine", "Robot", "Planet", "Ocean", "Desert", "Forest",
    "Amélie", "Misérables", "Niño", "Señorita", "Cité", "Café", "Noël", "Élan",
)


def grouplens_shape(variant: str = "25m", n_ratings: int | None = None) -> GroupLensShape:
    """The shape of `variant`, scaled to `n_ratings` ratings when given.

    Scaling keeps the ratings per user (users ∝ ratings) and grows the catalogue with the square root of
    the ratings, e.g. 1,000,000 ratings shaped like ML-25M: 6,502 users, 12,485 movies.
    """
    shape = GROUPLENS_SHAPES[schema.check_variant(variant)]
    if n_ratings is None or n_ratings == shape.n_ratings:
        return shape
    if n_ratings < 1:
        raise ValueError(f"n_ratings must be at least 1, got {n_ratings}")
    factor = n_ratings / shape.n_ratings
    n_users = max(1, min(round(shape.n_users * factor), n_ratings))
    n_movies = max(2, round(shape.n_movies * min(1.0, factor) ** 0.5))
    n_rated = max(1, min(round(shape.n_rated_movies * min(1.0, factor) ** 0.5), n_movies, n_ratings))
    return dataclasses.replace(shape, n_ratings=int(n_ratings), n_users=n_users, n_movies=n_movies,
                               n_rated_movies=n_rated,
                               max_movie_id=max(n_movies, round(shape.max_movie_id * n_movies / shape.n_movies)))


@dataclasses.dataclass
class GroupLensTables:
    """The raw tables of one GroupLens release, as its files hold them (integer ids).

    Attributes:
      variant: the layout the tables follow ("100k", "1m", "20m", "25m", "latest-small").
      ratings: columns user_id, movie_id (int32), user_rating (float32), timestamp (int64), in file order
        (by user, then movie).
      movies: columns movie_id (int64), movie_title (str), movie_genres (tuple of TFDS genre labels),
        imdb_id ("tt0000001"), in id order.
      users: 100k and 1m only (else None): columns user_id (int64), age (int, exact age for 100k,
        the age bucket for 1m), gender ("M"/"F"), occupation (the layout's text), zip_code (str).
    """

    variant: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame | None = None

    def to_data(self) -> MovieLensData:
        """The tables in the TFDS schema, as `load_movielens` would return them after reading the files."""
        movies = make_movies(self.movies["movie_id"].astype(str), self.movies["movie_title"],
                             [[schema.GENRES[g] for g in labels] for labels in self.movies["movie_genres"]],
                             None if self.variant in ("100k", "1m") else self.movies["imdb_id"])  # links.csv
        users = None
        if self.users is not None:
            users = _users_frame(self.variant, self.users)
        return assemble(self.variant, "synthetic", self.ratings, movies, users)


def _users_frame(variant: str, users: pd.DataFrame) -> pd.DataFrame:
    """`GroupLensTables.users` -> the loader's users frame (demographics in the TFDS encoding)."""
    age = users["age"].to_numpy(np.float32)
    if variant == "100k":
        label = users["occupation"].map(schema.OCCUPATIONS_100K)
        return grouplens.users_frame(users["user_id"].astype(str), age, users["gender"], users["occupation"], label,
                           users["zip_code"], True)
    label = users["occupation"].replace({"K-12 student": "student", "college/grad student": "student"})
    return grouplens.users_frame(users["user_id"].astype(str), age, users["gender"], users["occupation"], label,
                       users["zip_code"], False)


def generate_grouplens(variant: str = "25m", n_ratings: int | None = None, seed: int = 0,
                       shape: GroupLensShape | None = None) -> GroupLensTables:
    """A data set shaped like GroupLens release `variant`, vectorised (no Python loop per rating or user).

    ML-25M's full size (25,000,095 ratings, 162,541 users, 59,047 rated of 62,423 movies) takes about a
    minute and ~3 GB; 1M ratings about two seconds. The data is random, with the real releases' shape:
    - per-user counts log-normal (median ~70, a long tail) with at least `min_user_ratings`, capped at
      60% of the rated movies, summing to exactly `n_ratings`; no (user, movie) pair repeats;
    - movie popularity Zipf-like (weight ∝ 1 / (rank + 50), thinned past rank 10,000): the top 1% of
      movies hold about half the ratings, every one of the `n_rated_movies` has at least one;
    - ratings from a movie quality + user bias + noise, cut to the release's rating shares (half stars
      for 20m / 25m / latest-small);
    - per-user strictly increasing timestamps (a user rates in a burst or over years), within the
      release's time range; sparse catalogue ids from ML-20M on; titles "Words (Year)" (some Latin-1
      letters), 1-3 genres per movie; demographics for 100k and 1m.

    Args:
      variant: the release to imitate, one of `schema.VARIANTS`.
      n_ratings: scale to this many ratings (`grouplens_shape`); default: the release's own count.
      shape: overrides the shape altogether.
    """
    shape = shape or grouplens_shape(variant, n_ratings)
    rng = np.random.default_rng(seed)
    movie_ids = _catalogue_ids(rng, shape)
    rated = np.sort(rng.choice(shape.n_movies, shape.n_rated_movies, replace=False))  # catalogue rows
    counts = _user_counts(rng, shape)
    rank = np.arange(1, shape.n_rated_movies + 1, dtype=np.float64)
    popularity = 1.0 / (rank + 50.0) / (1.0 + rank / 10_000.0) ** 2
    popularity = popularity[rng.permutation(shape.n_rated_movies)]  # which movie is how popular: random
    users, items = _distinct_pairs(rng, counts, popularity)
    items = _cover_every_movie(rng, items, shape.n_rated_movies)
    timestamps = _timestamps(rng, counts, shape)  # increasing per user, in draw order (random movie order)
    ratings = _ratings(rng, users, items, shape.n_users, shape.n_rated_movies, variant)
    movie_rows = rated[items]
    order = np.lexsort((movie_rows, users))  # file order: by user, then movie (as ML-20M / ML-25M)
    frame = pd.DataFrame({
        "user_id": (users[order] + 1).astype(np.int32),
        "movie_id": movie_ids[movie_rows[order]].astype(np.int32),
        "user_rating": ratings[order],
        "timestamp": timestamps[order],
    })
    movies = _movies(rng, movie_ids, variant)
    users_table = _users(rng, shape.n_users, variant) if variant in ("100k", "1m") else None
    return GroupLensTables(variant, frame, movies, users_table)


def _catalogue_ids(rng, shape: GroupLensShape) -> np.ndarray:
    if shape.max_movie_id <= shape.n_movies:
        return np.arange(1, shape.n_movies + 1, dtype=np.int64)
    others = rng.choice(np.arange(2, shape.max_movie_id + 1), shape.n_movies - 1, replace=False)
    return np.sort(np.r_[1, others]).astype(np.int64)


def _user_counts(rng, shape: GroupLensShape) -> np.ndarray:
    """Ratings per user: `min_user_ratings` + a log-normal share, summing to exactly `n_ratings`."""
    n_users, total = shape.n_users, shape.n_ratings
    cap = max(1, min(shape.n_rated_movies, max(int(0.6 * shape.n_rated_movies), -(-total // n_users))))
    floor = min(shape.min_user_ratings, total // n_users, cap)
    if n_users * cap < total:
        raise ValueError(f"{total:,} ratings do not fit {n_users:,} users x {shape.n_rated_movies:,} movies")
    weight = rng.lognormal(0.0, 1.39, n_users)
    counts = np.full(n_users, floor, np.int64)
    for _ in range(50):  # hand out what is left in proportion to the weights; capped users drop out
        left = total - int(counts.sum())
        open_ = counts < cap
        if left == 0 or not open_.any():
            break
        quota = np.where(open_, weight, 0.0) / weight[open_].sum() * left
        extra = np.floor(quota).astype(np.int64)
        remainder = quota - extra
        extra[np.argsort(-remainder, kind="stable")[: left - int(extra.sum())]] += 1  # largest remainders
        counts = np.minimum(counts + extra, cap)
    return counts


def _distinct_pairs(rng, counts: np.ndarray, popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user u draws counts[u] distinct items by `popularity`, in rounds: every round draws what a user
    still lacks (more for users whose last draws were mostly repeats), drops repeats, keeps draw order.

    Returns (users, items), grouped by user, each user's items in draw order.
    """
    n_users, n_items = len(counts), len(popularity)
    cdf = np.cumsum(popularity / popularity.sum())
    need = counts.astype(np.int64).copy()
    fresh_rate = np.ones(n_users)
    held: list[np.ndarray] = []  # sorted keys user * n_items + item already drawn
    kept: list[np.ndarray] = []  # keys in draw order
    for round_ in range(200):
        active = np.flatnonzero(need > 0)
        if not len(active):
            break
        uniform = round_ >= 60  # the last few items of a heavy user: uniformly among the rest
        draws = np.ceil(need[active] / np.maximum(fresh_rate[active], 0.01) * 1.2).astype(np.int64) + 2
        draws = np.minimum(draws, 4 * n_items)
        users = np.repeat(active, draws)
        if uniform:
            items = rng.integers(0, n_items, len(users))
        else:
            items = np.minimum(np.searchsorted(cdf, rng.random(len(users)), side="right"), n_items - 1)
        keys, first = np.unique(users * n_items + items, return_index=True)
        for done in held:  # repeats of earlier rounds
            at = np.minimum(np.searchsorted(done, keys), len(done) - 1)
            new = done[at] != keys
            keys, first = keys[new], first[new]
        keys = keys[np.argsort(first, kind="stable")]  # draw order; users stay contiguous
        owner = keys // n_items
        fresh = np.bincount(owner, minlength=n_users)
        fresh_rate[active] = np.maximum(fresh[active] / draws, 1e-3)
        starts = np.r_[0, np.flatnonzero(owner[1:] != owner[:-1]) + 1]
        rank = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
        keys = keys[rank < need[owner]]
        need -= np.bincount(keys // n_items, minlength=n_users)
        if len(keys):
            kept.append(keys)
            held.append(np.sort(keys))
    if need.any():  # pragma: no cover - only for shapes where a user rates nearly every movie
        raise RuntimeError(f"could not draw distinct movies for {int((need > 0).sum())} users")
    keys = np.concatenate(kept)
    keys = keys[np.argsort(keys // n_items, kind="stable")]  # group by user, draw order within
    return (keys // n_items).astype(np.int64), (keys % n_items).astype(np.int64)


def _cover_every_movie(rng, items: np.ndarray, n_items: int) -> np.ndarray:
    """Gives each never-drawn item one rating, taken from a movie with several (each donor movie keeps one).

    No (user, movie) pair can repeat: nobody has rated a never-drawn item.
    """
    missing = np.flatnonzero(np.bincount(items, minlength=n_items) == 0)
    if not len(missing):
        return items
    keepers = np.unique(items, return_index=True)[1]  # each drawn movie's first rating stays
    donors = np.ones(len(items), bool)
    donors[keepers] = False
    donors = np.flatnonzero(donors)
    if len(donors) < len(missing):  # pragma: no cover - more movies than ratings: grouplens_shape prevents it
        raise ValueError(f"{len(items):,} ratings cannot cover {n_items:,} rated movies")
    items = items.copy()
    items[rng.choice(donors, len(missing), replace=False)] = missing
    return items


def _timestamps(rng, counts: np.ndarray, shape: GroupLensShape) -> np.ndarray:
    """Strictly increasing times per user: a start and gaps of at least a second, in the release's range."""
    n_users = len(counts)
    span_total = shape.last_timestamp - shape.first_timestamp
    # A user's active span: from a sitting (an hour) to most of the release's range, log-uniform.
    span = np.exp(rng.uniform(np.log(3_600), np.log(max(span_total * 0.8, 3_601)), n_users))
    span = np.minimum(np.maximum(span, 30.0 * counts), span_total - counts)
    gap_scale = span / np.maximum(counts, 1)
    user = np.repeat(np.arange(n_users), counts)
    extra = np.floor(rng.exponential(1.0, len(user)) * (gap_scale[user] - 1)).astype(np.int64)  # gap - 1 s
    ends = np.cumsum(counts)
    total = np.add.reduceat(extra, ends - counts) if len(extra) else np.zeros(n_users, np.int64)
    # Squeeze the rare user whose gaps overrun the range (gaps stay >= 1 s: still strictly increasing).
    squeeze = np.minimum(1.0, (span_total - counts) / np.maximum(total, 1))
    extra = np.floor(extra * squeeze[user]).astype(np.int64)
    elapsed = np.cumsum(extra + 1)
    elapsed -= np.repeat(elapsed[ends - 1] - np.add.reduceat(extra + 1, ends - counts), counts)  # per user
    latest_start = np.maximum(shape.last_timestamp - elapsed[ends - 1], shape.first_timestamp)
    start = shape.first_timestamp + np.floor(rng.random(n_users) * (latest_start - shape.first_timestamp + 1))
    return (np.repeat(start.astype(np.int64), counts) + elapsed - 1).astype(np.int64)


def _ratings(rng, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, variant: str) -> np.ndarray:
    """Movie quality + user bias + noise, cut at the quantiles that give the release's rating shares."""
    latent = (rng.normal(0.0, 0.6, n_items)[items] + rng.normal(0.0, 0.4, n_users)[users]
              + rng.normal(0.0, 0.8, len(users)))
    half = variant in ("20m", "25m", "latest-small")
    shares = np.asarray(HALF_STAR_SHARES if half else WHOLE_STAR_SHARES)
    values = np.arange(1, len(shares) + 1) * (0.5 if half else 1.0)
    sample = latent if len(latent) <= 1_000_000 else rng.choice(latent, 1_000_000, replace=False)
    cuts = np.quantile(sample, np.cumsum(shares)[:-1] / shares.sum())
    return values[np.searchsorted(cuts, latent)].astype(np.float32)


def _movies(rng, movie_ids: np.ndarray, variant: str) -> pd.DataFrame:
    """Titles "Words (Year)" (a few ", The" and Latin-1 letters) and 1-3 genres per movie."""
    n = len(movie_ids)
    words = np.asarray(_TITLE_WORDS, dtype=object)
    title = pd.Series(words[rng.integers(0, len(words), n)], dtype=object)
    second = rng.random(n) < 0.7
    title[second] = title[second] + " " + words[rng.integers(0, len(words), int(second.sum()))]
    the = rng.random(n) < 0.1
    title[the] = title[the] + ", The"
    years = np.clip(2019 - np.floor(rng.exponential(18.0, n)).astype(int), 1902, 2019)
    title = title + " (" + pd.Series(years.astype(str), dtype=object) + ")"
    names = LAYOUT_GENRES[variant]
    labels = np.asarray([schema.GENRE_INDEX[name] for name in names])
    main = np.asarray([name not in ("Unknown", "(no genres listed)", "IMAX") for name in names])
    weight = np.where(main, 1.0, 0.0)
    weight[[names.index(g) for g in ("Drama", "Comedy")]] = 4.0
    keys = np.log(np.where(weight > 0, weight, 1e-12))[None, :] + rng.gumbel(size=(n, len(names)))
    order = np.argsort(-keys, axis=1)
    how_many = rng.choice([1, 2, 3], n, p=[0.45, 0.35, 0.2])
    none = "(no genres listed)" if "(no genres listed)" in names else "Unknown"
    no_genre = rng.random(n) < 0.05
    genres = []
    for row, k, empty in zip(order, how_many, no_genre):  # per movie (tens of thousands), not per rating
        genres.append((schema.GENRE_INDEX[none],) if empty else tuple(sorted(labels[row[:k]].tolist())))
    return pd.DataFrame({"movie_id": movie_ids, "movie_title": title.to_numpy(dtype=object),
                         "movie_genres": pd.Series(genres, dtype=object),
                         "imdb_id": [f"tt{i:07d}" for i in rng.choice(9_999_999, n, replace=False) + 1]})


def _users(rng, n_users: int, variant: str) -> pd.DataFrame:
    if variant == "100k":
        age = rng.integers(7, 74, n_users)
        occupations = np.asarray(sorted(schema.OCCUPATIONS_100K), dtype=object)
    else:
        age = np.asarray(schema.AGE_BUCKETS)[rng.integers(0, len(schema.AGE_BUCKETS), n_users)]
        occupations = np.asarray(schema.OCCUPATIONS_1M, dtype=object)
    zips = pd.Series(rng.integers(0, 100_000, n_users)).astype(str).str.zfill(5)
    return pd.DataFrame({"user_id": np.arange(1, n_users + 1, dtype=np.int64), "age": age,
                         "gender": np.where(rng.random(n_users) < 0.71, "M", "F").astype(object),
                         "occupation": occupations[rng.integers(0, len(occupations), n_users)],
                         "zip_code": zips.to_numpy(dtype=object)})


# ---------------------------------------------------------------- writers, one per GroupLens layout

LAYOUTS = ("100k", "1m", "20m", "25m", "latest-small")
_WRITE_ROWS = 1 << 21  # ratings rows per chunk written


def write_grouplens(data: MovieLensData, folder: Path, layout: str) -> Path:
    """Writes `data` (the TFDS schema) as the GroupLens files of `layout` into `folder`.

    Layouts: "100k" (u.data, u.item, u.user), "1m" (ratings.dat, movies.dat, users.dat), and "20m", "25m",
    "latest-small" (ratings.csv, movies.csv, links.csv). Writing 100k or 1m needs the user columns.
    """
    ratings = pd.DataFrame({"user_id": data.ratings["user_id"], "movie_id": data.ratings["movie_id"],
                            "user_rating": data.ratings["user_rating"], "timestamp": data.ratings["timestamp"]})
    users = None
    if layout in ("100k", "1m"):
        if "user_gender" not in data.ratings.columns:
            raise ValueError(f"the {layout} layout has a users file: {data.variant} data has no user columns")
        frame = data.users
        age = frame["raw_user_age"] if layout == "100k" and "raw_user_age" in frame else frame["bucketized_user_age"]
        users = pd.DataFrame({"user_id": frame["user_id"], "age": age.to_numpy().astype(np.int64),
                              "gender": np.where(frame["user_gender"].to_numpy(bool), "M", "F").astype(object),
                              "occupation": frame["user_occupation_text"],
                              "occupation_label": frame["user_occupation_label"], "zip_code": frame["user_zip_code"]})
    return write_tables(GroupLensTables(data.variant, ratings, data.movies, users), folder, layout)


def write_tables(tables: GroupLensTables, folder: Path, layout: str) -> Path:
    """Writes raw tables (`generate_grouplens`, or `write_grouplens`'s) as the files of `layout`; vectorised,
    the ratings in chunks (ML-25M's 25M ratings: ~15 s with pyarrow, ~1 min with pandas alone)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    movies, ratings = tables.movies, tables.ratings
    movie_id = movies["movie_id"].astype(str).to_numpy(dtype=object)
    title = pd.Series(movies["movie_title"].to_numpy(dtype=object), dtype=object)
    genres = list(movies["movie_genres"])
    if layout == "100k":
        names = LAYOUT_GENRES["100k"]
        flags = _genre_flags(genres, names).astype(str).astype(object)
        text = _joined([movie_id, title, "01-Jan-1995", "", "http://example.invalid", *flags.T], "|")
        (folder / "u.item").write_bytes(text.encode("latin-1"))
        users = _users_for(tables, layout)
        (folder / "u.user").write_text(_joined([users["user_id"].astype(str), users["age"].astype(str),
                                                users["gender"], users["occupation"],
                                                users["zip_code"].astype(str)], "|"))
        _write_ratings(folder / "u.data", ratings, "\t", None, whole_stars=True)
    elif layout == "1m":
        def genre_text(labels):
            return "|".join("Children's" if schema.GENRES[g] == "Children" else schema.GENRES[g] for g in labels)

        text = _joined([movie_id, title, pd.Series([genre_text(g) for g in genres], dtype=object)], "::")
        (folder / "movies.dat").write_bytes(text.encode("latin-1"))
        users = _users_for(tables, layout)
        codes = {text: i for i, text in enumerate(schema.OCCUPATIONS_1M)}
        code = users["occupation"].map(codes)
        if code.isna().any():  # 100k-style texts: their TFDS label's 1m code (lossy, like the real data)
            by_label = users.get("occupation_label", pd.Series(np.zeros(len(users), np.int64)))
            fallback = pd.Series(np.asarray(schema.OCCUPATIONS, dtype=object)[by_label.to_numpy(np.int64)])
            code = code.fillna(fallback.map(codes).fillna(0))
        (folder / "users.dat").write_text(_joined([users["user_id"].astype(str), users["gender"],
                                                   users["age"].astype(str), code.astype(np.int64).astype(str),
                                                   users["zip_code"].astype(str)], "::"))
        _write_ratings(folder / "ratings.dat", ratings, "::", None, whole_stars=True)
    else:
        pd.DataFrame({"movieId": movie_id, "title": title,
                      "genres": ["|".join(schema.GENRES[g] for g in labels) for labels in genres]}
                     ).to_csv(folder / "movies.csv", index=False)
        imdb = pd.Series(movies["imdb_id"].to_numpy(dtype=object), dtype=object).str[2:]
        pd.DataFrame({"movieId": movie_id, "imdbId": imdb, "tmdbId": movie_id}).to_csv(folder / "links.csv",
                                                                                        index=False)
        _write_ratings(folder / "ratings.csv", ratings, ",", grouplens.CSV_RATINGS_HEADER, whole_stars=False)
    return folder


def _users_for(tables: GroupLensTables, layout: str) -> pd.DataFrame:
    if tables.users is None:
        raise ValueError(f"the {layout} layout has a users file: these {tables.variant} tables have no users")
    return tables.users


def _joined(columns, sep: str) -> str:
    """Columns (arrays, Series or one string for all rows) -> lines, one row each (vectorised concatenation)."""
    n = next(len(c) for c in columns if not isinstance(c, str))
    line = pd.Series(np.asarray(columns[0], dtype=object), dtype=object)
    for column in columns[1:]:
        line = line + sep + (column if isinstance(column, str) else np.asarray(column, dtype=object))
    return "".join((line + "\n").tolist()) if n else ""


def _genre_flags(genres, names) -> np.ndarray:
    """[n_movies, len(names)] 0/1: movie m has genre names[j]."""
    column_of = np.full(len(schema.GENRES), -1)
    column_of[[schema.GENRE_INDEX[n] for n in names]] = np.arange(len(names))
    lengths = np.fromiter((len(g) for g in genres), np.int64, len(genres))
    labels = np.fromiter((g for labels in genres for g in labels), np.int64, int(lengths.sum()))
    rows = np.repeat(np.arange(len(genres)), lengths)
    flags = np.zeros((len(genres), len(names)), np.int64)
    known = column_of[labels] >= 0
    flags[rows[known], column_of[labels[known]]] = 1
    return flags


def _rating_texts(ratings: np.ndarray, whole_stars: bool) -> tuple[np.ndarray, np.ndarray]:
    """(codes, texts): each rating as text ("4" in the whole-star files, "3.5" / "4.0" in the csv ones)."""
    values, codes = np.unique(np.asarray(ratings, np.float32), return_inverse=True)
    texts = [str(int(v)) if whole_stars else str(np.float32(v)) for v in values]
    return codes.astype(np.int32), np.asarray(texts, dtype=object)


def _write_ratings(path: Path, ratings: pd.DataFrame, sep: str, header: str | None, whole_stars: bool) -> None:
    codes, texts = _rating_texts(ratings["user_rating"].to_numpy(), whole_stars)
    columns = [_plain(ratings["user_id"]), _plain(ratings["movie_id"]), None,
               ratings["timestamp"].to_numpy(np.int64)]
    with open(path, "wb") as out:
        if header:
            out.write(header.encode() + b"\n")
        for start in range(0, len(ratings), _WRITE_ROWS):
            part = slice(start, start + _WRITE_ROWS)
            out.write(_csv_rows([c[part] if c is not None else None for c in columns], codes[part], texts, sep))


def _plain(column: pd.Series) -> np.ndarray:
    """An id column as integers when it holds integers, else as text."""
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return values
    return np.asarray(column.astype(str).to_numpy(dtype=object), dtype=object)


def _csv_rows(columns, rating_codes: np.ndarray, rating_texts: np.ndarray, sep: str) -> bytes:
    """Rows `user sep movie sep rating sep timestamp\\n` (pyarrow's C++ writer when installed, else pandas)."""
    single = sep if len(sep) == 1 else "\t"
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pyarrow comes with tensorflow-datasets
        frame = pd.DataFrame({"u": columns[0], "m": columns[1], "r": rating_texts[rating_codes], "t": columns[3]})
        raw = frame.to_csv(sep=single, header=False, index=False, lineterminator="\n").encode()
    else:
        rating = pa.DictionaryArray.from_arrays(pa.array(rating_codes), pa.array(rating_texts.tolist()))
        table = pa.table({"u": pa.array(columns[0]), "m": pa.array(columns[1]), "r": rating,
                          "t": pa.array(columns[3])})
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, delimiter=single,
                                                          quoting_style="none"))
        raw = sink.getvalue().to_pybytes()
    return raw.replace(single.encode(), sep.encode()) if single != sep else raw
