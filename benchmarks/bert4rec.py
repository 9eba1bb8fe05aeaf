"""Benchmark: BERT4Rec quality and training time on ML-100K and ML-1M (users 1–2999).

Protocol: GroupLens files from `../shared/datasets` (ml-100k/, ml-1m-half/ = the first
487,650 ML-1M ratings, users 1–2999: labelled "ML-1M (users 1–2999)", never "ML-1M").
All ratings are implicit interactions; leave-last-out split (per user: test = last movie,
validation = second-to-last, train = the rest). Metrics on the test movie:
  full ranking: the target among all movies rated in training, the input history excluded
               (HR@10, NDCG@10, ...). A test movie never rated in training counts as a miss.
  sampled:     the BERT4Rec paper's protocol, for comparison with the paper only: the target
               among 100 negatives sampled by popularity from movies outside the history.
Training: masked-movie training (mask prob 0.2, paper architecture for ML-1M: max_len 200,
hidden 64, 2 layers, 2 heads, dropout 0.1), Adam with warm-up, validation every few
epochs, early stopping on validation NDCG@10 with the best weights kept, and a
wall-clock budget. Times are wall-clock on this (shared, 2-core) machine:
train_seconds = all epochs + validations; time_to_best = epochs and validations up to the
best validation. Trained models are cached in saved_models/ (resumable): a rerun
reports the cached model's recorded times.

Writes benchmarks/results/bert4rec.json (and bert4rec.progress.json while training),
prints a markdown table.

    .venv/bin/python -m benchmarks.bert4rec [--datasets 100k 1m-half] [--budget_minutes 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import movielens  # noqa: F401  (environment first)
from movielens import paths
from movielens.io import atomic_write_json, read_json

RESULTS = Path(__file__).resolve().parent / "results" / "bert4rec.json"
PROGRESS = RESULTS.with_name("bert4rec.progress.json")
# name -> (variant, folder under shared/datasets, label)
DATASETS = {
    "100k": ("100k", "ml-100k", "ML-100K"),
    "1m-half": ("1m", "ml-1m-half", "ML-1M (users 1–2999)"),
}
# Published figures (full ML-1M, 6,040 users), full ranking unless marked sampled.
ANCHORS = {
    "BERT4Rec, Petrov & Macdonald RecSys 2022 replication (ML-1M)": {"hr@10": 0.282, "ndcg@10": 0.152},
    "gSASRec, Petrov & Macdonald RecSys 2023 (ML-1M)": {"hr@10": 0.300, "ndcg@10": 0.173},
    "Goal for the full ML-1M": {"hr@10": 0.30, "ndcg@10": 0.17},
    "BERT4Rec paper, sampled 100 negatives (ML-1M)": {"sampled100_hr@10": 0.697, "sampled100_ndcg@10": 0.482},
}
GOAL_MINUTES = 60.0


class Progress:
    """A Keras callback writing the epochs so far to bert4rec.progress.json (readable while training)."""

    def __new__(cls, name: str):
        import tensorflow as tf

        class _Progress(tf.keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                state = read_json(PROGRESS) if PROGRESS.is_file() else {}
                state[name] = {"epoch": epoch + 1, "elapsed_seconds": time.perf_counter() - self.started,
                               "logs": {k: float(v) for k, v in (logs or {}).items()}}
                atomic_write_json(PROGRESS, state)

        return _Progress()


def timings(history: dict) -> dict:
    epochs = history["epoch"]
    epoch_s = [s or 0.0 for s in history.get("epoch_seconds", [0.0] * len(epochs))]
    eval_s = [s or 0.0 for s in history.get("eval_seconds", [0.0] * len(epochs))]
    cumulative = [sum(epoch_s[: i + 1]) + sum(eval_s[: i + 1]) for i in range(len(epochs))]
    best = history.get("best_epoch")
    best_index = epochs.index(best) if best in epochs else None
    val = history.get("val_ndcg@10", [])
    return {
        "epochs_run": len(epochs),
        "best_epoch": best,
        "best_val_ndcg@10": val[best_index] if best_index is not None else None,
        "train_seconds": cumulative[-1] if cumulative else 0.0,
        "seconds_per_epoch": sum(epoch_s) / len(epochs) if epochs else None,
        "seconds_per_validation": (sum(eval_s) / max(1, sum(1 for s in eval_s if s))) if eval_s else None,
        "time_to_best_seconds": cumulative[best_index] if best_index is not None else None,
        "val_ndcg@10_curve": [[e, v] for e, v in zip(epochs, val) if v is not None],
    }


def run_one(name: str, shared: Path, training_overrides: dict, retrain: bool) -> dict:
    from movielens.data import load_movielens, make_split
    from movielens.models.bert4rec import Bert4RecConfig
    from movielens.sequential import Bert4RecTrainingConfig, train_bert4rec

    variant, folder, label = DATASETS[name]
    data = load_movielens(variant, data_dir=shared / folder, source="local")
    split = make_split(data, "leave_last_out")
    config = Bert4RecConfig()
    training = Bert4RecTrainingConfig(**training_overrides)
    started = time.perf_counter()
    trained = train_bert4rec(data, split, config, training, seed=42, retrain=retrain, verbose=2,
                             callbacks=[Progress(name)])
    wall = time.perf_counter() - started
    metrics = trained.metrics
    entry = {
        "dataset": label, "split": "leave_last_out", "users": metrics.get("test_users"),
        "items": metrics.get("n_items"), "training_windows": metrics.get("n_windows"),
        "model_config": config.to_dict(), "training_config": training.to_dict(),
        "saved_model": str(trained.model_dir.path), "from_cache": trained.loaded,
        "wall_seconds_this_invocation": wall,
        "full_ranking": {k[len("test_"):]: v for k, v in metrics.items()
                         if k.startswith("test_") and "sampled" not in k and k != "test_users"},
        "sampled100_popularity": {k[len("test_sampled100_"):]: v for k, v in metrics.items()
                                  if k.startswith("test_sampled100_")},
        **timings(trained.history),
    }
    entry["time_to_best_within_60_min"] = (entry["time_to_best_seconds"] is not None
                                           and entry["time_to_best_seconds"] <= GOAL_MINUTES * 60)
    return entry


def table(results: dict) -> str:
    rows = ["| dataset (leave-last-out) | HR@10 full | NDCG@10 full | HR@10 sampled-100 | NDCG@10 sampled-100 | "
            "epochs (best) | s/epoch | train min | min to best |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in results["runs"].values():
        full, sampled = entry["full_ranking"], entry["sampled100_popularity"]
        to_best = entry["time_to_best_seconds"]
        rows.append(
            f"| {entry['dataset']} | {full.get('hr@10', float('nan')):.4f} | {full.get('ndcg@10', float('nan')):.4f} "
            f"| {sampled.get('hr@10', float('nan')):.4f} | {sampled.get('ndcg@10', float('nan')):.4f} "
            f"| {entry['epochs_run']} ({entry['best_epoch']}) | {entry['seconds_per_epoch']:.1f} "
            f"| {entry['train_seconds'] / 60:.1f} | {(to_best or 0) / 60:.1f} |")
    for name, figures in ANCHORS.items():
        shown = ", ".join(f"{k} {v}" for k, v in figures.items())
        rows.append(f"\nPublished / goal: {name}: {shown}")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--budget_minutes", type=float, default=60.0, help="wall-clock budget per training run")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--evaluate_every", type=int, default=3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    shared = paths.shared_datasets_dir()
    if shared is None:
        print("../shared/datasets is absent: nothing to benchmark", file=sys.stderr)
        return 1
    overrides = {"batch_size": args.batch_size, "learning_rate": args.learning_rate, "epochs": args.epochs,
                 "evaluate_every": args.evaluate_every, "patience": args.patience,
                 "time_budget_minutes": args.budget_minutes}
    results = read_json(RESULTS) if RESULTS.is_file() else {}
    results.update({"protocol": __doc__.split("Writes")[0].strip(), "anchors": ANCHORS})
    results.setdefault("runs", {})
    for name in args.datasets:
        results["runs"][name] = run_one(name, shared, overrides, args.retrain)
        atomic_write_json(RESULTS, results)  # after every data set, so a stop keeps what is done
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
