"""Every family and the baselines on one split and one protocol (`movielens.protocol`), in one table.

    board = run_leaderboard(data, split, [(get_family("ease"), ease_config), ...])
    print(board.markdown())
    board.write(folder)          # results.json, leaderboard.md, report.html

Each row is a trained (or loaded) model measured on the test part with per-user 95% bootstrap
intervals, and a paired bootstrap test against the best baseline (the baseline row with the
highest test NDCG@10): rows that lose to it are shown, and marked, never hidden.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from movielens import protocol
from movielens.config import Config, config_hash
from movielens.families.base import Context, Family, TrainedModel, train_or_load
from movielens.io import atomic_write_json, atomic_write_text

COLUMNS = (("NDCG@10", "ndcg@10"), ("Recall@10", "recall@10"), ("Recall@20", "recall@20"), ("Recall@50", "recall@50"),
           ("Recall@100", "recall@100"), ("NDCG@100", "ndcg@100"), ("HR@10", "hr@10"), ("MRR", "mrr"),
           ("cov@10", "coverage@10"), ("pop. pct@10", "popularity_percentile@10"))


@dataclasses.dataclass
class Row:
    label: str
    family: str
    kind: str
    config: dict
    metrics: dict                  # protocol metrics on the test part, with _low/_high intervals
    family_metrics: dict           # what the family reports itself (RMSE, tutorial top-k, ...)
    history: dict                  # per-epoch validation curve, when the family trains by epochs
    loaded: bool
    per_user_ndcg: np.ndarray      # for the paired tests (not written to JSON)
    versus_best_baseline: dict | None = None
    trained: TrainedModel | None = None  # the model itself (not written to JSON)

    def to_json(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name not in ("per_user_ndcg", "trained")}


@dataclasses.dataclass
class Leaderboard:
    data_description: str
    split_description: str
    rows: list[Row]
    best_baseline: str | None
    machine: dict
    recall_curve_ks: tuple[int, ...] = protocol.RECALL_KS

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)

    def markdown(self) -> str:
        head = "| model | kind | " + " | ".join(name for name, _ in COLUMNS) + " | vs best baseline | |"
        lines = [head, "|---" * (len(COLUMNS) + 4) + "|"]
        for row in self.rows:
            m = row.metrics
            cells = [f"{m['ndcg@10']:.4f} [{m['ndcg@10_low']:.3f}, {m['ndcg@10_high']:.3f}]"]
            cells += [_cell(m.get(key)) for _, key in COLUMNS[1:]]
            versus = row.versus_best_baseline
            if versus is None:
                compared = "best baseline" if row.label == self.best_baseline else "-"
            else:
                mark = "significant" if versus["significant"] else "not significant"
                compared = f"{versus['difference']:+.4f} ({mark}, p={versus['p_value']:.3f})"
            lines.append(f"| {row.label} | {row.kind} | " + " | ".join(cells) + f" | {compared} | "
                         f"{'loaded' if row.loaded else 'trained'} |")
        lines += ["", f"data: {self.data_description}; {self.split_description}",
                  f"protocol (test part): {protocol.PROTOCOL_NOTE}",
                  "NDCG@10 [95% per-user bootstrap interval]; 'vs best baseline': paired bootstrap of the per-user "
                  f"NDCG@10 difference against {self.best_baseline or 'no baseline'} (significant = its 95% interval "
                  "excludes 0); cov@10 = share of movies in anyone's top 10; pop. pct@10 = mean popularity "
                  "percentile of recommended movies (100 = most rated)",
                  f"machine: {self.machine['cpus']} CPUs, load average {self.machine['load_average']}"]
        losers = [r.label for r in self.rows if r.versus_best_baseline and r.versus_best_baseline["difference"] < 0]
        if losers:
            lines.append(f"rows below the best baseline ({self.best_baseline}): {', '.join(losers)}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"data": self.data_description, "split": self.split_description, "protocol": protocol.PROTOCOL_NOTE,
                "best_baseline": self.best_baseline, "machine": self.machine,
                "rows": [row.to_json() for row in self.rows]}

    def write(self, folder: str | os.PathLike) -> dict[str, Path]:
        """results.json, leaderboard.md and report.html (standalone plotly) into `folder`."""
        from movielens.leaderboard_report import leaderboard_html

        folder = Path(folder)
        return {"json": atomic_write_json(folder / "results.json", self.to_json()),
                "markdown": atomic_write_text(folder / "leaderboard.md", self.markdown() + "\n"),
                "html": atomic_write_text(folder / "report.html", leaderboard_html(self))}


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 1 else f"{value:.4f}"


def machine_state() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in load], "platform": platform.platform(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def measure(trained: TrainedModel, task: protocol.EvaluationTask, item_counts: np.ndarray) -> Row:
    """One leaderboard row: the protocol's test metrics of a trained model."""
    metrics, ranking = protocol.evaluate(trained.scorer(), task, item_counts)
    # Per-epoch validation curves only (a baseline's history is its hyperparameter search, not a curve).
    curve = ({k: v for k, v in trained.history.items() if k in ("epoch", "best_epoch") or k.startswith("val_")}
             if "epoch" in trained.history else {})
    return Row(trained.name, trained.family.name, trained.family.kind, trained.config.to_dict(), metrics,
               {k: v for k, v in trained.metrics.items() if isinstance(v, (int, float, str)) or v is None},
               curve, trained.loaded, ranking.per_user[protocol.PRIMARY], trained=trained)


def run_leaderboard(data, split, models: Sequence[tuple[Family, Config]], *, retrain: bool = False,
                    no_train: bool = False, verbose: int = 1, options: dict | None = None) -> Leaderboard:
    """Trains or loads each (family, config) on `split` and measures all of them on its test part.

    options: the families' run inputs from their flags (`Family.options_from_args`), as `context.options`.
    """
    context = Context(data, split, verbose, options=dict(options or {}))
    task = protocol.evaluation_task(split, "test")
    has_validation = not split.validation_is_test and len(split.validation) > 0
    validation = protocol.evaluation_task(split, "validation") if has_validation else None
    rows = []
    for family, config in models:
        trained = train_or_load(family, config, context, retrain=retrain, no_train=no_train)
        rows.append(measure(trained, task, context.item_counts))
        if validation is not None and family.kind == "baseline":  # the horizontal lines of the curves
            ranking = protocol.rank(trained.scorer(), validation)
            rows[-1].family_metrics[f"validation_{protocol.PRIMARY}"] = float(
                ranking.per_user[protocol.PRIMARY].mean())
        if verbose:
            m = rows[-1].metrics
            print(f"[{rows[-1].label}] test NDCG@10 {m['ndcg@10']:.4f}  Recall@10 {m['recall@10']:.4f}  "
                  f"({int(m['users_evaluated'])} users)", flush=True)
    baselines = [r for r in rows if r.kind == "baseline"]
    best = max(baselines, key=lambda r: r.metrics[protocol.PRIMARY]) if baselines else None
    if best is not None:
        for row in rows:
            if row is not best:
                row.versus_best_baseline = protocol.paired_difference(row.per_user_ndcg, best.per_user_ndcg)
    data_text = f"MovieLens {data.variant} ({data.source}), {len(data.ratings):,} ratings"
    return Leaderboard(data_text, split.describe(), rows, best.label if best else None, machine_state())


def report_folder(root: Path, command: str, variant: str, split_name: str, labels: Sequence[str]) -> Path:
    """`reports/<command>-<variant>-<split>-<models>`: names what was compared, so runs never overwrite
    each other's reports (a long model list is shortened to a hash)."""
    joined = "+".join(labels)
    if len(joined) > 80:
        joined = f"{len(labels)}models-{config_hash({'labels': list(labels)}, 8)}"
    return Path(root) / f"{command}-{variant}-{split_name}-{joined}"
