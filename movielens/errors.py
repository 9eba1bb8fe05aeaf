"""The errors a user can cause or meet (bad id, title, file, flag; no network; a full disk; Ctrl-C), and
`run_cli`, which turns them into one line on stderr and an exit code instead of a traceback.

Exit codes: 0 success (whatever the body returns), 2 a user error or a disk problem, 130 interrupted.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

from movielens.data.grouplens import DataNotFoundError, RatingFileError
from movielens.data.loader import DataUnavailableError
from movielens.io import CorruptFileError
from movielens.titles import UnknownTitleError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted; rerun the same command to resume (checkpoints are kept)"


class TrainingDivergedError(ValueError):
    """The training loss became nan or inf; the run's checkpoint was removed, so nothing resumes from it."""

    def __init__(self, epoch: int, loss: float, batch: int | None = None, key: str = "loss"):
        where = f"epoch {epoch}" + (f", batch {batch}" if batch is not None else "")
        super().__init__(f"training diverged at {where} ({key}={loss}); lower --learning_rate")
        self.epoch, self.loss, self.batch = epoch, loss, batch


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the epoch it happened in (the message says how to resume)."""

    def __init__(self, epoch: int, saved_epoch: int):
        saved = f"epoch {saved_epoch} is checkpointed" if saved_epoch else "no epoch was finished yet"
        super().__init__(f"interrupted at epoch {epoch} ({saved}); rerun the same command to resume")
        self.epoch, self.saved_epoch = epoch, saved_epoch


USER_ERRORS = (ValueError, KeyError, UnknownTitleError, DataUnavailableError, DataNotFoundError, CorruptFileError,
               FileNotFoundError, RatingFileError, TrainingDivergedError)

_DISK_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and rerun (finished work is kept)",
    errno.EDQUOT: "the disk quota is exceeded; free some space and rerun (finished work is kept)",
    errno.EROFS: "the file system is read-only; point MOVIELENS_MODELS_DIR / MOVIELENS_DATASETS_DIR elsewhere",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "expected a file, found a folder",
}


def describe_os_error(error: OSError) -> str:
    """One line naming the path and the cause, e.g. "cannot write /x/y: No space left on device (the disk is ...)"."""
    paths = [os.fsdecode(p) for p in (error.filename, error.filename2) if p is not None]
    cause = error.strerror or str(error) or type(error).__name__
    hint = _DISK_HINTS.get(error.errno)
    if hint and hint.lower() != cause.lower():
        cause = f"{cause} ({hint})"
    return f"{' -> '.join(paths)}: {cause}" if paths else cause


def _tensorflow_disk_error(error: BaseException) -> str | None:
    """The message of a TensorFlow error raised by writing or reading files (disk full, bad path), else None.

    TensorFlow is only inspected when it is already imported: without it, none of its errors can occur.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    kinds = (tf.errors.ResourceExhaustedError, tf.errors.FailedPreconditionError, tf.errors.PermissionDeniedError,
             tf.errors.NotFoundError, tf.errors.DataLossError)
    if not isinstance(error, kinds):
        return None
    text = str(getattr(error, "message", "") or error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return f"{type(error).__name__}: {first}"


def run_cli(function: Callable[[Any], int | None], args: Any) -> int:
    """Runs a CLI body `function(args)`; returns its exit code (None counts as 0).

    - user errors (`USER_ERRORS`): "error: <message>" on one line of stderr, exit 2;
    - Ctrl-C: one line (a `TrainingInterrupted` says at which epoch), exit 130;
    - disk problems (OSError such as ENOSPC, EROFS, EACCES, ENOTDIR; TensorFlow's ResourceExhausted,
      FailedPrecondition, PermissionDenied, NotFound, DataLoss errors from reading or writing files):
      "error: <path>: <cause>" on one line, exit 2.
    Anything else propagates with its traceback: it is a bug.
    """
    try:
        code = function(args)
    except KeyboardInterrupt as error:
        message = str(error) if isinstance(error, TrainingInterrupted) else INTERRUPTED_MESSAGE
        print(message, file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        return _fail(_message(error))
    except OSError as error:
        return _fail(describe_os_error(error))
    except Exception as error:
        message = _tensorflow_disk_error(error)
        if message is None:
            raise
        return _fail(message)
    return 0 if code is None else int(code)


def _message(error: BaseException) -> str:
    """What to print for a user error: an OSError as "path: cause", a KeyError without its repr quotes."""
    if isinstance(error, OSError) and error.errno is not None:
        return describe_os_error(error)
    if isinstance(error, KeyError) and len(error.args) == 1:
        return str(error.args[0])
    return str(error)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR
