"""The feature-set benchmark's pure helpers: ratios, verdicts, table cells, the done-when check (canned rows)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.feature_sets import (
    ALL_FEATURES,
    CONTROL,
    FEATURE_SETS,
    SIX_SETS,
    comparison_markdown,
    done_when,
    paired_cell,
    ratio,
    train_seconds,
    verdict,
)
from movielens.features import OPTIONAL_FEATURES, validate_feature_set
from movielens.protocol import paired_difference


def _paired(difference, low, high):
    return {"difference": difference, "low": low, "high": high, "p_value": 0.5,
            "significant": bool(low > 0 or high < 0)}


def _row(name, family, ndcg, x_pop, x_ease, **extra):
    return {"set": name, "family": family, "ndcg@10": ndcg, "ndcg@10_low": ndcg - 0.01, "ndcg@10_high": ndcg + 0.01,
            "recall@10": ndcg / 2, "x_popularity": x_pop, "x_ease": x_ease, "loaded": False, **extra}


def _result():
    rows = [_row("popularity list", "popularity", 0.10, 1.0, 0.25, vs_ease=_paired(-0.3, -0.32, -0.28)),
            _row("EASE", "ease", 0.40, 4.0, 1.0),
            _row("id-only", "two_tower", 0.37, 3.7, 0.925, tutorial_top_100=0.41, selected_epoch=8.0,
                 train_seconds=12.3, vs_ease=_paired(-0.03, -0.05, -0.01)),
            _row("+ history", "two_tower", 0.12, 1.2, 0.3, tutorial_top_100=0.55, selected_epoch=3.0,
                 train_seconds=20.0, vs_ease=_paired(-0.28, -0.3, -0.26), vs_id_only=_paired(-0.25, -0.27, -0.23)),
            _row("+ genres", "two_tower", 0.36, 3.6, 0.9, tutorial_top_100=None, selected_epoch=None,
                 train_seconds=None, vs_ease=_paired(-0.04, -0.06, -0.02), vs_id_only=_paired(-0.01, -0.02, 0.005),
                 vs_control=_paired(0.02, 0.01, 0.03)),
            # the dense-layer control is not a feature set: it never counts in the done-when figures
            _row(CONTROL, "two_tower", 0.11, 1.1, 0.95, vs_ease=_paired(-0.29, -0.31, -0.27),
                 vs_id_only=_paired(-0.26, -0.28, -0.24))]
    return {"dataset": "ML-100K", "split": "random 80/10/10 seed 42", "rows": rows, "wall_seconds": 150.0,
            "rows_trained": 3, "load_average_start": [2.0, 1, 1], "load_average_end": [3.5, 1, 1],
            "machine": {"cpus": 2}}


def test_ratio_and_verdict():
    assert ratio(0.3, 0.2) == pytest.approx(1.5)
    assert ratio(0.3, 0.0) is None
    assert verdict(_paired(0.02, 0.01, 0.03)) == "helps"
    assert verdict(_paired(-0.02, -0.03, -0.01)) == "hurts"
    assert verdict(_paired(0.02, -0.01, 0.05)) == "no measurable difference"
    assert verdict(None) == "-"


def test_paired_cell_marks_only_significant_differences():
    assert paired_cell(_paired(0.012, 0.003, 0.021)) == "+0.012 [+0.003, +0.021] ▲"
    assert paired_cell(_paired(-0.012, -0.021, -0.003)) == "-0.012 [-0.021, -0.003] ▼"
    assert paired_cell(_paired(0.012, -0.003, 0.021)) == "+0.012 [-0.003, +0.021]"
    # the protocol's paired test gives what the cell reads: a clear loss is marked as one
    rng = np.random.default_rng(0)
    a = rng.random(500)
    assert paired_cell(paired_difference(a - 0.1, a)).endswith("▼")


def test_done_when_finds_the_best_tower_and_the_sets_below_popularity_target():
    checked = done_when(_result())
    assert checked["best_two_tower"] == "id-only"
    assert checked["best_reaches_0.9x_ease"] is True
    assert checked["sets_below_1.5x_popularity"] == ["+ history"]
    assert checked["every_set_reaches_1.5x_popularity"] is False


def test_markdown_has_one_line_per_row_and_states_time_and_load():
    text = comparison_markdown(_result())
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 6  # header + rows
    assert "tutorial top-100 (reproduction)" in lines[0]
    history = next(line for line in lines if line.startswith("| + history"))
    assert "hurts" in history and "1.20×" in history and "0.550" in history
    genres = next(line for line in lines if line.startswith("| + genres"))
    assert "no measurable difference" in genres and genres.count("▲") == 1  # above the control only
    assert "2.5 min" in text and "2.0 → 3.5" in text and "3 of 6 models trained" in text
    assert "vs control" in text
    assert "every model trained" in comparison_markdown({**_result(), "rows_trained": 6})


def test_train_seconds_sums_epochs_and_validation():
    assert train_seconds({"epoch_seconds": [1.0, 2.0, None], "eval_seconds": [0.5, 0.5]}) == 4.0
    assert train_seconds({}) is None


def test_feature_sets_are_valid_and_all_means_every_feature():
    for features in [*FEATURE_SETS.values(), *SIX_SETS.values()]:
        assert validate_feature_set(features, "1m") == validate_feature_set(features, "100k")
    assert set(ALL_FEATURES) == set(OPTIONAL_FEATURES)
    assert len(SIX_SETS) == 6 and len(FEATURE_SETS) == 8
