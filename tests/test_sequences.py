"""Per-user sequences, training windows, on-the-fly masking and leave-last-out tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from movielens.data.splits import Vocabulary, leave_last_out_split
from movielens.sequences import (
    PAD,
    build_sequences,
    default_max_predictions,
    leave_last_out_tasks,
    mask_batch,
    mask_token,
    masked_dataset,
    pad_left,
    training_windows,
)


def _ratings(rows):
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "timestamp"])


def test_sequences_are_time_ordered_with_file_order_for_ties_and_unknown_movies_dropped():
    ratings = _ratings([("2", "b", 5), ("1", "c", 3), ("1", "a", 1), ("1", "b", 3), ("1", "zz", 2)])
    vocabulary = Vocabulary(np.array(["1", "2"], object), np.array(["a", "b", "c"], object))
    sequences = build_sequences(ratings, vocabulary)
    assert list(sequences.user_ids) == ["1", "2"]
    # user 1: a (t=1), [zz dropped], c (t=3, first in file), b (t=3)
    assert sequences.items[0].tolist() == [1, 3, 2]
    assert sequences.items[1].tolist() == [2]


def test_pad_left_keeps_the_most_recent_items():
    out = pad_left([np.array([1, 2, 3, 4, 5]), np.array([7])], 3)
    assert out.tolist() == [[3, 4, 5], [0, 0, 7]]


def test_training_windows_cut_long_histories_newest_first():
    from movielens.sequences import UserSequences

    sequences = UserSequences(np.array(["u", "v"], object), [np.arange(1, 11, dtype=np.int32),
                                                             np.array([5], np.int32)])
    windows = training_windows(sequences, max_len=4)
    # 1..10 -> [7..10], [3..6], [1, 2]; the single-item history of v has no context: skipped.
    assert windows.tolist() == [[7, 8, 9, 10], [3, 4, 5, 6], [0, 0, 1, 2]]
    overlapping = training_windows(sequences, max_len=4, stride=2)
    assert overlapping.tolist()[:3] == [[7, 8, 9, 10], [5, 6, 7, 8], [3, 4, 5, 6]]
    assert overlapping.tolist()[-1] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="max_len"):
        training_windows(sequences, max_len=1)


def _windows(n=400, length=50, n_items=100, seed=0):
    rng = np.random.default_rng(seed)
    windows = np.zeros((n, length), np.int32)
    for row in range(n):
        size = rng.integers(1, length + 1)
        windows[row, length - size:] = rng.integers(1, n_items + 1, size)
    return windows


def test_masking_rate_padding_and_labels():
    n_items, mask_prob = 100, 0.2
    windows = _windows(n_items=n_items)
    inputs, positions, labels, weights = (t.numpy() for t in mask_batch(
        windows, tf.constant([3, 4], tf.int64), mask_prob, mask_token(n_items), max_predictions=50))
    is_masked = inputs == mask_token(n_items)
    valid = windows != PAD
    assert not (is_masked & ~valid).any(), "padding must never be masked"
    assert (inputs[~is_masked] == windows[~is_masked]).all(), "unmasked items pass through unchanged"
    assert is_masked.any(axis=1).all(), "every window has at least one masked item"
    rate = is_masked.sum() / valid.sum()
    assert 0.17 < rate < 0.24, rate
    # Labels exactly at the masked positions, holding the original items; unused slots weigh 0.
    for row in range(len(windows)):
        used = weights[row] > 0
        assert sorted(positions[row][used].tolist()) == np.flatnonzero(is_masked[row]).tolist()
        assert (labels[row][used] == windows[row, positions[row][used]]).all()
        assert (labels[row][~used] == PAD).all()


def test_last_only_windows_mask_just_the_last_item():
    windows = _windows(n=4000, length=20)

    def last_only_share(prob):
        inputs = mask_batch(windows, tf.constant([5, 6], tf.int64), 0.2, mask_token(100), max_predictions=12,
                            last_only_prob=prob)[0].numpy()
        masked = inputs == mask_token(100)
        assert not (masked & (windows == PAD)).any()
        return ((masked.sum(axis=1) == 1) & masked[:, -1]).mean()

    natural = last_only_share(0.0)  # short windows often draw only their last item anyway
    assert last_only_share(0.3) == pytest.approx(natural + 0.3 * (1 - natural), abs=0.03)


def test_masking_caps_predictions_and_unmasks_the_rest():
    windows = np.arange(1, 41, dtype=np.int32)[None, :].repeat(8, axis=0)
    inputs, positions, labels, weights = (t.numpy() for t in mask_batch(
        windows, tf.constant([1, 2], tf.int64), 0.9, mask_token(40), max_predictions=5))
    assert positions.shape[1] == 5 and (weights == 1).all()
    assert ((inputs == mask_token(40)).sum(axis=1) == 5).all()


def test_default_max_predictions_covers_the_mean_with_room():
    assert 40 + 10 < default_max_predictions(200, 0.2) <= 200


def test_masked_dataset_remasks_every_epoch_and_trims_padding():
    windows = _windows(n=64, length=30)
    dataset = masked_dataset(windows, n_items=100, batch_size=16, mask_prob=0.2, max_predictions=12, seed=7)
    assert dataset.cardinality().numpy() == 4

    def epoch():
        out = {}
        for features, labels, weights in dataset:
            items = features["items"].numpy()
            restored = items.copy()
            rows, slots = np.nonzero(weights.numpy())
            restored[rows, features["positions"].numpy()[rows, slots]] = labels.numpy()[rows, slots]
            assert (restored[:, 0] != PAD).any(), "a batch is trimmed to its longest window"
            for row, masked in zip(map(tuple, restored), items == mask_token(100)):
                out[row] = masked.tolist()
        return out

    first, second = epoch(), epoch()
    assert len(first) == len({tuple(w[w != PAD]) for w in windows})  # every window once per epoch
    assert first != second, "the masks must change between epochs"


def test_leave_last_out_tasks(synthetic):
    data, _ = synthetic
    split = leave_last_out_split(data)
    validation, test = leave_last_out_tasks(split)
    vocabulary = split.vocabulary
    full = build_sequences(data.ratings, vocabulary)
    by_user = dict(zip(full.user_ids, full.items))
    for task, back in ((validation, 2), (test, 1)):
        for user, history, target in zip(task.user_ids[:10], task.histories[:10], task.targets[:10]):
            sequence = by_user[user]
            assert history.tolist() == sequence[:-back].tolist()
            assert target == sequence[-back]
    with pytest.raises(ValueError, match="leave_last_out"):
        from movielens.data.splits import random_split

        leave_last_out_tasks(random_split(data))


def test_shifted_dataset_pairs_each_input_with_the_next_item_and_trims_padding():
    from movielens.sequences import UserSequences, length_quantile, shifted_dataset

    sequences = UserSequences(np.array(["u", "v", "w"], object),
                              [np.arange(1, 8, dtype=np.int32), np.array([4, 5], np.int32),
                               np.array([9, 8, 7], np.int32)])
    windows = training_windows(sequences, max_len=5)  # SASRec: max_len + 1 = 5 items -> inputs of 4
    batches = list(shifted_dataset(windows, batch_size=8, seed=0))
    assert len(batches) == 1
    features, targets = batches[0]
    items, targets = features["items"].numpy(), targets.numpy()
    assert items.shape == targets.shape == (4, 4)
    for row_items, row_targets in zip(items, targets):
        assert (row_targets[:-1] == row_items[1:]).all()  # target = the item after each position
        assert (row_targets[row_items != PAD] != PAD).all()  # every real input position has a next item
    assert sorted(map(tuple, np.c_[items, targets[:, -1]].tolist())) == sorted(map(tuple, windows.tolist()))
    assert length_quantile(sequences, 0.5) == 3


def test_shifted_dataset_batch_order_changes_per_epoch_but_repeats_per_seed():
    from movielens.sequences import shifted_dataset

    windows = _windows(n=64, length=9)
    first = shifted_dataset(windows, 8, seed=1)
    epoch1 = [f["items"].numpy().tolist() for f, _ in first]
    epoch2 = [f["items"].numpy().tolist() for f, _ in first]
    again = [f["items"].numpy().tolist() for f, _ in shifted_dataset(windows, 8, seed=1)]
    assert epoch1 == again and epoch1 != epoch2
    resumed = [f["items"].numpy().tolist() for f, _ in shifted_dataset(windows, 8, seed=1, first_epoch=1)]
    assert resumed == epoch2


def _batches(dataset):
    """Every array of every batch, as nested lists (comparable with ==)."""
    return [[t.numpy().tolist() for t in tf.nest.flatten(batch)] for batch in dataset]


@pytest.mark.parametrize("kind", ["masked", "shifted"])
def test_epoch_data_is_a_function_of_seed_and_epoch_only(kind):
    """Exact resumption: epoch e's batches (and masks) are the same from a fresh pipeline, from the endless
    stream started at e (what `fit_resumable` resumes with) and from the per-iteration dataset."""
    from movielens.sequences import masked_epochs, shifted_dataset, shifted_epochs

    windows = _windows(n=70, length=12)

    def make(seed=7):
        if kind == "masked":
            return masked_epochs(windows, 100, 16, 0.2, 6, seed=seed, last_only_prob=0.1)
        return shifted_epochs(windows, 16, seed=seed)

    data = make()
    assert data.steps_per_epoch == 5
    epoch = lambda d, e: _batches(d.make_epoch(tf.constant(e, tf.int64)))  # noqa: E731
    third = epoch(data, 3)
    assert len(third) == 5 and third == epoch(make(), 3)  # a new pipeline ("a new process")
    assert third != epoch(data, 4) and third != epoch(make(seed=8), 3)
    assert _batches(make().from_epoch(3).take(5)) == third
    stream = _batches(make().from_epoch(2).take(10))
    assert stream[:5] == epoch(data, 2) and stream[5:] == third
    if kind == "masked":
        resumed = masked_dataset(windows, 100, 16, 0.2, 6, seed=7, last_only_prob=0.1, first_epoch=3)
    else:
        resumed = shifted_dataset(windows, 16, seed=7, first_epoch=3)
    assert _batches(resumed) == third and _batches(resumed) == epoch(data, 4)


def test_length_bucketed_epochs_cover_every_window_once_in_similar_length_batches():
    from movielens.sequences import length_bucketed_epochs

    windows = _windows(n=200, length=40, seed=3)
    data = length_bucketed_epochs(windows, batch_size=16, seed=1, bucket_width=8)
    batches = [b.numpy() for b in data.make_epoch(tf.constant(0, tf.int64))]
    assert len(batches) == data.steps_per_epoch == 13
    rows = [tuple(r[r != PAD]) for b in batches for r in b]
    assert sorted(rows) == sorted(tuple(w[w != PAD]) for w in windows)  # each window once
    for batch in batches:
        lengths = (batch != PAD).sum(axis=1)
        assert lengths.max() == batch.shape[1]  # trimmed to its longest window
    # Cut from the length-sorted order, and every bucket here holds more than a batch: at most two neighbouring
    # buckets per batch.
    spans = [np.ptp((b != PAD).sum(axis=1) // 8) for b in batches]
    assert max(spans) <= 1
