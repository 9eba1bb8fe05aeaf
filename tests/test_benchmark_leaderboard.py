"""benchmarks/leaderboard.py end to end on planted ML-100K-shaped files: a cell is run and written, the README
summary marks the best baseline, and `--paired` tests two of the cell's cached models without training."""

from __future__ import annotations

import pytest

from benchmarks import leaderboard
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens
from movielens.families.base import ModelNotTrainedError


def test_a_cell_its_summary_and_a_paired_test_of_its_cached_models(tmp_path, monkeypatch, capsys):
    data, _ = synthetic_movielens(SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5))
    write_grouplens(data, tmp_path / "shared" / "ml-100k", "100k")
    monkeypatch.setenv("MOVIELENS_SHARED_DATASETS", str(tmp_path / "shared"))
    monkeypatch.setattr(leaderboard, "RESULTS", tmp_path / "leaderboard.json")
    assert leaderboard.main(["--datasets", "100k", "--splits", "leave_last_out",
                             "--models", "popularity", "item_knn", "ease"]) == 0
    cell = leaderboard.read_json(tmp_path / "leaderboard.json")["cells"]["ML-100K|leave_last_out"]
    rows = {row["family"]: row for row in cell["rows"]}
    assert set(rows) == {"popularity", "item_knn", "ease"} and cell["best_baseline"] in rows
    summary = leaderboard.summary_markdown({"cells": {"ML-100K|leave_last_out": cell}})
    assert "(best baseline)" in summary and "**ML-100K**" in summary

    paired = leaderboard.paired_in_cell("100k", "leave_last_out", [("ease", "popularity")], 0.0)
    test = paired["ease - popularity"]
    difference = rows["ease"]["metrics"]["ndcg@10"] - rows["popularity"]["metrics"]["ndcg@10"]
    assert test["difference"] == pytest.approx(difference) and test["low"] <= test["difference"] <= test["high"]
    capsys.readouterr()
    assert leaderboard.main(["--datasets", "100k", "--splits", "leave_last_out",
                             "--paired", "ease", "popularity"]) == 0
    assert f"ease - popularity test NDCG@10 {difference:+.4f}" in capsys.readouterr().out
    # A model the cell has not cached is an error, never trained by a paired test.
    with pytest.raises(ModelNotTrainedError):
        leaderboard.paired_in_cell("100k", "leave_last_out", [("knn", "popularity")], 0.0)
    assert leaderboard.main(["--datasets", "100k", "--splits", "leave_last_out", "--paired", "knn", "ease"]) == 2
    assert "error: knn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        leaderboard.main(["--datasets", "100k", "--paired", "ease", "nope"])
