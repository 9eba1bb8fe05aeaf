"""Ranking and rating metrics against hand-computed values."""

import numpy as np
import pytest

from movielens.evaluation import (
    ItemSets,
    exclude_seen,
    leave_one_out_metrics,
    recall_ndcg_at_k,
    rmse,
    target_ranks,
    top_k,
)


def test_item_sets_round_trip_and_take():
    sets = ItemSets.from_lists([[3, 1, 1], [], [2]])
    assert [sets.row(r).tolist() for r in range(3)] == [[1, 3], [], [2]]
    taken = sets.take(np.array([2, 0]))
    assert [taken.row(r).tolist() for r in range(2)] == [[2], [1, 3]]


def test_exclude_seen_keeps_held_out_targets():
    scores = np.array([[0.9, 0.1, 0.5, 0.3]], np.float32)
    masked = exclude_seen(scores, ItemSets.from_lists([[0, 2]]), targets=ItemSets.from_lists([[2]]))
    assert masked[0, 0] == -np.inf and masked[0, 2] == pytest.approx(0.5)
    assert scores[0, 0] == pytest.approx(0.9)  # input untouched


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4, 3, 2, 1]], np.float32)
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]


def test_target_ranks_are_pessimistic_on_ties():
    assert target_ranks(np.zeros((1, 5)), np.array([2])).tolist() == [4]
    assert target_ranks(np.array([[0.1, 0.9, 0.5]]), np.array([2])).tolist() == [1]


def test_leave_one_out_metrics_by_hand():
    metrics = leave_one_out_metrics(np.array([0, 1, 10]), ks=(1, 5))
    assert metrics["hr@1"] == pytest.approx(1 / 3)
    assert metrics["hr@5"] == pytest.approx(2 / 3)
    assert metrics["ndcg@5"] == pytest.approx((1 + 1 / np.log2(3)) / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 11) / 3)


def test_recall_and_ndcg_by_hand():
    top = np.array([[2, 3, 1], [3, 0, 2], [1, 2, 3]])
    targets = ItemSets.from_lists([[2, 1], [0], []])
    metrics = recall_ndcg_at_k(top, targets, ks=(1, 3))
    assert metrics["recall@1"] == pytest.approx((1 / 2 + 0) / 2)  # the user with no targets is skipped
    assert metrics["recall@3"] == pytest.approx(1.0)
    d = 1 / np.log2(np.arange(2, 5))
    assert metrics["ndcg@3"] == pytest.approx(((d[0] + d[2]) / (d[0] + d[1]) + d[1] / d[0]) / 2)
    assert metrics["users_evaluated"] == 2


def test_rmse():
    out = rmse(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0]))
    assert out["mse"] == pytest.approx(5 / 3) and out["rmse"] == pytest.approx(np.sqrt(5 / 3))
