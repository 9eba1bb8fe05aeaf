"""The feature registry: declarations, validation (library and argparse), tables fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest

from movielens import features as F
from movielens.data.splits import random_split


def test_every_feature_is_declared_once_with_a_tower_and_encoder():
    assert set(F.FEATURES) == {"user_id", "timestamp", "bucketized_user_age", "user_gender", "user_occupation_label",
                               "history", "movie_title", "movie_title_text", "movie_genres", "movie_length"}
    for feature in F.FEATURES.values():
        assert feature.tower in (F.QUERY, F.CANDIDATE)
        assert feature.encoder and feature.fitted
    assert [n for n, f in F.FEATURES.items() if f.always] == ["user_id", "movie_title"]
    assert F.tower_features(["movie_genres", "timestamp"], F.QUERY) == ("user_id", "timestamp")
    assert F.tower_features(["history"], F.QUERY) == ("user_id", "history")
    assert F.tower_features(["movie_genres", "timestamp"], F.CANDIDATE) == ("movie_title", "movie_genres")
    assert "movie_length" in F.describe_features()


def test_validate_feature_set_normalises_and_rejects_unknown_names():
    assert F.validate_feature_set(["None"]) == ()
    assert F.validate_feature_set([]) == ()
    assert F.validate_feature_set(["movie_genres", "timestamp", "timestamp"]) == ("timestamp", "movie_genres")
    with pytest.raises(ValueError, match="valid features: timestamp, .*movie_length"):
        F.validate_feature_set(["timestamp", "moive_genres"])
    with pytest.raises(ValueError, match="always included"):
        F.validate_feature_set(["user_id"])
    with pytest.raises(ValueError, match="latest-small has no user_gender"):
        F.validate_feature_set(["user_gender"], variant="latest-small")


def test_unknown_feature_is_an_argparse_error_listing_valid_names(capsys):
    from experiments.run import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "two_tower", "--additional_feature_sets", "timestamp", "genre"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown feature 'genre'" in err
    for name in F.OPTIONAL_FEATURES:
        assert name in err


def test_tables_are_fitted_on_train_only(synthetic):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    held_out_movie = split.test["movie_id"].iloc[0]
    split.train = split.train[split.train["movie_id"] != held_out_movie].reset_index(drop=True)
    from movielens.data.splits import Vocabulary

    split.vocabulary = Vocabulary.fit(split.train)
    minutes = np.arange(len(data.movies), dtype=np.float32) + 80
    tables = F.fit_feature_tables(data, split, ["timestamp", "movie_title_text", "movie_genres", "movie_length"],
                                  minutes)
    row = tables.movie_rows([held_out_movie])[0]
    assert tables.movie_vocab_index[row] == 0  # no training rating -> unknown id slot
    assert (tables.movie_vocab_index[np.arange(len(data.movies)) != row] > 0).sum() == split.vocabulary.num_movies - 1
    ts = split.train["timestamp"]
    assert ts.min() <= tables.timestamp_boundaries.min() and tables.timestamp_boundaries.max() <= ts.max()
    assert tables.timestamp_mean == pytest.approx(ts.mean())
    train_rows = tables.movie_vocab_index > 0
    assert tables.length_mean == pytest.approx(minutes[train_rows].mean())
    assert tables.title_tokens.shape == (len(data.movies), F.TITLE_MAX_TOKENS)
    assert "matrix" in tables.title_vocabulary  # TextVectorization lower-cases and strips punctuation
    # every title word of the held-out movie that no training title has is out of vocabulary (id 1)
    train_words = set(" ".join(data.movies["movie_title"][train_rows]).lower().replace("(", " ").replace(")", " ")
                      .replace(",", " ").split())
    held_words = data.movies["movie_title"].iloc[row].lower().replace("(", " ").replace(")", " ").split()
    expected_oov = sum(w not in train_words for w in held_words)
    assert (tables.title_tokens[row] == 1).sum() == expected_oov
    assert tables.genres.shape[0] == len(data.movies) and tables.genres.max() < tables.num_genres


def test_per_user_tables_follow_the_user_vocabulary(synthetic):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    tables = F.fit_feature_tables(data, split, ["bucketized_user_age", "user_gender", "user_occupation_label"])
    users = data.users.set_index("user_id")
    for user in split.vocabulary.user_ids[:10]:
        index = split.vocabulary.encode_users([user])[0]
        assert tables.user_gender[index] == int(users.loc[user, "user_gender"]) + 1
        assert tables.user_age[index] > 0 and tables.user_occupation[index] > 0
    assert tables.user_gender[0] == tables.user_age[0] == tables.user_occupation[0] == 0


def test_movie_length_needs_runtimes_and_constant_is_loud(synthetic, capsys):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    with pytest.raises(ValueError, match="movie_minutes"):
        F.fit_feature_tables(data, split, ["movie_length"])
    minutes, summary = F.movie_minutes_for(data, ["movie_length"], constant_minutes=True, verbose=True)
    assert (minutes == 90).all() and "WARNING" in summary and "WARNING" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="constant 90"):
        F.movie_minutes_for(data, ["movie_length"], constant_minutes=True, verbose=False)
    assert F.movie_minutes_for(data, ["timestamp"]) == (None, "")


def test_all_default_movie_lengths_print_one_warning_line(synthetic, capsys):
    from movielens.movie_length import MovieLengthConfig

    data, _ = synthetic
    config = MovieLengthConfig(use_network=False)  # no table, no IMDb file, no lookups: every length is the default
    minutes, _ = F.movie_minutes_for(data, ["movie_length"], config, verbose=True)
    assert (minutes == config.default_minutes).all()
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if not line.startswith("  note:")]
    assert len(lines) == 1 and lines[0].startswith("WARNING") and "default 90" in lines[0], out
    assert out.count("use the default") == 1


def test_histories_and_sampling_counts_come_from_train_only(synthetic):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    tables = F.fit_feature_tables(data, split, ["history"])
    assert len(tables.history_rows) == len(split.train) and (np.diff(tables.history_keys) >= 0).all()
    assert tables.movie_train_counts.sum() == len(split.train)
    counts = split.train["movie_id"].value_counts()
    assert [tables.movie_train_counts[r] for r in tables.movie_rows(counts.index)] == counts.tolist()
    user_id = split.train["user_id"].iloc[0]
    user = split.vocabulary.encode_users([user_id])
    rated = split.train[split.train["user_id"] == user_id].sort_values("timestamp")
    everything = tables.user_histories(user, length=1000)[0]
    assert sorted(everything[everything >= 0]) == sorted(tables.movie_rows(rated["movie_id"]))  # no held-out movie
    t = rated["timestamp"].iloc[len(rated) // 2]
    before = tables.user_histories(user, np.array([t]), length=1000)[0]
    expected = tables.movie_rows(rated[rated["timestamp"] < t]["movie_id"])
    assert sorted(before[before >= 0]) == sorted(expected)
    last3 = tables.user_histories(user, length=3)[0]
    assert sorted(last3) == sorted(everything[everything >= 0][-3:])  # the latest three (time order kept)
    assert (tables.user_histories(np.array([0]), length=4) == -1).all()  # unknown user: no history
    assert F.pad_histories([[1, 2, 3], []], 2).tolist() == [[2, 3], [-1, -1]]
