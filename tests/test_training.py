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
