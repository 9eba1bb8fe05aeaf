"""`python -m experiments.run` (two_tower) end to end on synthetic GroupLens files, and a real-data smoke test."""

from __future__ import annotations

import pytest

from experiments.recommend import main as recommend_main
from experiments.run import main
from movielens.data.synthetic import write_grouplens


@pytest.fixture
def data_dir(synthetic, tmp_path):
    data, _ = synthetic
    return write_grouplens(data, tmp_path / "ml-100k", "100k")


def _run(data_dir, *extra):
    return main(["--model", "two_tower", "--data_dir", str(data_dir), "--num_epochs", "2", "--batch_size", "64",
                 "--layer_sizes", "16", "--no_network_lookups", *extra])


def test_cli_end_to_end(data_dir, isolated_caches, capsys):
    """One model per feature set, measured beside popularity and EASE on the same split (random 80/10/10),
    the tutorial's top-100 as the labelled reproduction figure, one HTML report, recommendations for a user."""
    args = ["--additional_feature_sets", "None", "--additional_feature_sets", "timestamp", "movie_title_text",
            "--generate_recommendations_for_user", "7"]
    assert _run(data_dir, *args) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ") and "|---" not in line]
    assert table[0].startswith("| model | kind | NDCG@10") and len(table) == 5
    assert [row.split(" | ")[0] for row in table[1:]] == [
        "| popularity", "| ease", "| two_tower[id_only]", "| two_tower[timestamp+movie_title_text]"]
    assert "training movies (and validation movies when testing) excluded" in out
    assert out.count("its own protocol: tutorial top-100 (seen kept)") == 2
    folders = list((isolated_caches / "reports").glob("run-two_tower-100k-random-*"))
    assert len(folders) == 1
    html = (folders[0] / "report.html").read_text()
    assert "two_tower[timestamp+movie_title_text]" in html and "Two-tower feature sets" in html
    assert "Training curves" in html and "plotly" in html.lower()
    assert out.count("top 10 for user 7 (excluding the") == 2
    # second run: both models come from saved_models/
    assert _run(data_dir, *args) == 0
    out = capsys.readouterr().out
    assert out.count("| loaded |") == 4


def test_recommend_cli_and_bad_user(data_dir, capsys):
    base = ["--data_dir", str(data_dir), "--num_epochs", "1", "--batch_size", "64", "--layer_sizes", "8",
            "--additional_feature_sets", "None"]
    assert recommend_main(["--model", "two_tower", *base, "--user_id", "3", "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "two_tower[id_only]: top 4 for user 3" in out and " 4. " in out
    assert _run(data_dir, "--additional_feature_sets", "None", "--generate_recommendations_for_user", "0") == 2
    err = capsys.readouterr().err
    assert "unknown user id '0'" in err and "valid ids are 1..60" in err


def test_cli_mismatched_towers_is_one_clear_error(data_dir, capsys):
    assert _run(data_dir, "--layer_sizes", "--additional_feature_sets", "timestamp") == 2
    assert "give --layer_sizes" in capsys.readouterr().err


@pytest.mark.real_data
@pytest.mark.slow
def test_real_ml100k_one_epoch_smoke(shared_datasets, capsys):
    """ID-only, one epoch, batch 8192 on the real ML-100K: learns something beyond chance (100/1682 = 0.06)."""
    from movielens.data.loader import load_movielens
    from movielens.data.splits import random_split
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.recommender import Recommender

    data = load_movielens("100k", data_dir=shared_datasets)
    split = random_split(data, (0.8, 0.1, 0.1), seed=42)
    family = get_family("two_tower")
    config = family.default_config().replace(num_epochs=1, layer_sizes=(), batch_size=8192)
    trained = train_or_load(family, config, Context(data, split, verbose=0))
    assert trained.metrics["test_top_100_accuracy"] > 0.1
    recs = Recommender(trained).recommend("42", k=10)
    assert len(recs) == 10 and all("(" in r.movie_title for r in recs)


def test_run_and_recommend_pass_the_runtime_flags_to_the_model(synthetic, data_dir, isolated_caches, tmp_path,
                                                                capsys):
    """--movie_lengths_file reaches the two-tower through `run` and `recommend` (a missing table is an error
    naming the flag; a given one is what the model's runtimes come from)."""
    missing = ["--additional_feature_sets", "movie_length", "--movie_lengths_file", str(tmp_path / "missing.csv"),
               "--no_plots", "--baselines", "popularity"]
    assert _run(data_dir, *missing) == 2
    assert "movie_lengths_file" in capsys.readouterr().err
    assert recommend_main(["--model", "two_tower", "--data_dir", str(data_dir), "--additional_feature_sets",
                           "movie_length", "--movie_lengths_file", str(tmp_path / "missing.csv"),
                           "--no_network_lookups", "--user_id", "7"]) == 2
    assert "movie_lengths_file" in capsys.readouterr().err
    data, _ = synthetic
    table = tmp_path / "runtimes.csv"
    rows = [f"{movie},{80 + i}\n" for i, movie in enumerate(data.movies["movie_id"])]
    table.write_text("movieId,runtime_min\n" + "".join(rows))
    assert _run(data_dir, *missing[:2], "--movie_lengths_file", str(table), "--no_plots", "--baselines",
                "popularity") == 0
    n = len(data.movies)
    assert f"{n}/{n} movies (100.0%) have a real runtime [table {n}," in capsys.readouterr().out
