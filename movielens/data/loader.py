"""`load_movielens`: one entry point over every source, with the processed-data cache in front.

Sources, in the order `auto` tries them:
  local     the original GroupLens files (`data_dir` or env `MOVIELENS_DATA_DIR`), folder or zip
  tfds      TensorFlow Datasets download (`movielens/<variant>-ratings`)
  registry  ML-100K only: the copy in PyPI's recbole==1.2.1 wheel

Local files that were asked for (a `data_dir` argument, or the env variable, which a
user sets on purpose) are the only source tried: when they cannot be read the error
names the path and what is wrong, never a silent fallback to a download. Without
them a source that cannot be reached fails within seconds; when all fail, the error
says what was tried and how to provide the files. `describe_source` says which
source a loaded `MovieLensData` came from, for the CLIs to print.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
import zlib
from pathlib import Path

from movielens import paths
from movielens.data import cache, grouplens, registry_copy, schema, tfds_source
from movielens.data.table import MovieLensData

log = logging.getLogger(__name__)
SOURCES = ("auto", "local", "tfds", "registry")
DATA_DIR_ENV = "MOVIELENS_DATA_DIR"


class DataUnavailableError(RuntimeError):
    """No source could provide the requested variant."""


def _how_to_provide(variant: str) -> str:
    folder = grouplens.FOLDER_NAMES[variant]
    return (
        f"Download {folder}.zip from https://grouplens.org/datasets/movielens/ and pass --data_dir "
        f"(or set {DATA_DIR_ENV}) to the zip, to the {folder}/ folder, or to a folder holding either."
    )


def load_movielens(
    variant: str,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    rebuild: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> MovieLensData:
    """Loads a MovieLens variant in the TFDS schema, from the cache when possible.

    Args:
      variant: one of `schema.VARIANTS`.
      data_dir: where the GroupLens files are (default: env `MOVIELENS_DATA_DIR`). When given either way,
        with source "auto" or "local", those files are the only source: no fallback to a download.
      source: "auto" or one source from `SOURCES`.
      rebuild: ignore and rewrite the processed-data cache.
      cache_dir: the `datasets/` folder (default `movielens.paths.datasets_dir()`).

    Raises:
      ValueError: unknown variant or source.
      DataUnavailableError: the given data_dir cannot be read (the message names it and why), or every
        source tried failed (the message lists them).
      grouplens.RatingFileError: a malformed line in the given ratings file.
    """
    schema.check_variant(variant)
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; valid sources: {', '.join(SOURCES)}")
    cache_dir = Path(cache_dir) if cache_dir else paths.datasets_dir()
    origin = "--data_dir" if data_dir else DATA_DIR_ENV
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if source == "local" and not data_dir:
        raise ValueError(f"--data_source local needs --data_dir or {DATA_DIR_ENV}")
    if source in ("auto", "local") and data_dir:
        return _load_local(variant, data_dir, origin, rebuild, cache_dir)

    failures: list[str] = []
    candidates = []  # (name, cache key, builder)
    if source in ("auto", "tfds"):
        candidates.append(("tfds", "tfds", lambda: tfds_source.load(variant, cache_dir)))
    if source in ("auto", "registry"):
        if variant == "100k":
            candidates.append(("registry", "registry-recbole121", lambda: registry_copy.load(cache_dir)))
        elif source == "registry":
            raise ValueError(f"the registry source only has ML-100K, not {variant}")
    if not rebuild:
        for _name, key, _ in candidates:
            data = _read_cache(cache_dir, variant, key)
            if data is not None:
                return data
    for name, key, build in candidates:
        started = time.perf_counter()
        try:
            data = build()
        except (tfds_source.TfdsUnavailableError, registry_copy.RegistryUnavailableError, OSError) as error:
            failures.append(f"{name}: {error} ({time.perf_counter() - started:.1f}s)")
            log.warning("MovieLens %s from %s failed: %s", variant, name, error)
            continue
        return _write_cache(data, cache_dir, key, rebuild)
    failures.append(f"local files: none given (--data_dir or {DATA_DIR_ENV})")
    raise DataUnavailableError(
        f"could not load MovieLens {variant}. Tried:\n  - " + "\n  - ".join(failures)
        + "\n" + _how_to_provide(variant)
    )


def _load_local(variant: str, data_dir: str | os.PathLike, origin: str, rebuild: bool,
                cache_dir: Path) -> MovieLensData:
    """The GroupLens files the user pointed at (via `origin`), or an error naming them: never another source."""
    try:
        files = grouplens.locate(variant, data_dir)
    except grouplens.DataNotFoundError as error:
        raise DataUnavailableError(
            f"could not load MovieLens {variant} from {origin}: {error}.\n{_how_to_provide(variant)}"
        ) from error
    try:
        # By content: the same files in another folder, a zip or on another machine share the entry.
        key = "local-" + files.content_key(grouplens.LAYOUT_FILES[variant] + ("links.csv",))
        if not rebuild:
            # Only this entry: a cached copy of another source (e.g. the registry's ML-100K) must not stand in.
            data = _read_cache(cache_dir, variant, key)
            if data is not None:
                data.source = f"local:{files}"  # where these files are now, wherever the entry was written from
                return data
        data = grouplens.load_grouplens(variant, files)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DataUnavailableError(f"could not read MovieLens {variant} from {files}: {error}") from error
    return _write_cache(data, cache_dir, key, rebuild)


def _read_cache(cache_dir: Path, variant: str, key: str) -> MovieLensData | None:
    """The cached entry, None when absent; a corrupt entry is removed (and rebuilt by the caller)."""
    try:
        data = cache.read(cache_dir, variant, key)
    except cache.CorruptCacheError as error:
        log.warning("%s; rebuilding it", error)
        cache.remove(cache_dir, variant, key)
        return None
    if data is not None:
        log.info("loaded MovieLens %s from cache %s", variant, cache.entry_dir(cache_dir, variant, key))
    return data


def _write_cache(data: MovieLensData, cache_dir: Path, key: str, rebuild: bool) -> MovieLensData:
    if rebuild:
        cache.remove(cache_dir, data.variant, key)
    cache.write(data, cache_dir, key)
    return data


def describe_source(data: MovieLensData) -> str:
    """One line saying which data a run uses, e.g. "data: MovieLens 100k (100,000 ratings) from local files /x"."""
    kind, _, detail = data.source.partition(":")
    where = {
        "local": f"from local files {detail}",
        "tfds": f"from TensorFlow Datasets (movielens/{data.variant}-ratings)",
        "registry": f"from the copy in PyPI's {detail} wheel (--data_dir to use your own files)",
        "synthetic": "synthetic (generated, not MovieLens)",
    }.get(kind, f"from {data.source}")
    return f"data: MovieLens {data.variant} ({len(data.ratings):,} ratings) {where}"
