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
    args = ["--additional_feature_sets", "None", "--additional_feature_sets", "timestamp", "movie_title_text",
            "--generate_recommendations_for_user", "7"]
    assert _run(data_dir, *args) == 0
    out = capsys.readouterr().out
    assert "validation IS the test split" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| feature set") and len(table) == 3
    assert table[1].startswith("| id_only |") and table[2].startswith("| timestamp+movie_title_text |")
    assert "seen movies NOT excluded" in out and "TRAINING movies EXCLUDED" in out
    reports = isolated_caches / "reports"
    assert (reports / "two_tower-100k-top100-curves.html").is_file()
    assert (reports / "two_tower-100k-test-metrics.html").is_file()
    html = (reports / "two_tower-100k-top100-curves.html").read_text()
    assert "timestamp+movie_title_text" in html and "plotly" in html.lower()
    assert "User 7:" in out and out.count("top 10 (excluding movies the user rated in training)") == 2
    # second run: both models come from saved_models/
    assert _run(data_dir, *args) == 0
    out = capsys.readouterr().out
    assert out.count("loaded from") == 2 and "| loaded |" in out


def test_recommend_cli_and_bad_user(data_dir, capsys):
    base = ["--data_dir", str(data_dir), "--num_epochs", "1", "--batch_size", "64", "--layer_sizes", "8",
            "--additional_feature_sets", "None"]
    assert recommend_main(["--model", "two_tower", *base, "--user_id", "3", "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "[id_only] top 4" in out and " 4. " in out
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
    from movielens.trainer import MovieLensTrainer

    data = load_movielens("100k", data_dir=shared_datasets)
    split = random_split(data, (0.8, 0.2), seed=42)
    trained = MovieLensTrainer(data, split, num_epochs=1, layer_sizes=(), batch_size=8192,
                               verbose=0).train_model(())
    assert trained.metrics["test_top_100_accuracy"] > 0.1
    recs = trained.recommender().recommend("42", k=10)
    assert len(recs) == 10 and all("(" in r.movie_title for r in recs)
