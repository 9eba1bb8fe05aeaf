"""The rating, knn and evaluation paths at scale, on small synthetic data: row-sparse optimizer updates,
bounded shuffles, autorec on sparse input equal to the dense computation, evaluation in user batches equal
to one pass, and a seeded validation sample of users."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf  # conftest imported movielens first (Keras 2)

from movielens import protocol, rating, rating_data
from movielens.data.splits import Vocabulary, random_split
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens
from movielens.evaluation import ItemSets, exclude_seen, recall_ndcg_at_k, sample_rows, top_k
from movielens.families import get_family
from movielens.families.base import Context, model_dir_for
from movielens.features import fit_feature_tables
from movielens.models import knn as knn_model
from movielens.models.autorec import ItemAutoRec, rating_columns, rating_matrix
from movielens.models.rating_cf import EmbeddingDotBias
from movielens.optimizers import LARGE_TABLE_ROWS, LazyAdam, use_sparse_updates
from movielens.retrieval import RankingEvaluator


def _dataset_ops(dataset: tf.data.Dataset) -> set[str]:
    """Every op type in a dataset's graph, its functions (map / flat_map bodies) included."""
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


# ------------------------------------------------------------------------------ sparse optimizer updates


def _cf_model():
    tf.keras.utils.set_random_seed(0)
    model = EmbeddingDotBias(num_users=12, num_movies=9, n_factors=4)
    model({"user": tf.zeros([1], tf.int64), "movie": tf.zeros([1], tf.int64)})
    return model


def _step(model, optimizer, users, movies):
    with tf.GradientTape() as tape:
        predicted = model({"user": tf.constant(users, tf.int64), "movie": tf.constant(movies, tf.int64)},
                          training=True)
        loss = tf.reduce_mean(tf.square(predicted - 4.0)) + tf.add_n(model.losses)
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))


def _tables(model) -> dict[str, np.ndarray]:
    return {layer.name: layer.embeddings.numpy().copy()
            for layer in (model.user_embedding, model.movie_embedding, model.user_bias, model.movie_bias)}


def test_lazy_adam_moves_only_the_rows_of_the_batch():
    """Step 2 sees other users and movies than step 1: LazyAdam leaves step 1's rows where step 1 put them;
    Keras' Adam keeps moving them with their momentum (the dense update of every row the issue measured)."""
    first_users, first_movies, second_users, second_movies = [1, 2, 3], [4, 5, 4], [7, 8, 9], [1, 2, 2]
    moved = {}
    for name, optimizer in (("lazy", LazyAdam(0.05)), ("adam", tf.keras.optimizers.Adam(0.05))):
        model = _cf_model()
        initial = _tables(model)
        _step(model, optimizer, first_users, first_movies)
        after_first = _tables(model)
        _step(model, optimizer, second_users, second_movies)
        after_second = _tables(model)
        untouched = {"user_embedding": [0, 4, 5, 6, 10, 11], "movie_embedding": [0, 3, 6, 7, 8]}
        for table, rows in untouched.items():  # never in a batch: never moved, by either optimizer
            np.testing.assert_array_equal(after_second[table][rows], initial[table][rows])
        moved[name] = (after_first, after_second)
    lazy_first, lazy_second = moved["lazy"]
    adam_first, adam_second = moved["adam"]
    for table in lazy_first:
        np.testing.assert_allclose(lazy_first[table], adam_first[table], rtol=1e-5, atol=1e-6)  # step 1: same rule
    np.testing.assert_array_equal(lazy_second["user_embedding"][first_users], lazy_first["user_embedding"][first_users])
    np.testing.assert_array_equal(lazy_second["movie_embedding"][[4, 5]], lazy_first["movie_embedding"][[4, 5]])
    assert not np.allclose(adam_second["user_embedding"][first_users], adam_first["user_embedding"][first_users])
    assert not np.array_equal(lazy_second["user_embedding"][second_users], lazy_first["user_embedding"][second_users])


def test_sparse_optimizer_auto_switches_on_for_large_tables_only():
    assert not use_sparse_updates("auto", LARGE_TABLE_ROWS - 1) and use_sparse_updates("auto", LARGE_TABLE_ROWS)
    assert use_sparse_updates("on", 10) and not use_sparse_updates("off", 10 ** 6)
    with pytest.raises(ValueError, match="sparse_optimizer must be one of auto, on, off"):
        use_sparse_updates("lazy", 10)
    def ids(n):
        return np.arange(1, n + 1).astype(str).astype(object)

    small, large = Vocabulary(ids(943), ids(1682)), Vocabulary(ids(162_541), ids(59_047))  # ML-100K, ML-25M
    cf = rating.default_config("cf")
    assert not rating.sparse_updates(cf, small) and rating.sparse_updates(cf, large)
    assert isinstance(rating.make_optimizer(cf, 10, rating.sparse_updates(cf, large)), LazyAdam)
    assert not rating.sparse_updates(cf.replace(optimizer="sgd"), large)
    assert not rating.sparse_updates(rating.default_config("autorec"), large)  # dense layers: nothing to skip
    with pytest.raises(ValueError, match="sparse_optimizer on is the sparse Adam of cf"):
        rating.default_config("autorec", sparse_optimizer="on")


def test_sparse_optimizer_keeps_the_cache_identity_of_small_data(synthetic):
    """`auto` on small data trains exactly as before the option existed, so its saved models stay valid;
    the sparse path is another model."""
    data, _ = synthetic
    context = Context(data, random_split(data, (0.8, 0.1, 0.1), seed=42), verbose=0)
    for name, config in (("cf", rating.default_config("cf")), ("knn", knn_model.KnnConfig())):
        family = get_family(name)
        identity = model_dir_for(family, config, context).config
        assert "sparse_optimizer" not in identity["config"] and "sparse_updates" not in identity
        assert "validation_users" not in identity["config"]
        on = model_dir_for(family, config.replace(sparse_optimizer="on"), context)
        assert on.config["sparse_updates"] is True and on.hash != model_dir_for(family, config, context).hash
    sampled = model_dir_for(get_family("knn"), knn_model.KnnConfig(validation_users=5), context)
    assert sampled.config["config"]["validation_users"] == 5


# --------------------------------------------------------------------------------------- bounded shuffles


def test_rating_pipeline_has_no_shuffle_buffer_or_cache():
    """An epoch is a seeded permutation of row indices gathered a batch at a time from the in-memory arrays:
    no tf.data shuffle buffer or cache holding examples (the issue's 16.6 GB at 25M)."""
    n = 1000
    part = rating_data.EncodedRatings(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64) % 7,
                                      np.ones(n, np.float32))
    data = rating.training_dataset(rating.default_config("cf", batch_size=64), part)
    ops = _dataset_ops(data.from_epoch(0))
    assert not {op for op in ops if "Shuffle" in op and "Stateless" not in op} and "CacheDatasetV2" not in ops
    seen = np.concatenate([inputs["user"].numpy() for inputs, _ in data.make_epoch(tf.constant(0, tf.int64))])
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_undirected_pairs_are_the_cooccurrence_pairs_once_each():
    rng = np.random.default_rng(0)
    rows = np.sort(rng.integers(0, 30, 400))
    items = rng.integers(0, 50, 400)
    queries, candidates = knn_model.cooccurrence_pairs(items, rows, window=3)
    pairs = knn_model.undirected_pairs(items, rows, window=3)
    assert pairs.dtype == np.int32 and 2 * len(pairs) == len(queries)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    assert sorted(map(tuple, both.tolist())) == sorted(zip(queries.tolist(), candidates.tolist()))


def test_pair_batches_read_every_directed_pair_once_per_epoch_in_bounded_blocks():
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 1000, (203, 2)).astype(np.int32)
    expected = sorted(map(tuple, np.concatenate([pairs, pairs[:, ::-1]]).tolist()))
    data = knn_model.pair_batches(pairs.copy(), batch_size=16, seed=3, shuffle_window=50)
    epochs = []
    for epoch in (0, 1, 0):
        batches = list(data.make_epoch(tf.constant(epoch, tf.int64)))
        assert len(batches) == data.steps_per_epoch and max(len(b["query"]) for b in batches) == 16
        read = [(int(q), int(c)) for b in batches for q, c in zip(b["query"].numpy(), b["candidate"].numpy())]
        assert sorted(read) == expected
        epochs.append(read)
    assert epochs[0] == epochs[2] and epochs[0] != epochs[1]  # a function of (seed, epoch)
    assert data.steps_per_epoch == 8 * 4 + 1  # 406 directed pairs: 8 blocks of 50 (4 batches each) + 6
    ops = _dataset_ops(data.from_epoch(0))
    assert not {op for op in ops if "Shuffle" in op and "Stateless" not in op} and "CacheDatasetV2" not in ops


def test_knn_trains_through_the_bounded_shuffle_and_sparse_updates(monkeypatch, tmp_path):
    monkeypatch.setattr(knn_model, "SHUFFLE_WINDOW", 500)
    data, _ = synthetic_movielens(SyntheticSpec(n_users=60, n_movies=30, ratings_per_user=12, seed=2))
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    config = knn_model.KnnConfig(embedding_size=8, epochs=2, batch_size=64, sparse_optimizer="on",
                                 validation_users=10)
    fitted = get_family("knn").fit(config, Context(data, split, verbose=0),
                                   model_dir_for(get_family("knn"), config, Context(data, split), root=tmp_path))
    assert fitted.metrics["training_pairs"] > 500 and fitted.metrics["validation_users"] == 10
    assert len(fitted.history["epoch"]) == 2
    assert isinstance(fitted.state.model.optimizer, LazyAdam)


# ------------------------------------------------------------------------------------- autorec, sparse


def test_rating_columns_equal_the_dense_matrix_last_rating_wins():
    users, movies = [1, 2, 0, 2, 3, 1], [3, 1, 2, 0, 1, 3]
    ratings = [4.0, 2.5, 5.0, 1.0, 3.0, 2.0]  # (1, 3) is rated twice: the later 2.0 counts, as in the dense fill
    sparse = rating_columns(users, movies, ratings, num_users=4, num_movies=5)
    np.testing.assert_array_equal(sparse.toarray(), rating_matrix(users, movies, ratings, 4, 5))
    assert sparse.nnz == 3


def _planted_matrix(seed=0, movies=9, users=7):
    rng = np.random.default_rng(seed)
    ratings = np.where(rng.random((movies, users)) < 0.5, rng.integers(1, 6, (movies, users)), 0).astype(np.float32)
    ratings[0], ratings[:, 0] = 0.0, 0.0  # the unknown slots
    ratings[1:, 1][ratings[1:].sum(axis=1) == 0] = 3.0  # every movie rated
    return ratings


def test_autorec_sparse_step_equals_the_dense_computation():
    """One SGD step of the sparse train_step moves every weight as the dense masked objective's gradient does."""
    ratings = _planted_matrix()
    tf.keras.utils.set_random_seed(1)
    model = ItemAutoRec(rating_columns(*np.nonzero(ratings.T), ratings.T[np.nonzero(ratings.T)], 7, 9),
                        n_factors=4, weight_decay=3.0)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01))
    V, mu = tf.Variable(model.encoder.kernel), tf.Variable(model.encoder.bias)
    W, b = tf.Variable(model.decoder.kernel), tf.Variable(model.decoder.bias)
    batch = np.array([2, 5, 6, 8])
    rows = tf.constant(ratings[batch])
    with tf.GradientTape() as tape:  # the dense formulation: whole columns, masked
        rebuilt = tf.sigmoid(rows @ V + mu) @ W + b
        observed = tf.cast(rows > 0, tf.float32)
        penalty = 0.5 * 3.0 * (len(batch) / 8) * (tf.reduce_sum(V ** 2) + tf.reduce_sum(W ** 2))
        objective = tf.reduce_sum(observed * tf.square(rebuilt - rows)) + penalty
    gradients = tape.gradient(objective, [V, mu, W, b])
    logs = model.train_step(tf.constant(batch))
    assert float(logs["loss"]) * float(tf.reduce_sum(observed)) == pytest.approx(float(objective), rel=1e-5)
    for variable, reference, gradient in zip((model.encoder.kernel, model.encoder.bias, model.decoder.kernel,
                                              model.decoder.bias), (V, mu, W, b), gradients):
        np.testing.assert_allclose(variable.numpy(), (reference - 0.01 * gradient).numpy(), rtol=1e-5, atol=1e-6)


def test_autorec_sparse_predictions_equal_the_dense_formula():
    ratings = _planted_matrix(seed=4)
    tf.keras.utils.set_random_seed(2)
    model = ItemAutoRec(ratings, n_factors=5)  # a dense matrix is accepted (converted)
    V, mu = model.encoder.kernel.numpy(), model.encoder.bias.numpy()
    W, b = model.decoder.kernel.numpy(), model.decoder.bias.numpy()
    dense = (1 / (1 + np.exp(-(ratings @ V + mu)))) @ W + b  # [movies, users]
    observed = ratings[ratings > 0]
    users, movies = np.meshgrid(np.arange(1, 7), np.arange(1, 9))
    users, movies = users.ravel(), movies.ravel()
    expected = np.clip(dense[movies, users], observed.min(), observed.max())
    np.testing.assert_allclose(rating.predict_ratings(model, users, movies), expected, rtol=1e-5)
    called = model({"user": tf.constant(users, tf.int64), "movie": tf.constant(movies, tf.int64)}).numpy()
    np.testing.assert_allclose(called, expected, rtol=1e-5)
    np.testing.assert_allclose(model.movie_vectors()[1:], 1 / (1 + np.exp(-(ratings[1:] @ V + mu))), rtol=1e-5)


# ------------------------------------------------------------------------------- evaluation in user batches


@pytest.fixture(scope="module")
def scale_split():
    data, _ = synthetic_movielens(SyntheticSpec(n_users=90, n_movies=40, ratings_per_user=14, seed=5))
    return data, random_split(data, (0.7, 0.15, 0.15), seed=42)


class _RandomScorer:
    def __init__(self, n_items, seed=0):
        rng = np.random.default_rng(seed)
        self.items, self.users = rng.normal(size=(n_items, 6)).astype(np.float32), {}
        self.rng = rng

    def candidates(self):
        return self.items

    def queries(self, histories):
        out = []
        for user in histories.user_ids:
            if user not in self.users:
                self.users[user] = np.random.default_rng(abs(hash(user)) % 2 ** 32).normal(size=6)
            out.append(self.users[user])
        return np.asarray(out, np.float32)


def test_protocol_in_user_batches_equals_one_pass(scale_split):
    data, split = scale_split
    task = protocol.evaluation_task(split, "test")
    scorer = _RandomScorer(len(split.vocabulary.movie_ids))
    whole = protocol.rank(scorer, task, batch_size=10_000)
    batched = protocol.rank(scorer, task, batch_size=7)
    for name in protocol.PER_USER:
        np.testing.assert_array_equal(batched.per_user[name], whole.per_user[name])
    np.testing.assert_array_equal(batched.top10, whole.top10)


def test_validation_sample_is_seeded_a_subset_and_the_same_each_time(scale_split):
    _, split = scale_split
    task = protocol.evaluation_task(split, "validation")
    sample = protocol.evaluation_task(split, "validation", sample_users=20, seed=3)
    again = protocol.evaluation_task(split, "validation", sample_users=20, seed=3)
    other = protocol.evaluation_task(split, "validation", sample_users=20, seed=4)
    assert len(sample) == 20 and list(sample.histories.user_ids) == list(again.histories.user_ids)
    assert set(sample.histories.user_ids) < set(task.histories.user_ids)
    assert list(sample.histories.user_ids) != list(other.histories.user_ids)
    assert list(sample.histories.user_ids) == sorted(sample.histories.user_ids)  # in the task's order
    assert protocol.evaluation_task(split, "validation", sample_users=0) is not None
    assert len(protocol.evaluation_task(split, "validation", sample_users=10 ** 6)) == len(task)
    # A sampled user's task rows are exactly that user's rows of the full task.
    scorer = _RandomScorer(len(split.vocabulary.movie_ids))
    full = protocol.rank(scorer, task)
    part = protocol.rank(scorer, sample)
    rows = np.searchsorted(task.histories.user_ids.astype(str), sample.histories.user_ids.astype(str))
    np.testing.assert_array_equal(part.per_user[protocol.PRIMARY], full.per_user[protocol.PRIMARY][rows])
    with pytest.raises(ValueError, match="integer >= 0"):
        task.sample(-1)
    np.testing.assert_array_equal(sample_rows(5, 0, 1), np.arange(5))


class _Tower:
    def __init__(self, table):
        self.table = tf.constant(table)

    def __call__(self, inputs):
        rows = inputs["user"] if isinstance(inputs, dict) else inputs
        return tf.gather(self.table, rows)


class _TwoTowers:
    """What RankingEvaluator reads of a two-tower model: a query tower (user index) and a candidate tower (row)."""

    def __init__(self, n_users, n_rows, seed=0):
        rng = np.random.default_rng(seed)
        self.query_tower = _Tower(rng.normal(size=(n_users, 5)).astype(np.float32))
        self.candidate_tower = _Tower(rng.normal(size=(n_rows, 5)).astype(np.float32))


def test_ranking_evaluator_in_user_batches_equals_one_pass_and_samples_users(scale_split):
    data, split = scale_split
    tables = fit_feature_tables(data, split)
    model = _TwoTowers(tables.num_users, tables.num_candidates)
    whole = RankingEvaluator(tables, split, "validation", batch_size=10_000)(model)
    for batch_size in (1, 7):
        assert RankingEvaluator(tables, split, "validation", batch_size=batch_size)(model) == whole
    # Against the one-pass metrics of all users' top-100 lists at once.
    evaluator = RankingEvaluator(tables, split, "validation")
    scores = evaluator.query_embeddings(model) @ np.asarray(model.candidate_tower.table).T
    top = top_k(exclude_seen(scores, evaluator.seen, evaluator.targets), 100)
    reference = recall_ndcg_at_k(top, evaluator.targets, ks=(10, 100))
    assert whole == {key: reference[key] for key in whole}  # the keys it reports (ndcg@10, recall@10/100)
    sampled = RankingEvaluator(tables, split, "validation", sample_users=12, seed=1)
    assert len(sampled.users) == 12 and set(sampled.users) < set(evaluator.users)
    np.testing.assert_array_equal(sampled.users, RankingEvaluator(tables, split, "validation", sample_users=12,
                                                                  seed=1).users)
    assert sampled(model)["users_evaluated"] == 12.0


def test_recall_ndcg_without_a_dense_matrix_matches_the_dense_reference():
    rng = np.random.default_rng(0)
    n, n_items = 50, 300
    targets = ItemSets.from_lists([rng.choice(n_items, rng.integers(0, 6), replace=False) for _ in range(n)])
    top = np.stack([rng.permutation(n_items)[:20] for _ in range(n)])
    top[3, 5:] = -1  # "no item"
    is_target = np.zeros((n, n_items), bool)
    is_target[targets.row_ids(), targets.indices] = True
    hits = np.take_along_axis(is_target, np.where(top >= 0, top, 0), axis=1) & (top >= 0)
    sizes = np.diff(targets.indptr)
    valid = sizes > 0
    got = recall_ndcg_at_k(top, targets, ks=(5, 20))
    discounts = 1.0 / np.log2(np.arange(20) + 2.0)
    for k in (5, 20):
        assert got[f"recall@{k}"] == float((hits[:, :k].sum(axis=1)[valid] / sizes[valid]).mean())
        ideal = np.r_[0.0, np.cumsum(discounts[:k])][np.minimum(sizes, k)]
        assert got[f"ndcg@{k}"] == float(((hits[:, :k] * discounts[:k]).sum(axis=1)[valid] / ideal[valid]).mean())
    assert got["users_evaluated"] == float(valid.sum())
