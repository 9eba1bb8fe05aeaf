"""Resumable Keras training shared by every model family.

`fit_resumable` wraps `model.fit`: after every epoch it (optionally) runs an
evaluation function, tracks the best value of a monitored metric (early
stopping with patience, best weights kept), and writes a checkpoint of the
model *and optimizer* with the history so far, atomically. Run it again after
an interruption and it continues from the last finished epoch.

Checkpoint folder:
  last/  ckpt files + state.json {"epoch", "history", "best", "best_epoch", "wait", "stopped"}
  best/  ckpt files of the best epoch so far (when a metric is monitored)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import tensorflow as tf

from movielens.io import CorruptFileError, atomic_directory, atomic_write_json, read_json

log = logging.getLogger(__name__)
EvaluateFn = Callable[[tf.keras.Model], Mapping[str, float]]


def _checkpoint(model: tf.keras.Model) -> tf.train.Checkpoint:
    if model.optimizer is not None:
        return tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return tf.train.Checkpoint(model=model)


def _build_optimizer(model: tf.keras.Model) -> None:
    """Creates the optimizer's slot variables so a restore fills them instead of deferring."""
    optimizer = model.optimizer
    if optimizer is not None and hasattr(optimizer, "build") and not getattr(optimizer, "_built", True):
        optimizer.build(model.trainable_variables)


class ResumableCheckpoint(tf.keras.callbacks.Callback):
    """Evaluates, early-stops and checkpoints after each epoch (see module docstring)."""

    def __init__(self, directory: Path, state: dict, evaluate: EvaluateFn | None, evaluate_every: int,
                 monitor: str | None, mode: str, patience: int | None, verbose: int):
        super().__init__()
        self.directory = Path(directory)
        self.state = state
        self.evaluate, self.evaluate_every = evaluate, max(1, evaluate_every)
        self.monitor, self.sign, self.patience = monitor, (1.0 if mode == "max" else -1.0), patience
        self.verbose = verbose
        self.best_weights = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch_seconds"] = time.perf_counter() - self._epoch_start
        completed = epoch + 1
        if self.evaluate is not None and completed % self.evaluate_every == 0:
            started = time.perf_counter()
            logs.update({k: float(v) for k, v in self.evaluate(self.model).items()})
            logs["eval_seconds"] = time.perf_counter() - started
            if self.verbose:
                shown = ", ".join(f"{k}={v:.4f}" for k, v in logs.items() if not k.endswith("seconds"))
                print(f"epoch {completed}: {shown}", flush=True)
        history = self.state["history"]
        history.setdefault("epoch", []).append(completed)
        for key in set(history) | set(logs):
            if key != "epoch":
                history.setdefault(key, [None] * (len(history["epoch"]) - 1))
                history[key].append(float(logs[key]) if key in logs else None)
        improved = False
        if self.monitor and self.monitor in logs and not math.isnan(logs[self.monitor]):
            value = float(logs[self.monitor])
            best = self.state.get("best")
            if best is None or self.sign * value > self.sign * best:
                self.state.update(best=value, best_epoch=completed, wait=0)
                self.best_weights = self.model.get_weights()
                improved = True
            else:
                self.state["wait"] = self.state.get("wait", 0) + 1
                if self.patience is not None and self.state["wait"] >= self.patience:
                    self.state["stopped"] = True
                    self.model.stop_training = True
        self.state["epoch"] = completed
        if improved:
            with atomic_directory(self.directory / "best") as tmp:
                _checkpoint(self.model).write(str(tmp / "ckpt"))
        with atomic_directory(self.directory / "last") as tmp:
            _checkpoint(self.model).write(str(tmp / "ckpt"))
            atomic_write_json(tmp / "state.json", self.state)


def fit_resumable(
    model: tf.keras.Model,
    train_data,
    *,
    epochs: int,
    checkpoint_dir: str | Path,
    evaluate: EvaluateFn | None = None,
    evaluate_every: int = 1,
    monitor: str | None = None,
    mode: str = "max",
    patience: int | None = None,
    restore_best: bool = True,
    verbose: int = 1,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    **fit_kwargs,
) -> dict:
    """Trains `model` (already compiled) for `epochs`, resuming from `checkpoint_dir` if a run was interrupted.

    Args:
      evaluate: called as evaluate(model) -> {metric: value} every `evaluate_every` epochs;
        its metrics join the history (Keras `validation_data` works too, via fit_kwargs).
      monitor: a history key to early-stop on / keep the best weights of ("max" or "min" `mode`).
      patience: evaluations without improvement before stopping (None: never stop early).

    Returns:
      The whole history, {"epoch": [1, 2, ...], metric: [...], "best_epoch": int | None}; keys
      missing in some epochs (evaluation every N epochs) hold None there.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    directory = Path(checkpoint_dir)
    state = {"epoch": 0, "history": {}, "best": None, "best_epoch": None, "wait": 0, "stopped": False}
    last = directory / "last"
    if (last / "state.json").is_file():
        try:
            state = read_json(last / "state.json")
            _build_optimizer(model)
            _checkpoint(model).read(str(last / "ckpt")).expect_partial()
        except (CorruptFileError, tf.errors.OpError, ValueError) as error:
            raise CorruptFileError(f"cannot resume from {last}: {error}; rerun with --retrain") from error
        print(f"Resuming from epoch {state['epoch']} checkpoint in {directory}", flush=True)
    callback = ResumableCheckpoint(directory, state, evaluate, evaluate_every, monitor, mode, patience, verbose)
    if state["epoch"] < epochs and not state.get("stopped"):
        model.fit(train_data, epochs=epochs, initial_epoch=state["epoch"], verbose=verbose,
                  callbacks=[*callbacks, callback], **fit_kwargs)
    if restore_best and monitor and state.get("best_epoch") is not None:
        if callback.best_weights is not None:
            model.set_weights(callback.best_weights)
        else:
            tf.train.Checkpoint(model=model).read(str(directory / "best" / "ckpt")).expect_partial()
    history = dict(state["history"])
    history["best_epoch"] = state.get("best_epoch")
    return history
