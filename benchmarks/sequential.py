"""Benchmark: SASRec / gSASRec next-movie quality and training time, beside BERT4Rec's committed figures.

Protocol (the same as benchmarks/bert4rec.py): GroupLens files from `../shared/datasets`
(ml-100k/, ml-1m-half/ = the first 487,650 ML-1M ratings, users 1–2999: labelled
"ML-1M (users 1–2999)", never "ML-1M"). All ratings are implicit interactions;
leave-last-out split (per user: test = last movie, validation = second-to-last, train = the
rest). Full ranking on the test movie: the target among all movies rated in training, the
input history excluded (HR@10, NDCG@10, ...); a test movie never rated in training counts
as a miss. The sampled-100 figures (popularity-sampled negatives) are only for comparison
with published sampled numbers. Hyperparameters are chosen on validation NDCG@10 only
(each run records its validation curve); test figures are reported once per setting.
Training stops by early stopping on validation NDCG@10 (best weights kept) or after the
epoch after which another would end past `time_budget_minutes` of this run (before commit
b2df60f: after the epoch that crossed it). Seconds are wall-clock on this
shared 2-core machine; `load` records os.getloadavg() at the start, the end and the mean
of the per-epoch 1-minute load while training (other agents' jobs share the cores).

Beside every run, popularity, item-KNN and EASE (family defaults, chosen on validation) are
trained on the same split and ranked for the same test users with the leaderboard protocol
(`same_split_baselines`): their HR@10 / NDCG@10 with 95% per-user bootstrap intervals, the model's
NDCG@10 over EASE's and a paired bootstrap of model - 1.3 x EASE (per-user NDCG@10), the ML-100K
target. `--members N` trains an ensemble of N SASRecs (seeds 42, 43, ...; the sum of their logits,
`movielens.models.sequential_ensemble`) that share the time budget (`--member_embedding_sizes 64 128`:
one hidden size per member); its train seconds are the members' added up, its validation NDCG@10 the
ensemble's own. `--split_validation_users N` is the gSASRec / aprec protocol (the published 0.300 on ML-1M):
only N users (seed 42) validate on their second-to-last movie, every other user trains on it; the test
movie and test users are the same, and the baselines train on the same enlarged training part.

Writes benchmarks/results/sequential.json (runs keyed "<model>-<dataset>[-<tag>]") and
prints a markdown table with BERT4Rec's figures from benchmarks/results/bert4rec.json.

    nice -n 5 .venv/bin/python -m benchmarks.sequential --datasets 100k --time_budget_minutes 10
    nice -n 5 .venv/bin/python -m benchmarks.sequential --datasets 1m-half --time_budget_minutes 30
    nice -n 5 .venv/bin/python -m benchmarks.sequential --datasets 1m-half --member_embedding_sizes 64 128 --retrain
    nice -n 5 .venv/bin/python -m benchmarks.sequential --datasets 1m-half --split_validation_users 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import movielens  # noqa: F401  (environment first)
from benchmarks.bert4rec import DATASETS, timings
from benchmarks.common import machine
from movielens import paths
from movielens.io import atomic_write_json, read_json

RESULTS = Path(__file__).resolve().parent / "results" / "sequential.json"
PROGRESS = RESULTS.with_name("sequential.progress.json")
BERT4REC_RESULTS = RESULTS.with_name("bert4rec.json")
# The issue's targets (leave-last-out, full ranking, test). ML-100K's is relative: NDCG@10 >= 1.3 x that of
# EASE trained and tested on the same split (measured in every run, `same_split_baselines`).
RATIO = "ndcg@10 / EASE's"
TARGETS = {
    "1m-half": {"hr@10": 0.30, "ndcg@10": 0.17, "minutes": 30.0},
    "100k": {RATIO: 1.3},
}
BASELINES = ("popularity", "item_knn", "ease")
ANCHORS = {
    "gSASRec, Petrov & Macdonald RecSys 2023 (full ML-1M)": {"hr@10": 0.300, "ndcg@10": 0.173},
    "BERT4Rec, Petrov & Macdonald RecSys 2022 replication (full ML-1M)": {"hr@10": 0.282, "ndcg@10": 0.152},
}
MODEL_FLAGS = ("max_len", "hidden_dim", "num_layers", "num_heads", "dropout", "loss", "num_negatives", "gbce_t")
TRAINING_FLAGS = ("batch_size", "learning_rate", "warmup_steps", "epochs", "evaluate_every", "patience",
                  "plateau_factor", "plateau_patience",
                  "window_stride")


def _progress_callback(name: str, loads: list):
    import tensorflow as tf

    class _Progress(tf.keras.callbacks.Callback):
        """Writes the epochs so far to sequential.progress.json and samples the machine load per epoch."""

        def __init__(self):
            super().__init__()
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            loads.append(os.getloadavg()[0])
            state = read_json(PROGRESS) if PROGRESS.is_file() else {}
            state[name] = {"epoch": epoch + 1, "elapsed_seconds": time.perf_counter() - self.started,
                           "load_1min": loads[-1], "logs": {k: float(v) for k, v in (logs or {}).items()}}
            atomic_write_json(PROGRESS, state)

    return _Progress()


def same_split_baselines(data, split, network, ratio: float = 1.3) -> dict:
    """Popularity, item-KNN and EASE (family defaults, chosen on validation) on the same split and test users,
    through the leaderboard protocol (`movielens.protocol`), beside the sequential model ranked the same
    way: each one's test HR@10 / NDCG@10 with 95% per-user bootstrap intervals, and for EASE the NDCG@10
    ratio and a paired bootstrap of model - `ratio` x EASE (per-user NDCG@10: above 0 = the target met with
    confidence)."""
    from movielens import protocol
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.families.sequential import scorer_of

    task, context = protocol.evaluation_task(split, "test"), Context(data, split, 0)
    scorers = {"model": scorer_of(network)}
    for name in BASELINES:
        family = get_family(name)
        scorers[name] = train_or_load(family, family.default_config(), context).scorer()
    out, rankings = {}, {}
    for name, scorer in scorers.items():
        metrics, rankings[name] = protocol.evaluate(scorer, task, context.item_counts)
        out[name] = {k: metrics[k] for k in ("hr@10", "hr@10_low", "hr@10_high", "ndcg@10", "ndcg@10_low",
                                             "ndcg@10_high")}
    model, ease = rankings["model"].per_user["ndcg@10"], rankings["ease"].per_user["ndcg@10"]
    out[RATIO] = float(model.mean() / ease.mean()) if ease.mean() > 0 else float("inf")
    out[f"model - {ratio} x EASE (paired, ndcg@10)"] = protocol.paired_difference(model, ratio * ease)
    out["users"] = len(task)
    return out


def run_one(dataset: str, shared: Path, model_overrides: dict, training_overrides: dict, retrain: bool,
            name: str, members: int = 1, member_hidden_dims: tuple[int, ...] = (), validation_users: int = 0) -> dict:
    from movielens.data import load_movielens, make_split
    from movielens.models.sasrec import SasRecConfig
    from movielens.sequential import SasRecTrainingConfig, train_sequential

    variant, folder, label = DATASETS[dataset]
    data = load_movielens(variant, data_dir=shared / folder, source="local")
    split = make_split(data, "leave_last_out", seed=42, validation_users=validation_users)
    training = SasRecTrainingConfig(**training_overrides)
    loads: list[float] = []
    load_start = os.getloadavg()
    started = time.perf_counter()
    trained = train_sequential(data, split, "sasrec", SasRecConfig(**model_overrides), training, seed=42,
                               retrain=retrain, verbose=2, callbacks=[_progress_callback(name, loads)],
                               members=members, member_hidden_dims=member_hidden_dims)
    wall = time.perf_counter() - started
    metrics = trained.metrics
    members = len(metrics.get("members", [metrics]))
    first = metrics["members"][0] if members > 1 else metrics
    model = f"SASRec ({trained.config.loss})" + (f", ensemble of {members} seeds" if members > 1 else "") + (
        f", hidden {' + '.join(map(str, member_hidden_dims))}" if member_hidden_dims else "")
    entry = {
        "model": model, "dataset": label, "split": "leave_last_out", "split_description": split.describe(),
        "split_validation_users": split.validation_users, "members": members,
        "member_hidden_dims": list(member_hidden_dims),
        "protocol": "full ranking of the test (last) movie, input history excluded",
        "users": metrics.get("test_users"), "items": first.get("n_items"),
        "training_windows": first.get("n_windows"),
        "model_config": trained.config.to_dict(), "model_overrides": model_overrides,
        "training_config": training.to_dict(),
        "saved_model": str(trained.model_dir.path), "from_cache": trained.loaded,
        "wall_seconds_this_invocation": wall,
        "load": {"at_start": list(load_start), "at_end": list(os.getloadavg()),
                 "mean_1min_during_training": sum(loads) / len(loads) if loads else None,
                 "cpus": os.cpu_count()},
        "full_ranking": {k[len("test_"):]: v for k, v in metrics.items()
                         if k.startswith("test_") and "sampled" not in k and k != "test_users"},
        "sampled100_popularity": {k[len("test_sampled100_"):]: v for k, v in metrics.items()
                                  if k.startswith("test_sampled100_")},
        **(ensemble_timings(trained.history, metrics) if members > 1 else timings(trained.history)),
        "same_split_baselines": same_split_baselines(data, split, trained.model),
    }
    target = TARGETS.get(dataset, {})
    full = {**entry["full_ranking"], RATIO: entry["same_split_baselines"][RATIO]}
    checks = {f"{k} >= {v}": full.get(k, 0.0) >= v for k, v in target.items() if k != "minutes"}
    if "minutes" in target:
        checks[f"trained within {target['minutes']} minutes"] = entry["train_seconds"] <= 60 * target["minutes"]
    entry["targets"] = {"checks": checks, "all_met": all(checks.values())}
    return entry


def paired_runs(results: dict, key_a: str, key_b: str, shared: Path) -> dict:
    """Paired bootstrap (per-user test HR@10 and NDCG@10, the leaderboard protocol) of two recorded runs on one
    data set, both loaded from saved_models/ (never trained here): e.g. one configuration under the two
    validation protocols. Both splits have the same test part, and the same input before it (training plus
    validation movies); the test users are checked to match."""
    from movielens import protocol
    from movielens.data import load_movielens, make_split
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.families.sequential import SequentialConfig, scorer_of
    from movielens.models.sasrec import SasRecConfig
    from movielens.sequential import SasRecTrainingConfig

    for key in (key_a, key_b):
        if key not in results.get("runs", {}):
            raise KeyError(f"no run {key!r} in {RESULTS}; recorded: {', '.join(results.get('runs', {}))}")
    labels = {results["runs"][key]["dataset"] for key in (key_a, key_b)}
    if len(labels) != 1:
        raise ValueError(f"{key_a} and {key_b} are not on the same data set: {sorted(labels)}")
    variant, folder, _ = next(v for v in DATASETS.values() if v[2] in labels)
    data = load_movielens(variant, data_dir=shared / folder, source="local")  # once, for both runs
    per_user, users = {}, {}
    for key in (key_a, key_b):
        entry = results["runs"][key]
        split = make_split(data, "leave_last_out", seed=42, validation_users=entry.get("split_validation_users", 0))
        wanted = SequentialConfig(SasRecConfig(**entry["model_overrides"]),
                                  SasRecTrainingConfig(**entry["training_config"]), 42, entry.get("members", 1),
                                  tuple(entry.get("member_hidden_dims", ())))  # runs before ensembles: one model
        trained = train_or_load(get_family("sasrec"), wanted, Context(data, split, 0), no_train=True)
        task = protocol.evaluation_task(split, "test")
        ranking = protocol.rank(scorer_of(trained.state), task)
        per_user[key], users[key] = ranking.per_user, task.histories.user_ids
    if not np.array_equal(users[key_a], users[key_b]):
        raise ValueError(f"{key_a} and {key_b} do not have the same test users")
    return {metric: {"a": float(per_user[key_a][metric].mean()), "b": float(per_user[key_b][metric].mean()),
                     "a - b": protocol.paired_difference(per_user[key_a][metric], per_user[key_b][metric])}
            for metric in ("hr@10", "ndcg@10")}


def ensemble_timings(history: dict, metrics: dict) -> dict:
    """An ensemble's figures for the table: its members' epochs and seconds added up, its own validation NDCG@10
    (the sum of logits, on the validation movie), and each member's timings."""
    members = [timings(member) for member in history["members"]]
    return {
        "epochs_run": sum(m["epochs_run"] for m in members),
        "best_epoch": "/".join(str(m["best_epoch"]) for m in members),
        "best_val_ndcg@10": metrics.get("val_ndcg@10"),
        "train_seconds": sum(m["train_seconds"] for m in members),
        "seconds_per_epoch": sum(m["train_seconds"] for m in members) / max(1, sum(m["epochs_run"] for m in members)),
        "time_to_best_seconds": None,
        "member_timings": members,
        "member_val_ndcg@10": [m["best_val_ndcg@10"] for m in members],
    }


def _minutes(seconds) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def bert4rec_rows() -> list[dict]:
    if not BERT4REC_RESULTS.is_file():
        return []
    rows = []
    for entry in read_json(BERT4REC_RESULTS).get("runs", {}).values():
        rows.append({"model": "BERT4Rec (bert4rec.json)", **entry})
    return rows


def table(results: dict) -> str:
    lines = ["| model | data (leave-last-out) | HR@10 full | NDCG@10 full | best val NDCG@10 | epochs (best) | "
             "s/epoch | train min | min to best | mean load |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in [*results["runs"].values(), *bert4rec_rows()]:
        full = entry["full_ranking"]
        load = (entry.get("load") or {}).get("mean_1min_during_training")
        validating = entry.get("split_validation_users")
        data = entry["dataset"] + (f", {validating:,} validation users" if validating else "")
        lines.append(
            f"| {entry['model']} | {data} | {full.get('hr@10', float('nan')):.4f} "
            f"| {full.get('ndcg@10', float('nan')):.4f} | {entry.get('best_val_ndcg@10') or float('nan'):.4f} "
            f"| {entry['epochs_run']} ({entry['best_epoch']}) | {entry['seconds_per_epoch'] or float('nan'):.1f} "
            f"| {entry['train_seconds'] / 60:.1f} | {_minutes(entry['time_to_best_seconds'])} "
            f"| {'' if load is None else f'{load:.1f}'} |")
    lines.append(f"\ntargets: {TARGETS}")
    for key, entry in results["runs"].items():
        base = entry.get("same_split_baselines")
        if base:
            paired = base[next(k for k in base if k.startswith("model - "))]
            item_knn = f", item-KNN {base['item_knn']['ndcg@10']:.4f}" if "item_knn" in base else ""
            lines.append(f"{key}: same split, test NDCG@10: model {base['model']['ndcg@10']:.4f}, popularity "
                         f"{base['popularity']['ndcg@10']:.4f}{item_knn}, EASE {base['ease']['ndcg@10']:.4f} "
                         f"[{base['ease']['ndcg@10_low']:.4f}, {base['ease']['ndcg@10_high']:.4f}]; model / EASE "
                         f"{base[RATIO]:.3f}; model - 1.3 x EASE {paired['difference']:+.4f} "
                         f"[{paired['low']:+.4f}, {paired['high']:+.4f}]")
    for pair, metrics in results.get("paired", {}).items():
        lines.append(f"{pair}, paired over the same test users: " + "; ".join(
            f"{metric} {m['a']:.4f} - {m['b']:.4f} = {m['a - b']['difference']:+.4f} [{m['a - b']['low']:+.4f}, "
            f"{m['a - b']['high']:+.4f}] p={m['a - b']['p_value']:.3f}" for metric, m in metrics.items()))
    for name, figures in ANCHORS.items():
        lines.append(f"Published: {name}: {figures}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--time_budget_minutes", type=float, default=30.0, help="training budget per run")
    parser.add_argument("--tag", default="", help="suffix of the run's key (e.g. a hyperparameter trial)")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--members", type=int, default=1,
                        help="an ensemble of this many SASRecs (seeds 42, 43, ...) sharing the time budget")
    parser.add_argument("--member_embedding_sizes", "--member_hidden_dims", dest="member_hidden_dims", type=int,
                        nargs="+", default=(), help="each member's hidden size (sets --members to their number)")
    parser.add_argument("--split_validation_users", type=int, default=0, metavar="N",
                        help="only N users validate; the others train on their second-to-last movie (gSASRec)")
    parser.add_argument("--paired", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="instead of training: a paired bootstrap of two recorded runs (keys of the results), "
                             "both loaded from saved_models/")
    for flag in (*MODEL_FLAGS, *TRAINING_FLAGS):
        floats = ("dropout", "gbce_t", "learning_rate", "plateau_factor")
        kind = str if flag == "loss" else (float if flag in floats else int)
        parser.add_argument(f"--{flag}", type=kind, default=None, help="default: SasRecConfig / SasRecTrainingConfig")
    args = parser.parse_args(argv)
    shared = paths.shared_datasets_dir()
    if shared is None:
        print("../shared/datasets is absent: nothing to benchmark", file=sys.stderr)
        return 1
    model_overrides = {f: getattr(args, f) for f in MODEL_FLAGS if getattr(args, f) is not None}
    training_overrides = {f: getattr(args, f) for f in TRAINING_FLAGS if getattr(args, f) is not None}
    training_overrides["time_budget_minutes"] = args.time_budget_minutes
    training_overrides.setdefault("epochs", 400)  # the budget and early stopping end the run
    results = read_json(RESULTS) if RESULTS.is_file() else {}
    results.update({"protocol": __doc__.split("Writes")[0].strip(), "anchors": ANCHORS, "targets": TARGETS,
                    "machine": machine()})
    results.pop("ease_100k", None)  # the issue's figure, replaced by EASE measured on the same split
    results.setdefault("runs", {})
    if args.paired:
        key_a, key_b = args.paired
        results.setdefault("paired", {})[f"{key_a} vs {key_b}"] = paired_runs(results, key_a, key_b, shared)
        atomic_write_json(RESULTS, results)
        print(table(results))
        return 0
    for dataset in args.datasets:
        loss = model_overrides.get("loss", "ce")
        dims = tuple(args.member_hidden_dims)
        ensemble = f"-h{'+'.join(map(str, dims))}" if dims else (f"x{args.members}" if args.members > 1 else "")
        validating = f"val{args.split_validation_users}" if args.split_validation_users else ""
        name = "-".join(p for p in (f"sasrec_{loss}{ensemble}", dataset, validating, args.tag) if p)
        entry = run_one(dataset, shared, model_overrides, training_overrides, args.retrain, name, args.members, dims,
                        args.split_validation_users)
        if entry["from_cache"] and name in results["runs"]:
            # Loaded, not trained: the machine load while it trained is the one recorded when it did.
            entry["load"] = results["runs"][name]["load"]
        # Re-read before writing: another invocation may have added runs meanwhile (trials run side by side).
        if RESULTS.is_file():
            results["runs"] = {**read_json(RESULTS).get("runs", {}), **results["runs"]}
        results["runs"][name] = entry
        atomic_write_json(RESULTS, results)  # after every run, so a stop keeps what is done
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
