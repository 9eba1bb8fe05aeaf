"""Embedding CF rating model: recovers planted ratings and biases, saves/loads, canonical folds, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from experiments import recommend as recommend_cli
from experiments import run as run_cli
from movielens import embedding_plot, evaluation, rating, rating_data, schedules
from movielens.cli import flag_name as rating_flag
from movielens.data.splits import random_split
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens
from tests.conftest import RATING_SPEC, train_on_planted_ratings
from tests.contract import assert_cli_recommends_unseen, assert_recovers_planted_ratings, assert_reloads_identically

SPEC = RATING_SPEC
FAST = {"epochs": 20, "batch_size": 256, "learning_rate": 0.03, "patience": 3, "n_factors": 16,
        "weight_decay": 0.01, "bias_decay": 0.0005}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(data, truth, split, trained cf model) trained once for the module, in its own saved_models/."""
    data, truth, split, trained = train_on_planted_ratings(tmp_path_factory, cf=rating.default_config("cf", **FAST))
    return data, truth, split, trained["cf"]


def test_cf_recovers_planted_ratings_better_than_the_global_mean(planted):
    _, truth, split, trained = planted
    assert_recovers_planted_ratings(trained, split, truth)
    m = trained.metrics
    # Early stopping used the carved-out validation part, not the test part.
    assert m["n_validation"] == round(0.1 * len(split.train)) and m["n_test"] == len(split.test)
    assert m["best_epoch"] is not None and m["val_rmse"] == min(v for v in trained.history["val_rmse"] if v)


def test_biases_learn_per_user_offsets(planted):
    _, truth, _, trained = planted
    users = trained.vocabulary.user_ids.astype(int) - 1
    learned = trained.model.user_biases()[1:]
    assert np.corrcoef(learned, truth.user_bias[users])[0, 1] > 0.8
    movies = trained.vocabulary.movie_ids.astype(int) - 1
    assert np.corrcoef(trained.model.movie_biases()[1:], truth.movie_bias[movies])[0, 1] > 0.6


def test_unknown_ids_predict_from_biases_and_global_mean(planted):
    _, _, split, trained = planted
    model = trained.model
    global_rating = rating.predict_ratings(model, np.array([0]), np.array([0]))[0]
    assert abs(global_rating - split.train["user_rating"].mean()) < 0.35
    # An unknown user gets each movie's bias-only prediction: it still orders movies by their bias.
    movies = np.arange(1, trained.vocabulary.num_movies)
    for_unknown = rating.predict_ratings(model, np.zeros_like(movies), movies)
    assert np.corrcoef(for_unknown, model.movie_biases()[1:])[0, 1] > 0.99


def test_save_and_load_give_identical_predictions(planted, monkeypatch):
    data, _, split, trained = planted
    assert_reloads_identically(trained, data, split, monkeypatch)


def test_rating_ranking_matches_predicted_ratings(planted):
    """The family's scorer (query . candidate) orders a known user's movies by predicted rating."""
    from movielens.families.histories import Histories
    from movielens.families.rating import DotProductScorer

    _, _, split, trained = planted
    user_id = split.train["user_id"].iloc[0]
    scorer = DotProductScorer(trained.model, split.vocabulary, trained.config)
    scores = (scorer.queries(Histories.from_frame(split.train, split.vocabulary, [user_id]))
              @ scorer.candidates().T)[0]
    movies = np.arange(1, trained.vocabulary.num_movies)
    user = trained.vocabulary.encode_users([user_id])
    ratings = rating.predict_ratings(trained.model, np.repeat(user, len(movies)), movies)
    assert np.array_equal(np.argsort(-scores, kind="stable")[:10], np.argsort(-ratings, kind="stable")[:10])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="valid: cf, autorec"):
        rating.default_config("svd")
    with pytest.raises(ValueError, match="valid: one_cycle"):
        rating.default_config("cf", schedule="warm")
    with pytest.raises(ValueError, match="unknown RatingConfig keys"):
        rating.default_config("cf", factors=3)
    for flag, value in (("learning_rate", float("nan")), ("learning_rate", -1.0), ("epochs", 0),
                        ("batch_size", -5), ("validation_fraction", 0.7)):
        with pytest.raises(ValueError, match=f"--{rating_flag(flag)} must be"):
            rating.default_config("cf", **{flag: value})
    config = rating.default_config("autorec")
    assert config.patience == 20 and config.n_factors == 500
    assert rating.RatingConfig.from_dict(config.to_dict()) == config


def test_one_cycle_warms_up_then_anneals():
    schedule = schedules.OneCycle(0.01, total_steps=100)
    rates = np.array([float(schedule(step)) for step in range(101)])
    assert rates[0] == pytest.approx(0.01 / 25, rel=1e-5) and rates[25] == pytest.approx(0.01, rel=1e-5)
    assert np.all(np.diff(rates[:26]) > 0) and np.all(np.diff(rates[25:]) < 0)
    assert rates[100] == pytest.approx(0.01 / 1e4, rel=1e-3)


def test_fold_split_reads_canonical_files(tmp_path):
    data, _ = synthetic_movielens(SyntheticSpec())
    folder = write_grouplens(data, tmp_path / "ml-100k", "100k")
    ratings = data.ratings
    test_rows = np.arange(len(ratings)) % 5 == 0
    for part, rows in (("base", ~test_rows), ("test", test_rows)):
        frame = ratings[rows]
        (folder / f"u1.{part}").write_text("".join(f"{u}\t{m}\t{int(r)}\t{t}\n" for u, m, r, t in zip(
            frame["user_id"], frame["movie_id"], frame["user_rating"], frame["timestamp"])))
    split = rating_data.fold_split(data, folder, "u1")
    assert len(split.test) == test_rows.sum() and len(split.train) == (~test_rows).sum()
    assert split.validation_is_test and split.name == "u1"
    pd.testing.assert_frame_equal(split.test, ratings[test_rows].reset_index(drop=True))
    with pytest.raises(ValueError, match="valid folds: u1, u2"):
        rating_data.fold_split(data, folder, "u9")
    with pytest.raises(FileNotFoundError, match="u2.base"):
        rating_data.fold_split(data, folder, "u2")
    (folder / "u1.test").write_text("999\t1\t5\t0\n")
    with pytest.raises(ValueError, match="do not match"):
        rating_data.fold_split(data, folder, "u1")


def test_embedding_plot_pca_and_html(planted, tmp_path):
    data, truth, split, trained = planted
    xy = embedding_plot.pca_2d(np.c_[np.arange(10.0), np.zeros(10), np.arange(10.0) * 0.01])
    assert np.allclose(xy[:, 1], 0, atol=1e-9) and np.all(np.diff(xy[:, 0]) > 0)
    for colour in embedding_plot.COLOURS:
        figure = embedding_plot.embedding_figure(trained.vocabulary.movie_ids, trained.movie_vectors()[1:],
                                                 data.movies, split.train, colour)
        path = embedding_plot.write_embedding_plot(figure, f"test-{colour}", tmp_path)
        html = path.read_text()
        assert "plotly" in html and "Matrix, The" in html and len(html) > 1_000_000  # plotly.js inlined
    with pytest.raises(ValueError, match="valid: pca, tsne"):
        embedding_plot.project(np.zeros((3, 2)), "umap")


# ------------------------------------------------------------------------------------------------ CLI


CLI_FAST = ["--epochs", "4", "--batch_size", "512", "--n_factors", "8", "--quiet"]


def test_cli_trains_then_loads_and_recommends(rating_data_folder, capsys, isolated_caches):
    data, folder = rating_data_folder
    args = ["--model", "cf", "--data_dir", str(folder), *CLI_FAST]
    assert run_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[cf] its own protocol: test_rmse" in out and "| ease | baseline |" in out
    assert [line for line in out.splitlines() if line.startswith("| cf | rating |")][0].endswith("| trained |")
    assert list((isolated_caches / "reports").glob("run-cf-100k-random-*/embeddings-cf.html"))
    assert run_cli.main(args) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("| cf | rating |")][0].endswith("| loaded |")

    assert_cli_recommends_unseen(args, data, capsys)

    assert recommend_cli.main([*args, "--similar_to", "the matrix"]) == 0
    out = capsys.readouterr().out
    assert "who liked Matrix, The" in out and len([x for x in out.splitlines() if x[:4].strip(". ").isdigit()]) == 10

    # Bad input (with the trained model in place): one clear line, exit code 2.
    assert recommend_cli.main([*args, "--user_id", "99999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown user id '99999'") and "valid ids are 1..240" in err
    assert recommend_cli.main([*args, "--similar_to", "Matrx"]) == 2
    err = capsys.readouterr().err
    assert "unknown title 'Matrx'" in err and "Matrix, The" in err


def test_cli_bad_flags_are_one_clear_error(rating_data_folder, capsys):
    _, folder = rating_data_folder
    args = ["--model", "cf", "--data_dir", str(folder), *CLI_FAST]
    assert run_cli.main([*args, "--fold", "u1"]) == 2
    assert "no u1.base" in capsys.readouterr().err
    assert run_cli.main([*args, "--validation_fraction", "0.7"]) == 2
    assert "validation_fraction" in capsys.readouterr().err


@pytest.mark.real_data
def test_real_fold_files_map_onto_ml100k(shared_datasets):
    from movielens.data import load_movielens

    data = load_movielens("100k", data_dir=shared_datasets)
    split = rating_data.fold_split(data, shared_datasets / "ml-100k", "u1")
    assert (len(split.train), len(split.test)) == (80_000, 20_000)


def _train_planted(monkeypatch, tmp_path, epochs: int, **overrides):
    """cf on SPEC's planted data (random 80/20, seed 42), cached under tmp_path: (data, split, config, trained)."""
    monkeypatch.setenv("MOVIELENS_MODELS_DIR", str(tmp_path / "models"))
    data, _ = synthetic_movielens(SPEC)
    split = random_split(data, (0.8, 0.2), seed=42)
    config = rating.default_config("cf", **{**FAST, "epochs": epochs}, **overrides)
    return data, split, config, rating.train_or_load(config, data, split, verbose=0)


def test_implicit_feedback_variant_trains_and_reloads(monkeypatch, tmp_path):
    """SVD++ term: the user vector gains |N(u)|^-1/2 sum y_j over the user's fitting movies."""
    data, split, config, trained = _train_planted(monkeypatch, tmp_path, 15, implicit=True, refit_full=False)
    assert trained.metrics["test_rmse"] < 0.8 * trained.metrics["test_rmse_global_mean"]
    model = trained.model
    offsets = model._implicit_offsets().numpy()
    np.testing.assert_allclose(trained.user_vectors()[1:], model.user_vectors()[1:])
    np.testing.assert_allclose(trained.user_vectors()[1:] - offsets[1:], model.user_embedding.embeddings.numpy()[1:],
                               atol=1e-6)
    # Row u of the implicit matrix: 1/sqrt(|N(u)|) on exactly the movies u rated in the fitting part.
    parts = rating_data.rating_parts(split, config.validation_fraction, config.seed)
    dense = tf.sparse.to_dense(model.implicit).numpy()
    user = int(parts.fit.users[0])
    rated = np.unique(parts.fit.movies[parts.fit.users == user])
    assert set(np.flatnonzero(dense[user])) == set(rated)
    np.testing.assert_allclose(dense[user, rated], 1 / np.sqrt(len(rated)), rtol=1e-6)
    loaded = rating.train_or_load(config, data, split, verbose=0)
    test = rating_data.EncodedRatings.from_frame(split.test, trained.vocabulary)
    assert loaded.loaded
    np.testing.assert_array_equal(rating.predict_ratings(loaded.model, test.users, test.movies),
                                  rating.predict_ratings(model, test.users, test.movies))


def test_splits_with_their_own_validation_part_are_used_as_is(synthetic):
    from movielens.data.splits import temporal_split

    data, _ = synthetic
    split = temporal_split(data)
    parts = rating_data.rating_parts(split, 0.1, seed=42)
    assert len(parts.fit) == len(split.train) and len(parts.validation) == len(split.validation)
    assert len(parts.test) == len(split.test) and "its validation part" in parts.protocol
    carved = rating_data.rating_parts(random_split(data, (0.9, 0.1), seed=42), 0.1, seed=42)
    assert len(carved.fit) + len(carved.validation) == round(0.9 * len(data.ratings))
    assert "carved out of train" in carved.protocol


def test_refit_full_retrains_on_fit_plus_validation_for_the_early_stopped_epochs(monkeypatch, tmp_path):
    """refit_full: early stopping on the carve-out picks the epochs; a fresh model then fits fit + validation."""
    data, split, config, trained = _train_planted(monkeypatch, tmp_path, 15, refit_full=True, implicit=True)
    m = trained.metrics
    assert m["refit_epochs"] == m["best_epoch"] and m["best_epoch"] is not None
    assert m["n_refit"] == m["n_fit"] + m["n_validation"] == len(split.train)
    assert m["fit_mean_rating"] == pytest.approx(split.train["user_rating"].mean(), abs=1e-5)
    assert m["test_rmse"] < 0.8 * m["test_rmse_global_mean"] and "test_rmse_early_stopped" in m
    assert "refit on train" in m["protocol"]
    # The refit model has seen the validation ratings: its validation error falls below the early-stopped one's.
    parts = rating_data.rating_parts(split, config.validation_fraction, config.seed)
    val = rating.predict_ratings(trained.model, parts.validation.users, parts.validation.movies)
    assert evaluation.rmse(val, parts.validation.ratings)["rmse"] < m["val_rmse"]
    # The implicit term of the refit model covers every training rating of the user, validation included.
    train = parts.fit.concat(parts.validation)
    user = int(parts.validation.users[0])
    dense = tf.sparse.to_dense(trained.model.implicit).numpy()
    assert set(np.flatnonzero(dense[user])) == set(np.unique(train.movies[train.users == user]))
    loaded = rating.train_or_load(config, data, split, verbose=0)
    test = rating_data.EncodedRatings.from_frame(split.test, trained.vocabulary)
    assert loaded.loaded and loaded.metrics == m
    np.testing.assert_array_equal(rating.predict_ratings(loaded.model, test.users, test.movies),
                                  rating.predict_ratings(trained.model, test.users, test.movies))


def test_side_features_variant_exports_consistent_tables_and_reloads(monkeypatch, tmp_path):
    """cf + side features: user (age, gender, occupation) and genre vectors/biases join the user/movie side."""
    data, split, config, trained = _train_planted(monkeypatch, tmp_path, 10, side_features=True)
    assert trained.metrics["test_rmse"] < 0.8 * trained.metrics["test_rmse_global_mean"]
    model = trained.model
    user_side, movie_side = (tf.sparse.to_dense(m).numpy() for m in (model.user_side, model.movie_side))
    assert (user_side[1:].sum(axis=1) == 3).all() and user_side[0].sum() == 0  # one level of each user feature
    np.testing.assert_allclose(movie_side[1:].sum(axis=1)[movie_side[1:].sum(axis=1) > 0], 1.0, rtol=1e-6)
    # The exported tables (vectors + feature sums, biases + feature biases) reproduce the predicted ratings.
    users, movies = np.array([1, 2, 3, 0]), np.array([4, 5, 0, 6])
    logits = ((model.user_vectors()[users] * model.movie_vectors()[movies]).sum(axis=1) + model.user_biases()[users]
              + model.movie_biases()[movies] + model.global_bias.numpy())
    expected = config.y_min + (config.y_max - config.y_min) / (1 + np.exp(-logits))
    np.testing.assert_allclose(rating.predict_ratings(model, users, movies), expected, rtol=1e-5)
    assert np.abs(model.side_tables["movie"][1].embeddings.numpy()).sum() > 0  # the genre biases were trained
    loaded = rating.train_or_load(config, data, split, verbose=0)
    assert loaded.loaded
    np.testing.assert_array_equal(rating.predict_ratings(loaded.model, users, movies),
                                  rating.predict_ratings(model, users, movies))
    no_users = data.__class__(**{**data.__dict__, "ratings": data.ratings.drop(columns=["user_gender"])})
    with pytest.raises(ValueError, match="side_features needs the user columns"):
        rating_data.side_matrices(no_users, split.vocabulary)


def test_bad_title_or_user_fails_before_any_training(synthetic, tmp_path, monkeypatch, capsys):
    from experiments import recommend as recommend_cli
    from movielens import experiment
    from movielens.data.synthetic import write_grouplens

    folder = write_grouplens(synthetic[0], tmp_path / "ml-100k", "100k")
    monkeypatch.setattr(experiment, "train_or_load", lambda *a, **k: pytest.fail("trained before checking input"))
    base = ["--dataset", "100k", "--data_dir", str(folder), "--data_source", "local"]
    assert recommend_cli.main(["--model", "cf", "--similar_to", "Matrix (2099)", *base]) == 2
    assert "Closest matches: Matrix, The" in capsys.readouterr().err
    assert recommend_cli.main(["--model", "knn", "--user_id", "99999", *base]) == 2
    assert "valid ids are 1..60" in capsys.readouterr().err
