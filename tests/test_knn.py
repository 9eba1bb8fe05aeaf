"""The knn family: item2vec movie embeddings from co-occurrence, cosine KNN over them (planted data, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf  # conftest imported movielens first (Keras 2)

from movielens.data.splits import random_split
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens
from movielens.families import get_family
from movielens.families.base import Context, model_dir_for, train_or_load
from movielens.families.histories import Histories
from movielens.families.knn import KnnScorer, build_model
from movielens.models.knn import Item2VecModel, KnnConfig, cooccurrence_pairs, l2_normalise, sampling_probabilities

SPEC = SyntheticSpec(n_users=150, n_movies=40, ratings_per_user=16, seed=3)
FAST = KnnConfig(embedding_size=16, epochs=40, batch_size=128, learning_rate=0.01, patience=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data, truth = synthetic_movielens(SPEC)
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    model = train_or_load(get_family("knn"), FAST, Context(data, split, verbose=0),
                          root=tmp_path_factory.mktemp("knn-models"))
    return model, truth


def test_neighbours_come_from_the_movies_planted_cluster(trained):
    model, truth = trained
    vocabulary = model.context.split.vocabulary
    cluster = truth.movie_cluster[vocabulary.movie_ids.astype(int) - 1]  # cluster of each column
    unit = model.scorer().candidates()
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    neighbours = np.argsort(-cosine, axis=1)[:, :5]
    same = (cluster[neighbours] == cluster[:, None]).mean()
    assert same >= 0.8, same  # chance: about 1 in 4


def test_history_query_is_the_normalised_mean_and_ranks_like_summed_cosines(trained):
    model, _ = trained
    scorer = model.scorer()
    unit = scorer.candidates()
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    history = [3, 7, 11]
    query = scorer.queries(Histories.from_lists([history]))[0]
    np.testing.assert_allclose(query, l2_normalise(unit[history].mean(axis=0, keepdims=True))[0], rtol=1e-5,
                               atol=1e-6)
    summed = (unit[history] @ unit.T).sum(axis=0)
    np.testing.assert_allclose(unit @ query * np.linalg.norm(unit[history].sum(axis=0)), summed, rtol=1e-4,
                               atol=1e-5)


def test_early_stopping_on_validation_ndcg_keeps_the_best_epoch(trained):
    model, _ = trained
    history, metrics = model.history, model.metrics
    curve = history["val_ndcg@10"]
    assert metrics["val_ndcg@10"] == pytest.approx(max(v for v in curve if v is not None))
    assert history["epoch"][curve.index(max(curve))] == metrics["best_epoch"]
    assert metrics["vectors"] in ("input", "output", "average")


def test_save_and_load_give_identical_embeddings(trained):
    model, _ = trained
    family = model.family
    loaded = family.load(model.config, model.context, model.model_dir)
    for name, table in model.state.model.tables().items():
        np.testing.assert_array_equal(loaded.model.tables()[name], table)
    assert loaded.vectors == model.state.vectors
    np.testing.assert_array_equal(family.scorer(loaded, model.config, model.context).candidates(),
                                  model.scorer().candidates())


def test_cooccurrence_pairs_stay_within_a_person_and_the_window():
    # person 0: movies 5, 6, 7; person 1: 8, 5
    items, rows = np.array([5, 6, 7, 8, 5]), np.array([0, 0, 0, 1, 1])
    queries, candidates = cooccurrence_pairs(items, rows, window=1)
    assert sorted(zip(queries.tolist(), candidates.tolist())) == [(5, 6), (5, 8), (6, 5), (6, 7), (7, 6), (8, 5)]
    queries, candidates = cooccurrence_pairs(items, rows, window=5)
    assert (5, 7) in set(zip(queries.tolist(), candidates.tolist())) and len(queries) == 8
    p = sampling_probabilities(candidates, 10)
    assert p.sum() == pytest.approx(1.0) and p[5] > p[6] > p[0] > 0  # never seen: tiny but finite log


def test_loss_with_logq_correction_and_accidental_hits_matches_a_hand_computation():
    q_table = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.2], [0.7, 0.1]], np.float32)
    c_table = np.array([[0.2, 0.3], [-0.4, 0.6], [0.5, 0.5], [0.1, -0.9]], np.float32)
    p = np.array([0.1, 0.5, 0.3, 0.1], np.float32)
    temperature, l2 = 0.5, 0.01
    model = Item2VecModel(4, p, embedding_size=2, temperature=temperature, l2=l2)
    model.input_embedding.embeddings.assign(q_table)
    model.output_embedding.embeddings.assign(c_table)
    queries, candidates = np.array([0, 2, 3]), np.array([1, 2, 1])  # rows 0 and 2 share candidate 1
    loss = float(model.compute_loss({"query": tf.constant(queries), "candidate": tf.constant(candidates)}))

    q, c = q_table[queries].astype(np.float64), c_table[candidates].astype(np.float64)
    logits = q @ c.T / temperature - np.log(p[candidates])[None, :]
    accidental = (candidates[:, None] == candidates[None, :]) & ~np.eye(3, dtype=bool)
    logits[accidental] = -np.inf
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.trace(log_softmax) + l2 * ((q * q).sum() + (c * c).sum())
    assert loss == pytest.approx(expected, rel=1e-5)

    uncorrected = q @ c.T / temperature  # without the correction the loss differs: the term is really used
    uncorrected[accidental] = -np.inf
    assert abs(loss - (-np.trace(uncorrected - np.log(np.exp(uncorrected).sum(1, keepdims=True))))) > 1e-3


def test_shared_table_is_one_table():
    model = build_model(KnnConfig(embedding_size=4, shared=True), 6)
    assert model.input_embedding is model.output_embedding
    tables = model.tables()
    np.testing.assert_array_equal(tables["input"], tables["output"])


def test_empty_history_scores_everything_equal():
    scorer = KnnScorer(l2_normalise(np.random.default_rng(0).normal(size=(5, 3))))
    queries = scorer.queries(Histories.from_lists([[]]))
    assert np.isfinite(queries).all() and not queries.any()


@pytest.mark.parametrize("changes", [
    {"embedding_size": 0}, {"window": -1}, {"epochs": 0}, {"batch_size": 0}, {"patience": 0},
    {"validation_freq": 0}, {"learning_rate": float("nan")}, {"learning_rate": float("inf")},
    {"learning_rate": -0.1}, {"temperature": 0.0}, {"temperature": float("nan")}, {"l2": -1.0},
    {"l2": float("inf")}, {"init_std": float("-inf")}, {"vectors": "both"}, {"embedding_size": 2.5},
    {"window": True},
])
def test_config_rejects_bad_values(changes):
    with pytest.raises(ValueError):
        KnnConfig(**changes)


def test_config_round_trips_and_identity_changes_with_settings():
    config = KnnConfig(window=3, vectors="output")
    assert KnnConfig.from_dict(config.to_dict()) == config
    data, _ = synthetic_movielens(SyntheticSpec(n_users=20, n_movies=10, ratings_per_user=5))
    context = Context(data, random_split(data, (0.8, 0.1, 0.1), seed=1))
    family = get_family("knn")
    assert model_dir_for(family, config, context).hash != model_dir_for(family, config.replace(window=4), context).hash
