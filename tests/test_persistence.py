"""Config, model folders and atomic writes."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from movielens.config import Config, config_hash
from movielens.io import CorruptFileError, atomic_directory, atomic_write_json, read_json
from movielens.persistence import ModelDir, load_weights, readable_name, save_weights


@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
    embedding_size: int = 32
    layer_sizes: tuple[int, ...] = (64, 32)
    optimizer: str = "adagrad"


def test_config_rejects_unknown_keys_and_round_trips():
    config = ToyConfig(layer_sizes=(16,))
    assert ToyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown ToyConfig keys \\['embeding_size'\\].*embedding_size"):
        ToyConfig.from_dict({"embeding_size": 8})
    with pytest.raises(ValueError, match="unknown"):
        config.replace(bogus=1)
    assert config.stable_hash() == ToyConfig(layer_sizes=(16,)).stable_hash() != ToyConfig().stable_hash()
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


def test_model_dir_lifecycle(tmp_path):
    folder = ModelDir(readable_name("two_tower", ["timestamp", "movie_genres"]), {"x": 1}, root=tmp_path)
    assert folder.path.name.startswith("two_tower-timestamp+movie_genres-")
    assert not folder.is_complete()
    folder.start()
    assert not folder.is_complete()
    folder.finish({"epoch": [1]}, {"loss": 0.5})
    assert folder.is_complete() and folder.read_json("metrics.json") == {"loss": 0.5}
    (folder.path / "config.json").write_text('{"x": 2}')  # edited or colliding config
    assert not folder.is_complete()
    folder.start(retrain=True)
    assert not (folder.path / "metrics.json").exists()


def test_weights_round_trip_and_mismatch(tmp_path):
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    save_weights(model, tmp_path / "weights" / "model")
    other = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    load_weights(other, tmp_path / "weights" / "model")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CorruptFileError, match="no weights"):
        load_weights(other, tmp_path / "missing" / "model")
    wrong = tf.keras.Sequential([tf.keras.layers.Dense(5, input_shape=(3,))])
    with pytest.raises(CorruptFileError):
        load_weights(wrong, tmp_path / "weights" / "model")


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    atomic_write_json(tmp_path / "a.json", {"v": np.float32(1.5)})
    assert read_json(tmp_path / "a.json") == {"v": 1.5}
    assert (tmp_path / "a.json").stat().st_mode & 0o644 == 0o644  # not mkstemp's 0600
    (tmp_path / "b.json").write_text('{"trunc')
    with pytest.raises(CorruptFileError, match="corrupt"):
        read_json(tmp_path / "b.json")
