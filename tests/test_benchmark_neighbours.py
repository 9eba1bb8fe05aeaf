"""benchmarks/neighbours.py's statistics by hand on four users: co-rating lift and share, genre overlap, and
that a movie is never its own neighbour."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.neighbours import pair_statistics, random_others, top_neighbours

# Users x movies: movies 0 and 1 share their two raters, movie 2 has the other two, movie 3 has all four.
RATED = np.array([[1, 1, 0, 1],
                  [1, 1, 0, 1],
                  [0, 0, 1, 1],
                  [0, 0, 1, 1]], np.float64)
CO = RATED.T @ RATED
COUNTS = np.diag(CO).copy()
GENRES = [frozenset({1}), frozenset({1, 2}), frozenset({3}), frozenset()]


def test_lift_share_and_genre_overlap_match_a_hand_computation():
    stats = pair_statistics(np.array([[1, 2]]), np.array([0]), CO, COUNTS, 4, GENRES)
    # (0, 1): 2 shared raters, lift 2 * 4 / (2 * 2) = 2, share 2 / 2 = 1; (0, 2): nobody shared.
    assert stats["co_rating_lift"] == pytest.approx(1.0) and stats["co_rating_share"] == pytest.approx(0.5)
    assert stats["genre_jaccard"] == pytest.approx((0.5 + 0.0) / 2)
    # Movie 3 is rated by everyone: its share is 1 from any movie, its lift only 1 (independent).
    everyone = pair_statistics(np.array([[3]]), np.array([0]), CO, COUNTS, 4, GENRES)
    assert everyone["co_rating_share"] == pytest.approx(1.0) and everyone["co_rating_lift"] == pytest.approx(1.0)


def test_neighbours_are_the_most_similar_others_and_random_ones_skip_the_query():
    similarity = np.array([[9.0, 1.0, 3.0, 2.0], [0.0, 9.0, 1.0, 5.0]])
    full = np.vstack([similarity, np.zeros((2, 4))])
    np.testing.assert_array_equal(top_neighbours(full, np.array([0, 1]), k=2), [[2, 3], [3, 2]])
    draws = random_others(50, np.arange(50), k=10, seed=3)
    assert all(q not in row and len(set(row)) == 10 for q, row in enumerate(draws))
