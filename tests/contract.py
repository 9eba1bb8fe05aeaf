"""Contract tests every recommender passes (LensKit style): subclass and implement `build`.

    class TestMyModelContract(RecommenderContract):
        def build(self, data, split, tmp_path, reload=False):
            ...train (or, with reload=True, load what the first call saved under tmp_path)...
            return recommender

`data` and `split` come from the synthetic fixture (random 80/20 split).
"""

from __future__ import annotations

import pytest

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
