"""Readers for the original GroupLens files, one per layout, from a folder or a zip.

Layouts:
- `100k`: `u.data` (tab), `u.item` (`|`, latin-1, 19 genre flags), `u.user` (`|`).
- `1m`: `ratings.dat`, `movies.dat` (latin-1), `users.dat`, all `::`-separated.
- `20m`, `25m`, `latest-small`: `ratings.csv`, `movies.csv` (quoted, UTF-8), optional `links.csv`.

Parsing is vectorised (pandas' C parser); the `::` separator is rewritten to a
single byte first because pandas would otherwise fall back to its slow Python engine.
Ratings files are streamed in blocks of whole lines (`BLOCK_BYTES`, from a folder or
straight out of a zip) and their ids parsed to integers: ML-25M's 25M ratings never
exist as Python strings (`table.assemble` turns the ids into Categoricals).

Ratings files are checked, not trusted: a line without exactly four numeric fields
(user, movie, rating, timestamp), a rating outside the variant's scale, a negative or
fractional timestamp, an id that is not plain digits ("1.0", "+5", " 5", "1e3" are
refused, although pandas would read them as integers), bytes that are not ASCII text,
or a last line cut short (a copy interrupted mid-write) raise `RatingFileError` naming
the file, the line number and the line. The checks are vectorised; only once one fails
is that block scanned for the line.

`FileSet.content_key` is the files' identity for the processed-data cache: a hash of
their bytes, so the same files under another path, in a zip or on another machine
share one cache entry.
"""

from __future__ import annotations

import contextlib
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
# Part of every content key: bump it when what the key covers changes.
CONTENT_KEY_VERSION = "grouplens-files-v1"


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

    @contextlib.contextmanager
    def open(self, name: str):
        """File `name` as a binary stream (a zip member is decompressed as it is read)."""
        if self.zip_path:
            with zipfile.ZipFile(self.zip_path) as archive, archive.open(self.member_prefix + name) as member:
                yield member
        else:
            with open(self.location / name, "rb") as handle:
                yield handle

    def content_key(self, names) -> str:
        """A hash of the files' names and bytes (those of `names` that exist), whatever path or archive holds
        them: the same data in another folder, a zip or on another machine has the same key, and changing any
        byte changes it. sha256, streamed in 4 MiB chunks (~0.5 GB/s here: ML-25M's 690 MB in ~1.5 s)."""
        digest = hashlib.sha256(f"{CONTENT_KEY_VERSION}\n".encode())
        buffer = bytearray(1 << 22)
        view = memoryview(buffer)
        for name in names:
            if not self.exists(name):
                continue
            digest.update(f"{name}\n".encode())
            size = 0
            with self.open(name) as stream:
                while True:
                    read = stream.readinto(buffer)
                    if not read:
                        break
                    digest.update(view[:read])
                    size += read
            digest.update(f"\n{size}\n".encode())
        return digest.hexdigest()[:16]


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


BLOCK_BYTES = 1 << 25  # ratings are parsed in blocks of ~32 MiB (whole lines): memory stays flat
_RATING_DTYPES = {"user_id": np.int64, "movie_id": np.int64, "user_rating": np.float32, "timestamp": np.int64}


def read_ratings(source, name: str, sep: str, variant: str, header: str | None = None) -> pd.DataFrame:
    """Parses a ratings file, one `user sep movie sep rating sep timestamp` per line, checking every value.

    Streams the file in blocks of whole lines (`BLOCK_BYTES`), so no copy of the whole file and no
    Python object per value is ever held: ids are parsed straight to integers.

    Args:
      source: the file's bytes, or a binary file object to stream them from.
      name: the file's path, for messages.
      header: the exact first line, when the file has one.

    Returns:
      Columns user_id, movie_id (int32, or int64 for ids past 2**31), user_rating (float32),
      timestamp (int64), in file order.

    Raises:
      RatingFileError: a malformed, out-of-range, non-text or truncated line (file, line number, content).
    """
    rating_range = RATING_RANGES[schema.check_variant(variant)]
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    parts: list[dict[str, np.ndarray]] = []
    lines_before = 0  # newlines in the blocks before this one
    last = b""
    for number, block in enumerate(_line_blocks(stream)):
        start = 0
        if number == 0 and header is not None:
            first = _line_at(block, 0)
            if first.rstrip(b"\r") != header.encode():
                raise _line_error(name, 1, first, f"expected the header {header!r}")
            start = min(len(first) + 1, len(block))
        if block[start:].strip():
            parts.append(_parse_block(block, start, name, sep, rating_range, lines_before))
        lines_before += block.count(b"\n")
        last = block
    if not parts:
        if lines_before == 0 and not last and header is not None:
            raise _line_error(name, 1, b"", f"expected the header {header!r}")
        raise RatingFileError(f"{name} holds no ratings")
    frame = pd.DataFrame({column: np.concatenate([part[column] for part in parts]) for column in _RATING_DTYPES},
                         copy=False)
    _check_last_line(last, frame["timestamp"].to_numpy()[-1_000_000:], name, lines_before)
    return frame


def _line_blocks(stream):
    """The stream's bytes in blocks of whole lines, ~`BLOCK_BYTES` each (the last may lack its newline)."""
    size = BLOCK_BYTES
    carry = b""
    while True:
        chunk = stream.read(size)
        if not chunk:
            break
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut]
    if carry:
        yield carry


def _narrow(values: np.ndarray) -> np.ndarray:
    """int64 ids -> int32 when they fit (half the memory)."""
    if len(values) and values.max() < 2**31:
        return values.astype(np.int32)
    return values


def _parse_block(block: bytes, start: int, name: str, sep: str, rating_range: tuple[float, float],
                 lines_before: int) -> dict[str, np.ndarray]:
    """One block of whole lines -> its columns, every value checked (vectorised); the first bad line raises.

    Checks, in C or numpy: only ASCII digits, separators, dots and line ends (no signs, spaces, exponents,
    letters); four fields a line (the first line here, and pandas on every other line); a dot only inside
    the rating field; ratings within the variant's range.
    """
    body = block[start:] if start else block
    parsed = body.replace(sep.encode(), b"\x1f") if len(sep) > 1 else body
    field = "\x1f" if len(sep) > 1 else sep

    def fail(cause: Exception | None = None) -> RatingFileError:
        return _malformed(block, name, sep, start, rating_range, cause, lines_before)

    if parsed.translate(None, b"0123456789.\r\n" + field.encode()):
        raise fail()
    # pandas would silently turn a fifth column on *every* line into the index: count the first line's fields.
    first = _line_at(parsed.lstrip(b"\r\n"), 0)
    if first.count(field.encode()) != len(RATING_FIELDS) - 1:
        raise fail()
    if b"." in parsed and not _dots_in_rating_field(parsed, field):
        raise fail()
    try:
        frame = pd.read_csv(io.BytesIO(parsed), sep=field, header=None, names=list(_RATING_DTYPES),
                            dtype=_RATING_DTYPES, quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, OverflowError) as error:  # pandas' ParserError is a ValueError
        raise fail(error) from error
    low, high = rating_range
    rating = frame["user_rating"].to_numpy()
    if not ((rating >= low) & (rating <= high)).all():  # also NaN: an empty rating field
        raise fail()
    return {"user_id": _narrow(frame["user_id"].to_numpy()), "movie_id": _narrow(frame["movie_id"].to_numpy()),
            "user_rating": rating, "timestamp": frame["timestamp"].to_numpy()}


def _dots_in_rating_field(text: bytes, field: str) -> bool:
    """Every '.' sits in a line's third field (the checked text holds only digits, separators, dots and
    line ends): the separator-or-line-end bytes around it are separator, separator | dot | separator."""
    raw = np.frombuffer(text, np.uint8)
    marks = raw[raw < ord("0")]  # separators, dots, CR, LF (digits are 0x30-0x39), in text order
    dots = np.flatnonzero(marks == ord("."))
    sep = ord(field)
    if not len(dots) or dots[0] < 2 or dots[-1] + 1 >= len(marks):
        return not len(dots)
    return bool((marks[dots - 1] == sep).all() and (marks[dots - 2] == sep).all() and (marks[dots + 1] == sep).all())


def _line_at(raw: bytes, offset: int) -> bytes:
    """The line containing byte `offset`, without its newline."""
    begin = raw.rfind(b"\n", 0, offset) + 1
    end = raw.find(b"\n", offset)
    return raw[begin: len(raw) if end < 0 else end]


def _line_error(name: str, number: int, line: bytes, problem: str) -> RatingFileError:
    shown = line.rstrip(b"\r").decode("utf-8", errors="backslashreplace")[:80]
    return RatingFileError(f"{name} line {number}: {problem}: {shown!r}")


def _check_ascii(raw: bytes, name: str, lines_before: int = 0) -> None:
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
    raise _line_error(name, lines_before + raw.count(b"\n", 0, offset) + 1, line, problem)


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
               cause: Exception | None = None, lines_before: int = 0) -> RatingFileError:
    """The error for a block of a ratings file that failed a check: its first bad line, else pandas' complaint.

    Args:
      raw: the block (whole lines); `lines_before`: the file's lines before it, for the line numbers.
    """
    try:
        _check_ascii(raw, name, lines_before)
    except RatingFileError as error:
        return error
    found = _first_bad_line(raw, sep.encode(), start, rating_range)
    if found is not None:
        number, line, problem = found
        return _line_error(name, lines_before + number, line, problem)
    return RatingFileError(f"{name} is malformed: {cause or 'unreadable ratings'}")


def _check_last_line(raw: bytes, timestamps: np.ndarray, name: str, lines_before: int = 0) -> None:
    """A file that does not end with a newline and whose last timestamp is shorter than usual was cut short.

    Args:
      raw: the file's last block; timestamps: the last ones of the file; lines_before: the file's newlines.
    """
    if raw.endswith(b"\n") or len(timestamps) < 2:
        return
    digits = np.floor(np.log10(np.maximum(timestamps, 1))).astype(np.int64) + 1
    usual = int(np.median(digits[:-1]))
    if digits[-1] < usual:
        raise _line_error(name, lines_before + 1, _line_at(raw, len(raw) - 1),
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
    users = users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"],
                         users["occupation"], users["occupation"].map(schema.OCCUPATIONS_100K), users["zip"], True)
    ratings = _read_ratings_file(files, "u.data", "\t", "100k")
    return ratings, movies, users


def load_1m(files: FileSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items = _read_table(files.read_bytes("movies.dat"), "::", ["movie_id", "movie_title", "genres"])
    movies = make_movies(items["movie_id"], items["movie_title"], items["genres"].str.split("|"))
    users = _read_table(files.read_bytes("users.dat"), "::", ["user_id", "gender", "age", "occupation", "zip"])
    text = np.asarray(schema.OCCUPATIONS_1M, dtype=object)[users["occupation"].astype(int).to_numpy()]
    label = pd.Series(text).replace({"K-12 student": "student", "college/grad student": "student"})
    users = users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"], text, label,
                         users["zip"], False)
    ratings = _read_ratings_file(files, "ratings.dat", "::", "1m")
    return ratings, movies, users


def _read_ratings_file(files: FileSet, name: str, sep: str, variant: str, header: str | None = None):
    with files.open(name) as stream:
        return read_ratings(stream, files.describe(name), sep, variant, header)


def users_frame(user_id, age, gender, occupation_text, occupation_label, zip_code, raw_age: bool) -> pd.DataFrame:
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
    ratings = _read_ratings_file(files, "ratings.csv", ",", variant, header=CSV_RATINGS_HEADER)
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
