"""The two-tower feature sets on the leaderboard protocol, beside popularity, item-KNN and EASE (issue 13).

    python -m benchmarks.feature_sets                          both data sets, then the six-set timing
    python -m benchmarks.feature_sets --datasets 100k --steps compare
    python -m benchmarks.feature_sets --steps compare --fresh  every model trained (wall time from nothing)
    python -m benchmarks.feature_sets --steps six              only time the seed's six-set comparison
    python -m benchmarks.feature_sets --steps retry            validation-only learning-rate check of the
                                                               feature sets below 1.5x popularity
    python -m benchmarks.feature_sets --steps tables           print the tables of the JSON

Data (../shared/datasets): ML-100K (`ml-100k/`) and ML-1M (users 1–2999) (`ml-1m-half/`, the first
487,650 ratings of ML-1M; published ML-1M figures are not comparable). Split: random 80/10/10, seed 42.
Protocol: `movielens.leaderboard.run_leaderboard` (per user, every movie with training ratings ranked,
the user's training and validation movies excluded, pessimistic ties; 95% per-user bootstrap
intervals). Rows: popularity, item-KNN (neighbours chosen on validation), EASE (λ chosen on validation) and
one two-tower per feature set, each
with the default `TwoTowerConfig` (early stopping on validation NDCG@10, best epoch kept); test NDCG@10
with its interval, Recall@10, paired bootstrap tests of the per-user NDCG@10 against EASE and against
the id-only two-tower, the ratios to popularity and EASE, and the TFRS tutorials' top-100 accuracy
(seen movies kept; the reproduction column). movie_length reads the runtime table
`../shared/datasets/runtimes/movielens_runtimes.csv` (no network lookups).

"The seed's six-feature-set comparison" (issue 13's done-when: ≤ 30 minutes on ML-1M (users 1–2999)) is
timed from nothing: a fresh, empty models folder, popularity, item-KNN, EASE and six two-towers (id-only,
+ timestamp, + title text, timestamp + title text, + history, all), data loading included. Its models
are then copied into saved_models/ (same content identity) so the comparison reuses them.

Models are cached in saved_models/ by content identity: a rerun loads them, an interrupted run resumes.
Writes benchmarks/results/feature_sets.json (after every step) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import movielens  # noqa: F401  (Keras 2 before TensorFlow)
from benchmarks.common import RESULTS_DIR, machine
from movielens import paths
from movielens.io import atomic_write_json, read_json

RESULTS = RESULTS_DIR / "feature_sets.json"
SEED, FRACTIONS = 42, (0.8, 0.1, 0.1)
DATASETS = {  # name -> (variant, folder under ../shared/datasets, label)
    "100k": ("100k", "ml-100k", "ML-100K"),
    "1m-half": ("1m", "ml-1m-half", "ML-1M (users 1–2999)"),
}
USER_FEATURES = ("bucketized_user_age", "user_gender", "user_occupation_label")
ALL_FEATURES = ("timestamp", *USER_FEATURES, "history", "movie_title_text", "movie_genres", "movie_length")
FEATURE_SETS: dict[str, tuple[str, ...]] = {  # label -> optional features on top of the ids
    "id-only": (),
    "+ timestamp": ("timestamp",),
    "+ title text": ("movie_title_text",),
    "+ genres": ("movie_genres",),
    "+ movie_length": ("movie_length",),
    "+ user age/gender/occupation": USER_FEATURES,
    "+ history": ("history",),
    "all": ALL_FEATURES,
}
# The seed's default comparison had three sets (DEFAULT_FEATURE_SETS in movielens/families/two_tower.py:
# id-only, timestamp + title text, everything but runtime); "six" is the count, taken as these.
SIX_SETS: dict[str, tuple[str, ...]] = {
    "id-only": (),
    "+ timestamp": ("timestamp",),
    "+ title text": ("movie_title_text",),
    "timestamp + title text": ("timestamp", "movie_title_text"),
    "+ history": ("history",),
    "all": ALL_FEATURES,
}
# The family gives side-feature models one dense layer (64 wide) and the id-only model none: this row
# separates the dense layer's effect from the features' own (not a feature set; not in the six-set timing).
CONTROL = "id-only + dense [64] (control)"
CONTROL_OVERRIDES = {"layer_sizes": (64,)}
TUTORIAL = "tutorial top-100 (reproduction)"
POPULARITY_TARGET, EASE_TARGET, MINUTES_TARGET = 1.5, 0.9, 30.0
BASELINES = {"popularity": "popularity list", "item_knn": "item-KNN", "ease": "EASE"}  # family -> row label
RETRY_LEARNING_RATES = (0.02, 0.1)  # around the default 0.05, chosen on validation NDCG@10 only


# --- pure helpers (tests/test_benchmark_feature_sets.py) ------------------------------------------------
def ratio(value: float, reference: float) -> float | None:
    """value / reference, None when the reference is not positive."""
    return float(value) / float(reference) if reference and reference > 0 else None


def verdict(paired: Mapping | None) -> str:
    """What a paired test against the id-only model says: helps, hurts or no measurable difference."""
    if not paired:
        return "-"
    if not paired["significant"]:
        return "no measurable difference"
    return "helps" if paired["difference"] > 0 else "hurts"


def paired_cell(paired: Mapping | None) -> str:
    """"+0.012 [+0.003, +0.021] ▲": the paired difference, its 95% interval, ▲/▼ when significant."""
    if not paired:
        return "-"
    mark = (" ▲" if paired["difference"] > 0 else " ▼") if paired["significant"] else ""
    return f"{paired['difference']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]{mark}"


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}×"


def comparison_markdown(result: Mapping) -> str:
    """One data set's table: baselines first, then the feature sets."""
    lines = [f"**{result['dataset']}**, {result['split']}: test metrics, paired tests of the per-user NDCG@10",
             "",
             "| model | NDCG@10 [95% CI] | Recall@10 | vs EASE | vs id-only | effect vs id-only | vs control "
             f"| × popularity | × EASE | {TUTORIAL} | epoch | train s |",
             "|---" * 12 + "|"]
    for row in result["rows"]:
        epoch = row.get("selected_epoch")
        lines.append("| " + " | ".join([
            row["set"], f"{row['ndcg@10']:.3f} [{row['ndcg@10_low']:.3f}, {row['ndcg@10_high']:.3f}]",
            f"{row['recall@10']:.3f}", paired_cell(row.get("vs_ease")), paired_cell(row.get("vs_id_only")),
            verdict(row.get("vs_id_only")), paired_cell(row.get("vs_control")), _times(row.get("x_popularity")),
            _times(row.get("x_ease")), _number(row.get("tutorial_top_100")), "-" if epoch is None else str(int(epoch)),
            _number(row.get("train_seconds"), 0)]) + " |")
    load = f"{result['load_average_start'][0]:.1f} → {result['load_average_end'][0]:.1f}"
    trained = ("every model trained in this run" if result["rows_trained"] == len(result["rows"]) else
               f"{result['rows_trained']} of {len(result['rows'])} models trained in this run, the others loaded "
               "from saved_models/")
    lines += ["", f"wall time of the whole comparison, data loading included: {result['wall_seconds'] / 60:.1f} min "
              f"({trained}); 1-minute load average {load} on {result['machine']['cpus']} CPUs"]
    if any(r["set"] == CONTROL for r in result["rows"]):
        lines.append(f"vs control: against `{CONTROL}`, the id-only model with the dense layer every side-feature "
                     "model has (the feature's own effect)")
    return "\n".join(lines)


def done_when(result: Mapping) -> dict:
    """Issue 13's done-when figures for one data set: best two-tower ≥ 0.9× EASE, every set ≥ 1.5× popularity."""
    towers = [r for r in result["rows"] if r["family"] == "two_tower" and r["set"] != CONTROL]
    best = max(towers, key=lambda r: r["ndcg@10"])
    below = [r["set"] for r in towers if r["x_popularity"] is None or r["x_popularity"] < POPULARITY_TARGET]
    return {"best_two_tower": best["set"], "best_x_ease": best["x_ease"],
            "best_reaches_0.9x_ease": bool(best["x_ease"] is not None and best["x_ease"] >= EASE_TARGET),
            "sets_below_1.5x_popularity": below, "every_set_reaches_1.5x_popularity": not below}


# --- running ---------------------------------------------------------------------------------------------
def runtime_config():
    from movielens.movie_length import MovieLengthConfig

    shared = paths.shared_datasets_dir()
    table = shared / "runtimes" / "movielens_runtimes.csv" if shared else None
    if table is None or not table.is_file():
        raise SystemExit(f"the runtime table is missing: {table}")
    return MovieLengthConfig(table_path=str(table), use_network=False)


def two_tower_family():
    """The registry's two-tower family, reading runtimes from the shared table (run_leaderboard passes no
    run options, so the family is told here; the model identity includes the runtimes' hash)."""
    from movielens.families.two_tower import TwoTower

    class TwoTowerWithRuntimeTable(TwoTower):
        def _minutes(self, config, context):
            context.options.setdefault("movie_length_config", runtime_config())
            return super()._minutes(config, context)

    return TwoTowerWithRuntimeTable()


def load(dataset: str):
    from movielens.data import load_movielens, make_split

    variant, folder, label = DATASETS[dataset]
    data = load_movielens(variant, data_dir=paths.shared_datasets_dir() / folder)
    return data, make_split(data, "random", FRACTIONS, SEED), label


def models(feature_sets: Mapping[str, Sequence[str]], control: bool = False):
    """The baselines (popularity, item-KNN, EASE), one default two-tower per feature set (and the dense-layer
    control)."""
    from movielens.families import get_family

    tower = two_tower_family()
    rows = [(get_family(name), get_family(name).default_config()) for name in BASELINES]
    rows += [(tower, tower.default_config().replace(features=tuple(features))) for features in feature_sets.values()]
    if control:
        rows.append((tower, tower.default_config().replace(**CONTROL_OVERRIDES)))
    return rows


def train_seconds(history: Mapping) -> float | None:
    """Seconds of training epochs plus their per-epoch validation, summed over the whole (resumed) run."""
    seconds = [s for key in ("epoch_seconds", "eval_seconds") for s in history.get(key, []) if s is not None]
    return float(sum(seconds)) if seconds else None


def summarise(board, set_labels: Sequence[str]) -> list[dict]:
    """The benchmark's record of each leaderboard row (set label = its feature set, or the family)."""
    from movielens.protocol import paired_difference

    baselines = dict(zip(BASELINES, board.rows, strict=False))
    popularity, ease = baselines["popularity"], baselines["ease"]
    by_label = dict(zip(set_labels, board.rows[len(BASELINES):], strict=True))
    id_only, control = by_label["id-only"], by_label.get(CONTROL)
    records = []
    for row, label in zip(board.rows, [*BASELINES.values(), *set_labels], strict=True):
        m = row.metrics
        record = {"set": label, "label": row.label, "family": row.family,
                  "features": list(row.config.get("features", [])), "loaded": row.loaded,
                  **{k: m[k] for k in ("ndcg@10", "ndcg@10_low", "ndcg@10_high", "recall@10", "recall@10_low",
                                        "recall@10_high", "users_evaluated")},
                  "x_popularity": ratio(m["ndcg@10"], popularity.metrics["ndcg@10"]),
                  "x_ease": ratio(m["ndcg@10"], ease.metrics["ndcg@10"])}
        if row is not ease:
            record["vs_ease"] = paired_difference(row.per_user_ndcg, ease.per_user_ndcg)
        if row.family == "two_tower":
            if row is not id_only:
                record["vs_id_only"] = paired_difference(row.per_user_ndcg, id_only.per_user_ndcg)
            if control is not None and row.config.get("features"):
                record["vs_control"] = paired_difference(row.per_user_ndcg, control.per_user_ndcg)
            record.update(tutorial_top_100=row.family_metrics.get("test_top_100_accuracy"),
                          selected_epoch=row.family_metrics.get("selected_epoch"),
                          epochs_run=row.family_metrics.get("epochs_run"),
                          validation_ndcg10=row.family_metrics.get("val_ndcg@10"),
                          train_seconds=train_seconds(row.trained.history))
        else:
            record["validation_ndcg10"] = row.family_metrics.get("validation_ndcg@10")
        records.append(record)
    return records


def compare(dataset: str, feature_sets: Mapping[str, Sequence[str]], control: bool = False,
            verbose: int = 1) -> dict:
    """One data set's comparison: the leaderboard of popularity, EASE and every feature set."""
    from movielens.leaderboard import machine_state, run_leaderboard

    load_start, started = os.getloadavg(), time.perf_counter()
    data, split, label = load(dataset)
    board = run_leaderboard(data, split, models(feature_sets, control), verbose=verbose)
    wall = time.perf_counter() - started
    rows = summarise(board, [*feature_sets, *([CONTROL] if control else [])])
    result = {"dataset": label, "split": "random 80/10/10 seed 42", "split_description": split.describe(),
              "data": board.data_description, "wall_seconds": wall,
              "load_average_start": [round(x, 2) for x in load_start],
              "load_average_end": [round(x, 2) for x in os.getloadavg()],
              "rows_trained": sum(not r["loaded"] for r in rows), "machine": {**machine(), **machine_state()},
              "rows": rows}
    result["done_when"] = done_when(result)
    return result


@contextlib.contextmanager
def empty_models_folder():
    """Trains into a fresh, empty models folder (every model trained, none loaded), then copies the new
    models into saved_models/ (the same content identity, so later runs load them); yields the names copied."""
    keep, copied = paths.models_dir(), []
    with tempfile.TemporaryDirectory(prefix="feature-sets-fresh-") as fresh:
        os.environ["MOVIELENS_MODELS_DIR"] = fresh
        try:
            yield copied
        finally:
            os.environ.pop("MOVIELENS_MODELS_DIR", None)
            for folder in Path(fresh).iterdir():
                if folder.is_dir() and not folder.name.startswith(".") and not (keep / folder.name).exists():
                    shutil.copytree(folder, keep / folder.name)
                    copied.append(folder.name)


def time_six_sets(dataset: str = "1m-half") -> dict:
    """The seed's six-set comparison from an empty models folder; its models are then kept in saved_models/."""
    with empty_models_folder() as copied:
        result = compare(dataset, SIX_SETS)
    result.update(minutes=result["wall_seconds"] / 60, target_minutes=MINUTES_TARGET,
                  reached=result["wall_seconds"] / 60 <= MINUTES_TARGET, copied_to_saved_models=copied)
    return result


def retry(dataset: str, below: Sequence[str], verbose: int = 1) -> dict:
    """For each feature set below 1.5× popularity: the learning rates of RETRY_LEARNING_RATES trained, the
    one with the best VALIDATION NDCG@10 (default 0.05 included) kept, and only that one measured on test."""
    from movielens.families.base import Context, train_or_load
    from movielens.leaderboard import measure
    from movielens.protocol import evaluation_task, paired_difference

    data, split, label = load(dataset)
    context = Context(data, split, verbose)
    tower = two_tower_family()
    base = tower.default_config()
    task = evaluation_task(split, "test")
    from movielens.families import get_family

    popularity = measure(train_or_load(get_family("popularity"), get_family("popularity").default_config(),
                                       context), task, context.item_counts)
    id_only = measure(train_or_load(tower, base, context), task, context.item_counts)
    out = {}
    for name in below:
        candidates = {}
        for lr in (base.learning_rate, *RETRY_LEARNING_RATES):
            trained = train_or_load(tower, base.replace(features=FEATURE_SETS[name], learning_rate=lr), context)
            candidates[lr] = trained
        validation = {lr: float(t.metrics["val_ndcg@10"]) for lr, t in candidates.items()}
        chosen = max(validation, key=validation.get)
        row = measure(candidates[chosen], task, context.item_counts)
        out[name] = {"validation_ndcg10_by_learning_rate": validation, "chosen_learning_rate": chosen,
                     "test_ndcg@10": row.metrics["ndcg@10"], "test_ndcg@10_low": row.metrics["ndcg@10_low"],
                     "test_ndcg@10_high": row.metrics["ndcg@10_high"], "recall@10": row.metrics["recall@10"],
                     "x_popularity": ratio(row.metrics["ndcg@10"], popularity.metrics["ndcg@10"]),
                     "vs_id_only": paired_difference(row.per_user_ndcg, id_only.per_user_ndcg),
                     "selected_epoch": row.family_metrics.get("selected_epoch")}
        print(f"[{label}] {name}: validation NDCG@10 by learning rate {validation}; chosen {chosen}: test "
              f"NDCG@10 {row.metrics['ndcg@10']:.3f} ({out[name]['x_popularity']:.2f}× popularity)", flush=True)
    return {"dataset": label, "learning_rates": [base.learning_rate, *RETRY_LEARNING_RATES], "sets": out}


def retry_markdown(result: Mapping) -> str:
    lines = [f"**{result['dataset']}**: learning rate chosen on validation NDCG@10 "
             f"(of {', '.join(f'{lr:g}' for lr in result['learning_rates'])}), then test",
             "", "| feature set | validation NDCG@10 by learning rate | chosen | test NDCG@10 [95% CI] | × popularity "
             "| vs id-only |", "|---|---|---|---|---|---|"]
    for name, r in result["sets"].items():
        by_lr = ", ".join(f"{float(lr):g}: {v:.3f}" for lr, v in r["validation_ndcg10_by_learning_rate"].items())
        lines.append(f"| {name} | {by_lr} | {float(r['chosen_learning_rate']):g} | {r['test_ndcg@10']:.3f} "
                     f"[{r['test_ndcg@10_low']:.3f}, {r['test_ndcg@10_high']:.3f}] | {r['x_popularity']:.2f}× | "
                     f"{paired_cell(r['vs_id_only'])} |")
    return "\n".join(lines)


def print_tables(results: Mapping) -> None:
    for result in results.get("comparisons", {}).values():
        print("\n" + comparison_markdown(result))
        print(f"done when: {result['done_when']}")
    six = results.get("six_set_timing")
    if six:
        print(f"\nthe seed's six-set comparison on {six['dataset']}: {six['minutes']:.1f} min from an empty models "
              f"folder (target ≤ {six['target_minutes']:g}: {'reached' if six['reached'] else 'NOT reached'}); "
              f"1-minute load average {six['load_average_start'][0]:.1f} → {six['load_average_end'][0]:.1f}")
    for result in results.get("retries", {}).values():
        print("\n" + retry_markdown(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_sets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--steps", nargs="+", default=["six", "compare"],
                        choices=["six", "compare", "retry", "tables"])
    parser.add_argument("--fresh", action="store_true",
                        help="compare in an empty models folder (every model trained, so the wall time is the whole "
                             "comparison's), then keep the models in saved_models/")
    args = parser.parse_args(argv)
    results = read_json(RESULTS) if RESULTS.is_file() else {}
    results.setdefault("comparisons", {})
    if "tables" in args.steps:
        print_tables(results)
        return 0
    if paths.shared_datasets_dir() is None:
        print("../shared/datasets is not present: nothing to benchmark", file=sys.stderr)
        return 2
    results.update(feature_sets={k: list(v) for k, v in FEATURE_SETS.items()},
                   six_sets={k: list(v) for k, v in SIX_SETS.items()},
                   protocol="movielens.leaderboard.run_leaderboard, random 80/10/10 seed 42, test part")
    if "six" in args.steps and "1m-half" in args.datasets:
        print("\n=== the seed's six-set comparison, ML-1M (users 1–2999), from an empty models folder ===", flush=True)
        results["six_set_timing"] = time_six_sets("1m-half")
        atomic_write_json(RESULTS, results)
    if "compare" in args.steps:
        for dataset in args.datasets:
            print(f"\n=== {DATASETS[dataset][2]} ===", flush=True)
            if args.fresh:
                with empty_models_folder():
                    results["comparisons"][dataset] = compare(dataset, FEATURE_SETS, control=True)
            else:
                results["comparisons"][dataset] = compare(dataset, FEATURE_SETS, control=True)
            atomic_write_json(RESULTS, results)
    if "retry" in args.steps:
        results.setdefault("retries", {})
        for dataset in args.datasets:
            below = results["comparisons"].get(dataset, {}).get("done_when", {}).get("sets_below_1.5x_popularity")
            if below:
                results["retries"][dataset] = retry(dataset, below)
                atomic_write_json(RESULTS, results)
    print_tables(results)
    print(f"\nresults: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
