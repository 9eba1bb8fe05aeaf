"""Resume is exact: a run killed after epoch k and resumed gives what an uninterrupted run gives.

For every family trained in epochs, through the shared `train_or_load` (the path every command takes):
one uninterrupted run; one run interrupted (Ctrl-C: a KeyboardInterrupt at the start of epoch k + 1, as in
`tests/test_training.py`) and then resumed by calling `train_or_load` again, which builds a fresh model as
a new process would and prints "Resuming from epoch k". Compared exactly, with no tolerance (the same ops
run on the same inputs in the same order, so the floats are the same bits):
  - the whole per-epoch history: training losses and validation metrics (only timings differ);
  - the family's reported metrics (test figures; timings aside);
  - every value in a TF checkpoint of the final model (the best epoch's: weights, optimizer slots and the
    random-generator states behind dropout masks, SASRec's sampled negatives and the two-tower's
    unknown-user draws), and in the last epoch's training checkpoint(s) of each run.
The data is the planted synthetic set of `tests/test_families.py` with its fast settings, shortened to 3
epochs with validation every epoch and no early stop; the sequential models train with dropout on (0.2)
so their dropout randomness must resume too, SASRec with the gBCE loss so its sampled negatives must.
The closed-form families (popularity, item_knn, ease) fit in one step and have nothing to resume.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

from movielens import trainer, training
from movielens.data.splits import random_split
from movielens.data.synthetic import synthetic_movielens
from movielens.errors import TrainingInterrupted
from movielens.families import REGISTRY, get_family
from movielens.families.base import Context, train_or_load
from movielens.models.bert4rec import Bert4RecConfig
from movielens.models.sasrec import SasRecConfig
from movielens.persistence import ModelDir
from movielens.sequential import Bert4RecTrainingConfig, SasRecTrainingConfig
from tests.test_families import SPEC

EPOCHS, INTERRUPTED_AFTER = 3, 1  # the resumed run trains 2 epochs: its data stream goes on past one epoch
_SEQUENTIAL = {"batch_size": 32, "epochs": EPOCHS, "evaluate_every": 1, "patience": 10, "warmup_steps": 0,
               "learning_rate": 1e-2}
# family -> (config overrides, which fit_resumable call of the run is interrupted: 1 = the first).
CASES = {
    "two_tower": ({"features": ("history",), "num_epochs": EPOCHS, "batch_size": 128, "unknown_user_rate": 0.3,
                   "patience": 10}, 1),
    "knn": ({"epochs": EPOCHS, "batch_size": 256, "patience": 10}, 1),
    "bert4rec": ({"model": Bert4RecConfig(max_len=16, hidden_dim=32, num_layers=1, num_heads=2, dropout=0.2),
                  "training": Bert4RecTrainingConfig(**_SEQUENTIAL)}, 1),
    "sasrec": ({"model": SasRecConfig(max_len=16, hidden_dim=32, num_layers=1, num_heads=1, dropout=0.2,
                                      loss="gbce", num_negatives=16),
                "training": SasRecTrainingConfig(**_SEQUENTIAL)}, 1),
    # The rating models refit on fit + validation for the early-stopped epoch count (their default): cf is
    # interrupted in that refit (its second fit_resumable; validation RMSE improves every epoch here, so the
    # refit has EPOCHS epochs), so the resumed run also comes back through the finished first stage.
    "cf": ({"epochs": EPOCHS, "refit_full": True, "patience": 10}, 2),
    "autorec": ({"epochs": EPOCHS, "n_factors": 32, "patience": 10}, 1),
}
CLOSED_FORM = {"popularity", "item_knn", "ease"}


def test_every_family_is_covered():
    assert set(CASES) | CLOSED_FORM == set(REGISTRY)


@pytest.fixture(scope="module")
def planted():
    data, _ = synthetic_movielens(SPEC)
    return data, random_split(data, (0.8, 0.1, 0.1), seed=42)


class _Interrupt(tf.keras.callbacks.Callback):
    """Ctrl-C at the start of epoch `after + 1`: epochs 1..after are finished and checkpointed."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.after:
            raise KeyboardInterrupt


def _interrupt_call(monkeypatch, call: int, after: int) -> None:
    """The `call`-th `fit_resumable` of the run (whichever family module calls it) gets an `_Interrupt`."""
    original, calls = training.fit_resumable, []

    def fit_resumable(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), _Interrupt(after)]
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "fit_resumable", fit_resumable)
    monkeypatch.setattr(trainer, "fit_resumable", fit_resumable)  # imported by name there


def _keep_checkpoints(monkeypatch, folder) -> None:
    """A finished model folder drops its training checkpoints: copied first, to `folder/<root name>/`."""
    finish = ModelDir.finish

    def keep_then_finish(self, history, metrics):
        shutil.copytree(self.checkpoint_dir, folder / self.path.parent.name)
        finish(self, history, metrics)

    monkeypatch.setattr(ModelDir, "finish", keep_then_finish)


def _network(state):
    """The trained tf.keras model inside a family's state."""
    if isinstance(state, tuple):  # two_tower: (model, tables)
        return state[0]
    return getattr(state, "model", state)  # knn: KnnState


def _checkpointed(model, path) -> dict[str, np.ndarray]:
    """Every value a TF checkpoint of `model` holds (weights, optimizer and random-generator states), by name."""
    return _read(tf.train.Checkpoint(model=model).write(str(path)))


def _read(prefix) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(prefix).removesuffix(".index"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE")}


def _without_timings(values: dict) -> dict:
    return {k: v for k, v in values.items() if "seconds" not in k and "per_second" not in k}


@pytest.mark.parametrize("name", list(CASES))
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(name, planted, tmp_path, monkeypatch, capsys):
    data, split = planted
    family = get_family(name)
    overrides, call = CASES[name]
    config = family.default_config().replace(**overrides)
    context = Context(data, split, verbose=0)
    _keep_checkpoints(monkeypatch, tmp_path / "kept")

    straight = train_or_load(family, config, context, root=tmp_path / "straight")

    with monkeypatch.context() as patch:
        _interrupt_call(patch, call, INTERRUPTED_AFTER)
        with pytest.raises(TrainingInterrupted, match=f"epoch {INTERRUPTED_AFTER} is checkpointed"):
            train_or_load(family, config, context, root=tmp_path / "resumed")
    capsys.readouterr()
    resumed = train_or_load(family, config, context, root=tmp_path / "resumed")  # builds a fresh model
    assert f"resuming from epoch {INTERRUPTED_AFTER}" in capsys.readouterr().out.lower()
    assert not resumed.loaded

    assert _without_timings(resumed.history) == _without_timings(straight.history)
    assert len(straight.history["epoch"]) == EPOCHS
    validation = [key for key in straight.history if key.startswith("val_")]
    assert validation and all(None not in straight.history[key] for key in validation)  # every epoch
    assert _without_timings(resumed.metrics) == _without_timings(straight.metrics)
    # The final models (the best epoch's) and the last epoch's training checkpoints (optimizer included).
    pairs = [(_checkpointed(_network(straight.state), tmp_path / "check" / "straight"),
              _checkpointed(_network(resumed.state), tmp_path / "check" / "resumed"))]
    lasts = sorted((tmp_path / "kept" / "straight").glob("**/last/ckpt.index"))
    assert lasts
    for last in lasts:
        other = tmp_path / "kept" / "resumed" / last.relative_to(tmp_path / "kept" / "straight")
        pairs.append((_read(last), _read(other)))
    for expected, actual in pairs:
        assert sorted(actual) == sorted(expected)
        if name in ("two_tower", "bert4rec", "sasrec"):  # their randomness lives in checkpointed generators
            assert any("generator" in key for key in expected), sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
