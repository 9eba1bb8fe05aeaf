"""ML-100K from a package registry: the copy inside PyPI's `recbole==1.2.1` wheel.

GroupLens and TFDS downloads may be unreachable where PyPI is not. RecBole ships
ML-100K as atomic files (`ml-100k.inter/.item/.user`). Its item titles lack the
year, which sits in its own column, so "Title (Year)" is rebuilt (every rebuilt
title equals the original `u.item` title once that file's trailing spaces are
stripped; RecBole misspells movie 267 "unknown" as "unkonwn").
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from movielens.data.grouplens import users_frame
from movielens.data.schema import OCCUPATIONS_100K
from movielens.data.table import MovieLensData, assemble, make_movies
from movielens.io import atomic_directory

PACKAGE = "recbole==1.2.1"
WHEEL = "recbole-1.2.1-py3-none-any.whl"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MEMBERS = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
DOWNLOAD_TIMEOUT_S = 60


class RegistryUnavailableError(RuntimeError):
    """The package registry could not provide the wheel."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(cache_dir: Path) -> Path:
    """Returns a folder with RecBole's ML-100K files, downloading the wheel once.

    The wheel is fetched with `pip download --no-deps` (so pip's own index
    configuration applies), checked against its sha256, and only the three
    data files are kept, written atomically.
    """
    target = cache_dir / "registry" / "recbole-1.2.1-ml-100k"
    if all((target / name).is_file() for name in MEMBERS):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--timeout", "15", "--retries", "1", "--dest", tmp, PACKAGE]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise RegistryUnavailableError(f"`pip download {PACKAGE}` took over {DOWNLOAD_TIMEOUT_S}s") from error
        wheel = Path(tmp) / WHEEL
        if result.returncode != 0 or not wheel.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RegistryUnavailableError(f"`pip download {PACKAGE}` failed: {tail[0]}")
        actual = sha256(wheel)
        if actual != WHEEL_SHA256:
            raise RegistryUnavailableError(f"{WHEEL} has sha256 {actual}, expected {WHEEL_SHA256}; refusing it")
        with zipfile.ZipFile(wheel) as archive, atomic_directory(target) as out:
            for name in MEMBERS:
                (out / name).write_bytes(archive.read(MEMBER_DIR + name))
    return target


def _read_atomic(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def load(cache_dir: Path) -> MovieLensData:
    folder = fetch(cache_dir)
    items = _read_atomic(folder / "ml-100k.item")
    for column in ("movie_title", "release_year"):
        items[column] = items[column].replace("unkonwn", "unknown")
    title = np.where(items["release_year"] == "unknown", items["movie_title"],
                     items["movie_title"] + " (" + items["release_year"] + ")")
    movies = make_movies(items["item_id"], title, items["class"].str.split(" "))
    users = _read_atomic(folder / "ml-100k.user")
    users = users_frame(users["user_id"], users["age"].astype(np.float32), users["gender"], users["occupation"],
                         users["occupation"].map(OCCUPATIONS_100K), users["zip_code"], True)
    inter = pd.read_csv(io.BytesIO((folder / "ml-100k.inter").read_bytes()), sep="\t",
                        dtype={0: str, 1: str, 2: np.float32, 3: np.float64})
    inter.columns = ["user_id", "movie_id", "user_rating", "timestamp"]
    inter["timestamp"] = inter["timestamp"].astype(np.int64)
    return assemble("100k", f"registry:{PACKAGE}", inter, movies, users)
