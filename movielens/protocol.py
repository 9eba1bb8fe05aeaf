"""The one ranking protocol every family and baseline is measured on, with per-user confidence intervals.

For each user with held-out ratings in the evaluated part:
  - input history: the user's training ratings (+ validation ratings when testing), time ordered;
  - every movie of the split's training vocabulary is ranked (a held-out movie with no training
    rating cannot be ranked by anyone and counts as a miss);
  - the history's movies are excluded from the ranking; held-out movies never are;
  - ties count against the target (pessimistic rank), and a non-finite score is the worst score,
    so a model that scores everything equal, or NaN, gets no credit.
Metrics, per user then averaged: Recall@10/20/50/100 (hits / held-out movies), NDCG@10/100 (binary
gains, ideal = min(k, held-out) hits), HR@10, MRR (first hit in the full ranking); over all users:
catalogue coverage@10 and the mean popularity percentile of the top-10 (100 = the most rated movie).
`bootstrap` gives 95% intervals by resampling users, `paired_difference` a paired test of two models
on the same users.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.data.splits import Split
from movielens.evaluation import ItemSets, sample_rows, top_k
from movielens.families.histories import Histories

RECALL_KS = (10, 20, 50, 100)
NDCG_KS = (10, 100)
PER_USER = tuple([f"recall@{k}" for k in RECALL_KS] + [f"ndcg@{k}" for k in NDCG_KS] + ["hr@10", "mrr"])
PRIMARY = "ndcg@10"
BOOTSTRAP_SAMPLES = 1000
PROTOCOL_NOTE = ("per user: all movies with training ratings ranked, the user's training movies (and validation "
                 "movies when testing) excluded; targets = every held-out rating's movie; pessimistic ties")


@dataclasses.dataclass
class EvaluationTask:
    """Who is evaluated, from which history, against which held-out movies.

    Attributes:
      part: "validation" or "test".
      histories: the input histories (their movies are excluded from the ranking).
      targets: held-out columns per row (movies with no training rating dropped here...).
      target_counts: int [n] held-out ratings per row (...but counted here, as misses).
    """

    part: str
    histories: Histories
    targets: ItemSets
    target_counts: np.ndarray

    def __len__(self) -> int:
        return len(self.histories)

    def take(self, rows) -> EvaluationTask:
        """The task of the users at `rows` (int [n] positions), in that order."""
        rows = np.asarray(rows, np.int64)
        return EvaluationTask(self.part, self.histories.take(rows), self.targets.take(rows), self.target_counts[rows])

    def sample(self, n_users: int, seed: int = 0) -> EvaluationTask:
        """`n_users` of the task's users drawn without replacement with `seed`, in the task's order: the same
        users on every call (a per-epoch validation at scale). 0, or n_users >= len(self): the task itself."""
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 0:
            raise ValueError(f"the number of sampled users must be an integer >= 0 (0 = all), got {n_users!r}")
        if n_users == 0 or n_users >= len(self):
            return self
        return self.take(sample_rows(len(self), n_users, seed))


def evaluation_task(split: Split, part: str = "test", sample_users: int = 0, seed: int = 0) -> EvaluationTask:
    """The task of `part` ("validation" or "test") of a split; users without held-out ratings are left out.

    sample_users: keep only this many of the users, a seeded draw (`EvaluationTask.sample`); 0 = all.
    """
    if part not in ("validation", "test"):
        raise ValueError(f"part must be 'validation' or 'test', got {part!r}")
    return _evaluation_task(split, part).sample(sample_users, seed)


def _evaluation_task(split: Split, part: str) -> EvaluationTask:
    held_out = split.test if part == "test" else split.validation
    vocabulary = split.vocabulary
    user_ids = np.sort(held_out["user_id"].astype(str).unique()).astype(object)
    histories = Histories.from_frame(split.train, vocabulary, user_ids)
    if part == "test" and not split.validation_is_test and len(split.validation):
        histories = histories.concat(Histories.from_frame(split.validation, vocabulary, user_ids))
    rows = np.searchsorted(user_ids, held_out["user_id"].astype(str).to_numpy(dtype=object))
    columns = vocabulary.encode_movies(held_out["movie_id"]) - 1
    known = columns >= 0
    targets = ItemSets.from_pairs(rows[known], columns[known], len(user_ids))
    # A movie rated twice by one user (ml-latest) is one target.
    unique_pairs = held_out.assign(_row=rows).drop_duplicates(["_row", "movie_id"])["_row"].to_numpy()
    counts = np.bincount(unique_pairs, minlength=len(user_ids))
    return EvaluationTask(part, histories, targets, counts)


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """NaN and +inf become the worst score (-inf): a broken model must not rank anything first."""
    scores = np.asarray(scores, np.float32)
    if np.isfinite(scores).all():
        return scores
    return np.where(np.isnan(scores) | np.isposinf(scores), -np.inf, scores).astype(np.float32)


@dataclasses.dataclass
class Ranking:
    """Per-user metrics of one model on one task, plus what its top-10 lists contained."""

    per_user: dict[str, np.ndarray]   # metric -> float [n_users]
    top10: np.ndarray                 # int [n_users, 10] recommended columns
    seconds: float = 0.0

    def means(self) -> dict[str, float]:
        return {name: float(values.mean()) if len(values) else 0.0 for name, values in self.per_user.items()}


def rank(scorer, task: EvaluationTask, batch_size: int = 512) -> Ranking:
    """Scores every task user with `scorer` (queries @ candidates) and computes the per-user metrics."""
    import time

    from movielens.topk import BruteForce

    started = time.perf_counter()
    n = len(task)
    index = BruteForce(scorer.candidates(), np.arange(len(scorer.candidates())).astype(str))
    per_user = {name: np.zeros(n) for name in PER_USER}
    top10 = np.zeros((n, 10), np.int64)
    discounts = 1.0 / np.log2(np.arange(2, max(NDCG_KS) + 2))
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        histories = task.histories.take(rows)
        scores = finite_scores(index.scores(scorer.queries(histories)))
        seen, targets = histories.seen(), task.targets.take(rows)
        scores[seen.row_ids(), seen.indices] = -np.inf
        # Pessimistic 0-based rank of each target: every other movie scoring >= it ranks ahead.
        target_rows = targets.row_ids()
        target_scores = scores[target_rows, targets.indices]
        ranks = np.empty(len(target_scores), np.int64)
        for chunk in range(0, len(ranks), 4096):
            part = slice(chunk, chunk + 4096)
            ranks[part] = (scores[target_rows[part]] >= target_scores[part, None]).sum(axis=1) - 1
        ranks[~np.isfinite(target_scores)] = scores.shape[1]  # -inf target: a miss everywhere
        counts = task.target_counts[rows].astype(np.float64)
        for k in RECALL_KS:
            per_user[f"recall@{k}"][rows] = np.bincount(target_rows, ranks < k, len(rows)) / counts
        for k in NDCG_KS:
            gains = np.where(ranks < k, discounts[np.minimum(ranks, k - 1)], 0.0)
            ideal = np.r_[0.0, np.cumsum(discounts[:k])][np.minimum(counts.astype(np.int64), k)]
            per_user[f"ndcg@{k}"][rows] = np.bincount(target_rows, gains, len(rows)) / ideal
        per_user["hr@10"][rows] = np.bincount(target_rows, ranks < 10, len(rows)) > 0
        best = np.full(len(rows), scores.shape[1], np.int64)
        np.minimum.at(best, target_rows, ranks)
        per_user["mrr"][rows] = np.where(best < scores.shape[1], 1.0 / (best + 1.0), 0.0)
        top10[rows] = top_k(scores, 10)
    return Ranking(per_user, top10, time.perf_counter() - started)


def list_metrics(ranking: Ranking, item_counts: np.ndarray) -> dict[str, float]:
    """Catalogue coverage@10 (share of movies in anyone's top-10) and the mean popularity percentile of the
    recommended movies (percentile of training interactions: 100 = the most rated movie)."""
    n_items = len(item_counts)
    coverage = len(np.unique(ranking.top10)) / n_items if n_items else 0.0
    order = np.argsort(np.argsort(item_counts, kind="stable"), kind="stable")
    percentile = 100.0 * order / max(n_items - 1, 1)
    return {"coverage@10": float(coverage),
            "popularity_percentile@10": float(percentile[ranking.top10].mean()) if ranking.top10.size else 0.0}


def bootstrap(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-user `values`, resampling users."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 100):  # bounded memory: 100 resamples at a time
        stop = min(start + 100, samples)
        means[start:stop] = values[rng.integers(0, len(values), (stop - start, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """Paired bootstrap of mean(a - b) over the same users: the difference, its 95% interval, a two-sided
    p-value, and whether the interval excludes 0."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    low, high = bootstrap(diff, samples, seed)
    rng = np.random.default_rng(seed + 1)
    centred = diff - diff.mean()
    null = np.array([centred[rng.integers(0, len(diff), len(diff))].mean() for _ in range(samples)]) \
        if len(diff) else np.zeros(1)
    p_value = float((np.abs(null) >= abs(diff.mean() if len(diff) else 0.0)).mean())
    return {"difference": float(diff.mean()) if len(diff) else 0.0, "low": low, "high": high,
            "p_value": p_value, "significant": bool(low > 0 or high < 0)}


def evaluate(scorer, task: EvaluationTask, item_counts: np.ndarray, with_intervals: bool = True,
             prefix: str = "") -> tuple[dict[str, float], Ranking]:
    """Every metric of the protocol (and its 95% interval as `<metric>_low` / `_high`) for one model."""
    ranking = rank(scorer, task)
    metrics = ranking.means()
    if with_intervals:
        for name in PER_USER:
            metrics[f"{name}_low"], metrics[f"{name}_high"] = bootstrap(ranking.per_user[name])
    metrics.update(list_metrics(ranking, item_counts))
    metrics["users_evaluated"] = float(len(task))
    metrics["rank_seconds"] = ranking.seconds
    return {f"{prefix}{k}": v for k, v in metrics.items()}, ranking


def validation_metric(scorer, split: Split, metric: str = PRIMARY) -> float:
    """One validation number (e.g. for choosing a hyperparameter): the mean of `metric` on the validation part."""
    task = evaluation_task(split, "validation")
    return float(rank(scorer, task).per_user[metric].mean())


def selection_split(split: Split, fraction: float = 0.1, seed: int = 42) -> Split:
    """A split to choose settings on: `split` itself when it has its own validation part; otherwise (the
    tutorial's 2-part split, whose validation IS the test part) a seeded `fraction` of the training ratings
    carved out as validation, so the test part is never looked at while choosing."""
    from movielens.data.splits import Split as SplitType
    from movielens.data.splits import Vocabulary

    if not split.validation_is_test and len(split.validation):
        return split
    order = np.random.default_rng(seed).permutation(len(split.train))
    n_val = int(round(fraction * len(split.train)))
    validation = split.train.iloc[np.sort(order[:n_val])].reset_index(drop=True)
    train = split.train.iloc[np.sort(order[n_val:])].reset_index(drop=True)
    # The vocabulary stays the whole training part's, so columns mean the same movies in both splits.
    return SplitType(f"{split.name}-carved", train, validation, validation,
                     Vocabulary(split.vocabulary.user_ids, split.vocabulary.movie_ids))
