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

Cinemagoer 2026.x no longer scrapes imdb.com: it reads a local database built
from IMDb's dataset files (`s32cinemagoer.py`); older releases (<= 2023.x)
still have the web ("http") access system. Both are supported: the client is
made lazily and only when a movie needs it, and tests inject a fake.

Modules, one job each:

- `config`: `MovieLengthConfig` and the command-line flags that build it;
- `parsing`: runtimes and IMDb ids in the forms the sources write them;
- `matching`: finding a MovieLens title among a source's titles (through
  `movielens.titles.TitleIndex`) and choosing among Cinemagoer search results;
- `sources`: the runtime table, IMDb's bulk file and the Cinemagoer client;
- `cache`: the cachier cache of Cinemagoer answers and the concurrent lookups;
- `resolve`: the sources in order, the coverage report, `resolve_movie_lengths`.
"""

from movielens.movie_length.cache import cachier_dir, lookup_key
from movielens.movie_length.config import (
    DEFAULT_MINUTES,
    MovieLengthConfig,
    add_movie_length_arguments,
    movie_length_config_from_args,
)
from movielens.movie_length.matching import RuntimesByTitle, choose_search_result
from movielens.movie_length.parsing import parse_runtime
from movielens.movie_length.resolve import REAL_SOURCES, SOURCES, MovieLengths, coverage_path, resolve_movie_lengths
from movielens.movie_length.sources import (
    BULK_TITLE_TYPES,
    RUNTIME_COLUMNS,
    VARIANT_DATASET_NAMES,
    LookupUnavailable,
    RuntimeTable,
    default_cinemagoer_uri,
    fetch_runtime,
    lookup_imdb_bulk,
    make_cinemagoer_client,
)

__all__ = [
    "BULK_TITLE_TYPES",
    "DEFAULT_MINUTES",
    "REAL_SOURCES",
    "RUNTIME_COLUMNS",
    "SOURCES",
    "VARIANT_DATASET_NAMES",
    "LookupUnavailable",
    "MovieLengthConfig",
    "MovieLengths",
    "RuntimeTable",
    "RuntimesByTitle",
    "add_movie_length_arguments",
    "cachier_dir",
    "choose_search_result",
    "coverage_path",
    "default_cinemagoer_uri",
    "fetch_runtime",
    "lookup_imdb_bulk",
    "lookup_key",
    "make_cinemagoer_client",
    "movie_length_config_from_args",
    "parse_runtime",
    "resolve_movie_lengths",
]
