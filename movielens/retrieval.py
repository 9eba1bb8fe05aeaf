"""After training: fast top-k evaluation, the retrieval index, recommendations and SavedModel export.

Fast evaluation (`evaluate_top_k`): candidate embeddings are computed once, query
embeddings in large batches, and one matmul per batch gives every score. It
reproduces `tfrs.metrics.FactorizedTopK` exactly: FactorizedTopK feeds
`[positive score, top-k scores]` to `tf.math.in_top_k`, i.e. an example is a hit at k
when fewer than k candidates score strictly higher than the true candidate (ties
count as hits), with the positive score computed as `reduce_sum(query * candidate)`.

Recommendations go through the shared `movielens.recommender.Recommender` and its one top-k
index (`movielens.topk`), where each candidate's movie id travels with its embedding row, so a
position decodes to the right movie (the blog script this project replaces mapped BruteForce
positions onto a separately sorted title list).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from movielens.evaluation import ItemSets, exclude_seen, recall_ndcg_per_row, sample_rows, top_k
from movielens.features import FeatureTables, pad_histories

TOP_KS = (1, 5, 10, 50, 100)
EVAL_BATCH = 4096
# History keys of the validation curves (same numbers as TFRS's factorized_top_k/top_<k>_categorical_accuracy).
TOP_K_KEY = "val_top_{k}_accuracy"


def candidate_embeddings(model, num_candidates: int, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Embeddings of every catalogue row: float32 [num_candidates, d]."""
    rows = tf.data.Dataset.range(num_candidates).batch(batch_size)
    return np.concatenate([model.candidate_tower(batch).numpy() for batch in rows], axis=0)


def _timestamps(values) -> tf.Tensor:
    """Timestamps as exact int64 seconds (the tower's input; the history feature compares them exactly)."""
    return tf.constant(np.rint(np.asarray(values, np.float64)).astype(np.int64), tf.int64)


def query_embeddings(model, users: np.ndarray, timestamps: np.ndarray, histories: np.ndarray | None = None,
                     batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Query embeddings float32 [n, d] for user indices [n] and timestamps [n] (eager calls of the tower:
    a per-call tf.function would retrace for every recommendation).

    histories: int64 [n, H] catalogue rows, -1 padding (models with the history feature; others ignore
    it). None: a history model looks up each user's training movies rated strictly before the timestamp.
    """
    out = []
    for start in range(0, len(users), batch_size):
        inputs = {"user": tf.constant(np.asarray(users[start:start + batch_size]), tf.int64),
                  "timestamp": _timestamps(timestamps[start:start + batch_size])}
        if histories is not None and getattr(model.query_tower, "uses_history", False):
            inputs["history"] = tf.constant(np.asarray(histories[start:start + batch_size], np.int64))
        out.append(model.query_tower(inputs).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)


def query_embeddings_from_histories(model, tables: FeatureTables, histories: Sequence[np.ndarray], timestamps,
                                    users: np.ndarray | None = None) -> np.ndarray:
    """Query embeddings float32 [n, d] for people given by the movies they rated: how to serve someone who
    is not in the data (user index 0, the unknown-user slot, the default) from a history model.

    Args:
      histories: n arrays of catalogue rows (`tables.movie_rows(movie_ids)`), oldest first; only the last
        `history_length` of each count (the model's cap). Movies without a training rating are ignored.
      timestamps: n query times in seconds (a scalar is used for all), e.g. the time of the request.
      users: n user indices (`split.vocabulary.encode_users`); default all 0 (unknown).

    A model without the history feature ignores the histories (its query is the user's, or the unknown
    user's, embedding); check `uses_history(model)`.
    """
    n = len(histories)
    length = int(getattr(model.query_tower, "history_length", 0)) or 1
    padded = pad_histories(histories, length)
    if ((padded >= tables.num_candidates) | (padded < -1)).any():
        raise ValueError(f"history rows must be catalogue rows in [0, {tables.num_candidates})")
    timestamps = np.broadcast_to(np.asarray(timestamps, np.float64), (n,))
    users = np.zeros(n, np.int64) if users is None else np.asarray(users, np.int64)
    return query_embeddings(model, users, timestamps, padded)


def uses_history(model) -> bool:
    """Whether the model's query tower reads a history (the `history` feature)."""
    return bool(getattr(model.query_tower, "uses_history", False))


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
                                     "timestamp": _timestamps(part["timestamp"])})
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


class RankingEvaluator:
    """Per-user Recall@k and NDCG@k on one held-out part (`split.test` or `split.validation`).

    Users with held-out ratings and training ratings are ranked; each user's query is at their last
    training timestamp and a history model sees all their training movies (the last `history_length`):
    exactly what is known when recommending, nothing of the held-out part. All catalogue movies are
    candidates; the user's training movies are excluded (a held-out movie is never excluded).
    The targets, seen sets and query inputs are prepared once; calling it ranks with the model's current
    weights (cheap enough to run every epoch). Keys: recall@k, ndcg@10, users_evaluated (with `prefix`).

    as_unknown_users: query every user as someone not in the data (user index 0, the unknown slot) with
      their training movies as the given history: how well a history model serves new people.
    sample_users: rank only this many of those users, drawn without replacement with `seed` (the same users
      on every call: a cheap per-epoch validation at scale); 0 = all of them.

    Users are ranked `batch_size` at a time and the metrics kept per user: memory is O(batch x catalogue),
    never a users x movies array.
    """

    def __init__(self, tables: FeatureTables, split, part: str = "test", ks: Sequence[int] = (10, 100),
                 prefix: str = "", batch_size: int = 1024, as_unknown_users: bool = False, sample_users: int = 0,
                 seed: int = 0):
        if part not in ("test", "validation"):
            raise ValueError(f"part must be 'test' or 'validation', got {part!r}")
        if isinstance(sample_users, bool) or not isinstance(sample_users, (int, np.integer)) or sample_users < 0:
            raise ValueError(f"sample_users must be an integer >= 0 (0 = all users), got {sample_users!r}")
        self.tables, self.ks, self.prefix, self.batch_size = tables, tuple(ks), prefix, batch_size
        queries = UserQueries(split.train, split.vocabulary)
        held_out = getattr(split, part)
        held_out = held_out[held_out["user_id"].isin(set(queries.user_ids))]
        self.users = np.sort(held_out["user_id"].unique()).astype(object)
        if 0 < sample_users < len(self.users):
            self.users = self.users[sample_rows(len(self.users), sample_users, seed)]
            held_out = held_out[held_out["user_id"].isin(set(self.users))]
        user_row = {u: i for i, u in enumerate(self.users)}
        self.targets = ItemSets.from_pairs(held_out["user_id"].map(user_row).to_numpy(),
                                           tables.movie_rows(held_out["movie_id"]), len(self.users))
        train = split.train[split.train["user_id"].isin(user_row)]
        self.seen = ItemSets.from_pairs(train["user_id"].map(user_row).to_numpy(),
                                        tables.movie_rows(train["movie_id"]), len(self.users))
        self.user_index, self.timestamps = queries.inputs(self.users) if len(self.users) else (None, None)
        self.as_unknown_users = bool(as_unknown_users)

    def query_embeddings(self, model) -> np.ndarray:
        histories = None
        if uses_history(model):
            histories = self.tables.user_histories(self.user_index, length=model.query_tower.history_length)
        users = np.zeros_like(self.user_index) if self.as_unknown_users else self.user_index
        return query_embeddings(model, users, self.timestamps, histories)

    def __call__(self, model) -> dict[str, float]:
        if not len(self.users):  # e.g. a temporal split whose test users have no training ratings
            return {f"{self.prefix}users_evaluated": 0.0}
        candidates = candidate_embeddings(model, self.tables.num_candidates)
        q = self.query_embeddings(model)
        kmax = max(max(self.ks), 10)
        ks = sorted(set(self.ks) | {10})
        per_user: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(self.users), self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, len(self.users)))
            targets = self.targets.take(rows)
            scores = exclude_seen(q[rows] @ candidates.T, self.seen.take(rows), targets)
            for name, values in recall_ndcg_per_row(top_k(scores, kmax), targets, ks).items():
                per_user.setdefault(name, []).append(values)
        valid = np.diff(self.targets.indptr) > 0
        metrics = {name: float(np.concatenate(parts)[valid].mean()) if valid.any() else 0.0
                   for name, parts in per_user.items()}
        metrics["users_evaluated"] = float(valid.sum())
        keep = {f"recall@{k}" for k in self.ks} | {"ndcg@10", "users_evaluated"}
        return {f"{self.prefix}{k}": v for k, v in metrics.items() if k in keep}


def ranking_metrics(model, tables: FeatureTables, split, ks: Sequence[int] = (10, 100),
                    batch_size: int = 1024, part: str = "test") -> dict[str, float]:
    """Per-user Recall@k and NDCG@k on `split.test` (or `part`), training movies excluded (see RankingEvaluator)."""
    return RankingEvaluator(tables, split, part, ks, batch_size=batch_size)(model)


class ExportModule(tf.Module):
    """Raw query features -> top-k titles, standalone (no movielens code needed to load and call it).

    Signature `serving_default(user_id: string [B], timestamp: int64 [B])` returns
    {"titles": string [B, k], "movie_ids": string [B, k], "scores": float32 [B, k]}.
    Unknown user ids map to the unknown-user slot 0, as during training. A history model looks each
    user's history up inside the graph: their training movies rated strictly before `timestamp`.
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
        query = self.query_tower({"user": self.user_table.lookup(user_id), "timestamp": timestamp})
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
    data = tf.data.Dataset.from_tensor_slices({"user": examples["user"],
                                               "timestamp": np.asarray(examples["timestamp"], np.int64),
                                               "movie": examples["movie"]}).batch(batch_size).cache()
    results = evaluator.evaluate(data, return_dict=True, verbose=0)
    return {TOP_K_KEY.format(k=k): float(results[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in ks}
