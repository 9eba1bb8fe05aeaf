"""Plotly figures of the two-tower experiments, saved as standalone HTML (and PNG when an exporter works).

- `validation_curves`: a validation metric against epoch (default val NDCG@10, per user, training
  movies excluded: the model-selection metric), one line per feature set, the kept (best) epoch
  marked, optional baselines as dashed horizontal lines.
- `accuracy_curves`: the tutorial's validation top-k accuracy against epoch (seen movies not excluded).
- `metric_bars`: final test metrics per feature set, grouped bars.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from movielens import paths


def validation_curves(histories: Mapping[str, Mapping[str, list]], metric: str = "val_ndcg@10",
                      title: str = "Validation NDCG@10 (per user, training movies excluded)",
                      baselines: Mapping[str, float] | None = None) -> go.Figure:
    """One line per model: `metric` (a history key) against epoch; epochs without the metric are skipped.

    The epoch each model kept (`history["best_epoch"]`, early stopping) is marked with a ring.
    baselines: {label: value}, each drawn as a dashed horizontal line with its label (e.g. popularity, EASE
    on the same split and metric).
    """
    figure = go.Figure()
    for name, history in histories.items():
        points = [(e, v) for e, v in zip(history.get("epoch", []), history.get(metric, [])) if v is not None]
        trace = go.Scatter(x=[e for e, _ in points], y=[v for _, v in points], mode="lines+markers", name=name)
        figure.add_trace(trace)
        best = dict(points).get(history.get("best_epoch"))
        if best is not None:
            figure.add_trace(go.Scatter(x=[history["best_epoch"]], y=[best], mode="markers", showlegend=False,
                                        name=f"{name} kept", hoverinfo="x+y+name",
                                        marker=dict(size=14, symbol="circle-open", line=dict(width=2))))
    for label, value in (baselines or {}).items():
        if value is None:
            continue
        figure.add_hline(y=float(value), line_dash="dash", line_color="gray", annotation_text=f"{label} {value:.3f}",
                         annotation_position="top left")
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, legend_title="feature set",
                         template="plotly_white")
    return figure


def accuracy_curves(histories: Mapping[str, Mapping[str, list]], metric: str = "val_top_100_accuracy",
                    title: str = "Validation top-100 accuracy", baselines: Mapping[str, float] | None = None
                    ) -> go.Figure:
    """The tutorial's top-k accuracy curves (seen movies not excluded); see `validation_curves`."""
    return validation_curves(histories, metric, title, baselines)


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


REPORT_METRICS = ("ndcg@10", "recall@10", "recall@100", "test_top_10_accuracy", "test_top_100_accuracy")


def save_reports(models: Mapping, histories: Mapping[str, Mapping[str, list]], data,
                 folder: str | Path | None = None, baselines: Mapping[str, float] | None = None) -> list[str]:
    """The curves and bars of one experiment run; returns lines to print (paths, whether PNG worked).

    `<tag>-val-ndcg-curves`: validation NDCG@10 per epoch (the model-selection metric; `baselines`, e.g.
    {"popularity": 0.13, "EASE": 0.27} on the same split and metric, as dashed lines);
    `<tag>-top100-curves`: the tutorial's validation top-100 accuracy (seen not excluded);
    `<tag>-test-metrics`: final test metrics.
    """
    tag = f"two_tower-{data.variant}"
    ndcg = validation_curves(histories, baselines=baselines,
                             title=f"Validation NDCG@10, MovieLens {data.variant} (per user, all movies ranked, "
                                   "training movies excluded; ring = epoch kept)")
    curves = accuracy_curves(histories, title=f"Validation top-100 accuracy (TFRS tutorial protocol), MovieLens "
                                              f"{data.variant} (all movies ranked, seen not excluded)")
    bars = metric_bars({name: trained.metrics for name, trained in models.items()}, REPORT_METRICS,
                       title=f"Final test metrics, MovieLens {data.variant} (recall/ndcg: seen movies excluded; "
                             "top-k: seen not excluded)")
    lines, png_failed = [], False
    for figure, stem in ((ndcg, f"{tag}-val-ndcg-curves"), (curves, f"{tag}-top100-curves"),
                         (bars, f"{tag}-test-metrics")):
        written = save_figure(figure, stem, folder)
        png_failed |= len(written) == 1
        lines.append("report: " + ", ".join(str(p) for p in written))
    if png_failed:
        lines.append("report: no PNG (plotly image export needs kaleido and Chrome, unavailable here); HTML only")
    return lines
