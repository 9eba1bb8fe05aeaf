"""I-AutoRec rating model: the paper's objective, planted ratings, fallbacks, exported tables, save/load, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from experiments import recommend as recommend_cli
from experiments import run as run_cli
from movielens import rating, rating_data
from movielens.models.autorec import ItemAutoRec, rating_matrix
from tests.conftest import train_on_planted_ratings
from tests.contract import (
    assert_cli_recommends_unseen,
    assert_recovers_planted_ratings,
    assert_reloads_identically,
)

FAST = {"n_factors": 32, "weight_decay": 10.0, "batch_size": 16, "learning_rate": 0.03, "epochs": 40, "patience": 5}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(data, truth, split, trained autorec) on the planted data, random 80/20 seed 42, trained once."""
    data, truth, split, trained = train_on_planted_ratings(tmp_path_factory,
                                                           autorec=rating.default_config("autorec", **FAST))
    return data, truth, split, trained["autorec"]


def test_rating_matrix_places_ratings_and_skips_the_unknown_slot():
    matrix = rating_matrix([1, 2, 0, 2], [3, 1, 2, 0], [4.0, 2.5, 5.0, 1.0], num_users=3, num_movies=4)
    expected = np.zeros((4, 3), np.float32)
    expected[3, 1], expected[1, 2] = 4.0, 2.5
    np.testing.assert_array_equal(matrix, expected)


def test_train_step_minimises_the_papers_objective():
    """Masked squared error on observed entries + (lambda/2)(|V|^2 + |W|^2), lambda shared over the batches."""
    rng = np.random.default_rng(0)
    ratings = np.where(rng.random((7, 5)) < 0.5, rng.integers(1, 6, (7, 5)), 0).astype(np.float32)
    ratings[0] = 0.0  # the unknown slot
    ratings[1:, 1:][np.all(ratings[1:, 1:] == 0, axis=1)] = 3.0  # every movie has a rating
    tf.keras.utils.set_random_seed(1)
    model = ItemAutoRec(ratings, n_factors=4, weight_decay=3.0)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    batch = np.array([2, 5, 6])
    V, mu = model.encoder.kernel.numpy(), model.encoder.bias.numpy()
    W, b = model.decoder.kernel.numpy(), model.decoder.bias.numpy()
    rows = ratings[batch]
    rebuilt = (1 / (1 + np.exp(-(rows @ V + mu)))) @ W + b
    observed = rows > 0
    squared_error = ((rebuilt - rows) ** 2)[observed].sum()
    penalty = 0.5 * 3.0 * (len(batch) / 6) * ((V ** 2).sum() + (W ** 2).sum())
    logs = model.train_step(tf.constant(batch))
    assert float(logs["loss"]) == pytest.approx((squared_error + penalty) / observed.sum(), rel=1e-5)
    assert float(logs["rmse"]) == pytest.approx(np.sqrt(squared_error / observed.sum()), rel=1e-5)


def test_autorec_recovers_planted_ratings_better_than_the_global_mean(planted):
    _, truth, split, trained = planted
    assert_recovers_planted_ratings(trained, split, truth)
    m = trained.metrics
    assert m["best_epoch"] is not None and m["refit_epochs"] == m["best_epoch"]


def test_untrained_users_and_movies_fall_back_to_the_movie_mean(planted):
    _, _, split, trained = planted
    model = trained.model
    fit = rating_data.EncodedRatings.from_frame(split.train, trained.vocabulary)
    movie = int(fit.movies[0])
    movie_mean = fit.ratings[fit.movies == movie].mean()
    unknown_user, unknown_movie = rating.predict_ratings(model, np.array([0, 0]), np.array([movie, 0]))
    assert unknown_user == pytest.approx(movie_mean, rel=1e-5)
    assert unknown_movie == pytest.approx(fit.ratings.mean(), rel=1e-5)
    predictions = rating.predict_ratings(model, fit.users, fit.movies)
    assert predictions.min() >= 1.0 and predictions.max() <= 5.0  # clipped to the fitting scale


def test_exported_tables_give_the_predictions(planted):
    """Prediction = clip(user vector . movie vector + user bias): the KNN index and ranking read these tables."""
    _, _, split, trained = planted
    test = rating_data.EncodedRatings.from_frame(split.test, trained.vocabulary)
    known = (test.users > 0) & (test.movies > 0)
    users, movies = test.users[known], test.movies[known]
    model = trained.model
    scores = (np.sum(model.user_vectors()[users] * model.movie_vectors()[movies], axis=1)
              + model.user_biases()[users] + model.movie_biases()[movies])
    np.testing.assert_allclose(rating.predict_ratings(model, users, movies), np.clip(scores, 1, 5), atol=1e-4)
    assert not model.user_vectors()[0].any() and not model.movie_vectors()[0].any()


def test_save_and_load_give_identical_predictions(planted, monkeypatch):
    data, _, split, trained = planted
    assert_reloads_identically(trained, data, split, monkeypatch)


def test_cf_only_terms_are_rejected():
    with pytest.raises(ValueError, match="implicit is a cf option"):
        rating.default_config("autorec", implicit=True)
    with pytest.raises(ValueError, match="side_features is a cf option"):
        rating.default_config("autorec", side_features=True)


def test_cli_trains_then_loads_and_recommends(rating_data_folder, capsys, isolated_caches):
    data, folder = rating_data_folder
    args = ["--model", "autorec", "--data_dir", str(folder), "--epochs", "3", "--n_factors", "16", "--quiet"]
    assert run_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[autorec] its own protocol: test_rmse" in out and "| autorec | rating |" in out
    assert run_cli.main(args) == 0
    assert "| loaded |" in capsys.readouterr().out
    assert_cli_recommends_unseen(args, data, capsys)
    assert recommend_cli.main([*args, "--user_id", "99999"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown user id '99999'")
