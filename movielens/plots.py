"""Training-curve figures: `validation_curves`, a validation metric against epoch (default val NDCG@10,
the model-selection metric), one line per model, the kept (best) epoch marked, baselines as dashed
horizontal lines. The leaderboard report (`movielens.leaderboard_report`) draws its curves with it."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go


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
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, legend_title="model",
                         template="plotly_white")
    return figure
