"""Resumable Keras training shared by every model family.

`fit_resumable` wraps `model.fit`: after every epoch it (optionally) runs an
evaluation function, tracks the best value of a monitored metric (early
stopping with patience, best weights kept), and writes a checkpoint of the
model *and optimizer* with the history so far, atomically. Run it again after
an interruption and it continues from the last finished epoch.

Honest failures:
- a nan or inf training loss stops training with `TrainingDivergedError` and the
  checkpoint folder is removed, so nothing resumes from a diverged state;
- a non-finite evaluation metric is recorded but never becomes the "best";
- Ctrl-C becomes `TrainingInterrupted`, which says the epoch and how to resume.

Exact resumption: give the training data as `EpochData` (epoch -> that epoch's
batches, a function of (seed, epoch) only, e.g. `shuffled_batches`). A plain
`tf.data.Dataset` that reshuffles per iteration restarts its shuffle sequence in
a new process, so a resumed run would see epoch 0's order again.

Learning-rate decay on a plateau (`PlateauDecay`, Keras' ReduceLROnPlateau made resumable): after every
`patience` evaluations in a row without a better monitored value the rate's scale is multiplied by
`factor`; the scale is part of the checkpoint state, so a resumed run continues at the same rate.

Checkpoint folder:
  last/  ckpt files + state.json {"epoch", "history", "best", "best_epoch", "wait", "stopped", "lr_scale"}
  best/  ckpt files of the best epoch so far (when a metric is monitored)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from movielens.distribute import replica_batches
from movielens.errors import TrainingDivergedError, TrainingInterrupted
from movielens.io import CorruptFileError, atomic_directory, atomic_write_json, read_json, remove_directory

log = logging.getLogger(__name__)
EvaluateFn = Callable[[tf.keras.Model], Mapping[str, float]]
# How often (in Keras batch callbacks, i.e. executions) the loss is checked for nan/inf inside an epoch.
DIVERGENCE_CHECK_EVERY = 20


@dataclasses.dataclass(frozen=True)
class EpochData:
    """Training data as a function of the epoch, so a resumed run sees exactly the batches it would have.

    Attributes:
      make_epoch: epoch (0-based int64 scalar tensor) -> that epoch's dataset of exactly `steps_per_epoch`
        batches; traced once by tf.data, so it must use TensorFlow ops (stateless random ops seeded with
        (seed, epoch); `tf.data.Dataset.from_generator(..., args=(epoch,))` for NumPy code).
      steps_per_epoch: batches per epoch (checked at run time).
    """

    make_epoch: Callable[[tf.Tensor], tf.data.Dataset]
    steps_per_epoch: int

    def from_epoch(self, initial_epoch: int) -> tf.data.Dataset:
        """One endless stream: epoch `initial_epoch`'s batches, then the next epoch's, ..."""
        check = tf.data.experimental.assert_cardinality(self.steps_per_epoch)
        return (tf.data.Dataset.counter(start=initial_epoch, dtype=tf.int64)
                .flat_map(lambda epoch: self.make_epoch(epoch).apply(check))
                .prefetch(tf.data.AUTOTUNE))


@dataclasses.dataclass(frozen=True)
class PlateauDecay:
    """Multiply the learning rate by `factor` after every `patience` evaluations without improvement.

    `scale` is the variable the optimizer's schedule multiplies its rate by (`schedules.WarmupConstant`).
    """

    scale: tf.Variable
    factor: float
    patience: int

    def __post_init__(self):
        if not 0 < self.factor < 1 or self.patience < 1:
            raise ValueError(f"plateau decay needs 0 < factor < 1 and patience >= 1, got {self.factor}, "
                             f"{self.patience}")


def shuffled_batches(tensors, batch_size: int, seed: int) -> EpochData:
    """In-memory tensors (a nest of arrays sharing their first dimension n) -> `EpochData` of shuffled batches.

    Epoch e is the permutation `stateless_shuffle(range(n), seed=(seed, e))` cut into batches of
    `batch_size` (the last one smaller), each gathered at once: a function of (seed, e) only.
    """
    tensors = tf.nest.map_structure(tf.convert_to_tensor, tensors)
    n = int(tf.nest.flatten(tensors)[0].shape[0])
    steps = max(1, -(-n // batch_size))

    def make_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]))

        def batch(i):
            rows = order[i * batch_size:(i + 1) * batch_size]
            return tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors)

        return tf.data.Dataset.range(steps).map(batch)

    return EpochData(make_epoch, steps)


def _checkpoint(model: tf.keras.Model) -> tf.train.Checkpoint:
    if model.optimizer is not None:
        return tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return tf.train.Checkpoint(model=model)


def _build_optimizer(model: tf.keras.Model) -> None:
    """Creates the optimizer's slot variables so a restore fills them instead of deferring."""
    optimizer = model.optimizer
    if optimizer is not None and hasattr(optimizer, "build") and not getattr(optimizer, "_built", True):
        optimizer.build(model.trainable_variables)


def _non_finite_loss(logs: Mapping | None) -> tuple[str, float] | None:
    """(key, value) of the first loss in Keras logs that is nan or inf; None when all are finite."""
    for key, value in (logs or {}).items():
        if key == "loss" or key.endswith("_loss"):
            values = np.asarray(value, dtype=np.float64)
            if not np.isfinite(values).all():
                return key, float(values[~np.isfinite(values)].flat[0])
    return None


class DivergenceGuard(tf.keras.callbacks.Callback):
    """Stops a diverging run within `every` batch callbacks instead of at the end of the epoch.

    Keras' batch-level loss is the running mean of the epoch so far, so a nan or inf stays visible
    until the epoch ends (where `ResumableCheckpoint` checks again, before saving anything).
    """

    def __init__(self, every: int = DIVERGENCE_CHECK_EVERY):
        super().__init__()
        self.every = max(1, every)
        self._supports_tf_logs = True  # the loss tensor is only read (a device sync) when checked
        self._epoch = 0
        self._calls = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._calls += 1
        if self._calls % self.every == 1 or self.every == 1:
            broken = _non_finite_loss(logs)
            if broken:
                raise TrainingDivergedError(self._epoch + 1, broken[1], batch=batch + 1, key=broken[0])


class ResumableCheckpoint(tf.keras.callbacks.Callback):
    """Evaluates, early-stops and checkpoints after each epoch (see module docstring)."""

    def __init__(self, directory: Path, state: dict, evaluate: EvaluateFn | None, evaluate_every: int,
                 monitor: str | None, mode: str, patience: int | None, verbose: int,
                 tensorboard_dir: Path | None = None, plateau: PlateauDecay | None = None):
        super().__init__()
        self.directory = Path(directory)
        # The evaluation metrics, per epoch, beside the Keras TensorBoard callback's training logs.
        self.writer = tf.summary.create_file_writer(str(tensorboard_dir / "validation")) if tensorboard_dir else None
        self.state = state
        self.saved_epoch = int(state.get("epoch", 0))
        self.evaluate, self.evaluate_every = evaluate, max(1, evaluate_every)
        self.monitor, self.sign, self.patience = monitor, (1.0 if mode == "max" else -1.0), patience
        self.verbose, self.plateau = verbose, plateau
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        broken = _non_finite_loss(logs)
        if broken:  # before anything is recorded or saved
            raise TrainingDivergedError(completed, broken[1], key=broken[0])
        logs = dict(logs or {})
        logs["epoch_seconds"] = time.perf_counter() - self._epoch_start
        if self.plateau is not None:  # the scale this epoch trained with
            logs["lr_scale"] = float(self.state.get("lr_scale", 1.0))
        if self.evaluate is not None and completed % self.evaluate_every == 0:
            started = time.perf_counter()
            logs.update({k: float(v) for k, v in self.evaluate(self.model).items()})
            logs["eval_seconds"] = time.perf_counter() - started
            if self.writer is not None:
                with self.writer.as_default():
                    for key, value in logs.items():
                        if key.startswith("val_") and math.isfinite(value):
                            tf.summary.scalar(key, value, step=completed)
                self.writer.flush()
            if self.verbose:
                shown = ", ".join(f"{k}={v:.4f}" for k, v in logs.items() if not k.endswith("seconds"))
                print(f"epoch {completed}: {shown}", flush=True)
        history = self.state["history"]
        history.setdefault("epoch", []).append(completed)
        for key in set(history) | set(logs):
            if key != "epoch":
                history.setdefault(key, [None] * (len(history["epoch"]) - 1))
                history[key].append(float(logs[key]) if key in logs else None)
        improved = self._track_best(logs)
        self.state["epoch"] = completed
        if improved:
            with atomic_directory(self.directory / "best") as tmp:
                _checkpoint(self.model).write(str(tmp / "ckpt"))
        with atomic_directory(self.directory / "last") as tmp:
            _checkpoint(self.model).write(str(tmp / "ckpt"))
            atomic_write_json(tmp / "state.json", self.state)
        self.saved_epoch = completed

    def _track_best(self, logs: Mapping[str, float]) -> bool:
        """Updates best / wait / stopped from the monitored metric; True when this epoch is the new best.

        A nan or inf value is never the best: it counts as an evaluation without improvement.
        """
        if not self.monitor or self.monitor not in logs:
            return False
        value = float(logs[self.monitor])
        best = self.state.get("best")
        if math.isfinite(value) and (best is None or self.sign * value > self.sign * best):
            self.state.update(best=value, best_epoch=self.state["history"]["epoch"][-1], wait=0)
            return True
        if not math.isfinite(value):
            log.warning("%s is %s at epoch %d; not a candidate for the best epoch", self.monitor, value,
                        self.state["history"]["epoch"][-1])
        self.state["wait"] = self.state.get("wait", 0) + 1
        if self.patience is not None and self.state["wait"] >= self.patience:
            self.state["stopped"] = True
            self.model.stop_training = True
        elif self.plateau is not None and self.state["wait"] % self.plateau.patience == 0:
            self.state["lr_scale"] = float(self.state.get("lr_scale", 1.0)) * self.plateau.factor
            self.plateau.scale.assign(self.state["lr_scale"])
            if self.verbose:
                print(f"{self.monitor} has not improved for {self.state['wait']} evaluations: learning rate "
                      f"scaled to {self.state['lr_scale']:g}x", flush=True)
        return False


def fit_resumable(
    model: tf.keras.Model,
    train_data: tf.data.Dataset | EpochData,
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
    tensorboard_dir: str | Path | None = None,
    plateau: PlateauDecay | None = None,
    **fit_kwargs,
) -> dict:
    """Trains `model` (already compiled) for `epochs`, resuming from `checkpoint_dir` if a run was interrupted.

    Args:
      train_data: an `EpochData` (exact resumption: the resumed run sees the batches an uninterrupted
        run would have) or any dataset `model.fit` takes (resumed runs restart its shuffling sequence).
      evaluate: called as evaluate(model) -> {metric: value} every `evaluate_every` epochs;
        its metrics join the history (Keras `validation_data` works too, via fit_kwargs).
      monitor: a history key to early-stop on / keep the best weights of ("max" or "min" `mode`).
      patience: evaluations without improvement before stopping (None: never stop early).
      plateau: lower the learning rate when `monitor` stalls (see `PlateauDecay`); needs `monitor`.
      tensorboard_dir: TensorBoard logs of this run (Keras' callback: training loss per epoch; plus the
        evaluation metrics under validation/); default `<checkpoint_dir's parent>/tensorboard`, i.e. the
        model's own folder in saved_models/ (`tensorboard --logdir saved_models`).

    Returns:
      The whole history, {"epoch": [1, 2, ...], metric: [...], "best_epoch": int | None}; keys
      missing in some epochs (evaluation every N epochs) hold None there.

    Raises:
      TrainingDivergedError: the loss became nan/inf; `checkpoint_dir` has been removed.
      TrainingInterrupted: Ctrl-C; the last finished epoch stays checkpointed for the rerun.
      CorruptFileError: the checkpoint to resume from is unreadable.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    directory = Path(checkpoint_dir)
    board = Path(tensorboard_dir) if tensorboard_dir else directory.parent / "tensorboard"
    if plateau is not None and not monitor:
        raise ValueError("a plateau decay needs a monitored metric")
    state = _resume(model, directory)
    if plateau is not None:
        plateau.scale.assign(float(state.get("lr_scale", 1.0)))
    callback = ResumableCheckpoint(directory, state, evaluate, evaluate_every, monitor, mode, patience, verbose,
                                   board, plateau)
    tensorboard = tf.keras.callbacks.TensorBoard(str(board), write_graph=False, update_freq="epoch",
                                                 profile_batch=0)
    if state["epoch"] < epochs and not state.get("stopped"):
        if isinstance(train_data, EpochData):
            fit_kwargs.setdefault("steps_per_epoch", train_data.steps_per_epoch)
            epochs_from, first = train_data.from_epoch, state["epoch"]
            if model.distribute_strategy.num_replicas_in_sync > 1:  # each replica its slice of every batch
                train_data = replica_batches(lambda: epochs_from(first), model.distribute_strategy)
            else:
                train_data = epochs_from(first)
        try:
            model.fit(train_data, epochs=epochs, initial_epoch=state["epoch"], verbose=verbose,
                      callbacks=[*callbacks, DivergenceGuard(), tensorboard, callback], **fit_kwargs)
        except TrainingDivergedError:
            _remove(directory)
            _remove(board)
            raise
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, TrainingInterrupted):
                raise
            raise TrainingInterrupted(callback.saved_epoch + 1, callback.saved_epoch) from None
    if restore_best and monitor and state.get("best_epoch") is not None:
        # Always from the checkpoint (whether or not this run saw the best epoch): the model then ends in the
        # same state (weights, and the optimizer and random-generator states it tracks) resumed or not.
        _read_checkpoint(tf.train.Checkpoint(model=model), directory / "best", "restore the best epoch from")
    history = dict(state["history"])
    history["best_epoch"] = state.get("best_epoch")
    return history


def _resume(model: tf.keras.Model, directory: Path) -> dict:
    """The saved training state (model and optimizer restored from `directory/last`), or a fresh one."""
    state = {"epoch": 0, "history": {}, "best": None, "best_epoch": None, "wait": 0, "stopped": False,
             "lr_scale": 1.0}
    last = directory / "last"
    if not (last / "state.json").is_file():
        return state
    try:
        state = read_json(last / "state.json")
    except CorruptFileError as error:
        raise CorruptFileError(f"cannot resume from {last}: {error}; rerun with --retrain") from error
    _build_optimizer(model)
    _read_checkpoint(_checkpoint(model), last, "resume from")
    print(f"Resuming from epoch {state['epoch']} checkpoint in {directory}", flush=True)
    return state


def _read_checkpoint(checkpoint: tf.train.Checkpoint, folder: Path, purpose: str) -> None:
    """Restores `folder/ckpt`; any failure (truncated file: IndexError, DataLossError, ...) is a CorruptFileError."""
    try:
        checkpoint.read(str(folder / "ckpt")).expect_partial()
    except Exception as error:  # a damaged checkpoint fails in many ways, all of them "unreadable"
        first = (str(getattr(error, "message", "") or error).strip().splitlines() or [""])[0]
        raise CorruptFileError(f"cannot {purpose} {folder} ({type(error).__name__}: {first}); "
                               f"rerun with --retrain") from error


def _remove(directory: Path) -> None:
    """Deletes a checkpoint folder (renamed away first, so it is never half there)."""
    remove_directory(directory)
