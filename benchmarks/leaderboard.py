"""The leaderboard: every family and the baselines on three data sets and three splits, one protocol.

    python -m benchmarks.leaderboard                        everything (hours on 2 cores; resumable)
    python -m benchmarks.leaderboard --datasets 100k --splits random --models popularity item_knn ease
    python -m benchmarks.leaderboard --readme               rewrite the README's summary table from the JSON
    python -m benchmarks.leaderboard --datasets latest-small --splits leave_last_out --paired bert4rec popularity
                                                            paired test of two models of a cell (cached models)

Data (../shared/datasets; label "ML-1M (users 1–2999)" for ml-1m-half, never "ML-1M"):
ML-100K, ML-1M (users 1–2999), ml-latest-small. Splits: random 80/10/10 (seed 42), global temporal
80/10/10, leave-last-out. Protocol (`movielens.protocol`): per user, every movie with training ratings
ranked, the history (training + validation movies at test time) excluded, pessimistic ties; 95%
per-user bootstrap intervals; a paired bootstrap test of each model against the best baseline of that
cell. Families train with their defaults, model selection on the validation part only; the sequential
families get a training time budget (`--sequential_minutes`). Trained models are cached in
saved_models/, so an interrupted run continues where it stopped; every finished (data, split) cell is
written to benchmarks/results/leaderboard.json at once.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.common import RESULTS_DIR, machine
from movielens import paths
from movielens.io import atomic_write_json, atomic_write_text, read_json

DATASETS = {  # name -> (variant, folder under ../shared/datasets, label)
    "100k": ("100k", "ml-100k", "ML-100K"),
    "1m-half": ("1m", "ml-1m-half", "ML-1M (users 1–2999)"),
    "latest-small": ("latest-small", "ml-latest-small", "ml-latest-small"),
}
SPLITS = {"random": (0.8, 0.1, 0.1), "temporal": (0.8, 0.1, 0.1), "leave_last_out": None}
RESULTS = RESULTS_DIR / "leaderboard.json"
README = Path(__file__).resolve().parent.parent / "README.md"
README_MARKERS = ("<!-- leaderboard:start -->", "<!-- leaderboard:end -->")


def family_configs(names, sequential_minutes: float):
    """Each family's default config (the two-tower's is the id-only model, the best feature set on both data
    sets' validation parts: benchmarks/two_tower_quality.py); sequential models get the time budget."""
    from movielens.families import get_family

    rows = []
    for name in names:
        family = get_family(name)
        config = family.default_config()
        if family.kind == "sequential" and sequential_minutes:
            config = config.replace(training=config.training.replace(time_budget_minutes=sequential_minutes))
        rows.append((family, config))
    return rows


def load_cell(dataset: str, split_name: str):
    """(data, split) of one cell."""
    from movielens.data import load_movielens, make_split

    variant, folder, _ = DATASETS[dataset]
    data = load_movielens(variant, data_dir=paths.shared_datasets_dir() / folder)
    return data, make_split(data, split_name, SPLITS[split_name], 42)


def run_cell(dataset: str, split_name: str, names, sequential_minutes: float) -> dict:
    from movielens.leaderboard import run_leaderboard

    label = DATASETS[dataset][2]
    data, split = load_cell(dataset, split_name)
    started = time.perf_counter()
    board = run_leaderboard(data, split, family_configs(names, sequential_minutes))
    print(board.markdown(), flush=True)
    return {"dataset": label, "split": split_name, "seconds": time.perf_counter() - started,
            "machine": machine(), **board.to_json()}


def paired_in_cell(dataset: str, split_name: str, pairs, sequential_minutes: float) -> dict[str, dict]:
    """{"a - b": paired bootstrap of the per-user test NDCG@10} for each (a, b) in `pairs`: the cell's models
    loaded from saved_models/ (a model that is not there is an error, never trained here). The row figures
    are the leaderboard's; this adds the tests it does not run (it tests every row against the best baseline
    only), e.g. a model against the popularity list or one sequential model against the other."""
    from movielens import protocol
    from movielens.families.base import Context, train_or_load

    names = list(dict.fromkeys(name for pair in pairs for name in pair))
    data, split = load_cell(dataset, split_name)
    context, task = Context(data, split, 0), protocol.evaluation_task(split, "test")
    # Only the per-user test NDCG@10: no row metrics, intervals or validation rankings (the cell has them).
    ndcg = {family.name: protocol.rank(train_or_load(family, config, context, no_train=True).scorer(), task)
            .per_user[protocol.PRIMARY] for family, config in family_configs(names, sequential_minutes)}
    return {f"{a} - {b}": protocol.paired_difference(ndcg[a], ndcg[b]) for a, b in pairs}


def summary_markdown(results: dict) -> str:
    """One table per data set: rows = models, columns = splits, cells = test NDCG@10 [95% interval], with
    a mark where the model is significantly above (▲) or below (▼) that cell's best baseline."""
    lines = []
    cells = results.get("cells", {})
    for dataset in dict.fromkeys(cell["dataset"] for cell in cells.values()):
        splits = [s for s in SPLITS if f"{dataset}|{s}" in cells]
        models = list(dict.fromkeys(r["label"] for s in splits for r in cells[f"{dataset}|{s}"]["rows"]))
        lines += [f"**{dataset}**, test NDCG@10 [95% interval]", "",
                  "| model | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
        for model in models:
            row = [model]
            for split in splits:
                found = [r for r in cells[f"{dataset}|{split}"]["rows"] if r["label"] == model]
                if not found:
                    row.append("-")
                    continue
                m, versus = found[0]["metrics"], found[0]["versus_best_baseline"]
                mark = ""
                if versus and versus["significant"]:
                    mark = " ▲" if versus["difference"] > 0 else " ▼"
                elif cells[f"{dataset}|{split}"]["best_baseline"] == model:
                    mark = " (best baseline)"
                row.append(f"{m['ndcg@10']:.3f} [{m['ndcg@10_low']:.3f}, {m['ndcg@10_high']:.3f}]{mark}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines.append("▲ / ▼: significantly above / below the best baseline of that column (paired bootstrap, 95%); "
                 "full metrics in `benchmarks/results/leaderboard.json`.")
    return "\n".join(lines)


def write_readme(results: dict) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = README_MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {start} ... {end} section")
    atomic_write_text(README, pattern.sub(lambda _: f"{start}\n{summary_markdown(results)}\n{end}", text))
    print(f"README summary rewritten from {RESULTS}")


def main(argv=None) -> int:
    from movielens.families import REGISTRY

    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--models", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    parser.add_argument("--sequential_minutes", type=float, default=15.0,
                        help="training budget of each sequential model per cell (default 15)")
    parser.add_argument("--readme", action="store_true", help="only rewrite the README summary from the JSON")
    parser.add_argument("--paired", nargs=2, action="append", metavar=("MODEL_A", "MODEL_B"),
                        help="only the paired test of MODEL_A - MODEL_B (per-user test NDCG@10) in each cell, from "
                             "the cached models (repeatable; trains nothing)")
    args = parser.parse_args(argv)
    results = read_json(RESULTS) if RESULTS.is_file() else {"cells": {}}
    if args.readme:
        write_readme(results)
        return 0
    if paths.shared_datasets_dir() is None:
        print("../shared/datasets is not present: nothing to benchmark", file=sys.stderr)
        return 2
    if args.paired:
        unknown = sorted({name for pair in args.paired for name in pair} - set(REGISTRY))
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
        from movielens.families.base import ModelNotTrainedError

        for dataset in args.datasets:
            for split_name in args.splits:
                try:
                    tests = paired_in_cell(dataset, split_name, args.paired, args.sequential_minutes)
                except ModelNotTrainedError as error:  # run the cell first; a paired test never trains
                    print(f"error: {error}", file=sys.stderr)
                    return 2
                for pair, test in tests.items():
                    print(f"{DATASETS[dataset][2]}, {split_name}: {pair} test NDCG@10 {test['difference']:+.4f} "
                          f"[{test['low']:+.4f}, {test['high']:+.4f}] p={test['p_value']:.3f}")
        return 0
    for dataset in args.datasets:
        for split_name in args.splits:
            print(f"\n=== {DATASETS[dataset][2]}, {split_name} ===", flush=True)
            results["cells"][f"{DATASETS[dataset][2]}|{split_name}"] = run_cell(
                dataset, split_name, args.models, args.sequential_minutes)
            atomic_write_json(RESULTS, results)
    print("\n" + summary_markdown(results))
    print(f"\nresults: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
