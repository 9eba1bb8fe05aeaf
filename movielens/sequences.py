"""Per-user watch histories as integer sequences, training windows, on-the-fly masking (BERT4Rec) and
shifted next-item pairs (SASRec).

Item indices (the sequence vocabulary), shared by everything here:
  0            padding (`PAD`)
  1..n_items   movies seen in training: index i is `Vocabulary.movie_ids[i - 1]`
               (the split's training vocabulary, so `Vocabulary.encode_movies` gives them)
  n_items + 1  the [MASK] token (`mask_token(n_items)`)
so the item embedding table has `n_items + 2` rows. Sequences are left-padded:
the most recent movie is always at position `max_len - 1`, which is where the
[MASK] asking "what next?" goes at inference time.

Leave-last-out (the semantics of `movielens.data.splits.leave_last_out_split`):
validation predicts the second-to-last movie from everything before it; test
predicts the last movie from everything before it (the validation movie
included). Training uses only the training part, cut into windows of at most
`max_len` movies, and every epoch masks each window afresh (one masked copy per
window per epoch, never one example per prefix). SASRec trains on the same windows,
one item longer: input = window[:-1], target = window[1:] (every position predicts the
next movie; `shifted_epochs`).

Exact resumption: the training data of both is `movielens.training.EpochData`, epoch e a function
of (seed, e) only (batching and masking drawn with stateless ops seeded from them, in tf.data), so
a run resumed at epoch e sees exactly the batches and masks an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import tensorflow as tf

from movielens.data.splits import Split, Vocabulary
from movielens.training import EpochData

PAD = 0


def mask_token(n_items: int) -> int:
    return n_items + 1


@dataclasses.dataclass
class UserSequences:
    """Each user's movies in time order, as item indices (unknown movies dropped).

    Attributes:
      user_ids: shape [U] str.
      items: U int32 arrays, oldest first.
    """

    user_ids: np.ndarray
    items: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.user_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.items], np.int64)


def _time_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    # Stable sort keeps file order within equal timestamps, as the leave-last-out split does.
    return frame.sort_values(["user_id", "timestamp"], kind="stable")


def build_sequences(frame: pd.DataFrame, vocabulary: Vocabulary, keep_unknown_users: bool = False) -> UserSequences:
    """Ratings (user_id, movie_id, timestamp) -> time-ordered item-index sequences per user.

    Movies outside `vocabulary` (never rated in training) are dropped; users left with no
    movies are dropped unless `keep_unknown_users`.
    """
    ordered = _time_ordered(frame)
    items = vocabulary.encode_movies(ordered["movie_id"].to_numpy()).astype(np.int32)
    users = ordered["user_id"].to_numpy(dtype=object)
    keep = items != PAD
    users, items = users[keep], items[keep]
    if len(users) == 0:
        return UserSequences(np.zeros(0, object), [])
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    return UserSequences(users[starts].astype(object), np.split(items, starts[1:]))


def pad_left(histories: list[np.ndarray], length: int) -> np.ndarray:
    """Keeps the last `length` items of each history, left-padded with PAD: -> int32 [n, length]."""
    out = np.zeros((len(histories), length), np.int32)
    for row, history in enumerate(histories):
        tail = history[-length:] if length else history[:0]
        if len(tail):
            out[row, length - len(tail):] = tail
    return out


def training_windows(sequences: UserSequences, max_len: int, stride: int | None = None,
                     min_length: int = 2) -> np.ndarray:
    """Cuts each sequence into windows of at most `max_len` items, newest window first.

    Windows end at the last item, then every `stride` items earlier (default `max_len`:
    non-overlapping); windows shorter than `min_length` carry no context and are skipped.

    Returns:
      int32 [n_windows, max_len], left-padded.
    """
    stride = stride or max_len
    if stride < 1 or max_len < 2:
        raise ValueError(f"need max_len >= 2 and stride >= 1, got max_len={max_len}, stride={stride}")
    windows = []
    for seq in sequences.items:
        for end in range(len(seq), 0, -stride):
            window = seq[max(0, end - max_len):end]
            if len(window) >= min_length:
                windows.append(window)
            if end <= max_len:  # this window already starts at the first item
                break
    return pad_left(windows, max_len)


def default_max_predictions(max_len: int, mask_prob: float) -> int:
    """Masked positions kept per window: the mean plus 3 standard deviations (a cap almost never hit)."""
    mean = max_len * mask_prob
    return int(min(max_len, np.ceil(mean + 3.0 * np.sqrt(max_len * mask_prob * (1.0 - mask_prob)) + 1)))


def mask_batch(items: tf.Tensor, seed: tf.Tensor, mask_prob: float, mask_id: int, max_predictions: int,
               last_only_prob: float = 0.0):
    """Masks a batch of windows: each real item is replaced by [MASK] with probability `mask_prob`.

    Padding is never masked; a window where nothing was drawn gets its last item masked
    (so every window teaches something); at most `max_predictions` positions are kept
    per window (the rest stay unmasked), so the output layer only scores masked positions.
    With probability `last_only_prob` a window has only its last item masked instead: the
    paper's extra training samples that match the inference task ([MASK] at the end).

    Args:
      items: int32 [B, L] left-padded windows.
      seed: int [2] for the stateless random ops (fresh each batch and epoch).

    Returns:
      (inputs int32 [B, L] with [MASK] at the masked positions,
       positions int32 [B, P] the masked positions (0 where unused),
         P = min(max_predictions, L, the most masked positions of a window),
       labels int32 [B, P] the original items there (PAD where unused),
       weights float32 [B, P] 1.0 at real predictions, 0.0 at unused slots).
    """
    items = tf.convert_to_tensor(items, tf.int32)
    length = tf.shape(items)[1]
    valid = items != PAD
    draw = tf.random.stateless_uniform(tf.shape(items), seed=seed)
    masked = (draw < mask_prob) & valid
    is_last = tf.range(length)[None, :] == length - 1
    if last_only_prob > 0:
        seed = tf.cast(seed, tf.int64)
        last_only = tf.random.stateless_uniform(tf.shape(items)[:1], seed=seed + tf.constant([0, 1], tf.int64))
        masked = tf.where((last_only < last_only_prob)[:, None], is_last & valid, masked)
    nothing = ~tf.reduce_any(masked, axis=1, keepdims=True)
    masked = masked | (nothing & is_last & valid)
    # Priority: masked positions first (in random order), so top_k picks up to P of them.
    priority = tf.where(masked, 2.0 - draw, tf.zeros_like(draw))
    # P = the most masked positions in any window of this batch (capped): no output work is wasted on
    # empty slots when a batch holds short windows.
    most = tf.reduce_max(tf.reduce_sum(tf.cast(masked, tf.int32), axis=1))
    top = tf.math.top_k(priority, k=tf.minimum(tf.minimum(max_predictions, length), most), sorted=False)
    positions = tf.cast(top.indices, tf.int32)
    chosen = top.values > 0.0
    positions = tf.where(chosen, positions, tf.zeros_like(positions))
    labels = tf.where(chosen, tf.gather(items, positions, batch_dims=1), tf.zeros_like(positions))
    weights = tf.cast(chosen, tf.float32)
    # Only the kept positions are masked in the input.
    row = tf.repeat(tf.range(tf.shape(items)[0])[:, None], tf.shape(positions)[1], axis=1)
    indices = tf.stack([tf.boolean_mask(row, chosen), tf.boolean_mask(positions, chosen)], axis=1)
    kept = tf.scatter_nd(indices, tf.ones(tf.shape(indices)[:1], tf.bool), tf.shape(items))
    inputs = tf.where(kept, tf.fill(tf.shape(items), tf.constant(mask_id, tf.int32)), items)
    return inputs, positions, labels, weights


def length_bucketed_epochs(windows: np.ndarray, batch_size: int, seed: int, bucket_width: int = 8) -> EpochData:
    """Epoch e -> its batches of similar-length windows, each trimmed to its longest window: a function of
    (seed, e) only, so a resumed run sees exactly the batches an uninterrupted one would (`EpochData`).

    Most MovieLens histories are far shorter than `max_len`, so trimming the shared left
    padding roughly halves the work; padding is masked out of attention and positions
    count from the end, so a trimmed batch computes exactly what the padded one would.
    Windows are ordered by length bucket (`bucket_width` lengths each) with random ties, cut into
    batches, and the batches shuffled; all with stateless ops seeded by (seed, e) in tf.data.

    Returns:
      `EpochData` of int32 [<= batch_size, l] (l varies per batch), ceil(n / batch_size) batches an epoch.
    """
    windows = np.ascontiguousarray(windows, np.int32)
    if windows.ndim != 2 or len(windows) == 0:
        raise ValueError(f"need a non-empty [n, max_len] array of windows, got shape {windows.shape}")
    n, max_len = windows.shape
    steps = -(-n // batch_size)
    table = tf.constant(windows)
    lengths = tf.constant((windows != PAD).sum(axis=1).astype(np.int32))
    buckets = lengths // bucket_width

    def make_epoch(epoch):
        ties, shuffle = tf.unstack(tf.random.split(epoch_seed(seed, epoch), 2))
        # Random order, then a stable sort by bucket: lengths grouped, ties in random order.
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=ties)
        order = tf.gather(order, tf.argsort(tf.gather(buckets, order), stable=True))
        batch_order = tf.random.experimental.stateless_shuffle(tf.range(steps), seed=shuffle)

        def batch(index):
            rows = tf.sort(order[index * batch_size:(index + 1) * batch_size])
            longest = tf.reduce_max(tf.gather(lengths, rows))
            return tf.gather(table, rows)[:, max_len - longest:]

        return tf.data.Dataset.from_tensor_slices(batch_order).map(batch)

    return EpochData(make_epoch, steps)


def epoch_seed(seed: int, epoch) -> tf.Tensor:
    """int64 [2], the stateless seed of epoch `epoch` (a scalar tensor or int) of a run seeded `seed`."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])


def masked_epochs(windows: np.ndarray, n_items: int, batch_size: int, mask_prob: float, max_predictions: int,
                  seed: int, last_only_prob: float = 0.0) -> EpochData:
    """BERT4Rec's training data: every window masked afresh each epoch, as a function of (seed, epoch) only.

    Epoch e: the length-bucketed batches of `length_bucketed_epochs`, batch i masked by `mask_batch` with
    the i-th of `tf.random.split` seeds of a key drawn from (seed, e) (independent of the batching's).
    Yields ({"items": int32 [B, l], "positions": int32 [B, P]}, labels int32 [B, P], weights float32 [B, P]).
    """
    mask_id = mask_token(n_items)
    batches = length_bucketed_epochs(windows, batch_size, seed)

    def _mask(items, batch_seed):
        inputs, positions, labels, weights = mask_batch(items, batch_seed, mask_prob, mask_id, max_predictions,
                                                        last_only_prob)
        return {"items": inputs, "positions": positions}, labels, weights

    def make_epoch(epoch):
        key = tf.random.split(epoch_seed(seed, epoch), 3)[2]  # [0], [1]: the batching's keys
        seeds = tf.data.Dataset.from_tensor_slices(tf.random.split(key, batches.steps_per_epoch))
        return tf.data.Dataset.zip((batches.make_epoch(epoch), seeds)).map(_mask,
                                                                          num_parallel_calls=tf.data.AUTOTUNE)

    return EpochData(make_epoch, batches.steps_per_epoch)


def shifted_epochs(windows: np.ndarray, batch_size: int, seed: int) -> EpochData:
    """SASRec's training data, next-item pairs: input = window[:-1], target = window[1:].

    windows: int32 [n, max_len + 1] left-padded (e.g. `training_windows(sequences, max_len + 1)`).
    Yields ({"items": int32 [B, l]}, targets int32 [B, l]), l <= max_len varying per batch (length
    bucketing, `length_bucketed_epochs`: a function of (seed, epoch) only); targets are PAD exactly
    where the input is PAD (left padding), so those positions carry no loss.
    """
    windows = np.ascontiguousarray(windows, np.int32)
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"need windows of at least 2 items, got shape {windows.shape}")
    batches = length_bucketed_epochs(windows, batch_size, seed)

    def _shift(items):
        return {"items": items[:, :-1]}, items[:, 1:]

    return EpochData(lambda epoch: batches.make_epoch(epoch).map(_shift, num_parallel_calls=tf.data.AUTOTUNE),
                     batches.steps_per_epoch)


def epoch_by_iteration(data: EpochData, first_epoch: int = 0) -> tf.data.Dataset:
    """A dataset whose k-th iteration yields epoch `first_epoch + k` of `data` (for a plain `model.fit`;
    `movielens.training.fit_resumable` takes the `EpochData` itself and resumes at the right epoch)."""
    counter = itertools.count(first_epoch)
    epochs = tf.data.Dataset.from_generator(lambda: iter([next(counter)]),
                                            output_signature=tf.TensorSpec([], tf.int64))
    dataset = epochs.flat_map(data.make_epoch).prefetch(2)
    return dataset.apply(tf.data.experimental.assert_cardinality(data.steps_per_epoch))


def masked_dataset(windows: np.ndarray, n_items: int, batch_size: int, mask_prob: float, max_predictions: int,
                   seed: int, last_only_prob: float = 0.0, first_epoch: int = 0) -> tf.data.Dataset:
    """`masked_epochs` as a dataset re-masking every window at each iteration (iteration k = epoch
    first_epoch + k)."""
    return epoch_by_iteration(masked_epochs(windows, n_items, batch_size, mask_prob, max_predictions, seed,
                                            last_only_prob), first_epoch)


def shifted_dataset(windows: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0) -> tf.data.Dataset:
    """`shifted_epochs` as a dataset with a new batch order at each iteration (iteration k = epoch
    first_epoch + k)."""
    return epoch_by_iteration(shifted_epochs(windows, batch_size, seed), first_epoch)


def length_quantile(sequences: UserSequences, quantile: float) -> int:
    """The `quantile` of the users' sequence lengths (rounded up; 0 when there are none)."""
    lengths = sequences.lengths()
    return int(np.ceil(np.quantile(lengths, quantile))) if len(lengths) else 0


@dataclasses.dataclass
class NextItemTask:
    """Predict one held-out movie per user from their history.

    Attributes:
      user_ids: shape [U] str.
      histories: U int32 arrays (item indices, oldest first): the model input, and
        the movies excluded from the ranking.
      targets: int64 [U] the held-out item index; PAD (0) when the movie was never
        rated in training (the model cannot rank it: counted as a miss).
    """

    user_ids: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)


def leave_last_out_tasks(split: Split) -> tuple[NextItemTask, NextItemTask]:
    """(validation, test) next-item tasks of a leave-last-out split (see module docstring)."""
    if split.name != "leave_last_out":
        raise ValueError(f"next-item evaluation needs the leave_last_out split, got {split.name!r}")
    vocabulary = split.vocabulary
    train = build_sequences(split.train, vocabulary)
    history = dict(zip(train.user_ids, train.items))
    validation_item = dict(zip(split.validation["user_id"], vocabulary.encode_movies(split.validation["movie_id"])))
    tasks = []
    for part, with_validation in ((split.validation, False), (split.test, True)):
        part = _time_ordered(part)
        users = part["user_id"].to_numpy(dtype=object)
        targets = vocabulary.encode_movies(part["movie_id"].to_numpy()).astype(np.int64)
        histories = []
        for user in users:
            seq = history.get(user, np.zeros(0, np.int32))
            if with_validation and validation_item.get(user, PAD) != PAD:
                seq = np.r_[seq, validation_item[user]].astype(np.int32)
            histories.append(seq)
        tasks.append(NextItemTask(users, histories, targets))
    return tasks[0], tasks[1]


def score_by_length(score_last, inputs: np.ndarray, n_items: int, batch_size: int = 256,
                    min_length: int = 0) -> np.ndarray:
    """Scores of left-padded `inputs` [n, L] with `score_last` ([B, l] -> [B, n_items]), batch by batch.

    Rows of similar length are scored together, each batch trimmed to its longest row (positions count
    from the end, so trimming changes nothing): less padding to compute. `min_length` keeps at least that
    many positions (an empty history still needs one). Returns float32 [n, n_items].
    """
    lengths = np.maximum((inputs != PAD).sum(axis=1), min_length)
    order = np.argsort(lengths, kind="stable")
    scores = np.zeros((len(inputs), n_items), np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        longest = int(lengths[rows].max())
        scores[rows] = score_last(tf.constant(inputs[rows, inputs.shape[1] - longest:])).numpy()
    return scores
