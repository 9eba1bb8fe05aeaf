"""KNN over learned embeddings: exact cosine index, exclusions, similar titles, both index sources, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from experiments import recommend as recommend_cli
from experiments import run as run_cli
from movielens import evaluation, rating
from movielens.data.synthetic import synthetic_movielens, write_grouplens
from movielens.models.knn import ConcatRatingModel, CosineIndex, l2_normalise, scann_available
from movielens.recommender import UserHistory
from movielens.titles import UnknownTitleError
from tests.conftest import train_on_planted_ratings
from tests.contract import RatingModelContract
from tests.test_rating import FAST as CF_FAST
from tests.test_rating import SPEC

# The planted data and fast CF settings are test_rating's, so both files exercise the same setting.
KNN_FAST = {"epochs": 15, "batch_size": 256, "learning_rate": 0.01, "patience": 3, "n_factors": 16,
            "hidden_units": (32, 16, 8), "dropout": 0.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(data, truth, split, {"knn": trained, "cf": trained}) for the module."""
    return train_on_planted_ratings(tmp_path_factory, knn=rating.default_config("knn", **KNN_FAST),
                                    cf=rating.default_config("cf", **CF_FAST))


def _numpy_top(queries, candidates, k, excluded=()):
    cosine = l2_normalise(queries) @ l2_normalise(candidates).T
    cosine[:, list(excluded)] = -np.inf
    return np.argsort(-cosine, axis=1, kind="stable")[:, :k], cosine


def test_index_returns_exact_cosine_neighbours_with_ids():
    rng = np.random.default_rng(0)
    candidates, queries = rng.normal(size=(50, 8)), rng.normal(size=(6, 8))
    ids = np.array([f"m{i}" for i in range(50)], dtype=object)
    index = CosineIndex(ids, candidates * rng.uniform(0.1, 10, size=(50, 1)), backend="brute_force")
    scores, found = index.query(queries, k=7)
    expected, cosine = _numpy_top(queries, candidates, 7)
    assert [list(row) for row in found] == [list(ids[row]) for row in expected]
    np.testing.assert_allclose(np.array(scores), np.take_along_axis(cosine, expected, axis=1), rtol=1e-5)


def test_index_excludes_given_ids_and_still_returns_k():
    rng = np.random.default_rng(1)
    candidates = rng.normal(size=(30, 4))
    ids = np.array([str(i) for i in range(30)], dtype=object)
    index = CosineIndex(ids, candidates, backend="brute_force")
    query = candidates[:1]
    _, first = index.query(query, k=12)
    excluded = set(first[0][:10])  # the 10 best are off limits
    _, found = index.query(query, k=12, exclude=[excluded])
    expected, _ = _numpy_top(query, candidates, 12, [int(i) for i in excluded])
    assert found[0] == [str(i) for i in expected[0]] and not excluded & set(found[0])
    _, everything = index.query(query, k=40, exclude=[set(ids[:25])])
    assert sorted(everything[0]) == sorted(ids[25:])  # fewer than k remain: all of them
    with pytest.raises(ValueError, match="valid: auto, brute_force, scann"):
        CosineIndex(ids, candidates, backend="annoy")
    if not scann_available():
        with pytest.raises(ValueError, match="needs the optional `scann` package"):
            CosineIndex(ids, candidates, backend="scann")
        assert CosineIndex(ids, candidates, backend="auto").backend == "brute_force"


def test_concat_model_learns_ratings(models):
    _, _, _, trained = models
    m = trained["knn"].metrics
    assert isinstance(trained["knn"].model, ConcatRatingModel)
    assert m["test_rmse"] < 0.85 * m["test_rmse_global_mean"], m
    dense = [layer for layer in trained["knn"].model.mlp.layers if isinstance(layer, tf.keras.layers.Dense)]
    assert len(dense) == 4


@pytest.mark.parametrize("source", ["knn", "cf"])
def test_similar_to_is_the_numpy_nearest_neighbour_list(models, source):
    data, _, split, trained = models
    recommender = rating.EmbeddingRecommender(trained[source], data, split.train, "cosine", "brute_force")
    movie_id, recs = recommender.similar_to("Matrix, The", k=5)
    assert recommender.titles[movie_id].startswith("Matrix, The")
    vectors = trained[source].movie_vectors()[1:]
    row = int(trained[source].vocabulary.encode_movies([movie_id])[0]) - 1
    expected, _ = _numpy_top(vectors[row:row + 1], vectors, 5, [row])
    assert [r.movie_id for r in recs] == list(trained[source].vocabulary.movie_ids[expected[0]])
    with pytest.raises(UnknownTitleError, match="Closest matches: Matrix, The"):
        recommender.similar_to("Matrixx")


def test_cf_movie_neighbours_share_the_planted_cluster(models):
    """The dot-product model's movie vectors group the planted taste clusters (chance: 1 in 4)."""
    _, truth, _, trained = models
    vectors = trained["cf"].movie_vectors()[1:]
    clusters = truth.movie_cluster[trained["cf"].vocabulary.movie_ids.astype(int) - 1]
    cosine = l2_normalise(vectors) @ l2_normalise(vectors).T
    np.fill_diagonal(cosine, -np.inf)
    top = np.argsort(-cosine, axis=1)[:, :5]
    assert (clusters[top] == clusters[:, None]).mean() > 0.6


def test_user_recommendations_exclude_rated_movies_for_both_sources(models):
    data, _, split, trained = models
    history = UserHistory(split.train)
    for source in ("knn", "cf"):
        recommender = rating.EmbeddingRecommender(trained[source], data, split.train, "cosine", "brute_force")
        for user in history.user_ids[:10]:
            recs = recommender.recommend(user, k=8)
            assert len(recs) == 8 and not {r.movie_id for r in recs} & set(history.seen_movies(user))
            user_vector = trained[source].user_vectors()[trained[source].vocabulary.encode_users([user])[0]]
            seen = trained[source].vocabulary.encode_movies(history.seen_movies(user)) - 1
            expected, _ = _numpy_top(user_vector[None], trained[source].movie_vectors()[1:], 8, seen)
            assert [r.movie_id for r in recs] == list(trained[source].vocabulary.movie_ids[expected[0]])


def test_ranking_metrics_for_both_index_sources(models):
    _, _, split, trained = models
    users, targets, seen, info = rating.ranking_targets(trained["cf"], split)
    assert len(users) > 100 and info["liked_test_ratings"] == (split.test["user_rating"] >= 4).sum()
    perfect = np.zeros((len(users), trained["cf"].vocabulary.num_movies - 1))
    perfect[targets.row_ids(), targets.indices] = 1.0
    # Every user has at most 10 targets here, so a perfect scorer gets recall 1 and NDCG 1.
    assert np.diff(targets.indptr).max() <= 10
    assert rating.ranking_metrics(perfect, targets, seen) == pytest.approx(
        {"recall@10": 1.0, "ndcg@10": 1.0, "users_evaluated": float(len(users))})
    results = {}
    for name, model in trained.items():
        results[name] = rating.ranking_metrics(rating.score_matrix(model, "cosine", users), targets, seen)
    results["cf_rating"] = rating.ranking_metrics(rating.score_matrix(trained["cf"], "rating", users), targets, seen)
    results["knn_centroid"] = rating.ranking_metrics(
        rating.liked_centroid_scores(trained["knn"], split.train, users), targets, seen)
    results["popularity"] = rating.ranking_metrics(
        rating.popularity_scores(trained["cf"], split.train, users), targets, seen)
    for values in results.values():
        assert 0.0 <= values["recall@10"] <= 1.0 and 0.0 <= values["ndcg@10"] <= 1.0
    # Planted clusters: the shared-space CF index beats popularity on this data.
    assert results["cf"]["recall@10"] > results["popularity"]["recall@10"]
    seen_top = evaluation.top_k(evaluation.exclude_seen(perfect, seen), 10)
    assert not np.isin(seen_top, seen.indices[seen.row_ids() == 0]).all()


def test_knn_cli_end_to_end(tmp_path, capsys):
    data, _ = synthetic_movielens(SPEC)
    folder = write_grouplens(data, tmp_path / "ml-100k", "100k")
    args = ["--model", "knn", "--data_dir", str(folder), "--epochs", "3", "--n_factors", "8", "--quiet",
            "--hidden_units", "16", "8", "4"]
    assert run_cli.main([*args, "--ranking"]) == 0
    out = capsys.readouterr().out
    assert "knn on ML-100K" in out and "test MSE" in out and "NDCG@10" in out
    assert recommend_cli.main([*args, "--user_id", "3", "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "cosine of user and movie embeddings" in out and "  4. " in out and "  5. " not in out
    assert recommend_cli.main([*args, "--similar_to", "Amelie (1982)", "--k", "3"]) == 0
    assert "most similar to Amélie (1982)" in capsys.readouterr().out
    assert recommend_cli.main([*args, "--similar_to", "Amelie (2001)"]) == 2
    assert "Closest matches: Amélie (1982)" in capsys.readouterr().err


class TestKNNContract(RatingModelContract):
    config = rating.default_config("knn", epochs=3, n_factors=8, hidden_units=(16, 8, 4), batch_size=128)
    rank_by, backend = "cosine", "brute_force"
