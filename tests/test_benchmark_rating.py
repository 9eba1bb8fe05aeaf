"""The rating benchmark's split-difficulty yardstick (the benchmark itself needs the real data)."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.rating import bias_baseline_rmse
from movielens.data import make_split


def test_bias_baseline_beats_the_global_mean_on_planted_biases(synthetic):
    data, _ = synthetic
    split = make_split(data, "random", (0.8, 0.2), 0)
    test_ratings = split.test["user_rating"].to_numpy(np.float64)
    global_mean = np.sqrt(np.mean((split.train["user_rating"].mean() - test_ratings) ** 2))
    # Planted user (sd 0.5) and movie (sd 0.4) offsets: a correct fit removes much of the error;
    # a misaligned index (biases of the wrong users/movies) would not.
    assert bias_baseline_rmse(split, reg=2.0) < 0.85 * global_mean
    # Shuffling the test users breaks the alignment: the yardstick must get worse.
    shuffled = split.test.assign(user_id=np.random.default_rng(0).permutation(split.test["user_id"].to_numpy()))
    assert bias_baseline_rmse(split, reg=2.0) < bias_baseline_rmse(dataclasses.replace(split, test=shuffled), reg=2.0)
