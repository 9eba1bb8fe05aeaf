"""Readers for the original GroupLens files, one per layout, from a folder or a zip.

Layouts:
- `100k`: `u.data` (tab), `u.item` (`|`, latin-1, 19 genre flags), `u.user` (`|`).
- `1m`: `ratings.dat`, `movies.dat` (latin-1), `users.dat`, all `::`-separated.
- `20m`, `25m`, `latest-small`: `ratings.csv`, `movies.csv` (quoted, UTF-8), optional `links.csv`.

Parsing is vectorised (pandas' C parser); the `::` separator is rewritten to a
single byte first because pandas would otherwise fall back to its slow Python engine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
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


class DataNotFoundError(FileNotFoundError):
    """The GroupLens files for a variant are not where we were told to look."""


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
    if root.is_file() and root.suffix == ".zip":
        found = _zip_fileset(root, marker)
        if found:
            candidates.append(found)
    elif root.is_dir():
        folder = root / FOLDER_NAMES[variant]
        archive = root / f"{FOLDER_NAMES[variant]}.zip"
        for place in (root, folder):
            if any((place / name).is_file() for name in needed):
                candidates.append(FileSet(place))
        if archive.is_file():
            found = _zip_fileset(archive, marker)
            if found:
                candidates.append(found)
    else:
        raise DataNotFoundError(f"data dir {root} does not exist")
    for files in candidates:
        missing = [name for name in needed if not files.exists(name)]
        if not missing:
            return files
    if candidates:
        missing = [name for name in needed if not candidates[0].exists(name)]
        raise DataNotFoundError(f"{candidates[0]} lacks {', '.join(missing)} needed for MovieLens {variant}")
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


def _read_ratings(raw: bytes, sep: str) -> pd.DataFrame:
    frame = _read_table(raw, sep, ["user_id", "movie_id", "user_rating", "timestamp"], dtype={
        "user_id": str, "movie_id": str, "user_rating": np.float32, "timestamp": np.int64})
    return frame


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
    ratings = _read_ratings(files.read_bytes("u.data"), "\t")
    return ratings, movies, users


def load_1m(files: FileSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items = _read_table(files.read_bytes("movies.dat"), "::", ["movie_id", "movie_title", "genres"])
    movies = make_movies(items["movie_id"], items["movie_title"], items["genres"].str.split("|"))
    users = _read_table(files.read_bytes("users.dat"), "::", ["user_id", "gender", "age", "occupation", "zip"])
    text = np.asarray(schema.OCCUPATIONS_1M, dtype=object)[users["occupation"].astype(int).to_numpy()]
    label = pd.Series(text).replace({"K-12 student": "student", "college/grad student": "student"})
    users = _users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"], text, label,
                         users["zip"], False)
    ratings = _read_ratings(files.read_bytes("ratings.dat"), "::")
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


def load_current(files: FileSet) -> tuple[pd.DataFrame, pd.DataFrame, None]:
    items = pd.read_csv(io.BytesIO(files.read_bytes("movies.csv")), dtype=str, keep_default_na=False)
    imdb = None
    if files.exists("links.csv"):
        links = pd.read_csv(io.BytesIO(files.read_bytes("links.csv")), dtype=str, keep_default_na=False)
        by_movie = dict(zip(links["movieId"], links["imdbId"]))
        imdb = ["tt" + by_movie[m].zfill(7) if by_movie.get(m) else "" for m in items["movieId"]]
    movies = make_movies(items["movieId"], items["title"], items["genres"].str.split("|"), imdb)
    ratings = pd.read_csv(io.BytesIO(files.read_bytes("ratings.csv")),
                          dtype={"userId": str, "movieId": str, "rating": np.float32, "timestamp": np.int64})
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "movie_id", "rating": "user_rating"})
    return ratings, movies, None


LOADERS = {"100k": load_100k, "1m": load_1m, "20m": load_current, "25m": load_current, "latest-small": load_current}


def load_grouplens(variant: str, files: FileSet) -> MovieLensData:
    """Reads the GroupLens files of `variant` into the TFDS schema."""
    ratings, movies, users = LOADERS[schema.check_variant(variant)](files)
    return assemble(variant, f"local:{files}", ratings, movies, users)
