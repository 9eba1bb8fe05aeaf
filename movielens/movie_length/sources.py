"""The places runtimes are read from: a user's table, IMDb's bulk file, Cinemagoer."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movielens import paths
from movielens.movie_length.matching import RuntimesByTitle, choose_search_result, field
from movielens.movie_length.parsing import imdb_number, parse_runtime
from movielens.titles import _ARTICLES, match_keys, parse_title, part_keys

# Column names accepted in a user's runtime table, first match wins.
RUNTIME_COLUMNS = ("runtime_min", "runtime", "runtimeMinutes", "runtime_minutes", "minutes")
# MovieLens variant -> value of the `dataset` column in a runtime table.
VARIANT_DATASET_NAMES = {
    "100k": ("ml-100k", "100k"),
    "1m": ("ml-1m", "1m"),
    "20m": ("ml-20m", "20m"),
    "25m": ("ml-25m", "25m"),
    "latest-small": ("ml-latest-small", "latest-small"),
}
# IMDb titleType values that are films (series and episodes have per-episode runtimes).
BULK_TITLE_TYPES = ("movie", "tvMovie", "video", "short", "tvShort", "tvSpecial", "tvMiniSeries")
_BULK_COLUMNS = ["tconst", "titleType", "primaryTitle", "originalTitle", "startYear", "runtimeMinutes"]
# Rows of the bulk file read at a time (a full file has ~10M rows).
_BULK_CHUNK_ROWS = 500_000
# Per-request timeout of the web client of Cinemagoer <= 2023.
_WEB_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- a user's table


def _read_csv_any(path: Path) -> pd.DataFrame:
    for encoding in ("utf-8", "latin-1"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path}: cannot decode as UTF-8 or latin-1")


class RuntimeTable:
    """A user's runtime CSV, indexed by movieId (per dataset), imdbId and title + year."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"--movie_lengths_file {self.path} does not exist")
        frame = _read_csv_any(self.path)
        runtime_column = next((c for c in RUNTIME_COLUMNS if c in frame.columns), None)
        if runtime_column is None:
            raise ValueError(
                f"{self.path}: no runtime column; expected one of {list(RUNTIME_COLUMNS)}, got {list(frame.columns)}"
            )
        id_columns = [c for c in ("movieId", "imdbId", "title") if c in frame.columns]
        if not id_columns:
            raise ValueError(f"{self.path}: needs at least one of movieId, imdbId, title; got {list(frame.columns)}")
        minutes = pd.to_numeric(frame[runtime_column].str.strip(), errors="coerce")
        frame = frame.assign(_minutes=minutes)
        frame = frame[frame["_minutes"].notna() & (frame["_minutes"] > 0)]
        self.n_rows = len(frame)
        self.has_dataset = "dataset" in frame.columns
        self._by_movie_id: dict[tuple[str, str], float] = {}
        if "movieId" in frame.columns:
            no_dataset = pd.Series("", index=frame.index)
            datasets = frame["dataset"].str.strip().str.lower() if self.has_dataset else no_dataset
            for dataset, movie_id, value in zip(datasets, frame["movieId"].str.strip(), frame["_minutes"], strict=True):
                self._by_movie_id.setdefault((dataset, movie_id), float(value))
        self._by_imdb: dict[int, float] = {}
        if "imdbId" in frame.columns:
            for imdb, value in zip(frame["imdbId"], frame["_minutes"], strict=True):
                number = imdb_number(imdb)
                if number is not None:
                    self._by_imdb.setdefault(number, float(value))
        titled = frame[frame["title"].str.strip() != ""] if "title" in frame.columns else frame.iloc[:0]
        self._by_title = RuntimesByTitle(list(titled.get("title", [])), list(titled["_minutes"]))

    def lookup(
        self, variant: str, movie_ids: Sequence[str], titles: Sequence[str], imdb_ids: Sequence[str]
    ) -> np.ndarray:
        """Runtimes [num_movies] float64, NaN where the table has none."""
        out = np.full(len(titles), np.nan)
        if self.has_dataset:
            datasets = tuple(d.lower() for d in VARIANT_DATASET_NAMES.get(variant, (variant,)))
        else:
            # Without a dataset column the ids are taken to be this variant's.
            datasets = ("",)
        for row, (movie_id, title, imdb_id) in enumerate(zip(movie_ids, titles, imdb_ids, strict=True)):
            value = None
            for dataset in datasets:
                value = self._by_movie_id.get((dataset, str(movie_id)))
                if value is not None:
                    break
            if value is None and imdb_id:
                number = imdb_number(imdb_id)
                value = self._by_imdb.get(number) if number is not None else None
            if value is None and len(self._by_title):
                value = self._by_title.lookup(title)
            if value is not None:
                out[row] = value
        return out


# --------------------------------------------------------------------------- IMDb's bulk file


_ARTICLE_PREFIX_RE = r"^(?:" + "|".join(re.escape(a) for a in _ARTICLES if a.isalpha()) + r")\s+"


def _vector_keys(titles: pd.Series) -> pd.Series:
    """`titles.match_keys(t)[0]` for a whole column, vectorised (close, not always identical)."""
    keys = titles.fillna("").str.normalize("NFKD").str.replace(r"[\u0300-\u036f]", "", regex=True).str.lower()
    keys = keys.str.replace("&", " and ", regex=False).str.replace(r"[^a-z0-9]+", " ", regex=True).str.strip()
    return keys.str.replace(_ARTICLE_PREFIX_RE, "", regex=True)


def _may_match(titles: pd.Series, wanted_keys: set[str]) -> pd.Series:
    """Whether a title, or a part of it split at ':' / ' - ', has a wanted key (bool per row)."""
    hit = _vector_keys(titles).isin(wanted_keys)
    split = titles.fillna("").str.contains(r":\s|\s-\s", regex=True)
    if split.any():
        parts = titles[split].str.split(r":\s+|\s+-\s+", regex=True).explode()
        part_hit = _vector_keys(parts).isin(wanted_keys).groupby(level=0).any()
        hit = hit | part_hit.reindex(hit.index, fill_value=False)
    return hit


def lookup_imdb_bulk(path: str | Path, titles: Sequence[str], imdb_ids: Sequence[str]) -> np.ndarray:
    """Runtimes [num_movies] from IMDb's `title.basics.tsv(.gz)`, NaN where unknown.

    Streams the file in chunks with only the needed columns; a row is kept when
    its tconst is wanted or its (title, year) could be. Title keys are computed
    only for rows of a wanted year and type, which keeps a full 10M-row file to
    a short scan.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--imdb_basics_file {path} does not exist")
    wanted_ids = {n for n in (imdb_number(i) for i in imdb_ids) if n is not None}
    years = [parse_title(t).year for t in titles]
    wanted_keys = {key for t in titles for key in (*match_keys(t), *part_keys(t))}
    wanted_years = {str(y + d) for y in years if y is not None for d in (-1, 0, 1)}
    by_id: dict[int, float] = {}
    title_rows: list[tuple[int, str, str | None, float]] = []
    reader = pd.read_csv(
        path,
        sep="\t",
        usecols=_BULK_COLUMNS,
        dtype=str,
        na_values=["\\N"],
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: IMDb titles contain bare quotes
        chunksize=_BULK_CHUNK_ROWS,
        compression="infer",
        encoding="utf-8",
    )
    type_rank = {t: i for i, t in enumerate(BULK_TITLE_TYPES)}
    for chunk in reader:
        chunk = chunk[chunk["titleType"].isin(BULK_TITLE_TYPES) & chunk["runtimeMinutes"].notna()]
        minutes = pd.to_numeric(chunk["runtimeMinutes"], errors="coerce")
        chunk = chunk.assign(_minutes=minutes)
        chunk = chunk[chunk["_minutes"] > 0]
        numbers = pd.to_numeric(chunk["tconst"].str.slice(2), errors="coerce")
        hit = numbers.isin(list(wanted_ids)) if wanted_ids else pd.Series(False, index=chunk.index)
        for number, value in zip(numbers[hit], chunk["_minutes"][hit], strict=True):
            by_id.setdefault(int(number), float(value))
        by_year = chunk[chunk["startYear"].isin(wanted_years)]
        # Exact title keys in Python cost ~30 us a row; a vectorised approximation first
        # drops the rows that cannot match any wanted movie.
        by_year = by_year[
            _may_match(by_year["primaryTitle"], wanted_keys) | _may_match(by_year["originalTitle"], wanted_keys)
        ]
        for primary, original, year, ttype, value in zip(
            by_year["primaryTitle"],
            by_year["originalTitle"],
            by_year["startYear"],
            by_year["titleType"],
            by_year["_minutes"],
            strict=False,
        ):
            other = f"{original} ({year})" if isinstance(original, str) and original != primary else None
            title_rows.append((type_rank[ttype], f"{primary} ({year})", other, float(value)))
    # Feature films before shorts and videos when a title + year is shared (the first film given wins).
    title_rows.sort(key=lambda r: r[0])
    by_title = RuntimesByTitle([r[1] for r in title_rows], [r[3] for r in title_rows], [r[2] for r in title_rows])
    out = np.full(len(titles), np.nan)
    for row, (title, imdb_id) in enumerate(zip(titles, imdb_ids, strict=True)):
        number = imdb_number(imdb_id)
        value = by_id.get(number) if number is not None else None
        if value is None:
            value = by_title.lookup(title)
        if value is not None:
            out[row] = value
    return out


# --------------------------------------------------------------------------- Cinemagoer


class LookupUnavailable(RuntimeError):
    """Cinemagoer cannot be used this run (no database, not installed, network down)."""


def default_cinemagoer_uri() -> str:
    return f"sqlite:///{paths.datasets_dir() / 'movie_lengths' / 'cinemagoer.db'}"


def make_cinemagoer_client(uri: str | None = None):
    """The real Cinemagoer client, imported lazily.

    Args:
      uri: database of Cinemagoer >= 2026; None means `default_cinemagoer_uri()`.

    Raises:
      LookupUnavailable: Cinemagoer is missing, or (2026+ releases) its local
        IMDb database does not exist, so no lookup could succeed.
    """
    try:
        import imdb
    except ImportError as error:  # pragma: no cover - cinemagoer is a dependency
        raise LookupUnavailable(f"cinemagoer is not installed ({error})") from error
    systems = imdb.available_access_systems()
    if "http" in systems:  # Cinemagoer <= 2023: web lookups on imdb.com
        try:
            return imdb.Cinemagoer("http", timeout=_WEB_TIMEOUT_S)
        except TypeError:
            return imdb.Cinemagoer("http")
    uri = uri or default_cinemagoer_uri()
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        # Opening a missing SQLite file would silently create an empty database.
        db_path = Path(urllib.parse.unquote(uri[len("sqlite:///") :]))
        if not db_path.is_file():
            raise LookupUnavailable(
                f"Cinemagoer {imdb.VERSION} reads IMDb from a local database, not the web, and {db_path} does not "
                f"exist (build it with `s32cinemagoer.py <dir with title.basics.tsv.gz> {uri}`, or pass "
                "--imdb_basics_file / --movie_lengths_file)"
            )
    try:
        return imdb.Cinemagoer("s3", uri=uri)
    except Exception as error:  # a broken database or driver: nothing to look up with
        raise LookupUnavailable(f"cannot open Cinemagoer database {uri}: {error}") from error


def fetch_runtime(client: Any, title: str, imdb_id: str) -> float | None:
    """Runtime in minutes from Cinemagoer, or None when IMDb has none.

    Errors of the client (network, service, database) propagate.
    """
    number = imdb_number(imdb_id)
    movie = None
    if number is not None:
        movie = client.get_movie(f"{number:07d}")
    else:
        parsed = parse_title(title)
        queries = [f"{name} ({parsed.year})" if parsed.year else name for name in parsed.all_names]
        for query in queries:
            movie = choose_search_result(client.search_movie(query) or [], title)
            if movie is not None:
                break
    if movie is None:
        return None
    minutes = parse_runtime(field(movie, "runtimes"))
    if minutes is None and number is None:
        # Search results carry few fields; the full record has the runtime.
        client.update(movie, info=["main"])
        minutes = parse_runtime(field(movie, "runtimes"))
    return minutes
