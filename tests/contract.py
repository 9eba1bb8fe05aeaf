"""Contract tests every recommender passes (LensKit style): subclass and implement `build`.

    class TestMyModelContract(RecommenderContract):
        def build(self, data, split, tmp_path, reload=False):
            ...train (or, with reload=True, load what the first call saved under tmp_path)...
            return recommender

`data` and `split` come from the synthetic fixture (random 80/20 split).
"""

from __future__ import annotations

import numpy as np
import pytest

from movielens import rating, rating_data
from movielens.data.splits import random_split
from movielens.recommender import UnknownUserError, UserHistory


class RecommenderContract:
    k = 5

    def build(self, data, split, tmp_path, reload: bool = False):  # pragma: no cover - abstract
        raise NotImplementedError

    @pytest.fixture
    def trained(self, synthetic, tmp_path):
        data, _ = synthetic
        split = random_split(data, (0.8, 0.2), seed=42)
        return data, split, self.build(data, split, tmp_path)

    def test_recommends_k_unique_known_unseen_movies(self, trained):
        data, split, recommender = trained
        history = UserHistory(split.train)
        known = set(data.movies["movie_id"])
        for user in history.user_ids[:5]:
            recs = recommender.recommend(user, k=self.k)
            ids = [r.movie_id for r in recs]
            assert len(ids) == self.k and len(set(ids)) == self.k
            assert set(ids) <= known
            assert not set(ids) & set(history.seen_movies(user))
            scores = [r.score for r in recs]
            assert scores == sorted(scores, reverse=True)
            titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
            assert all(r.movie_title == titles[r.movie_id] for r in recs)

    def test_unknown_user_is_a_clear_error(self, trained):
        _, _, recommender = trained
        with pytest.raises(UnknownUserError, match="unknown user id"):
            recommender.recommend("999999", k=self.k)

    def test_reload_gives_identical_recommendations(self, trained, tmp_path):
        data, split, recommender = trained
        reloaded = self.build(data, split, tmp_path, reload=True)
        for user in UserHistory(split.train).user_ids[:3]:
            first = recommender.recommend(user, k=self.k)
            again = reloaded.recommend(user, k=self.k)
            assert [r.movie_id for r in first] == [r.movie_id for r in again]
            assert [r.score for r in first] == pytest.approx([r.score for r in again], rel=1e-5, abs=1e-6)


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
