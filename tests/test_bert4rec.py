"""BERT4Rec: learning a planted sequence pattern, next-item evaluation, caching, titles, contract, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from movielens import evaluation
from movielens.data.splits import leave_last_out_split
from movielens.models.bert4rec import Bert4Rec, Bert4RecConfig, SelfAttention, StatelessDropout
from movielens.recommender import UserHistory
from movielens.schedules import WarmupConstant
from movielens.sequences import NextItemTask, UserSequences, masked_dataset, training_windows
from movielens.sequential import (
    Bert4RecTrainingConfig,
    load_network,
    next_item_metrics,
    next_item_ranks,
    train_bert4rec,
)
from movielens.titles import UnknownTitleError

TINY = Bert4RecConfig(max_len=16, hidden_dim=16, num_layers=1, num_heads=2, dropout=0.0)
TINY_TRAINING = Bert4RecTrainingConfig(batch_size=32, epochs=2, evaluate_every=1, patience=2, warmup_steps=0,
                                       learning_rate=5e-3)


def test_config_rejects_bad_values_and_unknown_keys():
    with pytest.raises(ValueError, match="num_heads"):
        Bert4RecConfig(hidden_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="mask_prob"):
        Bert4RecConfig(mask_prob=1.5)
    with pytest.raises(ValueError, match="unknown Bert4RecConfig keys"):
        Bert4RecConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match="batch_size"):
        Bert4RecTrainingConfig(batch_size=0)
    assert Bert4RecConfig() == Bert4RecConfig.from_dict(Bert4RecConfig().to_dict())
    defaults = Bert4RecConfig()
    assert (defaults.max_len, defaults.hidden_dim, defaults.num_layers, defaults.num_heads, defaults.mask_prob,
            defaults.dropout) == (200, 64, 2, 2, 0.2, 0.1)


def test_patience_is_raised_to_the_steps_it_must_wait():
    """5 validations, every 3 epochs: 1,005 steps on ML-1M (users 1-2999, 67 steps an epoch), 210 on
    ml-latest-small (14); patience_steps 1000 keeps the first and lifts the second to ceil(1000 / 42) = 24."""
    from movielens.sequential import SasRecTrainingConfig, early_stopping_patience

    training = Bert4RecTrainingConfig()
    assert (training.patience, training.evaluate_every, training.patience_steps) == (5, 3, 1000)
    assert early_stopping_patience(training, 67) == 5
    assert early_stopping_patience(training, 14) == 24
    assert early_stopping_patience(training, 0) == 334  # an empty epoch counts as one step
    assert early_stopping_patience(training.replace(patience_steps=0), 14) == 5  # validations only
    assert early_stopping_patience(training.replace(patience=0), 14) == 0  # never stop early stays never
    assert early_stopping_patience(SasRecTrainingConfig(), 14) == 10  # SASRec: validations only
    with pytest.raises(ValueError, match="patience_steps"):
        Bert4RecTrainingConfig(patience_steps=-1)


def test_trimmed_padding_gives_the_same_scores():
    """Positions count from the end, so a left-padded batch scores as its trimmed version."""
    model = Bert4Rec(TINY, n_items=30).build_variables()
    histories = [np.array([3, 4, 5], np.int32), np.array([7, 8, 9, 10, 11, 12], np.int32)]
    trimmed = model.score_histories(histories)
    full = np.concatenate([model.score_last(tf.constant(model.next_item_inputs([h]))).numpy() for h in histories])
    np.testing.assert_allclose(trimmed, full, rtol=1e-5, atol=1e-5)


def test_self_attention_matches_keras_multi_head_attention():
    """The matmul attention computes what tf.keras.layers.MultiHeadAttention does with the same weights."""
    hidden, heads, batch, length = 8, 2, 3, 5
    x = tf.random.stateless_normal([batch, length, hidden], seed=[0, 1])
    key_mask = tf.constant([[False, False, True, True, True], [True] * 5, [False, True, True, True, True]])
    ours = SelfAttention(hidden, heads, dropout=0.0)
    ours(x, key_mask)
    keras = tf.keras.layers.MultiHeadAttention(heads, hidden // heads)
    keras(x, x)
    qkv_kernel, qkv_bias, out_kernel, out_bias = (w.numpy() for w in ours.weights)
    q, k, v = (qkv_kernel.reshape(hidden, 3, heads, hidden // heads)[:, i] for i in range(3))
    qb, kb, vb = (qkv_bias.reshape(3, heads, hidden // heads)[i] for i in range(3))
    keras.set_weights([q, qb, k, kb, v, vb, out_kernel.reshape(heads, hidden // heads, hidden), out_bias])
    mask = tf.logical_and(key_mask[:, None, :], tf.ones([batch, length, 1], tf.bool))
    np.testing.assert_allclose(ours(x, key_mask).numpy(), keras(x, x, attention_mask=mask).numpy(), atol=1e-5)


def test_stateless_dropout_rate_scaling_and_fresh_masks():
    tf.keras.utils.set_random_seed(0)
    layer = StatelessDropout(0.25)
    x = tf.ones([200, 200])
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert abs((first == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(first[first != 0], 1 / 0.75, rtol=1e-6)
    assert (first != second).any()  # a new mask every call
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())


@pytest.mark.slow
def test_learns_a_deterministic_sequence_to_near_perfect_hr_at_1():
    """Every user walks the catalogue cyclically (item i is followed by i + 1): next-item is fully determined."""
    n_items, length = 20, 10
    rng = np.random.default_rng(0)
    starts, lengths = rng.integers(0, n_items, 300), rng.integers(4, length + 1, 300)
    sequences = [((s + np.arange(n)) % n_items + 1).astype(np.int32) for s, n in zip(starts, lengths)]
    train = UserSequences(np.arange(len(sequences)).astype(str).astype(object), sequences)
    config = Bert4RecConfig(max_len=12, hidden_dim=32, num_layers=1, num_heads=2, dropout=0.0, mask_prob=0.3)
    windows = training_windows(train, config.max_len)
    dataset = masked_dataset(windows, n_items, 32, config.mask_prob, config.predictions_per_window, seed=1)
    model = Bert4Rec(config, n_items).build_variables()
    model.compile(optimizer=tf.keras.optimizers.Adam(WarmupConstant(1e-2, 20)))
    model.fit(dataset, epochs=30, verbose=0)
    test_starts = rng.integers(0, n_items, 100)
    histories = [((s + np.arange(6)) % n_items + 1).astype(np.int32) for s in test_starts]
    targets = np.array([(s + 6) % n_items + 1 for s in test_starts], np.int64)
    metrics = next_item_metrics(model, NextItemTask(test_starts.astype(str), histories, targets))
    assert metrics["hr@1"] >= 0.95, metrics
    assert 0.9 <= metrics["mrr"] <= 1.0


class _FixedScores:
    """Stands in for a model: item j + 1 scores `scores[j]` for every history."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float32)
        self.n_items = len(self.scores)

    def score_histories(self, histories, batch_size=256):
        return np.tile(self.scores, (len(histories), 1))


def test_evaluation_excludes_the_history_and_ranks_the_target():
    model = _FixedScores([0.9, 0.8, 0.7, 0.6, 0.5])  # items 1..5, best first
    task = NextItemTask(np.array(["a", "b", "c", "d"], object),
                        [np.array([1, 2], np.int32), np.array([1], np.int32), np.array([], np.int32),
                         np.array([1], np.int32)],
                        np.array([3, 3, 3, 0]))  # d's target was never rated in training
    ranks = next_item_ranks(model, task)
    # a: items 1, 2 excluded -> 3 first; b: 2 ahead; c: 1, 2 ahead; d: unknown target = miss.
    assert ranks.tolist() == [0, 1, 2, 5]
    metrics = next_item_metrics(model, task)
    assert metrics["hr@1"] == 0.25 and metrics["hr@5"] == 0.75
    assert metrics["ndcg@5"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(4)) / 4)


def test_a_history_item_that_is_also_the_target_is_not_excluded():
    model = _FixedScores([0.9, 0.8, 0.7])
    task = NextItemTask(np.array(["a"], object), [np.array([1, 2], np.int32)], np.array([2]))
    assert next_item_ranks(model, task).tolist() == [0]


def test_sampled_negatives_avoid_history_and_target_and_follow_popularity():
    seen = evaluation.ItemSets.from_lists([[0, 1], [5]])
    popularity = np.r_[np.full(10, 100.0), np.ones(190)]
    negatives = evaluation.sample_negatives(seen, np.array([2, 3]), popularity, n=20, seed=0)
    assert negatives.shape == (2, 20)
    for row, excluded in ((0, {0, 1, 2}), (1, {5, 3})):
        assert len(set(negatives[row])) == 20 and not set(negatives[row]) & excluded
    assert (negatives < 10).sum() > 10  # 1000 of the 1190 weight sits on the 10 popular items
    again = evaluation.sample_negatives(seen, np.array([2, 3]), popularity, n=20, seed=0)
    assert (negatives == again).all()
    with pytest.raises(ValueError, match="eligible"):
        evaluation.sample_negatives(seen, np.array([2, 3]), np.ones(5), n=20)
    scores = np.array([[0.1, 0.5, 0.9, 0.3]])
    assert evaluation.sampled_target_ranks(scores, np.array([1]), np.array([[0, 2, 3]])).tolist() == [1]


@pytest.fixture(scope="module")
def trained_synthetic(synthetic, tmp_path_factory):
    """Trained once per module (training is the slow part); its saved_models/ root is returned too."""
    data, _ = synthetic
    split = leave_last_out_split(data)
    root = tmp_path_factory.mktemp("bert4rec_models")
    return data, split, train_bert4rec(data, split, TINY, TINY_TRAINING, seed=3, verbose=0, root=root), root


def test_training_reports_metrics_and_save_load_gives_identical_scores(trained_synthetic):
    data, split, trained, root = trained_synthetic
    for key in ("test_hr@1", "test_hr@5", "test_hr@10", "test_ndcg@5", "test_ndcg@10", "test_mrr"):
        assert 0.0 <= trained.metrics[key] <= 1.0
    assert trained.history["epoch"] == [1, 2] and trained.history["val_ndcg@10"][0] is not None
    for name in ("config.json", "history.json", "metrics.json", "sequential.json", "complete"):
        assert (trained.model_dir.path / name).is_file()
    histories = [np.array([1, 2, 3], np.int32), np.array([5], np.int32)]
    reloaded = load_network(trained.model_dir, TINY_TRAINING, len(split.vocabulary.movie_ids))
    np.testing.assert_allclose(trained.model.score_histories(histories), reloaded.score_histories(histories),
                               rtol=1e-6, atol=1e-6)
    cached = train_bert4rec(data, split, TINY, TINY_TRAINING, seed=3, verbose=0, root=root)
    assert cached.loaded and cached.metrics == trained.metrics
    assert list(cached.vocabulary.movie_ids) == list(split.vocabulary.movie_ids)


def _recommender(data, split, root):
    """The shared recommender over the module's model (loaded from its saved_models/)."""
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.families.sequential import SequentialConfig
    from movielens.recommender import Recommender

    record = train_or_load(get_family("bert4rec"), SequentialConfig(TINY, TINY_TRAINING, 3),
                           Context(data, split, verbose=0), root=root, no_train=True)
    return Recommender(record, backend="brute_force")


def test_recommend_from_titles_is_tolerant_and_excludes_seen(trained_synthetic):
    data, split, trained, root = trained_synthetic
    recommender = _recommender(data, split, root)
    titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
    matrix_id = data.movies.loc[data.movies["movie_title"].str.startswith("Matrix"), "movie_id"].iloc[0]
    exact = recommender.for_history([titles["1"], titles[matrix_id]], k=5).items
    for variant in (["cité des enfants perdus, la", "the matrix"], [titles["1"].upper(), "Matrix"]):
        again = recommender.for_history(variant, k=5).items
        assert [r.movie_id for r in again] == [r.movie_id for r in exact]
    assert not {r.movie_id for r in exact} & {"1", matrix_id}
    # The scores are the model's own next-item scores for that history.
    columns = split.vocabulary.encode_movies(["1", matrix_id])
    scores = trained.model.score_histories([columns.astype(np.int32)])[0]
    best = [c for c in np.argsort(-scores, kind="stable") if c + 1 not in set(columns)][:5]
    assert [r.movie_id for r in exact] == [split.vocabulary.movie_ids[c] for c in best]
    with pytest.raises(UnknownTitleError, match="Closest matches: .*Matrix"):
        recommender.for_history(["The Matrx"], k=5)


def test_recommend_for_a_user_uses_their_history(trained_synthetic):
    data, split, trained, root = trained_synthetic
    recommender = _recommender(data, split, root)
    user = UserHistory(data.ratings).user_ids[0]
    history = UserHistory(data.ratings).seen_movies(user)
    items = split.vocabulary.encode_movies(history)
    scores = trained.model.score_histories([items[items > 0].astype(np.int32)])[0]
    best = [c for c in np.argsort(-scores, kind="stable") if split.vocabulary.movie_ids[c] not in set(history)][:4]
    assert [r.movie_id for r in recommender.recommend(user, k=4)] == [split.vocabulary.movie_ids[c] for c in best]


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:  # epoch 1 is finished and checkpointed
            raise KeyboardInterrupt


def test_interrupted_training_resumes_from_the_last_epoch(synthetic, tmp_path, capsys):
    data, _ = synthetic
    split = leave_last_out_split(data)
    with pytest.raises(KeyboardInterrupt):
        train_bert4rec(data, split, TINY, TINY_TRAINING, seed=4, verbose=0, root=tmp_path, callbacks=[_Interrupt()])
    resumed = train_bert4rec(data, split, TINY, TINY_TRAINING, seed=4, verbose=0, root=tmp_path)
    assert "resuming from epoch 1" in capsys.readouterr().out.lower()
    assert resumed.history["epoch"] == [1, 2] and not resumed.loaded
