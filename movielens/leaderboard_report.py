"""One standalone HTML file of a leaderboard: a person opens it and reads it without the terminal.

Sections: the table; NDCG@10 and Recall@10 bars with 95% intervals; each trained model's validation
curve with the baselines as horizontal lines; Recall@K against K; what the lists recommend
(popularity percentile, catalogue coverage); and the two-tower feature sets side by side.
Everything is read from the `Leaderboard` (the same numbers as results.json).
"""

from __future__ import annotations

import html

from movielens.leaderboard import COLUMNS, Leaderboard

KIND_COLOURS = {"baseline": "#7f7f7f", "retrieval": "#1f77b4", "sequential": "#2ca02c", "rating": "#ff7f0e"}


def _figure_html(figure, first: bool) -> str:
    return figure.to_html(full_html=False, include_plotlyjs="inline" if first else False)


def _bars(board: Leaderboard, key: str, title: str, rows=None):
    import plotly.graph_objects as go

    rows = rows if rows is not None else board.rows
    values = [r.metrics[key] for r in rows]
    figure = go.Figure(go.Bar(
        x=[r.label for r in rows], y=values, marker_color=[KIND_COLOURS.get(r.kind, "#9467bd") for r in rows],
        error_y={"type": "data", "symmetric": False,
                 "array": [r.metrics[f"{key}_high"] - v for r, v in zip(rows, values)],
                 "arrayminus": [v - r.metrics[f"{key}_low"] for r, v in zip(rows, values)]},
        hovertext=[r.kind for r in rows]))
    figure.update_layout(title=title, yaxis_title=f"test {key}", height=420)
    return figure


def _curves(board: Leaderboard):
    from movielens.plots import validation_curves

    metric = next((key for key in ("val_ndcg@10", "val_recall@10", "val_rmse")
                   if any(any(v is not None for v in row.history.get(key, [])) for row in board.rows)), None)
    if metric is None:
        return None
    histories = {row.label: row.history for row in board.rows if row.history.get(metric)}
    name = metric.removeprefix("val_")
    baselines = {row.label: row.family_metrics.get(f"validation_{name}") for row in board.rows
                 if row.kind == "baseline"}
    return validation_curves(histories, metric, title=f"Validation {name} per epoch (ring: the epoch kept); "
                                                      f"dashed: the baselines on the same validation part",
                             baselines=baselines)


def _recall_curve(board: Leaderboard):
    import plotly.graph_objects as go

    figure = go.Figure()
    for row in board.rows:
        ks = [k for k in board.recall_curve_ks if f"recall@{k}" in row.metrics]
        figure.add_trace(go.Scatter(x=ks, y=[row.metrics[f"recall@{k}"] for k in ks], mode="lines+markers",
                                    name=row.label))
    figure.update_layout(title="Recall@K against K (test)", xaxis_title="K", xaxis_type="log",
                         yaxis_title="recall", height=420)
    return figure


def _popularity(board: Leaderboard):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("mean popularity percentile of the top 10 (100 = most "
                                                            "rated)", "catalogue coverage@10"))
    labels = [r.label for r in board.rows]
    colours = [KIND_COLOURS.get(r.kind, "#9467bd") for r in board.rows]
    figure.add_trace(go.Bar(x=labels, y=[r.metrics["popularity_percentile@10"] for r in board.rows],
                            marker_color=colours, showlegend=False), 1, 1)
    figure.add_trace(go.Bar(x=labels, y=[r.metrics["coverage@10"] for r in board.rows], marker_color=colours,
                            showlegend=False), 1, 2)
    figure.update_layout(title="What the lists recommend", height=420)
    return figure


def _table(board: Leaderboard) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("model", "kind", *[n for n, _ in COLUMNS],
                                                                 "vs best baseline"))
    body = []
    for row in board.rows:
        m = row.metrics
        cells = [row.label, row.kind, f"{m['ndcg@10']:.4f} [{m['ndcg@10_low']:.3f}, {m['ndcg@10_high']:.3f}]"]
        cells += [f"{m.get(key, float('nan')):.4f}" if m.get(key, 0) < 1 else f"{m[key]:.1f}" for _, key in COLUMNS[1:]]
        versus = row.versus_best_baseline
        cells.append("best baseline" if row.label == board.best_baseline else "-" if versus is None else
                     f"{versus['difference']:+.4f} ({'significant' if versus['significant'] else 'not significant'})")
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


SECTIONS = {
    "ndcg": ("Who recommends best", "Test NDCG@10 and Recall@10 per model; the whiskers are 95% intervals from "
             "resampling users. Colours: grey = baselines, blue = retrieval, green = sequential, orange = rating."),
    "curves": ("Training curves", "Each trained model's validation metric per epoch; the weights of the best "
               "epoch are the ones tested. Dashed lines: the baselines on the same validation part."),
    "recall": ("How deep the hits are", "Recall@K for K = 10 to 100: a curve above another finds more of the "
               "held-out movies at every list length."),
    "popularity": ("What gets recommended", "How popular the recommended movies are, and how much of the catalogue "
                   "appears in anyone's top 10: a model can score well by recommending only blockbusters."),
    "features": ("Two-tower feature sets", "The two-tower models of this run side by side with the baselines."),
}


def _section(key: str, figures: list, first: bool) -> str:
    title, text = SECTIONS[key]
    body = "".join(_figure_html(figure, first and i == 0) for i, figure in enumerate(figures))
    return f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{body}"


def leaderboard_html(board: Leaderboard) -> str:
    sections = [_section("ndcg", [_bars(board, "ndcg@10", "Test NDCG@10 with 95% per-user bootstrap intervals"),
                                  _bars(board, "recall@10", "Test Recall@10 with 95% per-user bootstrap intervals")],
                         first=True)]
    curves = _curves(board)
    if curves is not None:
        sections.append(_section("curves", [curves], False))
    sections += [_section("recall", [_recall_curve(board)], False),
                 _section("popularity", [_popularity(board)], False)]
    two_tower = [r for r in board.rows if r.family == "two_tower"]
    if len(two_tower) > 1:
        sections.append(_section("features", [_bars(board, "ndcg@10", "Two-tower feature sets: test NDCG@10 (95% "
                                                    "intervals)", two_tower + [r for r in board.rows
                                                                               if r.kind == "baseline"])], False))
    parts = sections
    notes = html.escape(board.markdown().split("\n\n", 1)[1]).replace("\n", "<br>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>MovieLens leaderboard</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1300px} table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right} td:first-child{text-align:left}"
            "</style></head><body><h1>MovieLens leaderboard</h1>"
            f"<p>{html.escape(board.data_description)}<br>{html.escape(board.split_description)}</p>"
            f"{_table(board)}<p style='font-size:13px'>{notes}</p>" + "".join(parts) + "</body></html>")
