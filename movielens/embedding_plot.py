"""A 2-D picture of learned movie embeddings: plotly scatter, standalone HTML in the reports folder.

Projection: PCA (numpy SVD, default) or t-SNE (only when scikit-learn is importable; it is not a
dependency). Colour: the movie's average training rating or its main (first-listed) genre; the
title, rating count and average show on hover.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movielens import paths
from movielens.data import schema

METHODS = ("pca", "tsne")
COLOURS = ("rating", "genre")


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """[n, d] -> [n, 2]: projection on the top two principal axes (signs fixed for reproducibility)."""
    centred = np.asarray(vectors, np.float64) - np.mean(vectors, axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    # An SVD axis is defined up to sign; make each axis' largest loading positive.
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    projected = centred @ axes.T
    if projected.shape[1] < 2:
        projected = np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))
    return projected


def project(vectors: np.ndarray, method: str = "pca", seed: int = 42) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; valid: {', '.join(METHODS)}")
    if method == "pca":
        return pca_2d(vectors)
    try:
        from sklearn.manifold import TSNE
    except ImportError as error:
        raise ValueError("t-SNE needs scikit-learn (pip install scikit-learn); use --plot_method pca") from error
    perplexity = float(min(30, max(2, len(vectors) // 4)))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(vectors)


def movie_table(movie_ids, movies: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """One row per movie id: title, main genre, training rating count and mean."""
    stats = train.groupby("movie_id")["user_rating"].agg(["count", "mean"])
    info = movies.set_index("movie_id").reindex(list(movie_ids))
    genres = [schema.GENRES[g[0]] if isinstance(g, tuple) and len(g) else "(none)" for g in info["movie_genres"]]
    return pd.DataFrame({
        "movie_id": list(movie_ids),
        "title": info["movie_title"].to_numpy(),
        "genre": genres,
        "ratings": stats["count"].reindex(list(movie_ids)).fillna(0).astype(int).to_numpy(),
        "average_rating": stats["mean"].reindex(list(movie_ids)).to_numpy(),
    })


def embedding_figure(movie_ids, vectors: np.ndarray, movies: pd.DataFrame, train: pd.DataFrame,
                     color_by: str = "rating", method: str = "pca", min_ratings: int = 5, title: str = ""):
    """Plotly figure of the movies with at least `min_ratings` training ratings."""
    import plotly.express as px

    if color_by not in COLOURS:
        raise ValueError(f"unknown colouring {color_by!r}; valid: {', '.join(COLOURS)}")
    table = movie_table(movie_ids, movies, train)
    keep = (table["ratings"] >= min_ratings).to_numpy()
    if keep.sum() < 3:
        raise ValueError(f"only {keep.sum()} movies have {min_ratings}+ training ratings; lower min_ratings")
    table = table[keep].reset_index(drop=True)
    xy = project(np.asarray(vectors)[keep], method)
    table["x"], table["y"] = xy[:, 0], xy[:, 1]
    colour = "average_rating" if color_by == "rating" else "genre"
    figure = px.scatter(
        table, x="x", y="y", color=colour, hover_name="title",
        hover_data={"ratings": True, "average_rating": ":.2f", "genre": True, "x": False, "y": False},
        color_continuous_scale="RdYlGn" if color_by == "rating" else None,
        title=title or f"Movie embeddings ({method.upper()}, {len(table)} movies with {min_ratings}+ ratings)",
        labels={"x": f"{method.upper()} 1", "y": f"{method.upper()} 2"},
    )
    figure.update_traces(marker={"size": 6, "opacity": 0.8})
    return figure


def write_embedding_plot(figure, name: str, folder: str | Path | None = None) -> Path:
    """Writes a self-contained HTML file (plotly.js inlined) and returns its path."""
    from movielens.io import atomic_write_text

    folder = Path(folder or paths.reports_dir())
    html = figure.to_html(include_plotlyjs=True, full_html=True)
    return atomic_write_text(folder / f"{name}.html", html)
