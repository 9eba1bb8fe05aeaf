"""Readers for the original GroupLens files, one per layout, from a folder or a zip.

Layouts:
- `100k`: `u.data` (tab), `u.item` (`|`, latin-1, 19 genre flags), `u.user` (`|`).
- `1m`: `ratings.dat`, `movies.dat` (latin-1), `users.dat`, all `::`-separated.
- `20m`, `25m`, `latest-small`: `ratings.csv`, `movies.csv` (quoted, UTF-8), optional `links.csv`.

Parsing is vectorised (pandas' C parser); the `::` separator is rewritten to a
single byte first because pandas would otherwise fall back to its slow Python engine.

Ratings files are checked, not trusted: a line without exactly four numeric fields
(user, movie, rating, timestamp), a rating outside the variant's scale, a negative or
fractional timestamp, bytes that are not ASCII text, or a last line cut short (a copy
interrupted mid-write) raise `RatingFileError` naming the file, the line number and the
line. The checks are vectorised; only once one fails is the file scanned for the line.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data import schema
from movielens.data.table import MovieLensData, assemble, make_movies

FOLDER_NAMES = {v: f"ml-{v}" for v in schema.VARIANTS}
# The file whose presence identifies each layout, and the others it needs.
LAYOUT_FILES = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "20m": ("ratings.csv", "movies.csv"),
    "25m": ("ratings.csv", "movies.csv"),
    "latest-small": ("ratings.csv", "movies.csv"),
}


# The scale of each variant's ratings (1..5 stars; half stars from ML-20M on).
RATING_RANGES = {"100k": (1.0, 5.0), "1m": (1.0, 5.0), "20m": (0.5, 5.0), "25m": (0.5, 5.0),
                 "latest-small": (0.5, 5.0)}
RATING_FIELDS = ("user", "movie", "rating", "timestamp")
CSV_RATINGS_HEADER = "userId,movieId,rating,timestamp"


class DataNotFoundError(FileNotFoundError):
    """The GroupLens files for a variant are not where we were told to look."""


class RatingFileError(ValueError):
    """A ratings file has a malformed line; the message names the file, the line number and the line."""


class FileSet:
    """The files of one variant, in a folder or inside a zip archive."""

    def __init__(self, location: Path, zip_path: Path | None = None, member_prefix: str = ""):
        self.location = location
        self.zip_path = zip_path
        self.member_prefix = member_prefix

    def __repr__(self) -> str:
        return f"{self.zip_path}:{self.member_prefix}" if self.zip_path else str(self.location)

    def exists(self, name: str) -> bool:
        if self.zip_path:
            with zipfile.ZipFile(self.zip_path) as archive:
                return self.member_prefix + name in archive.namelist()
        return (self.location / name).is_file()

    def describe(self, name: str) -> str:
        """Where file `name` is, for messages: its path, or `archive.zip:member`."""
        if self.zip_path:
            return f"{self.zip_path}:{self.member_prefix}{name}"
        return str(self.location / name)

    def read_bytes(self, name: str) -> bytes:
        if self.zip_path:
            with zipfile.ZipFile(self.zip_path) as archive:
                return archive.read(self.member_prefix + name)
        return (self.location / name).read_bytes()

    def fingerprint(self, names) -> str:
        """Path, sizes and modification times: changes when the user swaps the files."""
        parts = [str(self)]
        if self.zip_path:
            stat = self.zip_path.stat()
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        else:
            for name in names:
                path = self.location / name
                if path.is_file():
                    stat = path.stat()
                    parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]


def _zip_fileset(zip_path: Path, marker: str) -> FileSet | None:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as error:
        raise DataNotFoundError(f"{zip_path} is not a readable zip archive ({error})") from error
    for name in names:
        if name == marker or name.endswith("/" + marker):
            return FileSet(zip_path.parent, zip_path, name[: -len(marker)])
    return None


def locate(variant: str, data_dir: str | os.PathLike) -> FileSet:
    """Finds the files of `variant` in `data_dir`.

    `data_dir` may be the variant folder itself (any name, e.g. `ml-1m-half/`),
    a parent holding `ml-<variant>/` or `ml-<variant>.zip`, or a zip file.
    """
    schema.check_variant(variant)
    # Resolved, so the same files reached by a relative or an absolute path share one cache identity.
    root = Path(data_dir).expanduser().resolve()
    needed = LAYOUT_FILES[variant]
    marker = needed[0]
    candidates: list[FileSet] = []
    if root.is_file():
        if not zipfile.is_zipfile(root):
            what = "is not a readable zip archive" if root.suffix == ".zip" else "is a file but not a zip archive"
            raise DataNotFoundError(f"data dir {root} {what}; give the {FOLDER_NAMES[variant]}.zip, "
                                    f"the {FOLDER_NAMES[variant]}/ folder or its parent")
        found = _zip_fileset(root, marker)
        if found:
            candidates.append(found)
    elif root.is_dir():
        if not os.access(root, os.R_OK | os.X_OK):
            raise DataNotFoundError(f"data dir {root} cannot be read (permission denied)")
        folder = root / FOLDER_NAMES[variant]
        archive = root / f"{FOLDER_NAMES[variant]}.zip"
        for place in (root, folder):
            if any((place / name).is_file() for name in needed):
                candidates.append(FileSet(place))
        if archive.is_file():
            found = _zip_fileset(archive, marker)
            if found:
                candidates.append(found)
    elif root.exists():
        raise DataNotFoundError(f"data dir {root} is neither a folder nor a zip archive")
    else:
        raise DataNotFoundError(f"data dir {root} does not exist")
    for files in candidates:
        missing = [name for name in needed if not files.exists(name)]
        if not missing:
            return files
    if candidates:
        missing = [name for name in needed if not candidates[0].exists(name)]
        raise DataNotFoundError(f"{candidates[0]} lacks {', '.join(missing)} needed for MovieLens {variant}")
    if root.is_file():
        raise DataNotFoundError(f"the zip archive {root} holds no MovieLens {variant} files (no {marker} in it)")
    raise DataNotFoundError(
        f"no MovieLens {variant} files in {root}: expected {', '.join(needed)} there, "
        f"or a {FOLDER_NAMES[variant]}/ folder or {FOLDER_NAMES[variant]}.zip inside it"
    )


def _read_table(raw: bytes, sep: str, names: list[str], encoding: str = "latin-1", dtype=None) -> pd.DataFrame:
    if len(sep) > 1:
        raw = raw.replace(sep.encode(), b"\x1f")
        sep = "\x1f"
    return pd.read_csv(
        io.BytesIO(raw), sep=sep, header=None, names=names, encoding=encoding, dtype=dtype or str,
        quoting=csv.QUOTE_NONE, keep_default_na=False, engine="c",
    )


def read_ratings(raw: bytes, name: str, sep: str, variant: str, header: str | None = None) -> pd.DataFrame:
    """Parses a ratings file, one `user sep movie sep rating sep timestamp` per line, checking every value.

    Args:
      raw: the file's bytes.
      name: the file's path, for messages.
      header: the exact first line, when the file has one.

    Returns:
      Columns user_id, movie_id (str), user_rating (float32), timestamp (int64), in file order.

    Raises:
      RatingFileError: a malformed, out-of-range, non-text or truncated line (file, line number, content).
    """
    rating_range = RATING_RANGES[schema.check_variant(variant)]
    start = 0
    if header is not None:
        first = _line_at(raw, 0)
        if first.rstrip(b"\r") != header.encode():
            raise _line_error(name, 1, first, f"expected the header {header!r}")
        start = min(len(first) + 1, len(raw))
    _check_ascii(raw, name)
    body = raw[start:]
    if not body.strip():
        raise RatingFileError(f"{name} holds no ratings")
    # pandas would silently turn a fifth column on *every* line into the index: count the first line's fields.
    if _line_at(body, 0).count(sep.encode()) != len(RATING_FIELDS) - 1:
        raise _malformed(raw, name, sep, start, rating_range)
    try:
        frame = _read_table(body, sep, ["user_id", "movie_id", "user_rating", "timestamp"], dtype={
            "user_id": str, "movie_id": str, "user_rating": np.float32, "timestamp": np.int64})
    except (ValueError, OverflowError) as error:  # pandas' ParserError is a ValueError
        raise _malformed(raw, name, sep, start, rating_range, error) from error
    low, high = rating_range
    rating = frame["user_rating"].to_numpy()
    bad = (~_digits(frame["user_id"]) | ~_digits(frame["movie_id"]) | ~((rating >= low) & (rating <= high))
           | (frame["timestamp"].to_numpy() < 0))
    if bad.any():
        raise _malformed(raw, name, sep, start, rating_range)
    _check_last_line(raw, frame["timestamp"].to_numpy(), name)
    return frame


def _digits(column: pd.Series) -> np.ndarray:
    """Per cell: a non-empty string of ASCII digits (the text was checked to be ASCII)."""
    return column.str.isdigit().fillna(False).to_numpy(dtype=bool)


def _line_at(raw: bytes, offset: int) -> bytes:
    """The line containing byte `offset`, without its newline."""
    begin = raw.rfind(b"\n", 0, offset) + 1
    end = raw.find(b"\n", offset)
    return raw[begin: len(raw) if end < 0 else end]


def _line_error(name: str, number: int, line: bytes, problem: str) -> RatingFileError:
    shown = line.rstrip(b"\r").decode("utf-8", errors="backslashreplace")[:80]
    return RatingFileError(f"{name} line {number}: {problem}: {shown!r}")


def _check_ascii(raw: bytes, name: str) -> None:
    """Ratings are numbers: any byte outside ASCII is a damaged or wrong file."""
    if raw.isascii():
        return
    offset = int(np.flatnonzero(np.frombuffer(raw, np.uint8) >= 0x80)[0])
    line = _line_at(raw, offset)
    try:
        line.decode("utf-8")
        problem = "a non-ASCII character where numbers belong"
    except UnicodeDecodeError:
        problem = f"byte 0x{raw[offset]:02x} is not UTF-8 text"
    raise _line_error(name, raw.count(b"\n", 0, offset) + 1, line, problem)


def _line_problem(line: bytes, sep: bytes, rating_range: tuple[float, float]) -> str | None:
    """What is wrong with one ratings line; None when it is fine."""
    fields = line.rstrip(b"\r").split(sep)
    if len(fields) != len(RATING_FIELDS):
        return f"expected {len(RATING_FIELDS)} fields ({', '.join(RATING_FIELDS)}), got {len(fields)}"
    user, movie, rating, timestamp = (field.decode("utf-8", "backslashreplace") for field in fields)
    for label, value in (("user id", user), ("movie id", movie), ("timestamp", timestamp)):
        if not (value.isascii() and value.isdigit()):
            return f"{label} {value!r} is not a non-negative integer"
    try:
        number = float(rating)
    except ValueError:
        number = math.nan
    low, high = rating_range
    if not low <= number <= high:  # also nan and inf
        return f"rating {rating!r} is not a number in {low:g}..{high:g}"
    return None


@functools.lru_cache(maxsize=8)
def _suspect_line_pattern(sep: bytes) -> re.Pattern:
    """Matches at the start of every line that is neither blank nor four plain numbers."""
    field = re.escape(sep)
    plain = rb"\d+" + field + rb"\d+" + field + rb"\d+(?:\.\d+)?" + field + rb"\d+\r?$"
    return re.compile(rb"^(?!" + plain + rb"|\r?$)", re.M)


def _first_bad_line(raw: bytes, sep: bytes, start: int,
                    rating_range: tuple[float, float]) -> tuple[int, bytes, str] | None:
    """(line number, line, problem) of the first malformed line at or after byte `start`; None if all are fine.

    A C-speed regex proposes lines that are not four plain numbers; only when none of them is wrong (e.g.
    a rating out of range) is every line checked in Python.
    """
    match = _suspect_line_pattern(sep).search(raw, start)
    while match is not None:
        line = _line_at(raw, match.start())
        problem = _line_problem(line, sep, rating_range)
        if problem:
            return raw.count(b"\n", 0, match.start()) + 1, line, problem
        match = _suspect_line_pattern(sep).search(raw, match.start() + len(line) + 1)
    number = raw.count(b"\n", 0, start) + 1
    for line in raw[start:].split(b"\n"):
        problem = _line_problem(line, sep, rating_range) if line.strip(b"\r") else None
        if problem:
            return number, line, problem
        number += 1
    return None


def _malformed(raw: bytes, name: str, sep: str, start: int, rating_range: tuple[float, float],
               cause: Exception | None = None) -> RatingFileError:
    """The error for a ratings file that failed a check: its first bad line, else pandas' complaint."""
    found = _first_bad_line(raw, sep.encode(), start, rating_range)
    if found is not None:
        return _line_error(name, *found)
    return RatingFileError(f"{name} is malformed: {cause or 'unreadable ratings'}")


def _check_last_line(raw: bytes, timestamps: np.ndarray, name: str) -> None:
    """A file that does not end with a newline and whose last timestamp is shorter than usual was cut short."""
    if raw.endswith(b"\n") or len(timestamps) < 2:
        return
    digits = np.floor(np.log10(np.maximum(timestamps, 1))).astype(np.int64) + 1
    usual = int(np.median(digits[:-1]))
    if digits[-1] < usual:
        raise _line_error(name, raw.count(b"\n") + 1, _line_at(raw, len(raw) - 1),
                          f"the last line looks cut short (no newline at the end of the file, and its timestamp "
                          f"has {digits[-1]} digits where the others have {usual})")


def load_100k(files: FileSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    genre_names = ("Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
                   "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                   "Thriller", "War", "Western")
    item_columns = ["movie_id", "movie_title", "release", "video_release", "url", *genre_names]
    items = _read_table(files.read_bytes("u.item"), "|", item_columns)
    flags = items[list(genre_names)].to_numpy() == "1"
    names = np.asarray(genre_names, dtype=object)
    movies = make_movies(items["movie_id"], items["movie_title"], [names[row] for row in flags])
    users = _read_table(files.read_bytes("u.user"), "|", ["user_id", "age", "gender", "occupation", "zip"])
    users = _users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"],
                         users["occupation"], users["occupation"].map(schema.OCCUPATIONS_100K), users["zip"], True)
    ratings = read_ratings(files.read_bytes("u.data"), files.describe("u.data"), "\t", "100k")
    return ratings, movies, users


def load_1m(files: FileSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items = _read_table(files.read_bytes("movies.dat"), "::", ["movie_id", "movie_title", "genres"])
    movies = make_movies(items["movie_id"], items["movie_title"], items["genres"].str.split("|"))
    users = _read_table(files.read_bytes("users.dat"), "::", ["user_id", "gender", "age", "occupation", "zip"])
    text = np.asarray(schema.OCCUPATIONS_1M, dtype=object)[users["occupation"].astype(int).to_numpy()]
    label = pd.Series(text).replace({"K-12 student": "student", "college/grad student": "student"})
    users = _users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"], text, label,
                         users["zip"], False)
    ratings = read_ratings(files.read_bytes("ratings.dat"), files.describe("ratings.dat"), "::", "1m")
    return ratings, movies, users


def _users_frame(user_id, age, gender, occupation_text, occupation_label, zip_code, raw_age: bool) -> pd.DataFrame:
    unknown = sorted(set(pd.Series(occupation_label).dropna()) - set(schema.OCCUPATION_INDEX)) or (
        ["(unmapped)"] if pd.Series(occupation_label).isna().any() else [])
    if unknown:
        raise ValueError(f"unknown occupations {unknown}; known: {', '.join(schema.OCCUPATIONS)}")
    age = np.asarray(age, dtype=np.float32)
    users = pd.DataFrame({
        "user_id": pd.Series(user_id).astype(str).to_numpy(dtype=object),
        "bucketized_user_age": schema.bucketize_age(age) if raw_age else age,
        "user_gender": np.asarray(gender) == "M",
        "user_occupation_label": pd.Series(occupation_label).map(schema.OCCUPATION_INDEX).to_numpy(np.int64),
        "user_occupation_text": np.asarray(occupation_text, dtype=object),
        "user_zip_code": pd.Series(zip_code).astype(str).to_numpy(dtype=object),
    })
    if raw_age:
        users["raw_user_age"] = age
    return users


def load_current(files: FileSet, variant: str = "latest-small") -> tuple[pd.DataFrame, pd.DataFrame, None]:
    items = pd.read_csv(io.BytesIO(files.read_bytes("movies.csv")), dtype=str, keep_default_na=False)
    imdb = None
    if files.exists("links.csv"):
        links = pd.read_csv(io.BytesIO(files.read_bytes("links.csv")), dtype=str, keep_default_na=False)
        by_movie = dict(zip(links["movieId"], links["imdbId"]))
        imdb = ["tt" + by_movie[m].zfill(7) if by_movie.get(m) else "" for m in items["movieId"]]
    movies = make_movies(items["movieId"], items["title"], items["genres"].str.split("|"), imdb)
    ratings = read_ratings(files.read_bytes("ratings.csv"), files.describe("ratings.csv"), ",", variant,
                           header=CSV_RATINGS_HEADER)
    return ratings, movies, None


LOADERS = {"100k": load_100k, "1m": load_1m, "20m": functools.partial(load_current, variant="20m"),
           "25m": functools.partial(load_current, variant="25m"), "latest-small": load_current}


def load_grouplens(variant: str, files: FileSet) -> MovieLensData:
    """Reads the GroupLens files of `variant` into the TFDS schema.

    Raises:
      RatingFileError: a malformed ratings line (see `read_ratings`).
    """
    ratings, movies, users = LOADERS[schema.check_variant(variant)](files)
    return assemble(variant, f"local:{files}", ratings, movies, users)
