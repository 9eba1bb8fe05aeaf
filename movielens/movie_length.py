"""Movie runtimes in minutes for the `movie_length` feature.

Sources, tried in this order for each movie (the first that knows it wins):

1. `table`: a local CSV given with `--movie_lengths_file` (movieId and/or imdbId
   and/or title, plus a runtime column), e.g. `shared/datasets/runtimes/movielens_runtimes.csv`.
2. `imdb_bulk`: IMDb's official bulk file `title.basics.tsv(.gz)` (`runtimeMinutes`),
   matched by IMDb id, else by title + year.
3. `cache`: earlier Cinemagoer answers, kept on disk by cachier under
   `datasets/movie_lengths/cachier/`, so a movie is looked up at most once ever.
4. `cinemagoer`: a live Cinemagoer lookup (search the title, prefer the
   result whose year matches, else the best title match; read the runtime).
5. `default`: `default_minutes` (90) when nothing knows the runtime.

Caching rules: "IMDb has no runtime" is cached (as the default, flagged as not
found, so the coverage report still counts it as a default); a network or
service error raises inside the cached function, which cachier does not cache,
so a later online run fills it in. When the first few lookups all fail (the
network is plainly down) the rest of the run stops asking.

Cinemagoer 2026.x no longer scrapes imdb.com: it reads a local database built
from IMDb's dataset files (`s32cinemagoer.py`); older releases (<= 2023.x)
still have the web ("http") access system. Both are supported: the client is
made lazily and only when a movie needs it, and tests inject a fake.

cachier stores its entries with pickle; the only value pickled here is a
`(minutes: float, found: bool)` pair per lookup key.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import difflib
import hashlib
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movielens import paths
from movielens.config import Config
from movielens.io import atomic_write_json
from movielens.titles import _ARTICLES, match_keys, normalise, parse_title

DEFAULT_MINUTES = 90.0
SOURCES = ("table", "imdb_bulk", "cache", "cinemagoer", "default")
REAL_SOURCES = SOURCES[:-1]
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
_CACHE_FUNCTION_NAME = "cinemagoer_runtime"


@dataclasses.dataclass(frozen=True)
class MovieLengthConfig(Config):
    """Where runtimes come from.

    Attributes:
      table_path: CSV of runtimes (movieId/imdbId/title + runtime column), or None.
      imdb_basics_path: IMDb `title.basics.tsv` or `.tsv.gz`, or None.
      use_network: allow Cinemagoer lookups for movies the files do not cover
        (the on-disk cache is read either way).
      cinemagoer_uri: database of Cinemagoer >= 2026 (built with `s32cinemagoer.py`);
        None means `sqlite:///<datasets>/movie_lengths/cinemagoer.db`. Ignored by
        older Cinemagoer releases, which query imdb.com.
      max_workers: concurrent lookups.
      default_minutes: runtime used when none is known.
      connect_failures_before_offline: after this many failed lookups in a row, stop
        asking for the rest of the run.
      timeout_s: per-request timeout given to the web client (older Cinemagoer).
    """

    table_path: str | None = None
    imdb_basics_path: str | None = None
    use_network: bool = True
    cinemagoer_uri: str | None = None
    max_workers: int = 8
    default_minutes: float = DEFAULT_MINUTES
    connect_failures_before_offline: int = 3
    timeout_s: float = 10.0

    def __post_init__(self):
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.default_minutes <= 0:
            raise ValueError(f"default_minutes must be > 0, got {self.default_minutes}")
        if self.connect_failures_before_offline < 1:
            raise ValueError("connect_failures_before_offline must be >= 1")


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


# --------------------------------------------------------------------------- runtime parsing


_HOURS_MINUTES_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in(?:utes?|s)?)?)?\s*$"
)


def parse_runtime(value: Any) -> float | None:
    """Minutes from the forms IMDb returns, or None.

    Handles 142, "142", "142 min", "USA:142", "USA:142::(director's cut)",
    "2h 22m", "2h", "45m", and lists of these (the first usable one wins).

    >>> parse_runtime(["USA:142::(uncut)", "UK:139"])
    142.0
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            minutes = parse_runtime(item)
            if minutes is not None:
                return minutes
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        minutes = float(value)
        return minutes if np.isfinite(minutes) and minutes > 0 else None
    text = str(value).strip()
    if not text or text == "\\N":
        return None
    # "Country:minutes::(note)" -> the minutes part.
    if ":" in text:
        parts = [p for p in text.split(":") if p.strip()]
        numeric = [p for p in parts if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*(?:min)?\s*", p)]
        if not numeric:
            return None
        text = numeric[0]
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:min(?:utes?|s)?\.?)?\s*", text, flags=re.IGNORECASE)
    if match:
        minutes = float(match.group(1))
    else:
        match = _HOURS_MINUTES_RE.match(text.lower())
        if not match or not any(match.groups()):
            return None
        minutes = 60 * float(match.group(1) or 0) + float(match.group(2) or 0)
    return minutes if minutes > 0 else None


def _imdb_number(value: Any) -> int | None:
    """'tt0114709', '0114709', 114709, 114709.0 -> 114709; '' / NaN -> None."""
    if value is None:
        return None
    if isinstance(value, float):
        return int(value) if np.isfinite(value) and value > 0 else None
    if isinstance(value, (int, np.integer)):
        return int(value) if value > 0 else None
    digits = re.sub(r"^tt", "", str(value).strip().lower())
    if digits.endswith(".0"):
        digits = digits[:-2]
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def _title_keys(title: str) -> tuple[tuple[str, ...], int | None]:
    return match_keys(title), parse_title(title).year


# --------------------------------------------------------------------------- offline sources


def _read_csv_any(path: Path) -> pd.DataFrame:
    for encoding in ("utf-8", "latin-1"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path}: cannot decode as UTF-8 or latin-1")


_SEGMENT_SPLIT_RE = re.compile(r":\s+|\s+-\s+")


def _segment_keys(title: str) -> list[str]:
    """Keys of the parts of a title split at ':' and ' - ' ("Star Wars: Episode IV - A New Hope")."""
    keys: list[str] = []
    for name in parse_title(title).all_names:
        parts = _SEGMENT_SPLIT_RE.split(name)
        if len(parts) < 2:
            continue
        for part in parts:
            for key in match_keys(part):
                if len(key) >= 4 and key not in keys:
                    keys.append(key)
    return keys


class TitleYearIndex:
    """Runtimes by (normalised title, year), tolerant of MovieLens title variants.

    Exact keys (main and alternate titles) are tried first, with the year, then
    year +/- 1 (festival vs. theatrical release). Last, a title may match one
    part of a longer title of the same year ("Star Wars (1977)" in ML-100K is
    "Star Wars: Episode IV - A New Hope (1977)" in ML-1M), but only when that
    part names a single runtime.
    """

    def __init__(self):
        self._exact: dict[tuple[str, int | None], float] = {}
        self._segments: dict[tuple[str, int | None], tuple[str, float] | None] = {}

    def add(self, title: str, minutes: float, extra_titles: Sequence[str] = ()) -> None:
        """First added wins for exact keys; a part shared by different titles is ambiguous."""
        keys, year = _title_keys(title)
        keys = list(keys)
        segments = _segment_keys(title) if (":" in title or " - " in title) else []
        for extra in extra_titles:
            keys += [k for k in match_keys(extra) if k not in keys]
            if ":" in extra or " - " in extra:
                segments += _segment_keys(extra)
        for key in keys:
            self._exact.setdefault((key, year), minutes)
        owner = keys[0] if keys else title
        for key in segments:
            # The same film listed twice (two datasets in one table) is not an ambiguity.
            known = self._segments.setdefault((key, year), (owner, minutes))
            if known is not None and known[0] != owner:
                self._segments[(key, year)] = None

    def __bool__(self) -> bool:
        return bool(self._exact)

    def lookup(self, title: str) -> float | None:
        keys, year = _title_keys(title)
        for key in keys:
            if (key, year) in self._exact:
                return self._exact[(key, year)]
        if year is not None:
            for delta in (-1, 1):
                for key in keys:
                    if (key, year + delta) in self._exact:
                        return self._exact[(key, year + delta)]
            for key in keys:
                known = self._segments.get((key, year))
                if known is not None:
                    return known[1]
        return None


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
                number = _imdb_number(imdb)
                if number is not None:
                    self._by_imdb.setdefault(number, float(value))
        self._by_title = TitleYearIndex()
        if "title" in frame.columns:
            for title, value in zip(frame["title"], frame["_minutes"], strict=True):
                if title.strip():
                    self._by_title.add(title, float(value))

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
                number = _imdb_number(imdb_id)
                value = self._by_imdb.get(number) if number is not None else None
            if value is None and self._by_title:
                value = self._by_title.lookup(title)
            if value is not None:
                out[row] = value
        return out


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


def lookup_imdb_bulk(
    path: str | Path, titles: Sequence[str], imdb_ids: Sequence[str], chunksize: int = 500_000
) -> np.ndarray:
    """Runtimes [num_movies] from IMDb's `title.basics.tsv(.gz)`, NaN where unknown.

    Streams the file in chunks with only the needed columns; a row is kept when
    its tconst is wanted or its (title, year) could be. Title keys are computed
    only for rows of a wanted year and type, which keeps a full 10M-row file to
    a short scan.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--imdb_basics_file {path} does not exist")
    wanted_ids = {n for n in (_imdb_number(i) for i in imdb_ids) if n is not None}
    years = [parse_title(t).year for t in titles]
    wanted_keys = {key for t in titles for key in (*match_keys(t), *_segment_keys(t))}
    wanted_years = {str(y + d) for y in years if y is not None for d in (-1, 0, 1)}
    by_id: dict[int, float] = {}
    title_rows: list[tuple[str, float, list[str], int]] = []
    reader = pd.read_csv(
        path,
        sep="\t",
        usecols=_BULK_COLUMNS,
        dtype=str,
        na_values=["\\N"],
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: IMDb titles contain bare quotes
        chunksize=chunksize,
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
            extra = [original] if isinstance(original, str) and original != primary else []
            title_rows.append((f"{primary} ({year})", float(value), extra, type_rank[ttype]))
    # Feature films before shorts and videos when a title + year is shared (first added wins).
    title_rows.sort(key=lambda r: r[3])
    by_title = TitleYearIndex()
    for title, value, extra, _ in title_rows:
        by_title.add(title, value, extra)
    out = np.full(len(titles), np.nan)
    for row, (title, imdb_id) in enumerate(zip(titles, imdb_ids, strict=True)):
        number = _imdb_number(imdb_id)
        value = by_id.get(number) if number is not None else None
        if value is None:
            value = by_title.lookup(title)
        if value is not None:
            out[row] = value
    return out


# --------------------------------------------------------------------------- Cinemagoer


class LookupUnavailable(RuntimeError):
    """Cinemagoer cannot be used this run (no database, not installed, network down)."""


class _ServiceError(RuntimeError):
    """A lookup failed for a reason other than "IMDb has no runtime"; never cached."""


class _NotLookedUp(RuntimeError):
    """Raised inside the cached function to read the cache without asking IMDb; never cached."""


def default_cinemagoer_uri() -> str:
    return f"sqlite:///{paths.datasets_dir() / 'movie_lengths' / 'cinemagoer.db'}"


def make_cinemagoer_client(config: MovieLengthConfig):
    """The real Cinemagoer client, imported lazily.

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
            return imdb.Cinemagoer("http", timeout=config.timeout_s)
        except TypeError:
            return imdb.Cinemagoer("http")
    uri = config.cinemagoer_uri or default_cinemagoer_uri()
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


def _field(obj: Any, name: str) -> Any:
    try:
        return obj.get(name)
    except AttributeError:
        return getattr(obj, name, None)


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def choose_search_result(results: Sequence[Any], title: str) -> Any | None:
    """Best Cinemagoer search result for a MovieLens title.

    A result whose year matches wins over one that does not; among those, the
    closest title (over the MovieLens main and alternate titles) wins. Results
    whose title is not even close (similarity < 0.6) are ignored, so a search
    that returns only unrelated films counts as "not found".
    """
    keys, year = _title_keys(title)
    keys = keys or (normalise(title),)
    best, best_score = None, 0.0
    for result in results:
        name = _field(result, "title") or ""
        result_keys = match_keys(str(name)) or (normalise(str(name)),)
        score = max(_similarity(k, r) for k in keys for r in result_keys)
        if score < 0.6:
            continue
        result_year = _field(result, "year")
        try:
            same_year = year is not None and int(str(result_year)[:4]) == year
        except (TypeError, ValueError):
            same_year = False
        kind = str(_field(result, "kind") or "movie")
        total = score + (1.0 if same_year else 0.0) + (0.05 if kind == "movie" else 0.0)
        if total > best_score:
            best, best_score = result, total
    return best


def fetch_runtime(client: Any, title: str, imdb_id: str) -> float | None:
    """Runtime in minutes from Cinemagoer, or None when IMDb has none.

    Errors of the client (network, service, database) propagate.
    """
    number = _imdb_number(imdb_id)
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
    minutes = parse_runtime(_field(movie, "runtimes"))
    if minutes is None and number is None:
        # Search results carry few fields; the full record has the runtime.
        client.update(movie, info=["main"])
        minutes = parse_runtime(_field(movie, "runtimes"))
    return minutes


class _CircuitBreaker:
    """Trips after `limit` failed lookups in a row: the network or service is plainly down."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0
        self.failures = 0
        self.tripped = False
        self.first_error: str | None = None
        self._lock = threading.Lock()

    def success(self) -> None:
        with self._lock:
            self.consecutive = 0

    def failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.consecutive += 1
            self.first_error = self.first_error or f"{type(error).__name__}: {error}"
            if self.consecutive >= self.limit:
                self.tripped = True


def lookup_key(title: str, imdb_id: str) -> str:
    """Cache key of a movie: its IMDb id when known, else its normalised title and year."""
    number = _imdb_number(imdb_id)
    if number is not None:
        return f"imdb:tt{number:07d}"
    keys, year = _title_keys(title)
    return f"title:{keys[0] if keys else normalise(title)}|{year or ''}"


def _hash_key(args: tuple, kwds: dict) -> str:
    # Only the lookup key identifies an entry (title/imdb_id are derived from it).
    return hashlib.sha256(kwds["key"].encode("utf-8")).hexdigest()


def cachier_dir() -> Path:
    return paths.datasets_dir() / "movie_lengths" / "cachier"


class _CachedLookup:
    """The cachier-cached Cinemagoer lookup for one cache directory and one run."""

    def __init__(
        self,
        cache_dir: Path,
        client_factory: Callable[[], Any],
        breaker: _CircuitBreaker,
        default_minutes: float,
        allow_lookups: bool,
    ):
        from cachier import cachier

        self.cache_dir = Path(cache_dir)
        self.client_factory = client_factory
        self.breaker = breaker
        self.default_minutes = default_minutes
        self.allow_lookups = allow_lookups
        self.looked_up: set[str] = set()
        self.unavailable: str | None = None
        self._client = None

        def cinemagoer_runtime(key: str, title: str, imdb_id: str) -> tuple[float, bool]:
            return self._fetch(key, title, imdb_id)

        cinemagoer_runtime.__qualname__ = _CACHE_FUNCTION_NAME
        cinemagoer_runtime.__module__ = __name__
        self.cached = cachier(
            cache_dir=str(self.cache_dir),
            separate_files=True,
            hash_func=_hash_key,
            allow_none=False,
            pickle_reload=False,
            # An entry left "being calculated" by a killed run is recomputed after this wait.
            wait_for_calc_timeout=2,
        )(cinemagoer_runtime)

    def _entry_prefix(self) -> str:
        # cachier's pickle core with separate_files=True names one file per key
        # "<cache_dir>/.<module>.<qualname>_<hash>"; knowing that lets a run that
        # cannot look anything up skip keys that were never stored, instead of
        # having cachier write a "being calculated" marker for each of them.
        return f".{__name__}.{_CACHE_FUNCTION_NAME}_"

    def has_entries(self) -> bool:
        prefix = self._entry_prefix()
        return self.cache_dir.is_dir() and any(p.name.startswith(prefix) for p in self.cache_dir.iterdir())

    def is_stored(self, key: str) -> bool:
        """False when the cache certainly has no entry for `key` (True may still be an unfinished entry)."""
        return (self.cache_dir / f"{self._entry_prefix()}{_hash_key((), {'key': key})}").is_file()

    def open_client(self) -> None:
        """Makes the client once, before the workers start; records why when it cannot be made."""
        if not self.allow_lookups or self._client is not None or self.unavailable:
            return
        try:
            self._client = self.client_factory()
        except LookupUnavailable as error:
            self.unavailable = str(error)

    @property
    def can_look_up(self) -> bool:
        return self.allow_lookups and self._client is not None and not self.breaker.tripped

    def _fetch(self, key: str, title: str, imdb_id: str) -> tuple[float, bool]:
        if not self.can_look_up:
            raise _NotLookedUp(key)
        try:
            minutes = fetch_runtime(self._client, title, imdb_id)
        except Exception as error:  # any client failure: not cached, counted towards "plainly down"
            self.breaker.failure(error)
            raise _ServiceError(f"{key}: {type(error).__name__}: {error}") from error
        self.breaker.success()
        self.looked_up.add(key)
        if minutes is None:
            return (float(self.default_minutes), False)
        return (float(minutes), True)

    def __call__(self, key: str, title: str, imdb_id: str) -> tuple[float, bool] | None:
        """(minutes, found) from the cache or a lookup; None when neither answered this run."""
        if not self.can_look_up and not self.is_stored(key):
            return None
        try:
            value = self.cached(key=key, title=title, imdb_id=imdb_id)
        except (_NotLookedUp, _ServiceError):
            return None
        try:
            return (float(value[0]), bool(value[1]))
        except (TypeError, ValueError, IndexError):  # an entry in an unexpected shape: ignore it
            return None


# --------------------------------------------------------------------------- public entry point


def _column(movies: pd.DataFrame, name: str, default: str = "") -> list[str]:
    if name not in movies.columns:
        return [default] * len(movies)
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
    breaker = _CircuitBreaker(config.connect_failures_before_offline)
    todo = np.flatnonzero(np.isnan(minutes))
    if len(todo):
        t0 = time.perf_counter()
        client_factory = (lambda: imdb_client) if imdb_client is not None else (lambda: make_cinemagoer_client(config))
        lookup = _CachedLookup(
            Path(cache_dir) if cache_dir is not None else cachier_dir(),
            client_factory,
            breaker,
            config.default_minutes,
            allow_lookups=config.use_network,
        )
        # Movies sharing a key (the same film listed twice) are looked up once.
        by_key: dict[str, list[int]] = {}
        for i in todo:
            if titles[i].strip() or _imdb_number(imdb_ids[i]) is not None:  # nothing to search for otherwise
                by_key.setdefault(lookup_key(titles[i], imdb_ids[i]), []).append(int(i))
        lookup.open_client()
        if not config.use_network:
            notes.append("network lookups off (--no_network_lookups): only cached Cinemagoer answers are used")
        answers: dict[str, tuple[float, bool] | None] = {}
        if lookup.can_look_up or lookup.has_entries():
            answers = _run_lookups(lookup, by_key, titles, imdb_ids, config.max_workers, progress)
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


def _run_lookups(
    lookup: _CachedLookup,
    by_key: dict[str, list[int]],
    titles: list[str],
    imdb_ids: list[str],
    max_workers: int,
    progress: bool,
) -> dict[str, tuple[float, bool] | None]:
    from tqdm.auto import tqdm

    answers: dict[str, tuple[float, bool] | None] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = {pool.submit(lookup, key, titles[rows[0]], imdb_ids[rows[0]]): key for key, rows in by_key.items()}
        with tqdm(
            total=len(futures),
            desc="movie lengths (cache/Cinemagoer)",
            unit="movie",
            disable=not progress or len(futures) < 2,
            leave=False,
        ) as bar:
            for future in concurrent.futures.as_completed(futures):
                answers[futures[future]] = future.result()
                bar.update(1)
    return answers


# --------------------------------------------------------------------------- CLI helpers


def add_movie_length_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds --movie_lengths_file, --imdb_basics_file, --no_network_lookups, --cinemagoer_db."""
    group = parser.add_argument_group("movie_length feature (runtimes)")
    group.add_argument(
        "--movie_lengths_file",
        default=None,
        help="CSV with movieId and/or imdbId and/or title plus a runtime column "
        f"({', '.join(RUNTIME_COLUMNS)}); tried first",
    )
    group.add_argument(
        "--imdb_basics_file", default=None, help="IMDb title.basics.tsv(.gz) bulk file (runtimeMinutes); tried second"
    )
    group.add_argument(
        "--no_network_lookups", action="store_true", help="never ask Cinemagoer; use files and cached answers only"
    )
    group.add_argument(
        "--cinemagoer_db",
        default=None,
        help="Cinemagoer database URI (Cinemagoer 2026+ reads a local IMDb database); "
        "default sqlite:///datasets/movie_lengths/cinemagoer.db",
    )
    return parser


def movie_length_config_from_args(args: argparse.Namespace, **overrides: Any) -> MovieLengthConfig:
    values = {
        "table_path": getattr(args, "movie_lengths_file", None),
        "imdb_basics_path": getattr(args, "imdb_basics_file", None),
        "use_network": not getattr(args, "no_network_lookups", False),
        "cinemagoer_uri": getattr(args, "cinemagoer_db", None),
    }
    values.update(overrides)
    return MovieLengthConfig(**values)
