"""benchmarks/neighbours.py's statistics by hand on four users: co-rating lift and share, the activity-adjusted
lift (and that it is about 1 on data with nothing shared but activity and popularity, where the plain lift is
not), genre overlap, and that a movie is never its own neighbour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks.neighbours import expected_co_ratings, pair_statistics, random_others, top_neighbours

# Users x movies: movies 0 and 1 share their two raters, movie 2 has the other two, movie 3 has all four.
RATED = np.array([[1, 1, 0, 1],
                  [1, 1, 0, 1],
                  [0, 0, 1, 1],
                  [0, 0, 1, 1]], np.float64)
CO = RATED.T @ RATED
COUNTS = np.diag(CO).copy()
GENRES = [frozenset({1}), frozenset({1, 2}), frozenset({3}), frozenset()]
EXPECTED = expected_co_ratings(sp.csr_matrix(RATED))


def test_lift_share_and_genre_overlap_match_a_hand_computation():
    stats = pair_statistics(np.array([[1, 2]]), np.array([0]), CO, COUNTS, 4, GENRES, EXPECTED)
    # (0, 1): 2 shared raters, lift 2 * 4 / (2 * 2) = 2, share 2 / 2 = 1; (0, 2): nobody shared.
    assert stats["co_rating_lift"] == pytest.approx(1.0) and stats["co_rating_share"] == pytest.approx(0.5)
    assert stats["genre_jaccard"] == pytest.approx((0.5 + 0.0) / 2)
    # Movie 3 is rated by everyone: its share is 1 from any movie, its lift only 1 (independent).
    everyone = pair_statistics(np.array([[3]]), np.array([0]), CO, COUNTS, 4, GENRES, EXPECTED)
    assert everyone["co_rating_share"] == pytest.approx(1.0) and everyone["co_rating_lift"] == pytest.approx(1.0)


def test_expected_co_ratings_and_the_activity_adjusted_lift_by_hand():
    # Activity a = (3, 3, 2, 2), raters c = (2, 2, 2, 4), R = 10. Movie 0's raters are users 0 and 1, with
    # 3 - 1 = 2 other ratings each: each rates movie 1 or 2 with chance 2 * 2 / 10 = 0.4, movie 3 with 0.8.
    np.testing.assert_allclose(EXPECTED[0], [0.8, 0.8, 0.8, 1.6])
    np.testing.assert_allclose(EXPECTED[2], [0.4, 0.4, 0.4, 0.8])  # users 2 and 3: 1 * 2 / 10 = 0.2 each
    stats = pair_statistics(np.array([[1, 2]]), np.array([0]), CO, COUNTS, 4, GENRES, EXPECTED)
    assert stats["activity_adjusted_lift"] == pytest.approx((2 + 0) / (0.8 + 0.8))  # pooled over the pairs
    # A chance above 1 is capped: user 0 rates all five movies, user 1 movies 0 and 1 (c = 2, 2, 1, 1, 1; R = 7).
    busy = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], np.float64))
    # Movie 0 -> 1: user 0 min(1, 4 * 2 / 7) = 1, user 1 1 * 2 / 7; movie 0 -> 2: 4 / 7 + 1 / 7.
    np.testing.assert_allclose(expected_co_ratings(busy)[0, 1:3], [1 + 2 / 7, 5 / 7])


def test_activity_adjusted_lift_is_one_when_only_activity_and_popularity_are_shared():
    # Rater u rates movie j with chance activity_u x appeal_j and nothing else: no two movies are related.
    rng = np.random.default_rng(0)
    activity, appeal = rng.uniform(0.05, 1.0, 3000) ** 2, rng.uniform(0.1, 0.6, 40)
    rated = (rng.random((3000, 40)) < np.outer(activity, appeal)).astype(np.float64)
    co = rated.T @ rated
    counts = np.diag(co).copy()
    queries = np.arange(40)
    others = np.array([[j for j in range(40) if j != i] for i in queries])
    stats = pair_statistics(others, queries, co, counts, 3000, [frozenset()] * 40,
                            expected_co_ratings(sp.csr_matrix(rated)))
    # The plain lift calls these movies related (their raters are the busy ones); the adjusted one does not.
    assert stats["co_rating_lift"] > 1.3
    assert stats["activity_adjusted_lift"] == pytest.approx(1.0, abs=0.05)


def test_expected_co_ratings_do_not_depend_on_the_user_block(monkeypatch):
    import benchmarks.neighbours as neighbours

    monkeypatch.setattr(neighbours, "USER_BLOCK", 3)
    np.testing.assert_allclose(neighbours.expected_co_ratings(sp.csr_matrix(RATED)), EXPECTED)


def test_neighbours_are_the_most_similar_others_and_random_ones_skip_the_query():
    similarity = np.array([[9.0, 1.0, 3.0, 2.0], [0.0, 9.0, 1.0, 5.0]])
    full = np.vstack([similarity, np.zeros((2, 4))])
    np.testing.assert_array_equal(top_neighbours(full, np.array([0, 1]), k=2), [[2, 3], [3, 2]])
    draws = random_others(50, np.arange(50), k=10, seed=3)
    assert all(q not in row and len(set(row)) == 10 for q, row in enumerate(draws))
