"""SASRec / gSASRec: causal attention, the losses, data-dependent defaults, planted next-movie series (with
BERT4Rec on the same data), caching and reload through `train_sequential`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from movielens.data.splits import leave_last_out_split
from movielens.data.table import MovieLensData, make_movies
from movielens.models.bert4rec import Bert4RecConfig, SelfAttention
from movielens.models.sasrec import SasRec, SasRecConfig, gbce_beta
from movielens.sequences import UserSequences
from movielens.sequential import (
    Bert4RecTrainingConfig,
    SasRecTrainingConfig,
    adapt_config,
    load_network,
    train_sequential,
)

TINY = SasRecConfig(max_len=12, hidden_dim=16, num_layers=1, num_heads=1, dropout=0.0)


def test_config_validates_and_round_trips():
    for bad, match in (({"loss": "bpr"}, "loss"), ({"hidden_dim": 10, "num_heads": 3}, "num_heads"),
                       ({"gbce_t": 1.5}, "gbce_t"), ({"num_negatives": 0}, "num_negatives"),
                       ({"max_len": 1}, "max_len"), ({"dropout": 1.0}, "dropout")):
        with pytest.raises(ValueError, match=match):
            SasRecConfig(**bad)
    with pytest.raises(ValueError, match="unknown SasRecConfig keys"):
        SasRecConfig.from_dict({"layers": 2})
    assert SasRecConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="resolve"):
        SasRec(SasRecConfig(), n_items=5)  # max_len / dropout still "from the data"


def test_plateau_decay_is_validated_and_only_in_the_identity_when_on():
    from movielens.families import get_family
    from movielens.families.sequential import SequentialConfig

    for bad in ({"plateau_factor": 0.0}, {"plateau_factor": 1.5}, {"plateau_patience": 0}):
        with pytest.raises(ValueError, match="plateau"):
            SasRecTrainingConfig(**bad)
    family = get_family("sasrec")
    off = family.identity_config(SequentialConfig(TINY, SasRecTrainingConfig()))["training"]
    on = family.identity_config(SequentialConfig(TINY, SasRecTrainingConfig(plateau_factor=0.5)))["training"]
    # Off: the identity of the models cached before the option existed; on: a different model.
    assert "plateau_factor" not in off and "plateau_patience" not in off
    assert on["plateau_factor"] == 0.5 and on["plateau_patience"] == 3
    # Patience in steps likewise: off (SASRec's default) leaves the identity as before; BERT4Rec's is in it.
    assert "patience_steps" not in off
    bert = get_family("bert4rec")
    assert bert.identity_config(bert.default_config())["training"]["patience_steps"] == 1000


def test_defaults_adapt_to_the_data():
    short = UserSequences(np.arange(100).astype(str).astype(object),
                          [np.ones(n, np.int32) for n in np.arange(100) % 30 + 1])
    adapted = adapt_config(SasRecConfig(), short)
    assert adapted.max_len == 32  # 90th percentile 27.1 -> 28, rounded up to a multiple of 8
    assert adapted.dropout == 0.5  # fewer than 500 users
    long = UserSequences(np.arange(943).astype(str).astype(object), [np.ones(900, np.int32)] * 943)
    adapted = adapt_config(SasRecConfig(), long)
    assert (adapted.max_len, adapted.dropout) == (200, 0.2)
    assert adapt_config(SasRecConfig(max_len=50, dropout=0.3), long) == SasRecConfig(max_len=50, dropout=0.3)


def test_gbce_beta_interpolates_between_bce_and_calibrated():
    # alpha = k / (n - 1) = 0.1: t = 0 is plain BCE (beta 1), t = 1 gives beta = alpha.
    assert gbce_beta(10, 101, 0.0) == pytest.approx(1.0)
    assert gbce_beta(10, 101, 1.0) == pytest.approx(0.1)
    assert gbce_beta(10, 101, 0.75) == pytest.approx(0.1 * (0.75 * (1 - 10) + 10))


def test_causal_attention_hides_later_positions():
    x = tf.random.stateless_normal([2, 6, 8], seed=[1, 2])
    changed = tf.concat([x[:, :4], x[:, 4:] + 5.0], axis=1)  # only positions 4, 5 differ
    key_mask = tf.ones([2, 6], tf.bool)
    causal = SelfAttention(8, 2, dropout=0.0, causal=True)
    np.testing.assert_allclose(causal(x, key_mask)[:, :4].numpy(), causal(changed, key_mask)[:, :4].numpy(),
                               atol=1e-6)
    assert not np.allclose(causal(x, key_mask)[:, 4:].numpy(), causal(changed, key_mask)[:, 4:].numpy())


def test_model_is_left_to_right_and_trimmed_padding_scores_the_same():
    model = SasRec(TINY, n_items=30).build_variables()
    items = np.array([[0, 0, 3, 4, 5, 6], [0, 0, 3, 4, 9, 9]], np.int32)
    hidden = model({"items": items}).numpy()
    np.testing.assert_allclose(hidden[0, 2:4], hidden[1, 2:4], atol=1e-5)  # the same prefix 3, 4
    histories = [np.array([3, 4, 5], np.int32), np.arange(1, 20, dtype=np.int32), np.zeros(0, np.int32)]
    batched = model.score_histories(histories)
    one_by_one = np.concatenate([model.score_last(tf.constant(model.next_item_inputs([h]))).numpy()
                                 for h in histories])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-5)
    assert batched.shape == (3, 30) and batched.dtype == np.float32


@pytest.mark.parametrize("loss", ["ce", "gbce"])
def test_losses_are_finite_and_ignore_padding(loss):
    config = TINY.replace(loss=loss, num_negatives=8)
    model = SasRec(config, n_items=30).build_variables()
    items = tf.constant([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]], tf.int32)
    targets = tf.constant([[0, 3, 4, 5, 6], [2, 3, 4, 5, 6]], tf.int32)
    value = float(model.compute_loss(({"items": items}, targets)))
    assert np.isfinite(value) and value > 0
    if loss == "ce":  # mean over the 8 real positions of the full softmax cross-entropy
        hidden = model({"items": items}).numpy()
        logits = hidden @ model.item_vectors().numpy().T
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        real = items.numpy() != 0
        expected = -np.mean(np.take_along_axis(log_probs, targets.numpy()[..., None] - 1, -1)[..., 0][real])
        assert value == pytest.approx(expected, rel=1e-5)
    else:  # the same negatives again (generator state rewound): -beta log s(pos) - sum log s(-neg), mean
        state = model.negative_generator.state.numpy()
        states = tf.boolean_mask(model({"items": items}), items != 0)
        labels = tf.boolean_mask(targets, items != 0) - 1
        value = float(tf.reduce_mean(model.gbce_losses(states, labels)))
        model.negative_generator.state.assign(state)
        negatives = model.negative_generator.uniform([8, 8], 0, 30, dtype=tf.int32).numpy()
        logits = states.numpy() @ model.item_vectors().numpy().T
        positive = logits[np.arange(8), labels.numpy()]
        negative = np.take_along_axis(logits, negatives, 1)
        log_sigmoid = lambda x: -np.logaddexp(0.0, -x)  # noqa: E731
        expected = np.mean(-model.beta * log_sigmoid(positive) - log_sigmoid(-negative).sum(-1))
        assert model.beta == pytest.approx(gbce_beta(8, 30, 0.75)) and value == pytest.approx(expected, rel=1e-5)


# --- planted series, through train_sequential ----------------------------------------------------------------

def planted_series_data(n_users: int = 160, seed: int = 0) -> MovieLensData:
    """Users watch a run of one of two series in order: movies 1, 2, ..., 10 or 11, 12, ..., 20."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        first = 1 if user % 2 else 11
        start = rng.integers(0, 6)
        length = rng.integers(4, 11 - start)  # runs end anywhere, so every movie is seen in training
        for step, movie in enumerate(range(first + start, first + start + length)):
            rows.append((str(user), str(movie), 1_000_000 + 100 * user + step, 4.0))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "timestamp", "user_rating"])
    movies = make_movies([str(m) for m in range(1, 21)],
                         [f"Series {'A' if m <= 10 else 'B'} part {(m - 1) % 10 + 1} ({1990 + m})"
                          for m in range(1, 21)], [["Drama"]] * 20)
    return MovieLensData("100k", "synthetic:planted-series", ratings, movies)


PLANTED = {
    "sasrec": (TINY.replace(hidden_dim=32),
               SasRecTrainingConfig(batch_size=32, epochs=12, learning_rate=1e-2, warmup_steps=0, evaluate_every=3,
                                    patience=10)),
    "sasrec-gbce": (TINY.replace(hidden_dim=32, loss="gbce", num_negatives=5),
                    SasRecTrainingConfig(batch_size=32, epochs=12, learning_rate=1e-2, warmup_steps=0,
                                         evaluate_every=3, patience=10)),
    "sasrec-sampled_ce": (TINY.replace(hidden_dim=32, loss="sampled_ce", num_negatives=8),
                          SasRecTrainingConfig(batch_size=32, epochs=12, learning_rate=1e-2, warmup_steps=0,
                                               evaluate_every=3, patience=10, plateau_factor=0.5,
                                               plateau_patience=1)),
    "bert4rec": (Bert4RecConfig(max_len=12, hidden_dim=32, num_layers=1, num_heads=2, dropout=0.0, mask_prob=0.3),
                 Bert4RecTrainingConfig(batch_size=32, epochs=25, learning_rate=1e-2, warmup_steps=0,
                                        evaluate_every=5, patience=10)),
}


@pytest.fixture(scope="module")
def planted_models(tmp_path_factory):
    data = planted_series_data()
    split = leave_last_out_split(data)
    root = tmp_path_factory.mktemp("sequential_models")
    trained = {name: train_sequential(data, split, name.split("-")[0], config, training, seed=1, verbose=0, root=root)
               for name, (config, training) in PLANTED.items()}
    return data, split, trained, root


def test_the_plateau_decay_reaches_the_optimizer(planted_models):
    """sasrec-sampled_ce trains with plateau_factor 0.5 every stalled validation: the scale each epoch trained
    with is in its history, 1 until the first stall and halved at each one after it."""
    history = planted_models[2]["sasrec-sampled_ce"].history
    scales, validated = history["lr_scale"], history["val_ndcg@10"]
    assert scales[0] == 1.0 and set(scales) <= {1.0, 0.5, 0.25, 0.125}
    best, expected = -1.0, 1.0
    for epoch, (scale, value) in enumerate(zip(scales, validated)):
        assert scale == expected, (epoch, scales, validated)
        if value is not None:
            expected = expected if value > best else expected * 0.5
            best = max(best, value)
    assert min(scales) < 1.0, scales  # the planted series saturate validation early: it did stall


def test_the_early_stop_waits_the_patience_it_records(planted_models):
    """BERT4Rec's patience is raised to `patience_steps` (1000 here: 10 validations of 5 epochs of a few steps
    are fewer); the history records the patience used, and SASRec's stays its `patience`."""
    from movielens.sequential import early_stopping_patience

    trained = planted_models[2]
    bert = trained["bert4rec"]
    steps = -(-bert.metrics["n_windows"] // PLANTED["bert4rec"][1].batch_size)
    assert bert.history["patience"] == early_stopping_patience(PLANTED["bert4rec"][1], steps) > 10
    assert trained["sasrec"].history["patience"] == 10


@pytest.mark.parametrize("name", list(PLANTED))
def test_the_next_movie_of_a_planted_series_ranks_first(planted_models, name):
    """Through the shared recommender, as `experiments.recommend --history` serves it."""
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.families.sequential import SequentialConfig
    from movielens.recommender import Recommender

    data, split, trained, root = planted_models
    config, training = PLANTED[name]
    record = train_or_load(get_family(name.split("-")[0]), SequentialConfig(config, training, 1),
                           Context(data, split, verbose=0), root=root, no_train=True)
    recommender = Recommender(record, backend="brute_force")
    titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
    for history, expected in ((["1", "2", "3"], "4"), (["11", "12", "13"], "14"), (["15", "16"], "17")):
        top = recommender.for_history([titles[m] for m in history], k=3).items
        assert top[0].movie_id == expected, (name, history, [r.movie_id for r in top])
    typed = recommender.for_history(["series a part 5", "Series A part 6 (1996)"], k=1).items
    assert typed[0].movie_title == "Series A part 7 (1997)"
    metrics = trained[name].metrics  # movies 9, 10, 19, 20 end every run: never in training, counted as misses
    known = 1.0 - metrics["test_unknown_targets"] / metrics["test_users"]
    assert metrics["test_hr@1"] >= 0.9 * known, metrics


def test_sasrec_cache_folder_save_load_and_reuse(planted_models):
    data, split, trained, root = planted_models
    sasrec = trained["sasrec"]
    assert sasrec.model_dir.path.name.startswith("sasrec-100k-leave_last_out-")
    assert trained["bert4rec"].model_dir.path.name.startswith("bert4rec-100k-leave_last_out-")
    assert sasrec.model_type == "sasrec" and isinstance(sasrec.model, SasRec)
    histories = [np.array([1, 2, 3], np.int32), np.array([5], np.int32), np.zeros(0, np.int32)]
    for name in PLANTED:
        reloaded = load_network(trained[name].model_dir, PLANTED[name][1], len(split.vocabulary.movie_ids))
        assert type(reloaded) is type(trained[name].model)
        np.testing.assert_allclose(trained[name].model.score_histories(histories),
                                   reloaded.score_histories(histories), rtol=1e-6, atol=1e-6)
    config, training = PLANTED["sasrec"]
    cached = train_sequential(data, split, "sasrec", config, training, seed=1, verbose=0, root=root)
    assert cached.loaded and cached.metrics == sasrec.metrics and cached.model_dir.path == sasrec.model_dir.path


def test_an_ensemble_of_seeds_sums_its_members_logits_and_reuses_cached_members(planted_models, capsys):
    """members=2: seed 1 (the cached "sasrec" model, reused) and seed 2 (trained); the ensemble ranks by the
    sum of their logits, on the sequential protocol and through the shared recommender; it reloads from
    cache, and a member deleted from saved_models/ is trained again while the other one loads."""
    import shutil

    from movielens.families import get_family
    from movielens.families.sequential import SequentialConfig
    from movielens.recommender import Recommender

    data, split, trained, root = planted_models
    config, training = PLANTED["sasrec"]
    ensemble = train_sequential(data, split, "sasrec", config, training, seed=1, verbose=0, root=root, members=2)
    members = ensemble.model.members
    assert len(members) == 2 and ensemble.model_dir.path.name.startswith("sasrec_2_seeds_-100k-leave_last_out-")
    assert [m["seed"] for m in ensemble.history["members"]] == [1, 2]
    assert ensemble.history["members"][0]["loaded"] and not ensemble.history["members"][1]["loaded"]
    histories = [np.array([1, 2, 3], np.int32), np.array([12], np.int32)]
    np.testing.assert_allclose(ensemble.model.score_histories(histories),
                               members[0].score_histories(histories) + members[1].score_histories(histories),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(members[0].score_histories(histories),
                               trained["sasrec"].model.score_histories(histories), rtol=1e-6, atol=1e-6)
    known = 1.0 - ensemble.metrics["test_unknown_targets"] / ensemble.metrics["test_users"]
    assert ensemble.metrics["test_hr@1"] >= 0.9 * known and "val_ndcg@10" in ensemble.metrics, ensemble.metrics
    assert ensemble.metrics["members"][0] == trained["sasrec"].metrics

    family = get_family("sasrec")
    two = SequentialConfig(config, training, 1, members=2)
    assert family.label(two) == "sasrec[2 seeds]" and family.identity_config(two)["members"] == 2
    assert "members" not in family.identity_config(SequentialConfig(config, training, 1))  # old models' identity
    with pytest.raises(ValueError, match="members"):
        SequentialConfig(config, training, 1, members=0)
    with pytest.raises(ValueError, match="member_hidden_dims"):
        SequentialConfig(config, training, 1, members=2, member_hidden_dims=(16,))
    with pytest.raises(ValueError, match="num_heads"):
        SequentialConfig(config.replace(num_heads=2), training, 1, members=2, member_hidden_dims=(16, 15))
    widths = SequentialConfig(config, training, 1, members=2, member_hidden_dims=(16, 48))
    assert family.label(widths) == "sasrec[hidden 16+48]"
    assert [widths.member(i).model.hidden_dim for i in (0, 1)] == [16, 48]
    assert widths.member(1).seed == 2 and widths.member(1).member_hidden_dims == ()
    assert "member_hidden_dims" not in family.identity_config(two)
    from movielens.families.base import Context, train_or_load

    record = train_or_load(family, two, Context(data, split, verbose=0), root=root, no_train=True)
    assert record.loaded
    top = Recommender(record, backend="brute_force").for_history(["Series B part 2 (2002)"], k=1).items
    assert top[0].movie_id == "13"

    shutil.rmtree(root / ensemble.history["members"][1]["model_dir"])
    capsys.readouterr()
    again = train_sequential(data, split, "sasrec", config, training, seed=1, verbose=0, root=root, members=2)
    assert "moved to" in capsys.readouterr().out and not again.loaded
    assert again.history["members"][0]["loaded"] and not again.history["members"][1]["loaded"]
    retrained = train_sequential(data, split, "sasrec", config, training, seed=1, verbose=0, root=root, members=2,
                                 retrain=True)
    assert not any(member["loaded"] for member in retrained.history["members"])  # --retrain reaches the members


def test_model_name_and_config_must_match(planted_models):
    data, split, _, root = planted_models
    with pytest.raises(ValueError, match="SasRecConfig"):
        train_sequential(data, split, "sasrec", Bert4RecConfig(), root=root)
    with pytest.raises(ValueError, match="unknown sequential model"):
        train_sequential(data, split, "gru4rec", root=root)


def test_sampled_softmax_matches_a_hand_computation_and_masks_accidental_hits():
    """Cross-entropy over [positive, k shared uniform draws]; a draw equal to a position's positive is not a
    negative there. The draws are replayed from the generator's state."""
    model = SasRec(TINY.replace(loss="sampled_ce", num_negatives=40), n_items=30).build_variables()
    states = tf.random.stateless_normal([6, TINY.hidden_dim], seed=[3, 4])
    labels = tf.constant([0, 5, 7, 7, 29, 12], tf.int32)
    saved = model.negative_generator.state.numpy()
    value = model.sampled_ce_losses(states, labels).numpy()
    model.negative_generator.state.assign(saved)
    negatives = model.negative_generator.uniform([40], 0, 30, dtype=tf.int32).numpy()
    vectors = model.item_vectors().numpy()
    logits = states.numpy() @ vectors.T                       # [6, 30]
    expected = []
    for row, label in enumerate(labels.numpy()):
        drawn = logits[row, negatives][negatives != label]     # 40 draws from 30 movies: hits are certain
        assert len(drawn) < 40
        scores = np.concatenate([[logits[row, label]], drawn])
        expected.append(np.logaddexp.reduce(scores) - scores[0])
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
