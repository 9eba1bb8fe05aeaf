"""Load time of the data layer: first load from raw GroupLens files vs a load from the tf.data cache.

    python -m benchmarks.data [--repeats 5]

Datasets: ML-100K (`../shared/datasets/ml-100k`) and the ML-1M layout with users 1-2999
(`../shared/datasets/ml-1m-half`, labelled "ML-1M (users 1–2999)"). Protocol: one process,
TensorFlow imported beforehand (not timed); each timing is the median of `--repeats` runs,
each run with a fresh empty cache folder for the raw timings.
- first load: `load_movielens(..., rebuild=True)` into an empty cache = parse + write the cache
  (what a user's first run costs)
- parse only: the GroupLens reader without the cache write
- cached: `load_movielens(...)` served from the cache entry
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import movielens  # noqa: F401
from benchmarks.common import markdown_table, write_results
from movielens import paths
from movielens.data import grouplens, load_movielens

DATASETS = (("100k", "ml-100k", "ML-100K"), ("1m", "ml-1m-half", "ML-1M (users 1–2999)"))


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _measure(variant: str, data_dir, label: str, repeats: int) -> dict:
    files = grouplens.locate(variant, data_dir)

    def first_load():
        with tempfile.TemporaryDirectory() as cache_dir:
            load_movielens(variant, data_dir=data_dir, cache_dir=cache_dir, rebuild=True)

    with tempfile.TemporaryDirectory() as cache_dir:
        data = load_movielens(variant, data_dir=data_dir, cache_dir=cache_dir)
        cached = _median_seconds(lambda: load_movielens(variant, data_dir=data_dir, cache_dir=cache_dir), repeats)
    first = _median_seconds(first_load, repeats)
    parse = _median_seconds(lambda: grouplens.load_grouplens(variant, files), repeats)
    return {
        "dataset": label, "ratings": len(data.ratings), "first_load_s": first, "parse_only_s": parse,
        "cached_s": cached, "speedup_vs_first_load": first / cached, "speedup_vs_parse_only": parse / cached,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    shared = paths.shared_datasets_dir()
    if shared is None:
        print("../shared/datasets is absent: nothing to measure")
        return 0
    import tensorflow as tf  # noqa: F401  (import cost is not part of a load)

    rows = [_measure(variant, shared / folder, label, args.repeats) for variant, folder, label in DATASETS]
    columns = ["dataset", "ratings", "first_load_s", "parse_only_s", "cached_s", "speedup_vs_first_load",
               "speedup_vs_parse_only"]
    print(markdown_table(rows, columns))
    write_results("data", {"protocol": __doc__.strip(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
