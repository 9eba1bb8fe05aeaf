"""fit_resumable: checkpoints, resumes where it stopped (optimizer state included), early-stops."""

import numpy as np
import pytest
import tensorflow as tf

from movielens.training import fit_resumable


def _model():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="mse")
    return model


def _data():
    x = np.random.default_rng(0).normal(size=(256, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


class _Interrupt(tf.keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    tf.keras.utils.set_random_seed(1)
    straight = _model()
    history = fit_resumable(straight, _data(), epochs=4, checkpoint_dir=tmp_path / "a", verbose=0)
    assert history["epoch"] == [1, 2, 3, 4]

    tf.keras.utils.set_random_seed(1)
    interrupted = _model()
    with pytest.raises(KeyboardInterrupt):
        fit_resumable(interrupted, _data(), epochs=4, checkpoint_dir=tmp_path / "b", verbose=0,
                      callbacks=[_Interrupt(2)])
    resumed = _model()  # a fresh process would build a fresh model
    history_b = fit_resumable(resumed, _data(), epochs=4, checkpoint_dir=tmp_path / "b", verbose=0)
    assert history_b["epoch"] == [1, 2, 3, 4]
    np.testing.assert_allclose(history_b["loss"], history["loss"], rtol=1e-5)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_early_stopping_keeps_best_weights(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.1, 0.1])
    snapshots = []

    def evaluate(model):
        snapshots.append(model.get_weights())
        return {"val_score": next(scores)}

    model = _model()
    history = fit_resumable(model, _data(), epochs=6, checkpoint_dir=tmp_path, evaluate=evaluate,
                            monitor="val_score", mode="max", patience=2, verbose=0)
    assert history["epoch"] == [1, 2, 3, 4]  # stopped after two evaluations without improvement
    assert history["best_epoch"] == 2
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)
    # A finished (early-stopped) run is not continued by a second call.
    again = fit_resumable(_model(), _data(), epochs=6, checkpoint_dir=tmp_path, evaluate=evaluate,
                          monitor="val_score", patience=2, verbose=0)
    assert again["epoch"] == [1, 2, 3, 4]


# ---------------------------------------------------------------- exact resume, divergence, interruption

def _shuffled_data(seed=7):
    """64 examples in batches of 8, reshuffled every epoch as a function of (seed, epoch)."""
    from movielens.training import shuffled_batches

    x = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.1
    return shuffled_batches((x, y), batch_size=8, seed=seed)


def _seeded_model(seed=3, learning_rate=0.05):
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.layers.Dense(4, activation="relu", input_shape=(3,)),
                                 tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def test_epoch_data_resume_is_exact_with_reshuffled_batches(tmp_path):
    """Killed after epoch 2 and resumed in a "new process": the same weights and losses as 4 straight epochs."""
    from movielens.errors import TrainingInterrupted

    straight = _seeded_model()
    history = fit_resumable(straight, _shuffled_data(), epochs=4, checkpoint_dir=tmp_path / "a", verbose=0)

    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 3 \\(epoch 2 is checkpointed\\)"):
        fit_resumable(_seeded_model(), _shuffled_data(), epochs=4, checkpoint_dir=tmp_path / "b", verbose=0,
                      callbacks=[_Interrupt(2)])
    resumed = _seeded_model()
    history_b = fit_resumable(resumed, _shuffled_data(), epochs=4, checkpoint_dir=tmp_path / "b", verbose=0)
    assert history_b["epoch"] == [1, 2, 3, 4]
    np.testing.assert_array_equal(history_b["loss"], history["loss"])
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_epoch_data_changes_order_every_epoch_and_checks_its_length():
    data = _shuffled_data()
    first = [x.numpy()[:, 0].tolist() for x, _ in data.make_epoch(tf.constant(0, tf.int64))]
    again = [x.numpy()[:, 0].tolist() for x, _ in data.make_epoch(tf.constant(0, tf.int64))]
    second = [x.numpy()[:, 0].tolist() for x, _ in data.make_epoch(tf.constant(1, tf.int64))]
    assert first == again and first != second and data.steps_per_epoch == 8
    stream = data.from_epoch(1)
    assert [x.numpy()[:, 0].tolist() for x, _ in stream.take(8)] == second


def test_a_nan_loss_stops_training_and_removes_the_checkpoint(tmp_path):
    from movielens.errors import USER_ERRORS, TrainingDivergedError

    model = _seeded_model(learning_rate=1e30)  # explodes to inf, then nan, within the first epochs
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch \d+.*\(loss=(nan|inf)\); "
                                                    r"lower --learning_rate") as error:
        fit_resumable(model, _shuffled_data(), epochs=20, checkpoint_dir=tmp_path / "ckpt", verbose=0)
    assert isinstance(error.value, ValueError) and isinstance(error.value, USER_ERRORS)
    assert not (tmp_path / "ckpt").exists() and list(tmp_path.iterdir()) == []


def test_a_nan_loss_at_epoch_end_is_caught_before_saving(tmp_path):
    """The epoch-end check stands alone (e.g. a loss that turns nan in the last batches)."""
    from movielens.errors import TrainingDivergedError
    from movielens.training import ResumableCheckpoint

    model = _seeded_model()
    state = {"epoch": 0, "history": {}, "best": None, "best_epoch": None, "wait": 0, "stopped": False}
    callback = ResumableCheckpoint(tmp_path, state, None, 1, None, "max", None, 0)
    callback.set_model(model)
    with pytest.raises(TrainingDivergedError, match="epoch 3 \\(loss=inf\\)"):
        callback.on_epoch_end(2, {"loss": float("inf")})
    assert state["history"] == {} and list(tmp_path.iterdir()) == []


def test_a_non_finite_metric_is_never_the_best(tmp_path):
    scores = iter([float("nan"), 0.3, float("inf"), 0.2, float("nan")])

    def evaluate(model):
        return {"val_score": next(scores)}

    history = fit_resumable(_seeded_model(), _shuffled_data(), epochs=5, checkpoint_dir=tmp_path,
                            evaluate=evaluate, monitor="val_score", mode="max", verbose=0)
    assert history["best_epoch"] == 2
    assert np.isnan(history["val_score"][0]) and history["val_score"][2] == np.inf


def test_a_truncated_resume_checkpoint_is_a_corrupt_file_error(tmp_path):
    from movielens.io import CorruptFileError

    with pytest.raises(KeyboardInterrupt):
        fit_resumable(_seeded_model(), _shuffled_data(), epochs=4, checkpoint_dir=tmp_path, verbose=0,
                      callbacks=[_Interrupt(2)])
    data_file = next((tmp_path / "last").glob("ckpt.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:10])
    with pytest.raises(CorruptFileError, match=f"cannot resume from {tmp_path / 'last'}.*--retrain"):
        fit_resumable(_seeded_model(), _shuffled_data(), epochs=4, checkpoint_dir=tmp_path, verbose=0)


# ---------------------------------------------------------------- learning-rate decay on a plateau

def _plateau_model(scale):
    from movielens.schedules import WarmupConstant

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([tf.keras.layers.Dense(4, activation="relu", input_shape=(3,)),
                                 tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.Adam(WarmupConstant(0.05, 0, scale)), loss="mse")
    return model


def _stalled_after_epoch_one(model):
    """val_score 0.5 after the first epoch (8 steps), 0.4 ever after: a function of the step, so resumable."""
    return {"val_score": 0.5 if int(model.optimizer.iterations) <= 8 else 0.4}


def test_plateau_decay_lowers_the_rate_after_each_stalled_stretch(tmp_path):
    from movielens.training import PlateauDecay

    scale = tf.Variable(1.0, trainable=False)
    model = _plateau_model(scale)
    history = fit_resumable(model, _shuffled_data(), epochs=6, checkpoint_dir=tmp_path,
                            evaluate=_stalled_after_epoch_one, monitor="val_score", patience=10, verbose=0,
                            restore_best=False, plateau=PlateauDecay(scale, 0.5, 2))
    # Stalled at epochs 2-6: x0.5 after epoch 3's evaluation (2 stalled) and after epoch 5's (4 stalled).
    assert history["lr_scale"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert float(scale.numpy()) == 0.25
    # The rate the optimizer last stepped with (restore_best=False: the best checkpoint would bring back epoch
    # 1's optimizer state).
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.05 * 0.25)
    with pytest.raises(ValueError, match="0 < factor < 1"):
        PlateauDecay(scale, 1.0, 2)
    with pytest.raises(ValueError, match="needs a monitored metric"):
        fit_resumable(model, _shuffled_data(), epochs=1, checkpoint_dir=tmp_path / "x", verbose=0,
                      plateau=PlateauDecay(scale, 0.5, 2))


def test_plateau_decay_resumes_at_the_lowered_rate(tmp_path):
    from movielens.training import PlateauDecay

    def run(folder, callbacks=()):
        scale = tf.Variable(1.0, trainable=False)  # a new process starts at 1: the state must restore it
        model = _plateau_model(scale)
        return model, fit_resumable(model, _shuffled_data(), epochs=6, checkpoint_dir=folder,
                                    evaluate=_stalled_after_epoch_one, monitor="val_score", patience=10, verbose=0,
                                    restore_best=False, plateau=PlateauDecay(scale, 0.5, 2), callbacks=callbacks)

    straight, history = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", [_Interrupt(4)])
    resumed, history_b = run(tmp_path / "b")
    assert history_b["lr_scale"] == history["lr_scale"]
    np.testing.assert_array_equal(history_b["loss"], history["loss"])
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_time_budget_stops_before_an_epoch_that_would_end_past_it(monkeypatch):
    """Epochs of 50, 60 and 55 s against a 3-minute budget: after the third (165 s) another 60 s would end at
    225 s, so it stops there; after the second (110 s) another would end at 170 s, within it."""
    import movielens.sequential as sequential

    clock = iter([0.0, 50.0, 110.0, 165.0])
    monkeypatch.setattr(sequential.time, "perf_counter", lambda: next(clock))
    budget = sequential.TimeBudget(3.0)
    budget.set_model(tf.keras.Sequential())
    stopped = []
    for epoch in range(3):
        budget.on_epoch_end(epoch)
        stopped.append(budget.model.stop_training)
    assert stopped == [False, False, True]
