"""Movie embeddings learned from co-occurrence (item2vec / prod2vec, Barkan & Koenigstein 2016), for KNN.

A training pair is (query movie, candidate movie): two movies the same person rated within `window`
positions of each other in their time-ordered training history (both directions). The model is a
`tfrs.Model` with an input table (queries) and an output table (candidates), shared or separate, and
`tfrs.tasks.Retrieval`'s in-batch softmax:

    logit(i, j) = q_i . c_j / temperature - log p_j,   loss = sum_i -log softmax_j(logit(i, j))[i]

where p_j is candidate j's share of the training pairs (the logQ sampling-probability correction, Yi et
al. RecSys 2019): the in-batch negatives are drawn in proportion to popularity, and without the
correction popular movies are pushed away from everything. A logit where column j is the same movie
as row i's positive (j != i) is masked (accidental hit, `candidate_ids`). With the correction the
in-batch softmax estimates the full softmax over all movies, so the dot product estimates
log P(j | i) up to a per-query constant, popularity included (what a user -> movie ranking needs);
without it, log P(j | i) - log P(j), a pointwise mutual information. (An earlier version of this note
had the two the other way round.) A movie's neighbours are by cosine, which drops the vectors' lengths.

At scale (ML-20M/25M give 10^8 and more pairs) the pairs are kept once each, as int32 (`undirected_pairs`, 8
bytes a pair), and an epoch reads them through a bounded shuffle (`pair_batches`): blocks of `SHUFFLE_WINDOW`
directed pairs, each shuffled whole, in a shuffled block order, so no per-epoch index or buffer grows with the
data. Up to `SHUFFLE_WINDOW` pairs (every data set up to ML-1M) training reads the same batches as before.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movielens.config import Config
from movielens.optimizers import SPARSE_OPTIMIZER

VECTORS = ("auto", "input", "output", "average")  # which table(s) the KNN searches; auto = chosen on validation
# Directed pairs shuffled together (a 128 MiB int64 index); more pairs are block-shuffled (`pair_batches`).
SHUFFLE_WINDOW = 1 << 24


@dataclasses.dataclass(frozen=True)
class KnnConfig(Config):
    """Settings of the item2vec model and its training.

    Defaults chosen on validation NDCG@10 of ML-100K's random 80/10/10 split (seed 42), the test part unseen:
    one shared table beat an input and an output table (0.227-0.229 against 0.211-0.221 for the best of
    their output / average vectors), window 5 (0.229) beat 3 (0.227) and 10 (0.228), d = 128 did not help
    (0.227), and learning rate 0.005 reached its best in 4 epochs where 0.002 needed 20.
    """

    embedding_size: int = 64       # d of each table
    window: int = 5                # a movie's partners: the `window` movies before and after it in the history
    shared: bool = True            # one table for queries and candidates (True) or an input and an output table
    vectors: str = "auto"          # the KNN's movie vectors: input / output / average table; auto: chosen on val.
    learning_rate: float = 0.005   # Adam
    epochs: int = 30               # at most; early stopping on validation NDCG@10 usually ends sooner
    batch_size: int = 1024         # pairs per step (and in-batch negatives per pair)
    temperature: float = 1.0       # logits divided by it
    l2: float = 0.0                # coefficient of the summed squared norms of the looked-up embeddings
    init_std: float = 0.05         # normal initialisation of both tables
    validation_freq: int = 1       # epochs between validation rankings
    patience: int = 3              # validations without improvement before stopping
    seed: int = 42                 # initialisation and the order of the pairs
    validation_users: int = 0      # validate on a seeded sample of this many users (the same each epoch); 0 = all
    # LazyAdam (movielens.optimizers): only the batch's rows of the table(s) updated each step. auto: when the
    # catalogue has >= LARGE_TABLE_ROWS movies (ML-25M), so the smaller sets keep plain Adam.
    sparse_optimizer: str = "auto"

    def __post_init__(self):
        for name in ("embedding_size", "window", "epochs", "batch_size", "validation_freq", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        value = self.validation_users
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"validation_users must be an integer >= 0 (0 = all users), got {value!r}")
        if self.sparse_optimizer not in SPARSE_OPTIMIZER:
            raise ValueError(f"sparse_optimizer must be one of {', '.join(SPARSE_OPTIMIZER)}, "
                             f"got {self.sparse_optimizer!r}")
        for name in ("learning_rate", "temperature", "init_std"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not _finite(self.l2) or self.l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        if self.vectors not in VECTORS:
            raise ValueError(f"vectors must be one of {', '.join(VECTORS)}, got {self.vectors!r}")
        if not isinstance(self.shared, bool):
            raise ValueError(f"shared must be true or false, got {self.shared!r}")


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def cooccurrence_pairs(items: np.ndarray, rows: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, candidate) pair of movies within `window` positions in one person's history, both ways.

    Args:
      items: int [nnz] movie columns, each person's movies contiguous and oldest first (`Histories.items`).
      rows: int [nnz] the person of each entry (`Histories.row_ids()`).

    Returns:
      queries, candidates: int64 [n_pairs]; a movie is never paired with itself (ratings repeated in ml-latest).
    """
    items, rows = np.asarray(items, np.int64), np.asarray(rows, np.int64)
    queries, candidates = [], []
    for offset in range(1, window + 1):  # one vectorised slice per offset, not a loop over people
        same = (rows[:-offset] == rows[offset:]) & (items[:-offset] != items[offset:])
        before, after = items[:-offset][same], items[offset:][same]
        queries += [before, after]
        candidates += [after, before]
    if not queries:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(queries), np.concatenate(candidates)


def undirected_pairs(items: np.ndarray, rows: np.ndarray, window: int) -> np.ndarray:
    """The pairs of `cooccurrence_pairs`, each once: int32 [n_pairs, 2] (earlier movie, later movie), grouped by
    offset. Half the pairs and a quarter of the bytes of the directed int64 arrays, filled in place."""
    items, rows = np.asarray(items, np.int64), np.asarray(rows, np.int64)
    masks = [(rows[:-o] == rows[o:]) & (items[:-o] != items[o:]) for o in range(1, window + 1) if o < len(items)]
    pairs = np.empty((sum(int(m.sum()) for m in masks), 2), np.int32)
    start = 0
    for offset, same in enumerate(masks, start=1):
        count = int(same.sum())
        pairs[start:start + count, 0] = items[:-offset][same]
        pairs[start:start + count, 1] = items[offset:][same]
        start += count
    return pairs


def pair_batches(pairs: np.ndarray, batch_size: int, seed: int, shuffle_window: int = SHUFFLE_WINDOW):
    """`EpochData` of {"query", "candidate"} int64 [B] batches over both directions of `pairs` (int [n, 2]),
    shuffled in bounded memory.

    Directed pair p is pairs[p // 2] read forwards (p even) or backwards (p odd). `pairs` is shuffled once, in
    place (seeded), so a block of consecutive directed pairs is a random sample; each epoch takes the blocks of
    `shuffle_window` pairs in a shuffled order and shuffles each block whole, both a function of (seed, epoch),
    so a resumed run reads the same batches. Memory per epoch: one block's int64 index (8 bytes a pair).
    A batch does not straddle two blocks (a block's last batch can be smaller).
    """
    from movielens.training import EpochData

    np.random.default_rng(seed).shuffle(pairs)  # rows, in place
    table = tf.constant(pairs)
    n = 2 * len(pairs)
    window = max(1, min(int(shuffle_window), n))
    n_blocks = -(-n // window)
    last = n - (n_blocks - 1) * window
    steps = (n_blocks - 1) * -(-window // batch_size) + -(-last // batch_size)

    def make_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(n_blocks, dtype=tf.int64), seed=epoch_seed)

        def block(b):
            start = b * window
            length = tf.minimum(tf.constant(window, tf.int64), n - start)
            positions = start + tf.random.experimental.stateless_shuffle(
                tf.range(length), seed=tf.random.experimental.stateless_fold_in(epoch_seed, b))

            def batch(i):
                directed = positions[i * batch_size:(i + 1) * batch_size]
                pair = tf.cast(tf.gather(table, directed // 2), tf.int64)   # [B, 2]
                backwards = tf.equal(directed % 2, 1)
                return {"query": tf.where(backwards, pair[:, 1], pair[:, 0]),
                        "candidate": tf.where(backwards, pair[:, 0], pair[:, 1])}

            return tf.data.Dataset.range((length + batch_size - 1) // batch_size).map(batch)

        return tf.data.Dataset.from_tensor_slices(order).flat_map(block)

    return EpochData(make_epoch, steps)


def sampling_probabilities(candidates: np.ndarray, n_items: int) -> np.ndarray:
    """float32 [n_items]: each movie's share of the pairs' candidates (a movie never seen gets a tiny share, so
    log p stays finite)."""
    counts = np.bincount(np.asarray(candidates, np.int64), minlength=n_items).astype(np.float64)
    counts = np.maximum(counts, 0.5)
    return (counts / counts.sum()).astype(np.float32)


class Item2VecModel(tfrs.Model):
    """Query = input embedding of a movie, candidate = output embedding of a co-rated movie; in-batch softmax.

    Args:
      n_items: movies (columns 0..n_items-1 of the split vocabulary).
      sampling_probability: float [n_items], each movie's share of the training pairs' candidates (logQ).
      embedding_size, shared, temperature, l2, init_std, seed: see `KnnConfig`.

    Inputs of `compute_loss`: {"query": int64 [B], "candidate": int64 [B]} movie columns.
    """

    def __init__(self, n_items: int, sampling_probability: np.ndarray, embedding_size: int = 64,
                 shared: bool = False, temperature: float = 1.0, l2: float = 0.0, init_std: float = 0.05,
                 seed: int = 42, **kwargs):
        super().__init__(**kwargs)
        if len(sampling_probability) != n_items:
            raise ValueError(f"{len(sampling_probability)} sampling probabilities for {n_items} movies")
        self.n_items, self.l2 = int(n_items), float(l2)
        self.input_embedding = tf.keras.layers.Embedding(
            n_items, embedding_size, name="input_embedding",
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=init_std, seed=seed))
        self.output_embedding = self.input_embedding if shared else tf.keras.layers.Embedding(
            n_items, embedding_size, name="output_embedding",
            embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=init_std, seed=seed + 1))
        self.sampling_probability = tf.constant(sampling_probability, tf.float32)
        self.task = tfrs.tasks.Retrieval(temperature=None if temperature == 1.0 else float(temperature),
                                         remove_accidental_hits=True)
        self.input_embedding(tf.zeros([1], tf.int64))  # variables exist now (for loading and checkpoints)
        self.output_embedding(tf.zeros([1], tf.int64))

    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        """The summed in-batch softmax loss of B pairs (+ the L2 term): a scalar."""
        queries = tf.cast(features["query"], tf.int64)
        candidates = tf.cast(features["candidate"], tf.int64)
        q = self.input_embedding(queries)      # [B, d]
        c = self.output_embedding(candidates)  # [B, d]
        loss = self.task(q, c, candidate_sampling_probability=tf.gather(self.sampling_probability, candidates),
                         candidate_ids=candidates, compute_metrics=False, compute_batch_metrics=False)
        if self.l2:
            loss += self.l2 * (tf.reduce_sum(q * q) + tf.reduce_sum(c * c))
        return loss

    def tables(self) -> dict[str, np.ndarray]:
        """{"input": float32 [n_items, d], "output": float32 [n_items, d]} (the same array when shared)."""
        return {"input": self.input_embedding.embeddings.numpy(), "output": self.output_embedding.embeddings.numpy()}

    def movie_vectors(self, which: str) -> np.ndarray:
        """float32 [n_items, d] unit vectors the KNN searches: one table, or the mean of both tables' unit vectors
        (so neither table's scale dominates), normalised again."""
        tables = self.tables()
        if which in ("input", "output"):
            return l2_normalise(tables[which])
        if which == "average":
            return l2_normalise(l2_normalise(tables["input"]) + l2_normalise(tables["output"]))
        raise ValueError(f"movie vectors must be input, output or average, got {which!r}")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is the cosine."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
