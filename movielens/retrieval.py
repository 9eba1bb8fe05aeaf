"""After training: fast top-k evaluation, the retrieval index, recommendations and SavedModel export.

Fast evaluation (`evaluate_top_k`): candidate embeddings are computed once, query
embeddings in large batches, and one matmul per batch gives every score. It
reproduces `tfrs.metrics.FactorizedTopK` exactly: FactorizedTopK feeds
`[positive score, top-k scores]` to `tf.math.in_top_k`, i.e. an example is a hit at k
when fewer than k candidates score strictly higher than the true candidate (ties
count as hits), with the positive score computed as `reduce_sum(query * candidate)`.

The index (`RetrievalIndex`) keeps each candidate's movie id and title next to its
embedding row, so a top-k position decodes to the right movie (the blog script this
project replaces mapped BruteForce positions onto a separately sorted title list).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from movielens.evaluation import ItemSets, exclude_seen, recall_ndcg_at_k, top_k
from movielens.features import FeatureTables
from movielens.recommender import Recommendation, UserHistory

TOP_KS = (1, 5, 10, 50, 100)
EVAL_BATCH = 4096
# History keys of the validation curves (same numbers as TFRS's factorized_top_k/top_<k>_categorical_accuracy).
TOP_K_KEY = "val_top_{k}_accuracy"
TOP_K_NOTE = ("top-k accuracy: FactorizedTopK protocol of the TFRS tutorials: each held-out rating's movie ranked "
              "against ALL catalogue movies, seen movies NOT excluded")
RANKING_NOTE = ("recall@10/100, ndcg@10: per test user, ranking all catalogue movies with the user's TRAINING "
                "movies EXCLUDED; targets = the user's test movies")


def candidate_embeddings(model, num_candidates: int, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Embeddings of every catalogue row: float32 [num_candidates, d]."""
    rows = tf.data.Dataset.range(num_candidates).batch(batch_size)
    return np.concatenate([model.candidate_tower(batch).numpy() for batch in rows], axis=0)


def query_embeddings(model, users: np.ndarray, timestamps: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Query embeddings float32 [n, d] for user indices [n] and timestamps [n] (eager calls of the tower:
    a per-call tf.function would retrace for every recommendation)."""
    out = []
    for start in range(0, len(users), batch_size):
        out.append(model.query_tower({"user": tf.constant(users[start:start + batch_size], tf.int64),
                                      "timestamp": tf.constant(timestamps[start:start + batch_size],
                                                               tf.float32)}).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)


@tf.function(reduce_retracing=True)
def _count_higher(queries, candidates, true_rows):
    """Per query, how many candidates score strictly above the true candidate. [n, d], [m, d], [n] -> int32 [n]."""
    positive = tf.reduce_sum(queries * tf.gather(candidates, true_rows), axis=1, keepdims=True)
    scores = tf.linalg.matmul(queries, candidates, transpose_b=True)
    return tf.reduce_sum(tf.cast(scores > positive, tf.int32), axis=1)


def evaluate_top_k(model, examples: dict[str, np.ndarray], num_candidates: int, ks: Sequence[int] = TOP_KS,
                   batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """FactorizedTopK top-k accuracies over `examples` ({"user", "timestamp", "movie"} arrays [n]), fast.

    Returns {"val_top_<k>_accuracy": float} for k in ks.
    """
    candidates = tf.constant(candidate_embeddings(model, num_candidates))
    higher = []
    for start in range(0, len(examples["user"]), batch_size):
        part = {k: v[start:start + batch_size] for k, v in examples.items()}
        queries = model.query_tower({"user": tf.constant(part["user"], tf.int64),
                                     "timestamp": tf.constant(part["timestamp"], tf.float32)})
        higher.append(_count_higher(queries, candidates, tf.constant(part["movie"], tf.int64)).numpy())
    higher = np.concatenate(higher) if higher else np.zeros(0, np.int32)
    return {TOP_K_KEY.format(k=k): float((higher < k).mean()) if len(higher) else 0.0 for k in ks}


class UserQueries:
    """What a user's query is at recommendation / per-user evaluation time.

    Timestamp context: the user's last training timestamp (the latest moment the
    model knows about), so nothing from the held-out part leaks into the query.
    """

    def __init__(self, train, vocabulary):
        last = train.groupby("user_id", sort=True)["timestamp"].max()
        self.user_ids = last.index.to_numpy(dtype=object)
        self.user_index = vocabulary.encode_users(self.user_ids)
        self.timestamp = last.to_numpy(np.float64)
        self._row = {u: i for i, u in enumerate(self.user_ids)}

    def inputs(self, user_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray([self._row[str(u)] for u in user_ids], np.int64)
        return self.user_index[rows], self.timestamp[rows]


def ranking_metrics(model, tables: FeatureTables, split, ks: Sequence[int] = (10, 100),
                    batch_size: int = 1024) -> dict[str, float]:
    """Per-user Recall@k and NDCG@k on `split.test`, the user's training movies excluded (see RANKING_NOTE)."""
    queries = UserQueries(split.train, split.vocabulary)
    test = split.test[split.test["user_id"].isin(set(queries.user_ids))]
    users = np.sort(test["user_id"].unique()).astype(object)
    if not len(users):  # e.g. a temporal split whose test users have no training ratings: nothing to rank
        return {"users_evaluated": 0.0}
    user_row = {u: i for i, u in enumerate(users)}
    targets = ItemSets.from_pairs(test["user_id"].map(user_row).to_numpy(), tables.movie_rows(test["movie_id"]),
                                  len(users))
    train = split.train[split.train["user_id"].isin(user_row)]
    seen = ItemSets.from_pairs(train["user_id"].map(user_row).to_numpy(), tables.movie_rows(train["movie_id"]),
                               len(users))
    candidates = candidate_embeddings(model, tables.num_candidates)
    user_index, timestamps = queries.inputs(users)
    q = query_embeddings(model, user_index, timestamps)
    kmax = max(max(ks), 10)
    tops = []
    for start in range(0, len(users), batch_size):
        rows = np.arange(start, min(start + batch_size, len(users)))
        scores = exclude_seen(q[rows] @ candidates.T, seen.take(rows), targets.take(rows))
        tops.append(top_k(scores, kmax))
    metrics = recall_ndcg_at_k(np.concatenate(tops), targets, ks=sorted(set(ks) | {10}))
    keep = {f"recall@{k}" for k in ks} | {"ndcg@10", "users_evaluated"}
    return {k: v for k, v in metrics.items() if k in keep}


class RetrievalIndex:
    """Brute-force top-k over candidate embeddings that carry their movie ids and titles.

    Args:
      movie_ids, titles: str [m], the identity of each embedding row.
      embeddings: float32 [m, d].
    """

    def __init__(self, movie_ids: np.ndarray, titles: np.ndarray, embeddings: np.ndarray):
        if not len(movie_ids) == len(titles) == len(embeddings):
            raise ValueError("movie_ids, titles and embeddings must have the same length")
        self.movie_ids = np.asarray(movie_ids, dtype=object)
        self.titles = np.asarray(titles, dtype=object)
        self.embeddings = np.asarray(embeddings, np.float32)
        self._position = {m: i for i, m in enumerate(self.movie_ids)}

    def __len__(self) -> int:
        return len(self.movie_ids)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """float32 [n, d] -> [n, m] query-candidate dot products."""
        return np.asarray(queries, np.float32) @ self.embeddings.T

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[Sequence[str]] | None = None):
        """Top k per query, best first, excluding each query's `exclude` movie ids (masked to -inf).

        Returns (scores float32 [n, k'], movie_ids str [n, k'], titles str [n, k']) with
        k' = min(k, m - most excluded) so no excluded movie can fill a slot.
        """
        scores = self.scores(queries)
        if exclude is not None:
            lists = [[self._position[m] for m in movies if m in self._position] for movies in exclude]
            scores = exclude_seen(scores, ItemSets.from_lists(lists))
            k = min(k, len(self) - max((len(set(x)) for x in lists), default=0))
        top = top_k(scores, max(k, 0)) if k > 0 else np.zeros((len(scores), 0), np.int64)
        return np.take_along_axis(scores, top, axis=1), self.movie_ids[top], self.titles[top]


class TwoTowerRecommender:
    """`recommend(user_id, k, exclude_seen)` for a trained two-tower model (contract: movielens.recommender).

    Candidates are the catalogue movies with training ratings (a movie the model never
    saw in training has only the shared unknown-id embedding).
    """

    def __init__(self, model, tables: FeatureTables, split):
        self.model, self.tables = model, tables
        self.history = UserHistory(split.train)
        self.queries = UserQueries(split.train, split.vocabulary)
        known = tables.movie_vocab_index > 0
        self.index = RetrievalIndex(tables.movie_ids[known], tables.movie_titles[known],
                                    candidate_embeddings(model, tables.num_candidates)[known])

    def query_embedding(self, user_id) -> np.ndarray:
        user = self.history.check_user(user_id)
        user_index, timestamps = self.queries.inputs([user])
        return query_embeddings(self.model, user_index, timestamps)

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]:
        query = self.query_embedding(user_id)
        exclude = [list(self.history.seen_movies(user_id))] if exclude_seen else None
        scores, ids, titles = self.index.search(query, k, exclude)
        return [Recommendation(str(m), str(t), float(s)) for m, t, s in zip(ids[0], titles[0], scores[0])]


class ExportModule(tf.Module):
    """Raw query features -> top-k titles, standalone (no movielens code needed to load and call it).

    Signature `serving_default(user_id: string [B], timestamp: int64 [B])` returns
    {"titles": string [B, k], "movie_ids": string [B, k], "scores": float32 [B, k]}.
    Unknown user ids map to the unknown-user slot 0, as during training.
    """

    def __init__(self, model, tables: FeatureTables, split, k: int = 10):
        super().__init__()
        self.query_tower = model.query_tower
        recommender_rows = tables.movie_vocab_index > 0
        self.candidates = tf.Variable(candidate_embeddings(model, tables.num_candidates)[recommender_rows],
                                      trainable=False, name="candidate_embeddings")
        self.titles = tf.constant(tables.movie_titles[recommender_rows].astype(str))
        self.movie_ids = tf.constant(tables.movie_ids[recommender_rows].astype(str))
        user_ids = np.asarray(split.vocabulary.user_ids).astype(str)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(user_ids), tf.range(1, len(user_ids) + 1, dtype=tf.int64)),
            default_value=0)
        self.k = int(min(k, int(recommender_rows.sum())))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id"),
                                  tf.TensorSpec([None], tf.int64, name="timestamp")])
    def serve(self, user_id, timestamp):
        query = self.query_tower({"user": self.user_table.lookup(user_id), "timestamp": tf.cast(timestamp, tf.float32)})
        scores, rows = tf.math.top_k(tf.linalg.matmul(query, self.candidates, transpose_b=True), k=self.k)
        return {"titles": tf.gather(self.titles, rows), "movie_ids": tf.gather(self.movie_ids, rows), "scores": scores}


def export_saved_model(model, tables: FeatureTables, split, path: str | Path, k: int = 10) -> Path:
    """Writes a SavedModel (signature `serving_default`, see `ExportModule`) to `path`, atomically."""
    from movielens.io import atomic_directory

    path = Path(path)
    module = ExportModule(model, tables, split, k)
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # tf-keras warns that subclassed towers have no get_config; not needed here
    try:
        with atomic_directory(path) as tmp:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
    finally:
        logger.setLevel(level)
    return path


def evaluate_factorized_top_k(model, examples: dict[str, np.ndarray], num_candidates: int,
                              ks: Sequence[int] = TOP_KS, batch_size: int = 4096) -> dict[str, float]:
    """The TFRS-tutorial way: `model.evaluate` with a `FactorizedTopK` metric streaming over the candidates.

    Slow reference for `evaluate_top_k` (same numbers): the candidate tower runs again for every
    evaluation batch. Returns {"val_top_<k>_accuracy": float}.
    """
    import tensorflow_recommenders as tfrs

    from movielens.models.two_tower import InBatchSoftmax, TwoTowerModel

    candidates = tf.data.Dataset.range(num_candidates).batch(128).map(model.candidate_tower)
    task = tfrs.tasks.Retrieval(loss=InBatchSoftmax(),
                                metrics=tfrs.metrics.FactorizedTopK(candidates=candidates, ks=tuple(ks)))
    evaluator = TwoTowerModel(model.query_tower, model.candidate_tower, task=task)
    evaluator.compile()
    data = tf.data.Dataset.from_tensor_slices({"user": examples["user"], "timestamp": examples["timestamp"],
                                               "movie": examples["movie"]}).batch(batch_size).cache()
    results = evaluator.evaluate(data, return_dict=True, verbose=0)
    return {TOP_K_KEY.format(k=k): float(results[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in ks}
