"""Two-tower model, trainer, evaluation, recommendations and export on the synthetic fixture (seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from movielens.data.splits import random_split
from movielens.families import get_family
from movielens.families.base import Context, model_dir_for
from movielens.features import OPTIONAL_FEATURES, fit_feature_tables
from movielens.models.two_tower import InBatchSoftmax, build_two_tower
from movielens.recommender import UserHistory
from movielens.retrieval import (
    TOP_KS,
    RankingEvaluator,
    UserQueries,
    candidate_embeddings,
    evaluate_factorized_top_k,
    evaluate_top_k,
    query_embeddings,
    query_embeddings_from_histories,
)
from movielens.trainer import MovieLensTrainer, TwoTowerConfig, encode_examples

FAST = dict(batch_size=64, learning_rate=0.1, verbose=0)


@pytest.fixture(scope="module")
def trained_id_only(synthetic, tmp_path_factory):
    """An id-only model trained long enough to learn the planted clusters (shared by several tests);
    random 80/10/10: early stopping on the validation part, the test part untouched."""
    data, truth = synthetic
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    trainer = MovieLensTrainer(data, split, num_epochs=8, layer_sizes=(), additional_feature_sets=[["None"]],
                               models_root=tmp_path_factory.mktemp("models"), **FAST)
    models, histories = trainer.train_all_models()
    return data, truth, split, models["id_only"], histories["id_only"]


@pytest.mark.parametrize("feature", OPTIONAL_FEATURES)
def test_every_feature_builds_and_trains_an_epoch(synthetic, tmp_path, feature):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    trainer = MovieLensTrainer(data, split, num_epochs=1, layer_sizes=(16,), additional_feature_sets=[[feature]],
                               constant_movie_length=True, models_root=tmp_path, **FAST)
    models, histories = trainer.train_all_models()
    trained = models[feature]
    assert trained.features == (feature,) and not trained.loaded
    assert np.isfinite(histories[feature]["loss"][0])
    assert 0 <= trained.metrics["test_top_10_accuracy"] <= 1 and trained.metrics["users_evaluated"] > 0
    names = [layer.name for tower in (trained.model.query_tower, trained.model.candidate_tower)
             for layer in tower.layers]
    assert feature in names  # the feature really has its own encoder in its tower
    files = {p.name for p in trained.model_dir.path.iterdir()}
    assert {"config.json", "history.json", "metrics.json", "weights", "complete"} <= files


def test_in_batch_softmax_equals_the_retrieval_default_loss():
    scores = tf.random.stateless_normal([7, 7], seed=[1, 2])
    labels = tf.eye(7)
    default = tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM)
    assert float(InBatchSoftmax()(labels, scores)) == pytest.approx(float(default(labels, scores)), rel=1e-6)
    weights = tf.constant([1.0, 0, 2, 1, 1, 0.5, 1])
    assert float(InBatchSoftmax()(labels, scores, weights)) == pytest.approx(
        float(default(labels, scores, sample_weight=weights)), rel=1e-6)


def test_model_learns_the_planted_clusters(trained_id_only):
    data, truth, split, trained, history = trained_id_only
    assert history["loss"][-1] < history["loss"][0]
    recommender = trained.recommender()
    in_cluster = []
    for user in UserHistory(split.train).user_ids[:30]:
        recs = recommender.recommend(user, k=5, exclude_seen=False)  # users rated most of their cluster
        movie_clusters = truth.movie_cluster[[int(r.movie_id) - 1 for r in recs]]
        in_cluster.append(np.mean(movie_clusters == truth.user_cluster[int(user) - 1]))
    assert np.mean(in_cluster) > 0.7  # 4 clusters: chance is 0.25


def test_fast_evaluation_equals_factorized_top_k(trained_id_only):
    _, _, split, trained, history = trained_id_only
    examples = encode_examples(split.test, split, trained.tables)
    fast = evaluate_top_k(trained.model, examples, trained.tables.num_candidates)
    reference = evaluate_factorized_top_k(trained.model, examples, trained.tables.num_candidates)
    assert set(fast) == {f"val_top_{k}_accuracy" for k in TOP_KS}
    for key in fast:
        assert fast[key] == pytest.approx(reference[key], abs=1e-6)
    # the kept model is the best epoch's: its validation accuracy is that epoch's curve point
    validation = encode_examples(split.validation, split, trained.tables)
    kept = history["epoch"].index(history["best_epoch"])
    assert history["val_top_10_accuracy"][kept] == pytest.approx(
        evaluate_top_k(trained.model, validation, trained.tables.num_candidates)["val_top_10_accuracy"])


def test_early_stopping_keeps_the_best_validation_ndcg_epoch(trained_id_only):
    _, _, split, trained, history = trained_id_only
    curve = history["val_ndcg@10"]
    assert len(curve) == len(history["epoch"]) and all(v is not None for v in curve)
    best = history["best_epoch"]
    assert curve[best - 1] == max(curve)
    assert len(curve) == 8 or len(curve) - best == trained.config.patience  # stopped after `patience` worse epochs
    # the weights kept are the best epoch's: ranking the validation part again gives its value exactly
    again = RankingEvaluator(trained.tables, split, "validation")(trained.model)
    assert again["ndcg@10"] == pytest.approx(curve[best - 1], abs=1e-6)
    assert trained.metrics["val_ndcg@10"] == pytest.approx(curve[best - 1])
    assert trained.metrics["selected_epoch"] == best
    test = RankingEvaluator(trained.tables, split, "test")(trained.model)
    assert trained.metrics["ndcg@10"] == pytest.approx(test["ndcg@10"]) != pytest.approx(again["ndcg@10"])


def test_two_fraction_split_warns_that_selection_is_on_test(synthetic, tmp_path):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    trainer = MovieLensTrainer(data, split, num_epochs=2, layer_sizes=(), models_root=tmp_path, **FAST)
    with pytest.warns(UserWarning, match="validation IS the test part"):
        trained = trainer.train_model(())
    assert "val_ndcg@10" in trained.history and trained.history["best_epoch"] in (1, 2)


def _tiny_model(synthetic, features=(), **options):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    tables = fit_feature_tables(data, split, features)
    tf.keras.utils.set_random_seed(5)
    return split, tables, build_two_tower(features, tables, 8, (8,) if features else (), **options)


def test_sampling_probabilities_are_training_shares(synthetic):
    split, tables, _ = _tiny_model(synthetic)
    p = tables.sampling_probabilities()
    counts = split.train["movie_id"].value_counts()
    for row in range(tables.num_candidates):
        assert p[row] == pytest.approx(counts.get(tables.movie_ids[row], 0) / len(split.train), rel=1e-6)
    assert p.sum() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("remove_hits", [False, True])
def test_corrected_loss_equals_a_hand_computation(synthetic, remove_hits):
    """logits = q.c - log p(candidate); accidental hits (same movie elsewhere) masked; softmax CE, summed."""
    split, tables, model = _tiny_model(synthetic, sampling_correction=True, remove_accidental_hits=remove_hits)
    movies = np.array([3, 7, 3, 0, 12, 7], np.int64)  # movies 3 and 7 twice: accidental hits
    features = {"user": tf.constant([1, 2, 3, 4, 5, 6], tf.int64),
                "timestamp": tf.constant(split.train["timestamp"].to_numpy()[:6], tf.int64),
                "movie": tf.constant(movies)}
    q = model.query_tower(features).numpy().astype(np.float64)
    c = model.candidate_tower(features["movie"]).numpy().astype(np.float64)
    p = tables.sampling_probabilities()[movies].astype(np.float64)
    assert (p > 0).all()
    logits = q @ c.T - np.log(p)[None, :]
    if remove_hits:
        duplicate = (movies[:, None] == movies[None, :]) & ~np.eye(6, dtype=bool)
        logits = np.where(duplicate, logits - 1e30, logits)
    log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    expected = -np.trace(log_softmax)
    assert float(model.compute_loss(features, training=True)) == pytest.approx(expected, rel=1e-5)
    plain = -np.trace(q @ c.T - np.log(np.exp(q @ c.T).sum(1, keepdims=True)))
    uncorrected = build_two_tower((), tables, 8, (), sampling_correction=False)
    uncorrected.set_weights(model.get_weights())
    assert float(uncorrected.compute_loss(features, training=True)) == pytest.approx(plain, rel=1e-5)
    assert abs(plain - expected) > 1e-3  # the correction really changes the loss


def test_history_is_the_strictly_earlier_training_movies(synthetic):
    split, tables, model = _tiny_model(synthetic, ("history",), history_length=5)
    train = split.train.assign(user=split.vocabulary.encode_users(split.train["user_id"]),
                               row=tables.movie_rows(split.train["movie_id"]))
    examples = encode_examples(pd.concat([split.train.iloc[:40], split.test.iloc[:20]]), split, tables)
    got = model.query_tower.history_rows({"user": tf.constant(examples["user"]),
                                          "timestamp": tf.constant(examples["timestamp"])}).numpy()
    for i, (user, t) in enumerate(zip(examples["user"], examples["timestamp"])):
        earlier = train[(train["user"] == user) & (train["timestamp"] < t)].sort_values(["timestamp", "row"])
        expected = earlier["row"].to_numpy()[-5:]
        assert sorted(got[i][got[i] >= 0]) == sorted(expected)  # nothing at or after t
        assert (got[i][len(expected):] == -1).all()
    assert (got == tables.user_histories(examples["user"], examples["timestamp"], 5)).all()
    # one rating at exactly t of the same user never enters its own history
    first = examples["timestamp"][0]
    same_time = train[(train["user"] == examples["user"][0]) & (train["timestamp"] >= first)]["row"]
    assert not set(same_time) & set(got[0][got[0] >= 0])


def test_history_gap_keeps_only_movies_rated_that_long_before(synthetic):
    split, tables, model = _tiny_model(synthetic, ("history",), history_length=5, history_gap_seconds=3_000)
    train = split.train.assign(user=split.vocabulary.encode_users(split.train["user_id"]),
                               row=tables.movie_rows(split.train["movie_id"]))
    examples = encode_examples(split.train.iloc[:60], split, tables)
    inputs = {"user": tf.constant(examples["user"]), "timestamp": tf.constant(examples["timestamp"])}
    got = model.query_tower.history_rows(inputs, 3_000).numpy()
    checked_a_gap = False
    for i, (user, t) in enumerate(zip(examples["user"], examples["timestamp"])):
        mine = train[train["user"] == user]
        expected = mine[mine["timestamp"] < t - 3_000].sort_values(["timestamp", "row"])["row"].to_numpy()[-5:]
        assert sorted(got[i][got[i] >= 0]) == sorted(expected)
        checked_a_gap |= len(mine[(mine["timestamp"] < t) & (mine["timestamp"] >= t - 3_000)]) > 0
    assert checked_a_gap  # some query had movies inside the gap, which were left out
    # The tower applies it to known users' training queries only: serving (and the unknown user) see it all.
    tower = model.query_tower
    whole = {**inputs, "history": tower.history_rows(inputs)}
    gapped = {**inputs, "history": tower.history_rows(inputs, 3_000)}
    np.testing.assert_allclose(tower(inputs, training=False), tower(whole), rtol=1e-6)
    np.testing.assert_allclose(tower(inputs, training=True), tower(gapped), rtol=1e-6)
    # Given directly (recommendation time), a history is used whole: the gap is a training rule only.
    rows = tf.constant([[4, 9, -1]], tf.int64)
    assert model.query_tower.history_rows({"user": tf.zeros([1], tf.int64), "timestamp": tf.zeros([1], tf.int64),
                                           "history": rows}).numpy()[0, :2].tolist() == [4, 9]


def test_history_dropout_hides_the_history_of_training_queries_only(synthetic):
    split, tables, model = _tiny_model(synthetic, ("history",), history_length=5, history_dropout=0.5)
    _, _, plain = _tiny_model(synthetic, ("history",), history_length=5)
    examples = encode_examples(split.train.iloc[-200:], split, tables)
    inputs = {"user": tf.constant(examples["user"]), "timestamp": tf.constant(examples["timestamp"])}
    has_history = (model.query_tower.history_rows(inputs).numpy() >= 0).any(axis=1)
    assert has_history.sum() > 100
    empty = {**inputs, "history": tf.fill([len(examples["user"]), 5], tf.constant(-1, tf.int64))}
    without = model.query_tower(empty).numpy()
    served = model.query_tower(inputs, training=False).numpy()
    assert not np.isclose(served, without, atol=1e-6).all(axis=1)[has_history].any()  # never dropped when serving
    trained = model.query_tower(inputs, training=True).numpy()
    dropped = np.isclose(trained, without, atol=1e-6).all(axis=1)[has_history]
    kept = np.isclose(trained, served, atol=1e-6).all(axis=1)[has_history]
    assert (dropped | kept).all() and 0.35 < dropped.mean() < 0.65
    # The unknown user's queries (people typed in; slot 0) always keep their history.
    rows = model.query_tower.history_rows(inputs)
    unknown = {"user": tf.zeros_like(inputs["user"]), "timestamp": inputs["timestamp"], "history": rows}
    np.testing.assert_allclose(model.query_tower(unknown, training=True), model.query_tower(unknown), rtol=1e-6)
    assert not hasattr(plain.query_tower, "history_generator")  # off: nothing drawn, nothing checkpointed


def test_history_regularisation_follows_the_split_unless_given():
    from movielens.features import HISTORY_REGULARISATION_DEFAULT

    config = TwoTowerConfig(features=("history",))
    assert config.history_regularisation("random") == HISTORY_REGULARISATION_DEFAULT == (86_400, 0.9)
    assert config.history_regularisation("temporal") == (86_400, 0.9)
    assert config.history_regularisation("leave_last_out") == (0, 0.0)
    assert config.replace(history_dropout=0.3).history_regularisation("leave_last_out") == (0, 0.3)
    assert config.replace(history_gap_seconds=0).history_regularisation("random") == (0, 0.9)
    for bad in ({"history_dropout": 1.0}, {"history_dropout": -0.5}, {"history_gap_seconds": -2}):
        with pytest.raises(ValueError, match="by the split"):
            config.replace(**bad)


def test_history_settings_are_not_in_other_models_cache_key(synthetic):
    data, _ = synthetic
    context = Context(data, random_split(data, (0.8, 0.1, 0.1), seed=42))
    family = get_family("two_tower")
    identity = model_dir_for(family, TwoTowerConfig(), context).config["config"]
    assert "history_gap_seconds" not in identity and "history_dropout" not in identity
    history = model_dir_for(family, TwoTowerConfig(features=("history",)), context)
    other = model_dir_for(family, TwoTowerConfig(features=("history",), history_dropout=0.5), context)
    assert history.config["config"]["history_dropout"] == -1.0 and history.hash != other.hash


def test_history_given_directly_serves_unknown_users(synthetic):
    split, tables, model = _tiny_model(synthetic, ("history", "timestamp"), history_length=4)
    histories = [np.array([5, 1, 9, 2, 7, 3]), np.array([2]), np.array([], np.int64), np.array([4, 4])]
    out = query_embeddings_from_histories(model, tables, histories, timestamps=split.train["timestamp"].max())
    assert out.shape == (4, 8) and np.isfinite(out).all()
    # only the last history_length movies count; order inside them does not matter (a mean)
    again = query_embeddings_from_histories(model, tables, [np.array([0, 0, 3, 7, 2, 9]), np.array([2]),
                                                            np.zeros(0, np.int64), np.array([4])],
                                            timestamps=split.train["timestamp"].max())
    np.testing.assert_allclose(out, again, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0], out[1])  # the history matters for an unknown user
    ragged = model.query_tower({"user": tf.zeros([4], tf.int64),
                                "timestamp": tf.fill([4], tf.constant(int(split.train["timestamp"].max()), tf.int64)),
                                "history": tf.ragged.constant([h.tolist() for h in histories], dtype=tf.int64)})
    np.testing.assert_allclose(ragged.numpy(), out, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="catalogue rows"):
        query_embeddings_from_histories(model, tables, [np.array([tables.num_candidates])], 0)
    # a known user's in-graph history equals the same movies given directly
    user = split.vocabulary.encode_users(split.train["user_id"].iloc[:1])
    t = split.train["timestamp"].to_numpy()[:1]
    lookup = query_embeddings(model, user, t)
    given = query_embeddings(model, user, t, tables.user_histories(user, t, 4))
    np.testing.assert_allclose(lookup, given, rtol=1e-6)


def test_recommendations_are_the_highest_unseen_scores(trained_id_only):
    """The shared recommender serves a known user their query at the latest moment known, every movie they
    rated anywhere in the data excluded: exactly the highest query . candidate scores among the rest."""
    data, _, split, trained, _ = trained_id_only
    recommender = trained.recommender()
    tables = trained.tables
    candidates = candidate_embeddings(trained.model, tables.num_candidates)
    queries = UserQueries(data.ratings, split.vocabulary)
    history = UserHistory(data.ratings)
    for user in history.user_ids[:5]:
        query = query_embeddings(trained.model, *queries.inputs([user]))[0]
        scores = candidates @ query
        seen = set(history.seen_movies(user))
        eligible = [r for r in range(tables.num_candidates)
                    if tables.movie_vocab_index[r] > 0 and tables.movie_ids[r] not in seen]
        best = sorted(eligible, key=lambda r: -scores[r])[:5]
        recs = recommender.recommend(user, k=5)
        assert [r.movie_id for r in recs] == [tables.movie_ids[r] for r in best]
        assert [r.score for r in recs] == pytest.approx([scores[r] for r in best], rel=1e-5)
        titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
        assert [r.movie_title for r in recs] == [titles[r.movie_id] for r in recs]
        with_seen = recommender.recommend(user, k=len(eligible) + len(seen), exclude_seen=False)
        assert seen <= {r.movie_id for r in with_seen}


def test_cached_model_is_loaded_not_retrained(trained_id_only, tmp_path_factory, capsys):
    data, _, split, trained, _ = trained_id_only
    root = trained.model_dir.path.parent
    again = MovieLensTrainer(data, split, num_epochs=8, layer_sizes=(), additional_feature_sets=[["None"]],
                             models_root=root, batch_size=64, learning_rate=0.1, verbose=1)
    loaded = again.train_model(())
    assert loaded.loaded and "loaded from" in capsys.readouterr().out
    assert loaded.history == json.loads(json.dumps(trained.history))
    user = UserHistory(split.train).user_ids[0]
    assert [r.movie_id for r in loaded.recommender().recommend(user)] == \
        [r.movie_id for r in trained.recommender().recommend(user)]
    different = MovieLensTrainer(data, split, num_epochs=2, layer_sizes=(), additional_feature_sets=[["None"]],
                                 models_root=root, **FAST).train_model(())
    assert not different.loaded and different.model_dir.path != trained.model_dir.path


def test_training_resumes_after_an_interruption(synthetic, tmp_path, monkeypatch, capsys):
    import movielens.trainer as trainer_module

    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    original = trainer_module.fit_resumable

    class Interrupt(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:  # epoch 1 finished and was checkpointed
                raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "fit_resumable",
                        lambda *a, **kw: original(*a, callbacks=[Interrupt()], **kw))
    make = lambda: MovieLensTrainer(data, split, num_epochs=3, layer_sizes=(8,),  # noqa: E731
                                    additional_feature_sets=[["timestamp"]], models_root=tmp_path, **FAST)
    with pytest.raises(KeyboardInterrupt):
        make().train_model(["timestamp"])
    folder = next(tmp_path.iterdir())
    assert not (folder / "complete").exists() and (folder / "checkpoint" / "last" / "state.json").is_file()
    monkeypatch.setattr(trainer_module, "fit_resumable", original)
    resumed = make().train_model(["timestamp"])
    assert "Resuming from epoch 1" in capsys.readouterr().out
    assert resumed.history["epoch"] == [1, 2, 3] and not resumed.loaded
    assert (folder / "complete").is_file() and not (folder / "checkpoint").exists()


@pytest.mark.slow  # a fresh Python process imports TensorFlow
def test_export_is_queried_without_this_package(trained_id_only, tmp_path):
    _, _, split, trained, _ = trained_id_only
    path = trained.export(tmp_path / "export", k=5)
    users = UserHistory(split.train).user_ids[:3]
    queries = UserQueries(split.train, split.vocabulary)
    timestamps = [int(queries.timestamp[list(queries.user_ids).index(u)]) for u in users]
    script = (
        "import json, sys, tensorflow as tf\n"
        "assert 'movielens' not in sys.modules\n"
        f"m = tf.saved_model.load({str(path)!r})\n"
        f"out = m.signatures['serving_default'](user_id=tf.constant({list(users)!r}), "
        f"timestamp=tf.constant({timestamps!r}, tf.int64))\n"
        "print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=lambda b: b.decode()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    recommender = trained.recommender()
    for i, user in enumerate(users):
        expected = recommender.recommend(user, k=5, exclude_seen=False)
        assert out["titles"][i] == [r.movie_title for r in expected]
        assert out["movie_ids"][i] == [r.movie_id for r in expected]
        assert out["scores"][i] == pytest.approx([r.score for r in expected], rel=1e-4, abs=1e-5)


def test_bad_inputs_are_clear_errors(synthetic, tmp_path):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    with pytest.raises(ValueError, match="valid features"):
        MovieLensTrainer(data, split, additional_feature_sets=[["timestamp", "colour"]], models_root=tmp_path)
    with pytest.raises(ValueError, match="num_epochs must be >= 1"):
        MovieLensTrainer(data, split, num_epochs=0, models_root=tmp_path)
    with pytest.raises(ValueError, match="valid optimizers: adagrad"):
        MovieLensTrainer(data, split, optimizer="lion", models_root=tmp_path)
    with pytest.raises(ValueError, match="give --layer_sizes"):
        MovieLensTrainer(data, split, layer_sizes=(), additional_feature_sets=[["timestamp"]],
                         models_root=tmp_path, **FAST).train_all_models()
    trained = MovieLensTrainer(data, split, num_epochs=1, layer_sizes=(8,), models_root=tmp_path,
                               **FAST).train_model(())
    with pytest.raises(KeyError, match=r"unknown user id '999'.*valid ids are 1\.\.60"):
        trained.recommender().recommend("999")


def test_movie_length_uses_the_runtime_provider(synthetic, tmp_path, monkeypatch):
    """Real runtimes from a --movie_lengths_file table reach the candidate tower's table (no network)."""
    from movielens.movie_length import MovieLengthConfig

    monkeypatch.setenv("MOVIELENS_DATASETS_DIR", str(tmp_path / "datasets"))
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    runtimes = {movie_id: 80 + 3 * i for i, movie_id in enumerate(data.movies["movie_id"])}
    table = tmp_path / "runtimes.csv"
    table.write_text("movieId,runtime_min\n" + "".join(f"{m},{r}\n" for m, r in runtimes.items()))
    config = MovieLengthConfig(table_path=str(table), use_network=False)
    trained = MovieLensTrainer(data, split, num_epochs=1, layer_sizes=(8,), additional_feature_sets=[["movie_length"]],
                               movie_length_config=config, models_root=tmp_path / "models", **FAST
                               ).train_model(["movie_length"])
    expected = [runtimes[m] for m in trained.tables.movie_ids]
    assert trained.tables.movie_minutes.tolist() == pytest.approx(expected)
    assert "movie_length" in trained.model_dir.read_json("config.json")["config"]["features"]
    assert "movie_minutes" in trained.model_dir.read_json("config.json")  # runtimes are in the cache key
    assert "real runtime" in trained.model_dir.read_json("features.json")["movie_length"]


def test_unknown_user_rate_trains_the_unknown_slot(synthetic, tmp_path):
    """With unknown_user_rate, slot 0 (people not in the data) is trained; without (and no L2 decay), it keeps
    its initial value."""
    data, _ = synthetic
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    slots = {}
    for rate in (0.0, 0.5):
        trained = MovieLensTrainer(data, split, num_epochs=1, layer_sizes=(8,), additional_feature_sets=[["history"]],
                                   unknown_user_rate=rate, l2=0.0, models_root=tmp_path, **FAST
                                   ).train_model(["history"])
        slots[rate] = trained.model.query_tower.user_embedding.embeddings.numpy()
        inputs = {"user": tf.constant([0, 1], tf.int64), "timestamp": tf.constant([0, 0], tf.int64)}
        np.testing.assert_array_equal(trained.model.query_tower(inputs), trained.model.query_tower(inputs))
    tf.keras.utils.set_random_seed(trained.config.seed)  # the trainer's seed: the same initial weights
    initial = build_two_tower(("history",), trained.tables, trained.config.embedding_size, (8,))
    np.testing.assert_array_equal(slots[0.0][0], initial.query_tower.user_embedding.embeddings.numpy()[0])
    assert not np.allclose(slots[0.5][0], slots[0.0][0])


def test_default_dense_stack_and_load_api(trained_id_only):
    from movielens.trainer import TwoTowerConfig

    assert TwoTowerConfig().dense_layers() == ()  # id-only: the embeddings themselves
    assert TwoTowerConfig(features=("timestamp",)).dense_layers() == (TwoTowerConfig().embedding_size,)
    assert TwoTowerConfig(features=("timestamp",), layer_sizes=(8, 4)).dense_layers() == (8, 4)
    data, _, split, trained, _ = trained_id_only
    model, tables = MovieLensTrainer(data, split, verbose=0).load(trained.config, trained.model_dir)
    np.testing.assert_array_equal(candidate_embeddings(model, tables.num_candidates),
                                  candidate_embeddings(trained.model, trained.tables.num_candidates))


def test_validation_curves_mark_the_kept_epoch_and_draw_baselines():
    from movielens.plots import validation_curves

    figure = validation_curves({"a": {"epoch": [1, 2, 3], "val_ndcg@10": [0.1, 0.2, 0.15], "best_epoch": 2},
                                "b": {"epoch": [1, 2], "val_ndcg@10": [0.05, None]}},
                               baselines={"popularity": 0.13, "EASE": 0.27})
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["a", "b"] and list(lines[1].x) == [1]  # epochs without a value skipped
    kept = [t for t in figure.data if t.name == "a kept"]
    assert list(kept[0].x) == [2] and list(kept[0].y) == [0.2]
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.13, 0.27]
    assert all(shape.line.dash == "dash" for shape in figure.layout.shapes)
    assert {a.text for a in figure.layout.annotations} == {"popularity 0.130", "EASE 0.270"}
