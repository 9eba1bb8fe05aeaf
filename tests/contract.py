"""Shared checks of the rating models' tests (the contract every family passes is tests/test_families.py)."""

from __future__ import annotations

import numpy as np

from movielens import rating, rating_data
from movielens.recommender import UserHistory


def assert_reloads_identically(trained, data, split, monkeypatch) -> None:
    """Loading `trained` from its saved_models/ gives the same metrics and bit-identical test predictions."""
    monkeypatch.setenv("MOVIELENS_MODELS_DIR", str(trained.model_dir.path.parent))
    loaded = rating.train_or_load(trained.config, data, split, verbose=0)
    assert loaded.loaded and loaded.metrics == trained.metrics
    test = rating_data.EncodedRatings.from_frame(split.test, trained.vocabulary)
    np.testing.assert_array_equal(rating.predict_ratings(loaded.model, test.users, test.movies),
                                  rating.predict_ratings(trained.model, test.users, test.movies))


def assert_cli_recommends_unseen(args, data, capsys, user: str = "7", k: int = 5) -> None:
    """`experiments.recommend <args> --user_id` prints k titles, none of them a movie the user rated anywhere
    in the data (train, validation or test)."""
    from experiments import recommend as recommend_cli

    assert recommend_cli.main([*args, "--user_id", user, "--k", str(k)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert len(lines) == k
    history = UserHistory(data.ratings)
    seen_titles = set(data.movies.set_index("movie_id").loc[history.seen_movies(user), "movie_title"])
    assert not any(line.split(". ", 1)[1].rsplit("  [", 1)[0] in seen_titles for line in lines)


def assert_recovers_planted_ratings(trained, split, truth) -> None:
    """Test RMSE under 0.8x the global mean's, and against the noiseless planted rating under 0.6x the mean's."""
    from movielens import evaluation

    m = trained.metrics
    assert m["test_rmse"] < 0.8 * m["test_rmse_global_mean"], m
    test = rating_data.EncodedRatings.from_frame(split.test, trained.vocabulary)
    predicted = rating.predict_ratings(trained.model, test.users, test.movies)
    users = split.test["user_id"].astype(int).to_numpy() - 1
    movies = split.test["movie_id"].astype(int).to_numpy() - 1
    expected = np.clip(truth.expected_rating[users, movies], 1, 5)
    model_error = evaluation.rmse(predicted, expected)["rmse"]
    mean_error = evaluation.rmse(np.full(len(expected), split.train["user_rating"].mean()), expected)["rmse"]
    assert model_error < 0.6 * mean_error, (model_error, mean_error)
