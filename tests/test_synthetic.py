"""The GroupLens-shaped generator at small scale, and its files read back through every layout's loader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movielens.data import load_movielens, rating_columns
from movielens.data.synthetic import (
    GROUPLENS_SHAPES,
    HALF_STAR_SHARES,
    LAYOUTS,
    GroupLensShape,
    generate_grouplens,
    grouplens_shape,
    write_grouplens,
    write_tables,
)

N_SMALL = 20_000


@pytest.fixture(scope="module")
def small_25m():
    return generate_grouplens("25m", n_ratings=N_SMALL, seed=3)


def test_the_shape_is_exact(small_25m):
    shape = grouplens_shape("25m", N_SMALL)
    ratings, movies = small_25m.ratings, small_25m.movies
    assert len(ratings) == shape.n_ratings == N_SMALL
    assert ratings["user_id"].nunique() == shape.n_users and ratings["user_id"].max() == shape.n_users
    assert len(movies) == shape.n_movies and ratings["movie_id"].nunique() == shape.n_rated_movies
    assert set(ratings["movie_id"]) <= set(movies["movie_id"])
    assert movies["movie_id"].is_unique and movies["movie_id"].max() <= shape.max_movie_id
    assert not ratings.duplicated(["user_id", "movie_id"]).any()
    assert ratings.groupby("user_id").size().min() >= shape.min_user_ratings
    # file order: by user, then movie (as ML-20M / ML-25M)
    assert (np.diff(ratings["user_id"].to_numpy().astype(np.int64) * 10**7 + ratings["movie_id"].to_numpy()) > 0).all()
    assert list(ratings.dtypes) == [np.int32, np.int32, np.float32, np.int64]


def test_the_full_ml100k_shape_is_reproduced():
    tables = generate_grouplens("100k")
    shape = GROUPLENS_SHAPES["100k"]
    assert (len(tables.ratings), tables.ratings["user_id"].nunique(), len(tables.movies),
            tables.ratings["movie_id"].nunique()) == (100_000, 943, 1_682, 1_682)
    assert tables.ratings["timestamp"].between(shape.first_timestamp, shape.last_timestamp).all()
    assert set(tables.ratings["user_rating"]) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(tables.users) == 943


def test_timestamps_increase_per_user_within_the_range(small_25m):
    ratings = small_25m.ratings
    shape = grouplens_shape("25m", N_SMALL)
    assert ratings["timestamp"].between(shape.first_timestamp, shape.last_timestamp).all()
    ordered = ratings.sort_values(["user_id", "timestamp"], kind="stable")
    same_user = ordered["user_id"].to_numpy()[1:] == ordered["user_id"].to_numpy()[:-1]
    assert (np.diff(ordered["timestamp"].to_numpy())[same_user] > 0).all()  # strictly: no two at one second
    # and not in movie order: the time order of a user's movies is not the file order
    assert not ratings.groupby("user_id")["timestamp"].is_monotonic_increasing.all()


def test_ratings_are_half_stars_in_the_release_shares(small_25m):
    ratings = small_25m.ratings["user_rating"].to_numpy()
    values, counts = np.unique(ratings, return_counts=True)
    assert values.tolist() == [0.5 * k for k in range(1, 11)]
    np.testing.assert_allclose(counts / counts.sum(), np.asarray(HALF_STAR_SHARES) / sum(HALF_STAR_SHARES),
                               atol=0.01)


def test_popularity_is_zipf_like_and_activity_long_tailed():
    ratings = generate_grouplens("25m", n_ratings=200_000, seed=1).ratings
    per_movie = np.sort(ratings["movie_id"].value_counts().to_numpy())[::-1]
    top_percent = per_movie[: len(per_movie) // 100].sum() / len(ratings)
    assert top_percent > 0.07  # the head: 1% of the movies hold ~11% (uniform popularity: 1%)
    assert np.median(per_movie) < per_movie.mean() / 2  # the tail: most movies have few ratings
    # log-log rank/frequency over the head is close to a line of slope about -1 (Zipf)
    ranks = np.arange(100, 2_000)
    slope = np.polyfit(np.log(ranks), np.log(per_movie[ranks]), 1)[0]
    assert -2.0 < slope < -0.5
    per_user = ratings.groupby("user_id").size()
    assert per_user.max() > 10 * per_user.median()


def test_generation_is_seeded():
    a, b = generate_grouplens("latest-small", seed=5), generate_grouplens("latest-small", seed=5)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    pd.testing.assert_frame_equal(a.movies, b.movies)
    assert not a.ratings.equals(generate_grouplens("latest-small", seed=6).ratings)


def test_scaled_shapes_stay_consistent():
    for n in (1, 50, 1_000, 1_000_000):
        shape = grouplens_shape("25m", n)
        assert 1 <= shape.n_users <= n and 1 <= shape.n_rated_movies <= min(shape.n_movies, n)
    assert grouplens_shape("25m", 1_000_000).n_users == 6_502
    assert grouplens_shape("25m") == GROUPLENS_SHAPES["25m"]
    tiny = generate_grouplens("25m", n_ratings=50)
    assert len(tiny.ratings) == 50 and not tiny.ratings.duplicated(["user_id", "movie_id"]).any()
    with pytest.raises(ValueError, match="do not fit"):
        generate_grouplens("25m", shape=GroupLensShape(100, 2, 10, 10, 10, 0, 10**9))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_round_trips_through_its_loader(tmp_path, layout):
    """Generated tables, written in the layout, load back to exactly what `to_data` builds in memory."""
    tables = generate_grouplens(layout, n_ratings=3_000, seed=2)
    folder = write_tables(tables, tmp_path / f"ml-{layout}", layout)
    loaded = load_movielens(layout, data_dir=folder, cache_dir=tmp_path / "datasets")
    expected = tables.to_data()
    assert list(loaded.ratings.columns) == list(rating_columns(layout))
    pd.testing.assert_frame_equal(loaded.ratings, expected.ratings)
    pd.testing.assert_frame_equal(loaded.movies, expected.movies)
    assert (loaded.ratings["user_id"].astype(int).to_numpy() == tables.ratings["user_id"].to_numpy()).all()
    if layout not in ("100k", "1m"):
        assert loaded.movies["imdb_id"].str.fullmatch(r"tt\d{7}").all()
    cached = load_movielens(layout, data_dir=folder, cache_dir=tmp_path / "datasets")
    pd.testing.assert_frame_equal(cached.ratings, loaded.ratings)


@pytest.mark.parametrize("layout", ["20m", "25m"])
def test_write_grouplens_writes_the_csv_layouts(synthetic, tmp_path, layout):
    data, _ = synthetic
    folder = write_grouplens(data, tmp_path / f"ml-{layout}", layout)
    assert sorted(p.name for p in folder.iterdir()) == ["links.csv", "movies.csv", "ratings.csv"]
    assert (folder / "ratings.csv").read_text().splitlines()[:2][0] == "userId,movieId,rating,timestamp"
    loaded = load_movielens(layout, data_dir=folder, cache_dir=tmp_path / "datasets")
    columns = list(rating_columns(layout))
    pd.testing.assert_frame_equal(loaded.ratings[columns], data.ratings[columns])
    assert list(loaded.movies["imdb_id"]) == list(data.movies["imdb_id"])


def test_writing_a_users_layout_needs_users(small_25m, tmp_path):
    with pytest.raises(ValueError, match="users file"):
        write_tables(small_25m, tmp_path / "x", "1m")
    with pytest.raises(ValueError, match="valid layouts"):
        write_tables(small_25m, tmp_path / "x", "10m")
