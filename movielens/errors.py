"""The errors a user can cause (bad id, title, file, flag; no network), which CLIs report in one line."""

from movielens.data.grouplens import DataNotFoundError
from movielens.data.loader import DataUnavailableError
from movielens.io import CorruptFileError
from movielens.titles import UnknownTitleError

USER_ERRORS = (ValueError, KeyError, UnknownTitleError, DataUnavailableError, DataNotFoundError, CorruptFileError,
               FileNotFoundError)
