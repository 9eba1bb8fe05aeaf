"""`load_movielens`: one entry point over every source, with the processed-data cache in front.

Sources, in the order `auto` tries them:
  local     the original GroupLens files (`data_dir` or env `MOVIELENS_DATA_DIR`), folder or zip
  tfds      TensorFlow Datasets download (`movielens/<variant>-ratings`)
  registry  ML-100K only: the copy in PyPI's recbole==1.2.1 wheel

A source that cannot be reached fails within seconds; when all fail, the
error says what was tried and how to provide the files.
"""

from __future__ import annotations

import logging
import os
import time
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
      data_dir: where the GroupLens files are (default: env `MOVIELENS_DATA_DIR`).
      source: "auto" or one source from `SOURCES`.
      rebuild: ignore and rewrite the processed-data cache.
      cache_dir: the `datasets/` folder (default `movielens.paths.datasets_dir()`).

    Raises:
      ValueError: unknown variant or source.
      DataUnavailableError: every source tried failed (the message lists them).
    """
    schema.check_variant(variant)
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; valid sources: {', '.join(SOURCES)}")
    cache_dir = Path(cache_dir) if cache_dir else paths.datasets_dir()
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if source == "local" and not data_dir:
        raise ValueError(f"--data_source local needs --data_dir or {DATA_DIR_ENV}")

    failures: list[str] = []
    candidates = []  # (name, cache key, builder)
    if source in ("auto", "local") and data_dir:
        try:
            files = grouplens.locate(variant, data_dir)
            key = "local-" + files.fingerprint(grouplens.LAYOUT_FILES[variant] + ("links.csv",))
            candidates.append(("local", key, lambda files=files: grouplens.load_grouplens(variant, files)))
        except grouplens.DataNotFoundError as error:
            failures.append(f"local files: {error}")
    if source in ("auto", "tfds"):
        candidates.append(("tfds", "tfds", lambda: tfds_source.load(variant, cache_dir)))
    if source in ("auto", "registry"):
        if variant == "100k":
            candidates.append(("registry", "registry-recbole121", lambda: registry_copy.load(cache_dir)))
        elif source == "registry":
            raise ValueError(f"the registry source only has ML-100K, not {variant}")

    # A cached copy beats reaching a source, but local files that were found are *the* source: a cached copy
    # of another source (e.g. the registry's ML-100K, cached by an earlier run) must not stand in for them.
    local_found = bool(candidates) and candidates[0][0] == "local"
    if not rebuild:
        for _name, key, _ in candidates[:1] if local_found else candidates:
            try:
                data = cache.read(cache_dir, variant, key)
            except cache.CorruptCacheError as error:
                log.warning("%s; rebuilding it", error)
                cache.remove(cache_dir, variant, key)
                continue
            if data is not None:
                log.info("loaded MovieLens %s from cache %s", variant, cache.entry_dir(cache_dir, variant, key))
                return data

    for name, key, build in candidates:
        started = time.perf_counter()
        try:
            data = build()
        except (grouplens.DataNotFoundError, tfds_source.TfdsUnavailableError,
                registry_copy.RegistryUnavailableError, OSError) as error:
            failures.append(f"{name}: {error} ({time.perf_counter() - started:.1f}s)")
            log.warning("MovieLens %s from %s failed: %s", variant, name, error)
            continue
        if rebuild:
            cache.remove(cache_dir, variant, key)
        cache.write(data, cache_dir, key)
        return data
    raise DataUnavailableError(
        f"could not load MovieLens {variant}. Tried:\n  - " + "\n  - ".join(failures or ["nothing"])
        + "\n" + _how_to_provide(variant)
    )
