"""Plotly figures of the two-tower experiments, saved as standalone HTML (and PNG when an exporter works).

- `accuracy_curves`: validation top-k accuracy against epoch, one line per feature set.
- `metric_bars`: final test metrics per feature set, grouped bars.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from movielens import paths


def accuracy_curves(histories: Mapping[str, Mapping[str, list]], metric: str = "val_top_100_accuracy",
                    title: str = "Validation top-100 accuracy") -> go.Figure:
    """One line per model: `metric` (a history key) against epoch; epochs without the metric are skipped."""
    figure = go.Figure()
    for name, history in histories.items():
        points = [(e, v) for e, v in zip(history.get("epoch", []), history.get(metric, [])) if v is not None]
        figure.add_trace(go.Scatter(x=[e for e, _ in points], y=[v for _, v in points], mode="lines+markers",
                                    name=name))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, legend_title="feature set",
                         template="plotly_white")
    return figure


def metric_bars(metrics: Mapping[str, Mapping[str, float]], keys: Sequence[str],
                title: str = "Final test metrics") -> go.Figure:
    """Grouped bars: one group per metric key, one bar per model."""
    figure = go.Figure()
    for name, values in metrics.items():
        figure.add_trace(go.Bar(x=list(keys), y=[values.get(k) for k in keys], name=name))
    figure.update_layout(title=title, barmode="group", yaxis_title="value", legend_title="feature set",
                         template="plotly_white")
    return figure


def _try_png(figure: go.Figure, path: Path) -> bool:
    """PNG export needs kaleido (and, for kaleido >= 1, a Chrome); any failure just means no PNG."""
    try:
        figure.write_image(str(path))
        return path.is_file()
    except Exception:  # noqa: BLE001 - kaleido missing, no Chrome, timeouts: all mean "no PNG"
        return False


def save_figure(figure: go.Figure, stem: str, folder: str | Path | None = None, png: bool = True) -> list[Path]:
    """Writes `<folder>/<stem>.html` (plotly.js inlined, opens offline) and tries `<stem>.png`.

    Returns the written paths (HTML first).
    """
    from movielens.io import atomic_write_text

    folder = Path(folder or paths.reports_dir())
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem)
    html = folder / f"{stem}.html"
    atomic_write_text(html, figure.to_html(include_plotlyjs=True, full_html=True))
    written = [html]
    if png and _try_png(figure, folder / f"{stem}.png"):
        written.append(folder / f"{stem}.png")
    return written


REPORT_METRICS = ("test_top_10_accuracy", "test_top_100_accuracy", "recall@10", "recall@100", "ndcg@10")


def save_reports(models: Mapping, histories: Mapping[str, Mapping[str, list]], data,
                 folder: str | Path | None = None) -> list[str]:
    """The curves and bars of one experiment run; returns lines to print (paths, whether PNG worked)."""
    tag = f"two_tower-{data.variant}"
    curves = accuracy_curves(histories, title=f"Validation top-100 accuracy, MovieLens {data.variant} "
                                              "(all movies ranked, seen not excluded)")
    bars = metric_bars({name: trained.metrics for name, trained in models.items()}, REPORT_METRICS,
                       title=f"Final test metrics, MovieLens {data.variant} (recall/ndcg: seen movies excluded)")
    lines, png_failed = [], False
    for figure, stem in ((curves, f"{tag}-top100-curves"), (bars, f"{tag}-test-metrics")):
        written = save_figure(figure, stem, folder)
        png_failed |= len(written) == 1
        lines.append("report: " + ", ".join(str(p) for p in written))
    if png_failed:
        lines.append("report: no PNG (plotly image export needs kaleido and Chrome, unavailable here); HTML only")
    return lines
