"""`saved_models/<readable name>-<config hash>/`: one folder per trained model.

A finished model folder holds:
  config.json   everything that determines the model (the cache key hashes it)
  history.json  per-epoch metrics, {"epoch": [...], "<metric>": [...]}
  metrics.json  final evaluation, {"<metric>": float, ...}
  weights/      the trained weights (TensorFlow checkpoint)
  (+ anything model specific, e.g. vocabularies.json)
and `complete` is written last. A folder without `complete` is an interrupted
run: its `checkpoint/` subfolder is where training resumes from. A run that failed
for good (training diverged) is `discard`ed; a finished folder found unreadable is
`move_aside`d to `<name>.broken-<timestamp>/`, kept for inspection, never loaded.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from movielens import paths
from movielens.config import config_hash
from movielens.io import CorruptFileError, atomic_write_json, atomic_write_text, read_json

COMPLETE_MARKER = "complete"


def readable_name(*parts: Any) -> str:
    """'two_tower', ['timestamp', 'movie_genres'] -> 'two_tower-timestamp+movie_genres' (filesystem safe)."""
    pieces = []
    for part in parts:
        if isinstance(part, (list, tuple)):
            part = "+".join(str(p) for p in part) or "none"
        pieces.append(re.sub(r"[^A-Za-z0-9_.+]+", "_", str(part)))
    return "-".join(p for p in pieces if p)


class ModelDir:
    """The folder of one model configuration.

    Args:
      name: readable prefix, e.g. from `readable_name`.
      config: JSON-able mapping that fully determines the model; hashed into the folder name.
      root: the `saved_models/` folder (default `movielens.paths.models_dir()`).
    """

    def __init__(self, name: str, config: Mapping[str, Any], root: str | Path | None = None):
        self.config = dict(config)
        self.hash = config_hash(self.config)
        self.path = Path(root or paths.models_dir()) / f"{name}-{self.hash}"

    def __repr__(self) -> str:
        return f"ModelDir({self.path})"

    @property
    def weights_prefix(self) -> Path:
        return self.path / "weights" / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def is_complete(self) -> bool:
        """True when a finished model is here and its config matches (a hash collision or edit is caught)."""
        if not (self.path / COMPLETE_MARKER).is_file():
            return False
        try:
            return read_json(self.path / "config.json") == _json_roundtrip(self.config)
        except (CorruptFileError, FileNotFoundError):
            return False

    def start(self, retrain: bool = False) -> None:
        """Prepares the folder for training; `retrain` discards any earlier result and checkpoint."""
        if retrain and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / COMPLETE_MARKER).unlink(missing_ok=True)
        atomic_write_json(self.path / "config.json", self.config)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    def discard(self) -> None:
        """Removes the folder of a failed run (e.g. diverged training), so nothing resumes from or loads it.

        The folder is renamed away first, so a concurrent reader sees it whole or not at all.
        """
        doomed = self.path.with_name(f".{self.path.name}.discarded-{os.getpid()}-{time.time_ns()}")
        try:
            os.replace(self.path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def move_aside(self, reason: str) -> Path:
        """Renames a broken model folder to `<name>.broken-<timestamp>` (atomically) and returns the new path.

        The folder is kept for inspection, with `reason` in its `BROKEN.txt`, but no `ModelDir`
        ever points at it again, so it is never loaded or resumed. Prints nothing: the caller says
        what happened.
        """
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.path.with_name(f"{self.path.name}.broken-{stamp}-{suffix}")
        os.rename(self.path, target)
        try:
            atomic_write_text(target / "BROKEN.txt", reason.rstrip("\n") + "\n")
        except OSError:  # a full or read-only disk must not hide the rename, which already happened
            pass
        return target

    def finish(self, history: Mapping[str, list], metrics: Mapping[str, float]) -> None:
        """Writes history and metrics, drops the resume checkpoint, then marks the folder complete."""
        self.write_json("history.json", dict(history))
        self.write_json("metrics.json", dict(metrics))
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        atomic_write_text(self.path / COMPLETE_MARKER, self.hash + "\n")


def _json_roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def save_weights(model, prefix: Path) -> None:
    """Writes a TF checkpoint of `model`'s variables to `prefix`, atomically (temp folder, then rename)."""
    import tensorflow as tf

    from movielens.io import atomic_directory

    with atomic_directory(prefix.parent) as tmp:
        tf.train.Checkpoint(model=model).write(str(tmp / prefix.name))


def load_weights(model, prefix: Path) -> None:
    """Restores `model`'s variables; every saved variable must match one of the model's.

    Raises:
      CorruptFileError: one line naming `prefix`, whatever went wrong: no checkpoint, a truncated or
        corrupt file (TensorFlow raises IndexError, DataLossError, other OpErrors, ValueError, ...
        depending on where the damage is), or variables that do not fit the model.
    """
    import tensorflow as tf

    if not Path(str(prefix) + ".index").is_file():
        raise CorruptFileError(f"no weights at {prefix}; retrain with --retrain")
    try:
        tf.train.Checkpoint(model=model).read(str(prefix)).assert_existing_objects_matched().expect_partial()
    except Exception as error:  # any failure to restore means the files are damaged or not this model's
        raise CorruptFileError(f"weights at {prefix} are unreadable or do not fit the model "
                               f"({type(error).__name__}: {_first_line(error)}); retrain with --retrain") from error


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else "no details"
