"""The two-tower history feature's regularisers, chosen on validation: a gap before the query time and
history dropout (`TwoTowerConfig.history_gap_seconds`, `history_dropout`).

    python -m benchmarks.history_feature                       the whole grid (~25 minutes on 2 cores)
    python -m benchmarks.history_feature --datasets 100k --splits leave_last_out
    python -m benchmarks.history_feature --cold_start            people typed in (unknown_user_rate 0.3)

Why: with the history feature the query at training time t sees the movies rated before t. MovieLens
users rate in sessions, so the last few movies before t predict the movie at t very well; the tower
learns that session order and leans on it. On a random split the held-out movies come from anywhere
in a user's history, and the query (at the end of it) sees the whole history: the session signal is
gone and the model falls to the popularity list's level (benchmarks/feature_sets.py). A gap (the
history of a query at t ends at t - gap) and history dropout (a share of training queries see no
history, so the user's own embedding is trained) limit that; on leave-last-out the held-out movie is
the next one, the session signal is the task, and the plain history is best.

Protocol: ../shared/datasets ML-100K and ML-1M (users 1–2999); the split named (random 80/10/10 seed
42, temporal 80/10/10, leave-last-out); every model is the default `TwoTowerConfig` with
features=("history",) and the (gap, dropout) of its row, early stopping on validation NDCG@10 (best
epoch kept); the figure is that best **validation** NDCG@10 (the leaderboard protocol over the
validation users): the test part is not read. The id-only model is the reference row. Models are
trained in a temporary folder (nothing cached). `--cold_start`: models with `unknown_user_rate` 0.3 (the
setting for serving people typed in), plain and regularised, each also ranked with every validation user
queried as someone not in the data (user slot 0 with their training movies as the typed history;
`RankingEvaluator(as_unknown_users=True)`). Writes benchmarks/results/history_feature.json (one entry per
data set and split) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.common import RESULTS_DIR, machine, markdown_table
from movielens import paths
from movielens.io import atomic_write_json, read_json

RESULTS = RESULTS_DIR / "history_feature.json"
DATASETS = {"100k": ("100k", "ml-100k", "ML-100K"), "1m-half": ("1m", "ml-1m-half", "ML-1M (users 1–2999)")}
DAY = 86_400
# (label, features, history_gap_seconds, history_dropout); None = the id-only reference
GRID = {
    "random": [("id-only", (), None, None), ("plain history", ("history",), 0, 0.0),
               ("gap 1 day", ("history",), DAY, 0.0), ("dropout 0.9", ("history",), 0, 0.9),
               ("gap 1 day, dropout 0.8", ("history",), DAY, 0.8),
               ("gap 1 day, dropout 0.9", ("history",), DAY, 0.9),
               ("gap 1 day, dropout 0.95", ("history",), DAY, 0.95)],
    "temporal": [("id-only", (), None, None), ("plain history", ("history",), 0, 0.0),
                 ("gap 1 day, dropout 0.9", ("history",), DAY, 0.9)],
    "leave_last_out": [("id-only", (), None, None), ("plain history", ("history",), 0, 0.0),
                       ("gap 1 day, dropout 0.9", ("history",), DAY, 0.9)],
}
COLD_START = [("plain history", ("history",), 0, 0.0), ("gap 1 day, dropout 0.9", ("history",), DAY, 0.9),
              ("dropout 0.9", ("history",), 0, 0.9)]
FRACTIONS = {"random": (0.8, 0.1, 0.1), "temporal": (0.8, 0.1, 0.1), "leave_last_out": None}


def run(dataset: str, split_name: str, cold_start: bool = False) -> dict:
    from movielens.data import load_movielens, make_split
    from movielens.families import get_family
    from movielens.families.base import Context
    from movielens.persistence import ModelDir
    from movielens.retrieval import RankingEvaluator

    variant, folder, label = DATASETS[dataset]
    data = load_movielens(variant, data_dir=paths.shared_datasets_dir() / folder, source="local")
    split = make_split(data, split_name, FRACTIONS[split_name], seed=42)
    context = Context(data, split, verbose=0)
    family = get_family("two_tower")
    rows, load_start, started = [], os.getloadavg(), time.perf_counter()
    for name, features, gap, dropout in COLD_START if cold_start else GRID[split_name]:
        config = family.default_config().replace(features=features, unknown_user_rate=0.3 if cold_start else 0.0)
        if gap is not None:
            config = config.replace(history_gap_seconds=gap, history_dropout=dropout)
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="history-feature-") as folder:
            fitted = family.fit(config, context, ModelDir("two_tower", config.to_dict(), root=folder))
        metrics = fitted.metrics
        if cold_start:
            model, tables = fitted.state
            cold = RankingEvaluator(tables, split, "validation", as_unknown_users=True)(model)
            metrics = {**metrics, "cold_start_val_ndcg@10": cold["ndcg@10"]}
            print(f"  {label} {split_name} {name}, people typed in: validation NDCG@10 {cold['ndcg@10']:.4f}")
        rows.append({"model": name, "history_gap_seconds": gap, "history_dropout": dropout,
                     "unknown_user_rate": config.unknown_user_rate,
                     "cold_start_val_ndcg@10": metrics.get("cold_start_val_ndcg@10"),
                     "val_ndcg@10": metrics["val_ndcg@10"], "val_recall@10": metrics["val_recall@10"],
                     "selected_epoch": metrics["selected_epoch"], "epochs_run": metrics["epochs_run"],
                     "validation_users": metrics["users_evaluated"], "seconds": time.perf_counter() - began})
        print(f"  {label} {split_name} {name}: validation NDCG@10 {metrics['val_ndcg@10']:.4f}", flush=True)
    return {"dataset": label, "split": split.describe(), "rows": rows, "seconds": time.perf_counter() - started,
            "load_average": {"start": list(load_start), "end": list(os.getloadavg())}, "machine": machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history_feature", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--splits", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--cold_start", action="store_true",
                        help="only the unknown_user_rate 0.3 models, also ranked as people typed in")
    args = parser.parse_args(argv)
    if paths.shared_datasets_dir() is None:
        print("../shared/datasets is not present: nothing to benchmark", file=sys.stderr)
        return 2
    results = read_json(RESULTS) if RESULTS.is_file() else {"runs": {}}
    results["protocol"] = __doc__.split("Protocol: ", 1)[1].split("\n\n")[0].replace("\n", " ")
    for dataset in args.datasets:
        for split_name in args.splits:
            if split_name != "random" and dataset != "100k":
                continue  # the other splits' check runs on ML-100K (minutes); ML-1M's random grid is the cost
            key = f"{DATASETS[dataset][2]}|{split_name}" + ("|people typed in" if args.cold_start else "")
            results["runs"][key] = run(dataset, split_name, args.cold_start)
            atomic_write_json(RESULTS, results)
    table = [{"data | split": key, **row} for key, entry in results["runs"].items() for row in entry["rows"]]
    print(markdown_table(table, ["data | split", "model", "val_ndcg@10", "cold_start_val_ndcg@10", "val_recall@10",
                                 "selected_epoch", "validation_users"]))
    print(f"\nresults: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
