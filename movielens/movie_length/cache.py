"""Cinemagoer answers kept on disk by cachier, so a movie is looked up at most once ever.

"IMDb has no runtime" is cached (as the default, flagged as not found); a
network or service error raises inside the cached function, which cachier does
not cache, so a later online run fills it in. After a few failed lookups in a
row (the network is plainly down) the rest of the run stops asking.

cachier stores its entries with pickle; the only value pickled here is a
`(minutes: float, found: bool)` pair per lookup key.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movielens import paths
from movielens.movie_length.parsing import imdb_number
from movielens.movie_length.sources import LookupUnavailable, fetch_runtime
from movielens.titles import match_keys, normalise, parse_title

# cachier names its files after the cached function's module and name: these are the ones the entries were
# written under before movie_length became a package, so caches filled by earlier runs stay valid.
_CACHE_MODULE = "movielens.movie_length"
_CACHE_FUNCTION_NAME = "cinemagoer_runtime"


class _ServiceError(RuntimeError):
    """A lookup failed for a reason other than "IMDb has no runtime"; never cached."""


class _NotLookedUp(RuntimeError):
    """Raised inside the cached function to read the cache without asking IMDb; never cached."""


class CircuitBreaker:
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
    number = imdb_number(imdb_id)
    if number is not None:
        return f"imdb:tt{number:07d}"
    keys, year = match_keys(title), parse_title(title).year
    return f"title:{keys[0] if keys else normalise(title)}|{year or ''}"


def _hash_key(args: tuple, kwds: dict) -> str:
    # Only the lookup key identifies an entry (title/imdb_id are derived from it).
    return hashlib.sha256(kwds["key"].encode("utf-8")).hexdigest()


def cachier_dir() -> Path:
    return paths.datasets_dir() / "movie_lengths" / "cachier"


class CachedLookup:
    """The cachier-cached Cinemagoer lookup for one cache directory and one run."""

    def __init__(
        self,
        cache_dir: Path,
        client_factory: Callable[[], Any],
        breaker: CircuitBreaker,
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
        cinemagoer_runtime.__module__ = _CACHE_MODULE
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
        return f".{_CACHE_MODULE}.{_CACHE_FUNCTION_NAME}_"

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

    def look_up_all(
        self, by_key: dict[str, list[int]], titles: list[str], imdb_ids: list[str], max_workers: int, progress: bool
    ) -> dict[str, tuple[float, bool] | None]:
        """Answers for every key (its movies' rows in `by_key`), looked up concurrently with a tqdm bar."""
        from tqdm.auto import tqdm

        answers: dict[str, tuple[float, bool] | None] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
            futures = {pool.submit(self, key, titles[rows[0]], imdb_ids[rows[0]]): key for key, rows in by_key.items()}
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
