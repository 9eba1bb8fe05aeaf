"""Where runtimes come from: `MovieLengthConfig` and the command-line flags that build it."""

from __future__ import annotations

import argparse
import dataclasses

from movielens.config import Config
from movielens.movie_length.sources import RUNTIME_COLUMNS

DEFAULT_MINUTES = 90.0


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
    """

    table_path: str | None = None
    imdb_basics_path: str | None = None
    use_network: bool = True
    cinemagoer_uri: str | None = None
    max_workers: int = 8
    default_minutes: float = DEFAULT_MINUTES
    connect_failures_before_offline: int = 3

    def __post_init__(self):
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.default_minutes <= 0:
            raise ValueError(f"default_minutes must be > 0, got {self.default_minutes}")
        if self.connect_failures_before_offline < 1:
            raise ValueError("connect_failures_before_offline must be >= 1")


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


def movie_length_config_from_args(args: argparse.Namespace) -> MovieLengthConfig:
    """The config of the flags `add_movie_length_arguments` added (absent flags: the defaults)."""
    return MovieLengthConfig(
        table_path=getattr(args, "movie_lengths_file", None),
        imdb_basics_path=getattr(args, "imdb_basics_file", None),
        use_network=not getattr(args, "no_network_lookups", False),
        cinemagoer_uri=getattr(args, "cinemagoer_db", None),
    )
