"""tf.distribute: the two-tower trained on two logical CPU devices (MirroredStrategy) and by two worker
processes on localhost ports (MultiWorkerMirroredStrategy) gives the single-device result, resumes under a
strategy, and bad settings fail in one line before anything runs; BERT4Rec on two devices and SASRec on two
workers give their single-device results too (dropout off: replicas draw other masks than one device).

Device layout is fixed once TensorFlow starts, so every distributed run is its own process. Tolerance:
the global batch, its order and the summed gradient are the single-device ones, so only the order of
float additions differs (all-reduce, gathered logits); metrics must agree to 1e-4, weights to 1e-4
relative (observed: identical to the last printed digit).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
# Batch 100 leaves a last batch of 36 rows: the slices of uneven batches are exercised too.
RUN_FLAGS = ["--model", "two_tower", "--no_plots", "--quiet", "--num_epochs", "4", "--batch_size", "100",
             "--additional_feature_sets", "None", "--baselines", "popularity", "--data_source", "local"]
SEQUENTIAL_FLAGS = ["--no_plots", "--quiet", "--max_len", "16", "--embedding_size", "32", "--num_layers", "1",
                    "--num_heads", "2", "--dropout", "0", "--batch_size", "32", "--num_epochs", "4",
                    "--validation_freq", "1", "--patience", "0", "--warmup_steps", "0", "--learning_rate", "0.01",
                    "--baselines", "popularity", "--data_source", "local"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    data, _ = synthetic_movielens(SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5))
    return write_grouplens(data, tmp_path_factory.mktemp("files") / "ml-100k", "100k")


def _env(home: Path, **extra) -> dict:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               MOVIELENS_MODELS_DIR=str(home / "models"), MOVIELENS_REPORTS_DIR=str(home / "reports"),
               MOVIELENS_DATASETS_DIR=str(home / "datasets"))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-3000:]
    return out


def _run_experiment(files: Path, home: Path, *extra: str, flags=RUN_FLAGS, **env) -> dict:
    """`experiments.run` with `flags` (they start with --model F) and `extra`; F's row of the report."""
    _finish(_start(["-m", "experiments.run", "--data_dir", str(files), *flags, *extra], _env(home, **env)))
    return _model_row(home, flags[1])


def _model_row(home: Path, family: str = "two_tower") -> dict:
    (results,) = (home / "reports").glob("*/results.json")
    rows = {row["family"]: row for row in json.loads(results.read_text())["rows"]}
    return rows[family]


def _assert_same_metrics(a: dict, b: dict) -> None:
    assert a["metrics"].keys() == b["metrics"].keys()
    timings = [key for key in a["metrics"] if "second" in key]
    assert len(timings) < len(a["metrics"]) / 2
    for key, value in a["metrics"].items():
        if key in timings:
            continue
        assert b["metrics"][key] == pytest.approx(value, abs=TOLERANCE), key
    # Every epoch's validation figure, not only the selected one: the runs follow the same path.
    assert b["history"]["val_ndcg@10"] == pytest.approx(a["history"]["val_ndcg@10"], abs=TOLERANCE)
    assert len(a["history"]["val_ndcg@10"]) == 4
    assert a["metrics"]["ndcg@10"] > 0  # a model that learned something, not two equal failures


@pytest.fixture(scope="module")
def single_device(files, tmp_path_factory):
    return _run_experiment(files, tmp_path_factory.mktemp("single"))


def test_two_mirrored_devices_give_the_single_device_result(files, single_device, tmp_path):
    mirrored = _run_experiment(files, tmp_path, "--distribute", "mirrored", "--devices", "2")
    _assert_same_metrics(single_device, mirrored)


def test_the_history_feature_with_its_training_dropout_on_two_devices_gives_the_single_device_result(files,
                                                                                                    tmp_path):
    """The history regularisers (here a 1-hour gap and dropout 0.5) are drawn in the input pipeline per
    (seed, epoch), so the replicas see the slices of the single-device batches."""
    flags = [*RUN_FLAGS[:RUN_FLAGS.index("--additional_feature_sets")], "--additional_feature_sets", "history",
             *RUN_FLAGS[RUN_FLAGS.index("--additional_feature_sets") + 2:], "--history_gap_seconds", "3600",
             "--history_dropout", "0.5"]
    single = _run_experiment(files, tmp_path / "single", flags=flags)
    mirrored = _run_experiment(files, tmp_path / "mirrored", "--distribute", "mirrored", "--devices", "2",
                               flags=flags)
    assert single["config"]["features"] == ["history"] and single["config"]["history_dropout"] == 0.5
    _assert_same_metrics(single, mirrored)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(files: Path, home: Path, flags) -> list[str]:
    cluster = [f"localhost:{port}" for port in _free_ports(2)]
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        workers.append(_start(["-m", "experiments.run", "--data_dir", str(files), *flags,
                               "--distribute", "multi_worker"], _env(home, TF_CONFIG=config)))
    outputs = [_finish(worker) for worker in workers]
    assert "this is worker 0" in outputs[0] and "this is worker 1" in outputs[1]
    assert "reports are written by the chief worker" in outputs[1]
    return outputs


def test_two_workers_on_localhost_give_the_single_device_result(files, single_device, tmp_path):
    _two_workers(files, tmp_path, RUN_FLAGS)
    _assert_same_metrics(single_device, _model_row(tmp_path))  # one report: the chief's
    # Worker 1 kept its own checkpoints and model, apart from the chief's.
    assert list((tmp_path / "models" / ".workers" / "worker-1").glob("two_tower*/weights"))


def test_bert4rec_on_two_devices_gives_the_single_device_result(files, tmp_path):
    flags = ["--model", "bert4rec", *SEQUENTIAL_FLAGS]
    single = _run_experiment(files, tmp_path / "single", flags=flags)
    mirrored = _run_experiment(files, tmp_path / "mirrored", "--distribute", "mirrored", "--devices", "2",
                               flags=flags)
    _assert_same_metrics(single, mirrored)


def test_sasrec_on_two_workers_gives_the_single_device_result(files, tmp_path):
    flags = ["--model", "sasrec", *SEQUENTIAL_FLAGS]
    single = _run_experiment(files, tmp_path / "single", flags=flags)
    _two_workers(files, tmp_path / "workers", flags)
    _assert_same_metrics(single, _model_row(tmp_path / "workers", "sasrec"))


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import movielens
    from movielens.distribute import make_strategy
    strategy = make_strategy("mirrored", 2)
    import tensorflow as tf
    from movielens.data import make_split
    from movielens.data.synthetic import SyntheticSpec, synthetic_movielens
    from movielens.persistence import ModelDir
    from movielens.trainer import MovieLensTrainer, TwoTowerConfig

    class StopAfter(tf.keras.callbacks.Callback):  # Ctrl-C as epoch 3 starts: epochs 1-2 are checkpointed
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    data, _ = synthetic_movielens(SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5))
    split = make_split(data, "random", (0.8, 0.1, 0.1), 42)
    mode, root = sys.argv[1], sys.argv[2]
    with strategy.scope():
        trainer = MovieLensTrainer(data, split, verbose=1)
        config = TwoTowerConfig(num_epochs=4, batch_size=100, patience=0)
        callbacks = [StopAfter()] if mode == "interrupt" else []
        try:
            model, _, history, _ = trainer.fit(config, ModelDir("m", {}, root), callbacks=callbacks)
        except KeyboardInterrupt:
            print("interrupted")
            sys.exit(0)
    np.save(f"{root}/weights.npy", np.concatenate([w.ravel() for w in model.get_weights()]))
""")


def test_an_interrupted_mirrored_run_resumes_to_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    env = _env(tmp_path)
    _finish(_start([str(script), "straight", str(tmp_path / "a")], env))
    assert "interrupted" in _finish(_start([str(script), "interrupt", str(tmp_path / "b")], env))
    resumed = _finish(_start([str(script), "resume", str(tmp_path / "b")], env))
    assert "Resuming from epoch 2" in resumed
    straight, again = np.load(tmp_path / "a" / "weights.npy"), np.load(tmp_path / "b" / "weights.npy")
    np.testing.assert_allclose(again, straight, rtol=TOLERANCE, atol=1e-6)


# ---------------------------------------------------------------- settings that fail up front


def test_a_family_without_distributed_training_is_refused_in_one_line(files, tmp_path, capsys):
    from experiments import run

    code = run.main(["--model", "cf", "--data_dir", str(files), "--data_source", "local", "--distribute",
                     "mirrored", "--devices", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "cf cannot train under a strategy" in err[0] and "two_tower" in err[0]


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    from movielens.distribute import DistributeError, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError, match="needs TF_CONFIG on every worker"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(DistributeError, match="not a valid cluster description"):
        make_strategy("multi_worker")


def test_devices_without_a_strategy_is_refused():
    from movielens.distribute import DistributeError, make_strategy

    with pytest.raises(DistributeError, match="--devices needs --distribute"):
        make_strategy("none", 2)


def test_on_one_replica_cross_replica_candidates_are_the_inputs():
    import tensorflow as tf

    from movielens.distribute import cross_replica_candidates

    candidates, rows = tf.ones([3, 2]), tf.constant([4, 5, 6], tf.int64)
    same, same_rows = cross_replica_candidates(candidates, rows)
    assert same is candidates and same_rows is rows


def test_accidental_hit_mask_with_extra_candidates():
    import tensorflow as tf

    from movielens.models.two_tower import accidental_hit_mask

    rows = tf.constant([7, 8], tf.int64)
    candidates = tf.constant([7, 8, 7, 9], tf.int64)  # this replica's two, then another replica's
    mask = accidental_hit_mask(rows, candidates).numpy()
    # Row 0's positive (7) also sits in column 2: not a negative there; its own column stays.
    np.testing.assert_array_equal(mask, [[True, True, False, True], [True, True, True, True]])
