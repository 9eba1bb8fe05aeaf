"""Issue 14, "nothing wrong is ever reported as right": broken scores, files, disks and runs fail loudly.

Each test goes through the public function a CLI calls: the metric functions, `load_movielens`,
`load_weights` / `ModelDir`, `run_cli`, `check_finite` (training: tests/test_training.py).
"""

from __future__ import annotations

import errno
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from movielens import evaluation
from movielens.data import (
    DataUnavailableError,
    RatingFileError,
    describe_source,
    load_movielens,
    registry_copy,
    tfds_source,
)
from movielens.data.synthetic import write_grouplens
from movielens.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    TrainingDivergedError,
    TrainingInterrupted,
    run_cli,
)
from movielens.io import CorruptFileError, atomic_directory, atomic_write_json
from movielens.persistence import ModelDir, load_weights, save_weights
from movielens.validation import check_finite

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def no_fallback(monkeypatch):
    """Any attempt to reach TFDS or the registry fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a fallback source was tried although data_dir was given")

    monkeypatch.setattr(tfds_source, "load", refuse)
    monkeypatch.setattr(registry_copy, "load", refuse)


# ---------------------------------------------------------------- 2. metrics: non-finite scores are the worst


def test_all_nan_or_all_inf_scores_get_no_credit():
    targets = np.array([0, 3, 5])
    held_out = evaluation.ItemSets.from_lists([[t] for t in targets])
    for value in (NAN, INF, -INF):
        scores = np.full((3, 8), value, np.float32)
        ranks = evaluation.target_ranks(scores, targets)
        assert ranks.tolist() == [8, 8, 8]
        metrics = evaluation.leave_one_out_metrics(ranks, ks=(1, 5, 8))  # rank m: a miss at every k <= m
        assert metrics["hr@8"] == metrics["ndcg@8"] == metrics["hr@1"] == 0.0
        top = evaluation.top_k(scores, 8, non_finite=-1)
        assert (top == -1).all()
        ranking = evaluation.recall_ndcg_at_k(top, held_out, ks=(5, 8))
        assert ranking["recall@8"] == ranking["ndcg@8"] == 0.0
        negatives = np.array([[1, 2], [0, 1], [0, 1]])
        assert evaluation.sampled_target_ranks(scores, targets, negatives).tolist() == [2, 2, 2]


def test_non_finite_scores_rank_below_every_finite_score():
    scores = np.array([[0.1, NAN, 0.5, INF, -INF, 0.3]])
    assert evaluation.top_k(scores, 6)[0, :3].tolist() == [2, 5, 0]  # then the broken ones, in any order
    assert evaluation.top_k(scores, 6, non_finite=-1)[0].tolist() == [2, 5, 0, -1, -1, -1]
    assert evaluation.target_ranks(scores, np.array([0])).tolist() == [2]  # inf / nan do not beat a real score
    assert evaluation.target_ranks(scores, np.array([3])).tolist() == [6]  # an inf target is a miss
    negatives = np.array([[1, 3, 5]])
    assert evaluation.sampled_target_ranks(scores, np.array([0]), negatives).tolist() == [1]
    assert evaluation.sampled_target_ranks(scores, np.array([1]), negatives).tolist() == [3]


def test_exclude_seen_then_rank_with_a_nan_target():
    scores = np.array([[0.9, NAN, 0.5, 0.3]], np.float32)
    masked = evaluation.exclude_seen(scores, evaluation.ItemSets.from_lists([[0, 1]]),
                                     evaluation.ItemSets.from_lists([[1]]))
    assert evaluation.target_ranks(masked, np.array([1])).tolist() == [4]
    top = evaluation.top_k(masked, 4, non_finite=-1)
    assert top[0].tolist() == [2, 3, -1, -1]


def test_nan_predictions_give_an_infinite_rmse_not_nan():
    metrics = evaluation.rmse(np.array([3.0, NAN]), np.array([3.0, 4.0]))
    assert metrics["rmse"] == metrics["mae"] == INF


# ---------------------------------------------------------------- 3. persistence: corrupt weights, broken folders


def _saved_model_dir(tmp_path):
    model = tf.keras.Sequential([tf.keras.layers.Dense(16, input_shape=(8,)), tf.keras.layers.Dense(2)])
    model_dir = ModelDir("toy", {"x": 1}, root=tmp_path)
    model_dir.start()
    save_weights(model, model_dir.weights_prefix)
    model_dir.finish({"epoch": [1]}, {"loss": 0.5})
    return model_dir


def _fresh_model():
    return tf.keras.Sequential([tf.keras.layers.Dense(16, input_shape=(8,)), tf.keras.layers.Dense(2)])


@pytest.mark.parametrize("damage", ["truncate_data", "empty_data", "truncate_index", "garble_index"])
def test_a_damaged_weights_file_is_a_one_line_corrupt_file_error(tmp_path, damage):
    model_dir = _saved_model_dir(tmp_path)
    folder = model_dir.weights_prefix.parent
    data_file = next(folder.glob("model.data-*"))
    index_file = folder / "model.index"
    if damage == "truncate_data":  # IndexError: Read less bytes than requested
        data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    elif damage == "empty_data":
        data_file.write_bytes(b"")
    elif damage == "truncate_index":
        index_file.write_bytes(index_file.read_bytes()[:20])
    else:
        index_file.write_bytes(b"\0" * index_file.stat().st_size)
    with pytest.raises(CorruptFileError) as error:
        load_weights(_fresh_model(), model_dir.weights_prefix)
    message = str(error.value)
    assert str(model_dir.weights_prefix) in message and "\n" not in message and "--retrain" in message


def test_move_aside_keeps_a_broken_model_for_inspection_but_never_loads_it(tmp_path, capsys):
    model_dir = _saved_model_dir(tmp_path)
    assert model_dir.is_complete()
    moved = model_dir.move_aside("weights unreadable: truncated")
    assert moved.parent == tmp_path and moved.name.startswith(model_dir.path.name + ".broken-")
    assert (moved / "weights").is_dir() and "truncated" in (moved / "BROKEN.txt").read_text()
    assert not model_dir.path.exists() and not model_dir.is_complete()
    again = ModelDir("toy", {"x": 1}, root=tmp_path)
    assert not again.is_complete()  # the same config now trains afresh
    second = _saved_model_dir(tmp_path).move_aside("again")
    assert second != moved and second.exists()  # two in the same second do not collide
    assert capsys.readouterr().out == ""


def test_discard_removes_a_failed_run_and_a_started_run_is_never_complete(tmp_path):
    model_dir = ModelDir("toy", {"x": 2}, root=tmp_path)
    model_dir.start()
    (model_dir.checkpoint_dir / "last").mkdir(parents=True)
    assert not model_dir.is_complete()  # config.json alone: an interrupted or diverged run
    model_dir.discard()
    assert not model_dir.path.exists() and list(tmp_path.iterdir()) == []
    model_dir.discard()  # nothing there: fine


# ---------------------------------------------------------------- 4. data: an explicit data_dir never falls back


def test_an_unreadable_data_dir_names_the_path_and_never_falls_back(tmp_path, no_fallback):
    missing = tmp_path / "nope"
    with pytest.raises(DataUnavailableError, match=f"from --data_dir: data dir {missing} does not exist"):
        load_movielens("100k", data_dir=missing)
    not_zip = tmp_path / "ratings.txt"
    not_zip.write_text("hello")
    with pytest.raises(DataUnavailableError, match="is a file but not a zip archive"):
        load_movielens("100k", data_dir=not_zip)
    bad_zip = tmp_path / "ml-100k.zip"
    bad_zip.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataUnavailableError, match=f"{bad_zip} is not a readable zip archive"):
        load_movielens("100k", data_dir=bad_zip)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataUnavailableError, match=f"no MovieLens 100k files in {empty}"):
        load_movielens("100k", data_dir=empty)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("ml-1m/ratings.dat", "1::1::5::978300760\n")
    with pytest.raises(DataUnavailableError, match="holds no MovieLens 100k files \\(no u.data in it\\)"):
        load_movielens("100k", data_dir=other_zip)


def test_the_env_variable_counts_as_an_explicit_data_dir(tmp_path, monkeypatch, no_fallback):
    monkeypatch.setenv("MOVIELENS_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(DataUnavailableError, match="from MOVIELENS_DATA_DIR: data dir .*gone does not exist"):
        load_movielens("100k")


def test_describe_source_says_where_the_data_came_from(synthetic, tmp_path, no_fallback):
    data, _ = synthetic
    folder = write_grouplens(data, tmp_path / "ml-100k", "100k")
    loaded = load_movielens("100k", data_dir=folder)
    assert describe_source(loaded) == (f"data: MovieLens 100k ({len(data.ratings):,} ratings) "
                                       f"from local files {folder.resolve()}")
    assert describe_source(load_movielens("100k", data_dir=folder)) == describe_source(loaded)  # cached
    assert "synthetic" in describe_source(data)


# ---------------------------------------------------------------- 5. ratings files: malformed lines are named


def _write_layout(synthetic, tmp_path, layout):
    data, _ = synthetic
    folder = write_grouplens(data, tmp_path / f"ml-{layout}", layout)
    name = {"100k": "u.data", "1m": "ratings.dat", "latest-small": "ratings.csv"}[layout]
    return folder / name


def _replace_line(path, number, text: bytes):
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = text
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("layout,sep", [("100k", b"\t"), ("1m", b"::"), ("latest-small", b",")])
def test_malformed_rating_lines_are_reported_with_file_line_and_content(synthetic, tmp_path, no_fallback, layout,
                                                                          sep):
    variant = layout
    path = _write_layout(synthetic, tmp_path, layout)
    line = 2 if layout == "latest-small" else 1  # the first data line
    original = path.read_bytes()
    cases = {
        sep.join([b"196", b"242", b"3"]): "expected 4 fields \\(user, movie, rating, timestamp\\), got 3",
        sep.join([b"196", b"242", b"3", b"881250949", b"7"]): "expected 4 fields .* got 5",
        sep.join([b"196", b"242", b"x", b"881250949"]): "rating 'x' is not a number in",
        sep.join([b"196", b"242", b"nan", b"881250949"]): "rating 'nan' is not a number in",
        sep.join([b"196", b"242", b"9", b"881250949"]): "rating '9' is not a number in",
        sep.join([b"196", b"242", b"3", b"-5"]): "timestamp '-5' is not a non-negative integer",
        sep.join([b"u196", b"242", b"3", b"881250949"]): "user id 'u196' is not a non-negative integer",
        sep.join([b"196", b"242", b"3", b"8812\xff0949"]): "byte 0xff is not UTF-8 text",
    }
    for bad, problem in cases.items():
        path.write_bytes(original)
        _replace_line(path, line + 5, bad)
        with pytest.raises(RatingFileError, match=f"{path.name} line {line + 5}: {problem}.*: '") as error:
            load_movielens(variant, data_dir=path.parent, rebuild=True)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("layout", ["100k", "1m", "latest-small"])
def test_a_ratings_file_cut_mid_line_is_detected(synthetic, tmp_path, no_fallback, layout):
    path = _write_layout(synthetic, tmp_path, layout)
    original = path.read_bytes()
    last = original.count(b"\n")
    path.write_bytes(original[:-4])  # timestamp cut short, no final newline
    with pytest.raises(RatingFileError, match=f"line {last}: the last line looks cut short"):
        load_movielens(layout, data_dir=path.parent, rebuild=True)
    sep = {"100k": b"\t", "1m": b"::", "latest-small": b","}[layout]
    path.write_bytes(original[: original.rstrip(b"\n").rfind(sep)])  # timestamp gone
    with pytest.raises(RatingFileError, match=f"line {last}: expected 4 fields .* got 3"):
        load_movielens(layout, data_dir=path.parent, rebuild=True)


def test_a_ratings_csv_with_a_wrong_header_or_no_rows_is_an_error(synthetic, tmp_path, no_fallback):
    path = _write_layout(synthetic, tmp_path, "latest-small")
    _replace_line(path, 1, b"user,movie,stars,time")
    with pytest.raises(RatingFileError, match="line 1: expected the header 'userId,movieId,rating,timestamp'"):
        load_movielens("latest-small", data_dir=path.parent)
    path.write_bytes(b"userId,movieId,rating,timestamp\n")
    with pytest.raises(RatingFileError, match="holds no ratings"):
        load_movielens("latest-small", data_dir=path.parent)


def test_real_grouplens_ratings_pass_the_checks(shared_datasets, tmp_path, no_fallback):
    data = load_movielens("100k", data_dir=shared_datasets / "ml-100k", cache_dir=tmp_path)
    assert len(data.ratings) == 100_000
    assert describe_source(data).startswith("data: MovieLens 100k (100,000 ratings) from local files")


# ---------------------------------------------------------------- 6. run_cli: one line, the right exit code


def _raise(error):
    def body(args):
        raise error

    return body


def test_run_cli_reports_user_errors_disk_errors_and_interrupts_in_one_line(capsys):
    assert run_cli(lambda args: 0, None) == 0 and run_cli(lambda args: None, None) == 0
    cases = [
        (ValueError("--learning_rate must be a finite number > 0, got inf"), EXIT_USER_ERROR,
         "error: --learning_rate must be a finite number > 0, got inf"),
        (TrainingDivergedError(3, NAN), EXIT_USER_ERROR,
         "error: training diverged at epoch 3 (loss=nan); lower --learning_rate"),
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/models/x/weights"), EXIT_USER_ERROR,
         "error: /models/x/weights: No space left on device (the disk is full; free some space and rerun"),
        (OSError(errno.EROFS, os.strerror(errno.EROFS), "/ro/saved_models"), EXIT_USER_ERROR,
         "error: /ro/saved_models: Read-only file system (the file system is read-only"),
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/root/x"), EXIT_USER_ERROR,
         "error: /root/x: Permission denied"),
        (NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/a/file/x"), EXIT_USER_ERROR,
         "error: /a/file/x: Not a directory"),
        (tf.errors.ResourceExhaustedError(None, None, "/models/ckpt.data; No space left on device\nmore"),
         EXIT_USER_ERROR, "error: ResourceExhaustedError: /models/ckpt.data; No space left on device"),
        (tf.errors.FailedPreconditionError(None, None, "/models/x is not a directory"), EXIT_USER_ERROR,
         "error: FailedPreconditionError: /models/x is not a directory"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED,
         "interrupted; rerun the same command to resume (checkpoints are kept)"),
        (TrainingInterrupted(4, 3), EXIT_INTERRUPTED,
         "interrupted at epoch 4 (epoch 3 is checkpointed); rerun the same command to resume"),
    ]
    for error, code, expected in cases:
        assert run_cli(_raise(error), None) == code, error
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err, err
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli(_raise(ZeroDivisionError("bug")), None)


def test_atomic_writes_leave_nothing_behind_when_the_disk_fills(tmp_path, monkeypatch):
    atomic_write_json(tmp_path / "a.json", {"v": 1})
    (tmp_path / "entry").mkdir()
    (tmp_path / "entry" / "old").write_text("complete")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_json(tmp_path / "a.json", {"v": 2})
    monkeypatch.undo()
    model = _fresh_model()

    def full_checkpoint(self, prefix, options=None):
        raise tf.errors.ResourceExhaustedError(None, None, f"{prefix}: No space left on device")

    monkeypatch.setattr(tf.train.Checkpoint, "write", full_checkpoint)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        with atomic_directory(tmp_path / "entry") as tmp:
            (tmp / "half").write_text("x")
            tf.train.Checkpoint(model=model).write(str(tmp / "ckpt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "entry"]  # no temporary leftovers
    assert (tmp_path / "a.json").read_text().strip().endswith("}") and '"v": 1' in (tmp_path / "a.json").read_text()
    assert [p.name for p in (tmp_path / "entry").iterdir()] == ["old"]


# ---------------------------------------------------------------- 8. numeric flags


@pytest.mark.parametrize("value,kwargs,message", [
    (INF, dict(low=0, low_inclusive=False), "--x must be a finite number > 0, got inf"),
    (NAN, dict(low=0, low_inclusive=False), "--x must be a finite number > 0, got nan"),
    (-INF, {}, "--x must be a finite number, got -inf"),
    (0.0, dict(low=0, low_inclusive=False), "--x must be a finite number > 0, got 0.0"),
    (1.0, dict(low=0, high=1, high_inclusive=False), "--x must be a finite number in \\[0, 1\\), got 1.0"),
    (2.5, dict(low=1, integer=True), "--x must be an integer >= 1, got 2.5"),
    (0, dict(low=1, integer=True), "--x must be an integer >= 1, got 0"),
    ("3", {}, "--x must be a finite number, got '3'"),
    (True, dict(integer=True), "--x must be an integer, got True"),
])
def test_check_finite_refuses_nan_inf_and_out_of_range(value, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_finite("--x", value, **kwargs)


def test_check_finite_returns_the_value():
    assert check_finite("--lr", 0.1, low=0, low_inclusive=False) == 0.1
    assert check_finite("--epochs", np.int64(3), low=1, integer=True) == 3
    assert isinstance(check_finite("--epochs", 3.0, low=1, integer=True), int)
    assert check_finite("--p", 1, low=0, high=1) == 1.0
