"""MovieLens data: loaders per GroupLens layout, one TFDS-named schema, a tf.data cache, splits."""

from movielens.data.grouplens import RatingFileError
from movielens.data.loader import SOURCES, DataUnavailableError, describe_source, load_movielens
from movielens.data.schema import GENRES, OCCUPATIONS, VARIANTS, rating_columns
from movielens.data.splits import (
    SPLITS,
    Split,
    Vocabulary,
    leave_last_out_split,
    make_split,
    random_split,
    temporal_split,
)
from movielens.data.table import MovieLensData

__all__ = [
    "GENRES", "OCCUPATIONS", "SOURCES", "SPLITS", "VARIANTS", "DataUnavailableError", "MovieLensData",
    "RatingFileError", "Split", "Vocabulary", "describe_source", "leave_last_out_split", "load_movielens",
    "make_split", "random_split", "rating_columns", "temporal_split",
]
