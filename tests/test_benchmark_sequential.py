"""benchmarks/sequential.py end to end on planted ML-100K-shaped files: one run under each validation protocol
(every user validates / 20 users validate, the others train on their second-to-last movie), the
same-split baselines, and the paired comparison of the two runs, loaded from saved_models/."""

from __future__ import annotations

import pytest

from benchmarks import sequential
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens
from movielens.families.base import ModelNotTrainedError

TINY_MODEL = {"max_len": 16, "hidden_dim": 32, "num_layers": 1, "num_heads": 1, "dropout": 0.0}
TINY_TRAINING = {"batch_size": 32, "epochs": 20, "evaluate_every": 2, "patience": 3, "warmup_steps": 0,
                 "learning_rate": 0.01, "time_budget_minutes": 5.0}


def test_runs_under_both_protocols_and_their_paired_comparison(tmp_path, monkeypatch):
    monkeypatch.setattr(sequential, "PROGRESS", tmp_path / "sequential.progress.json")
    data, _ = synthetic_movielens(SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5))
    write_grouplens(data, tmp_path / "ml-100k", "100k")
    runs = {}
    for key, validation_users in (("plain", 0), ("val20", 20)):
        runs[key] = sequential.run_one("100k", tmp_path, TINY_MODEL, TINY_TRAINING, False, key,
                                       validation_users=validation_users)
    assert runs["plain"]["split_validation_users"] == 0
    assert runs["val20"]["split_validation_users"] == 20 and "validation on 20 sampled users" in \
        runs["val20"]["split_description"]
    for entry in runs.values():
        # The sequential protocol's figure and the leaderboard protocol's ranking of the same model agree.
        assert entry["same_split_baselines"]["model"]["hr@10"] == pytest.approx(entry["full_ranking"]["hr@10"])
        assert entry["users"] == 120 and set(entry["same_split_baselines"]) >= set(sequential.BASELINES)
    results = {"runs": runs}
    paired = sequential.paired_runs(results, "val20", "plain", tmp_path)
    for metric in ("hr@10", "ndcg@10"):
        assert paired[metric]["a"] == pytest.approx(runs["val20"]["full_ranking"][metric])
        assert paired[metric]["b"] == pytest.approx(runs["plain"]["full_ranking"][metric])
        assert paired[metric]["a - b"]["difference"] == pytest.approx(paired[metric]["a"] - paired[metric]["b"])
    assert "paired over the same test users" in sequential.table({**results, "paired": {"val20 vs plain": paired}})
    # Runs recorded before ensembles existed carry no member fields: one model.
    legacy = {k: v for k, v in runs["plain"].items() if k not in ("members", "member_hidden_dims")}
    again = sequential.paired_runs({"runs": {**runs, "legacy": legacy}}, "legacy", "plain", tmp_path)
    assert again["ndcg@10"]["a - b"]["difference"] == 0.0
    elsewhere = {**runs["plain"], "dataset": "ML-1M (users 1–2999)"}
    with pytest.raises(ValueError, match="not on the same data set"):
        sequential.paired_runs({"runs": {**runs, "elsewhere": elsewhere}}, "elsewhere", "plain", tmp_path)
    with pytest.raises(KeyError, match="no run 'missing'"):
        sequential.paired_runs(results, "missing", "plain", tmp_path)
    # A recorded run whose model is not in saved_models/ is an error, never a silent retraining.
    other = {**runs["plain"], "model_overrides": {**TINY_MODEL, "hidden_dim": 16}}
    with pytest.raises(ModelNotTrainedError):
        sequential.paired_runs({"runs": {**runs, "other": other}}, "other", "plain", tmp_path)
