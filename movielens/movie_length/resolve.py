"""Runtimes for a catalogue: the sources in order, the first that knows a movie wins, and a coverage report."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movielens import paths
from movielens.io import atomic_write_json
from movielens.movie_length.cache import CachedLookup, CircuitBreaker, cachier_dir, lookup_key
from movielens.movie_length.config import MovieLengthConfig
from movielens.movie_length.parsing import imdb_number
from movielens.movie_length.sources import RuntimeTable, lookup_imdb_bulk, make_cinemagoer_client

SOURCES = ("table", "imdb_bulk", "cache", "cinemagoer", "default")
REAL_SOURCES = SOURCES[:-1]


@dataclasses.dataclass
class MovieLengths:
    """Runtimes aligned with the rows of the movies frame.

    Attributes:
      minutes: float32 [num_movies], real runtime or the default.
      source: str [num_movies], one of `SOURCES`.
      report: counts per source, `n_default`, `fraction_real`, notes.
    """

    minutes: np.ndarray
    source: np.ndarray
    report: dict

    def summary(self) -> str:
        r = self.report
        n, n_real = r["n_movies"], r["n_real"]
        where = ", ".join(f"{s} {r['counts'][s]}" for s in REAL_SOURCES)
        text = (
            f"movie_length ({r['variant']}): {n_real}/{n} movies ({100 * r['fraction_real']:.1f}%) have a real "
            f"runtime [{where}]; {r['n_default']} use the default {r['default_minutes']:g} min"
        )
        if n and n_real == 0:
            text = (
                f"movie_length ({r['variant']}): ALL {n} movies use the default {r['default_minutes']:g} min "
                f"(no real runtime found)"
            )
        for note in r.get("notes", []):
            text += f"\n  note: {note}"
        return text


def _column(movies: pd.DataFrame, name: str) -> list[str]:
    """A column as strings, "" for missing values and for a column the frame does not have."""
    if name not in movies.columns:
        return [""] * len(movies)
    return ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in movies[name]]


def coverage_path(variant: str) -> Path:
    return paths.datasets_dir() / "movie_lengths" / f"{variant}-coverage.json"


def resolve_movie_lengths(
    movies: pd.DataFrame,
    variant: str,
    config: MovieLengthConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    imdb_client: Any = None,
    progress: bool = True,
    verbose: bool = True,
    write_report: bool = True,
) -> MovieLengths:
    """Runtime in minutes for every row of `movies`.

    Args:
      movies: frame with `movie_title` ("Title (Year)"), and optionally
        `movie_id` (str) and `imdb_id` ("tt0114709" or "").
      variant: MovieLens variant ("100k", "1m", "20m", "25m", "latest-small"):
        selects the table rows of that dataset and names the coverage report.
      config: sources and limits; default `MovieLengthConfig()`.
      cache_dir: cachier folder; default `datasets/movie_lengths/cachier/`.
      imdb_client: a Cinemagoer-like object (`search_movie`, `get_movie`,
        `update`); default: the real Cinemagoer, made only if a lookup is needed.
      progress: show a tqdm bar over cache reads and lookups.
      verbose: print the coverage summary.
      write_report: write `datasets/movie_lengths/<variant>-coverage.json`.

    Returns:
      `MovieLengths` with minutes float32 [num_movies] aligned with `movies`.
    """
    config = config or MovieLengthConfig()
    if "movie_title" not in movies.columns:
        raise KeyError(f"movies needs a 'movie_title' column; got {list(movies.columns)}")
    started = time.perf_counter()
    titles = _column(movies, "movie_title")
    movie_ids = _column(movies, "movie_id")
    imdb_ids = _column(movies, "imdb_id")
    n = len(titles)
    minutes = np.full(n, np.nan)
    source = np.full(n, "default", dtype=object)
    notes: list[str] = []
    timings: dict[str, float] = {}

    def fill(values: np.ndarray, name: str) -> None:
        take = np.isnan(minutes) & ~np.isnan(values)
        minutes[take] = values[take]
        source[take] = name

    if config.table_path:
        t0 = time.perf_counter()
        table = RuntimeTable(config.table_path)
        fill(table.lookup(variant, movie_ids, titles, imdb_ids), "table")
        timings["table_s"] = time.perf_counter() - t0
    if config.imdb_basics_path and np.isnan(minutes).any():
        t0 = time.perf_counter()
        todo = np.flatnonzero(np.isnan(minutes))
        found = lookup_imdb_bulk(config.imdb_basics_path, [titles[i] for i in todo], [imdb_ids[i] for i in todo])
        values = np.full(n, np.nan)
        values[todo] = found
        fill(values, "imdb_bulk")
        timings["imdb_bulk_s"] = time.perf_counter() - t0

    n_cached_not_found = 0
    n_lookup_errors = 0
    breaker = CircuitBreaker(config.connect_failures_before_offline)
    todo = np.flatnonzero(np.isnan(minutes))
    if len(todo):
        t0 = time.perf_counter()
        if imdb_client is not None:
            client_factory = lambda: imdb_client
        else:
            client_factory = lambda: make_cinemagoer_client(config.cinemagoer_uri)
        lookup = CachedLookup(
            Path(cache_dir) if cache_dir is not None else cachier_dir(),
            client_factory,
            breaker,
            config.default_minutes,
            allow_lookups=config.use_network,
        )
        # Movies sharing a key (the same film listed twice) are looked up once.
        by_key: dict[str, list[int]] = {}
        for i in todo:
            if titles[i].strip() or imdb_number(imdb_ids[i]) is not None:  # nothing to search for otherwise
                by_key.setdefault(lookup_key(titles[i], imdb_ids[i]), []).append(int(i))
        lookup.open_client()
        if not config.use_network:
            notes.append("network lookups off (--no_network_lookups): only cached Cinemagoer answers are used")
        answers: dict[str, tuple[float, bool] | None] = {}
        if lookup.can_look_up or lookup.has_entries():
            answers = lookup.look_up_all(by_key, titles, imdb_ids, config.max_workers, progress)
        for key, rows in by_key.items():
            answer = answers.get(key)
            if answer is None:
                n_lookup_errors += len(rows)
                continue
            value, found = answer
            if not found:
                n_cached_not_found += len(rows)
                continue
            minutes[rows] = value
            source[rows] = "cinemagoer" if key in lookup.looked_up else "cache"
        if lookup.unavailable:
            notes.append(f"Cinemagoer unavailable: {lookup.unavailable}")
        if breaker.tripped:
            notes.append(
                f"stopped looking up after {breaker.failures} failed lookups "
                f"({config.connect_failures_before_offline} in a row; first: {breaker.first_error}); "
                "failures are not cached, a later online run fills them in"
            )
        elif breaker.failures:
            notes.append(f"{breaker.failures} lookups failed (not cached; first: {breaker.first_error})")
        timings["cinemagoer_s"] = time.perf_counter() - t0

    missing = np.isnan(minutes)
    minutes[missing] = config.default_minutes
    counts = {s: int(np.sum(source == s)) for s in SOURCES}
    n_real = n - counts["default"]
    report = {
        "variant": variant,
        "n_movies": n,
        "n_real": n_real,
        "n_default": counts["default"],
        "fraction_real": (n_real / n) if n else 0.0,
        "counts": counts,
        "default_minutes": config.default_minutes,
        "n_default_imdb_has_no_runtime": n_cached_not_found,
        "n_default_not_looked_up_or_failed": n_lookup_errors,
        "config": config.to_dict(),
        "seconds": time.perf_counter() - started,
        "timings_s": timings,
        "notes": notes,
    }
    result = MovieLengths(minutes=minutes.astype(np.float32), source=source.astype(str), report=report)
    if write_report:
        atomic_write_json(coverage_path(variant), report)
    if verbose:
        print(result.summary())
    return result
