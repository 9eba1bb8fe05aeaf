"""The command lines end to end on synthetic GroupLens files: run, compare, recommend (three ways, every
family), data_summary; flags checked before any data is read; one vocabulary across families."""

from __future__ import annotations

import json

import pytest

from experiments import compare, recommend, run
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens
from movielens.families import REGISTRY

# Flags that keep each family's training to seconds on the planted data (the defaults are for real data).
FAST_FLAGS = {
    "item_knn": ["--neighbours_grid", "10"],
    "ease": ["--l2_grid", "10"],
    "cf": ["--num_epochs", "15", "--no-refit_full"],
    "autorec": ["--num_epochs", "15", "--embedding_size", "32"],
    "knn": ["--num_epochs", "10", "--batch_size", "256"],
    "two_tower": ["--additional_feature_sets", "history", "--num_epochs", "15", "--batch_size", "128",
                  "--unknown_user_rate", "0.3"],
    "bert4rec": ["--max_len", "16", "--embedding_size", "32", "--num_layers", "1", "--num_heads", "2", "--dropout",
                 "0", "--batch_size", "32", "--num_epochs", "40", "--validation_freq", "2", "--patience", "4",
                 "--warmup_steps", "0", "--learning_rate", "0.01"],
    "sasrec": ["--max_len", "16", "--embedding_size", "32", "--num_layers", "1", "--num_heads", "1", "--dropout",
               "0", "--batch_size", "32", "--num_epochs", "40", "--validation_freq", "2", "--patience", "4",
               "--warmup_steps", "0", "--learning_rate", "0.01"],
}


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory):
    """(data, truth, folder): 120 users in 4 planted taste clusters, written as ML-100K files."""
    data, truth = synthetic_movielens(SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5))
    return data, truth, write_grouplens(data, tmp_path_factory.mktemp("files") / "ml-100k", "100k")


def _data_flags(folder):
    return ["--data_dir", str(folder), "--data_source", "local"]


def test_run_help_lists_every_family(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REGISTRY) and "--model NAME --help" in out


def test_recommend_help_shows_the_three_ways(capsys):
    with pytest.raises(SystemExit):
        recommend.main(["--model", "ease", "--help"])
    out = capsys.readouterr().out
    assert "--user_id" in out and "--history" in out and "--similar_to" in out


@pytest.mark.parametrize("family", ["cf", "autorec"])
def test_one_flag_name_per_concept(family, capsys):
    """--num_epochs / --embedding_size / --validation_freq name the concept in every family; the old
    per-family spellings stay as aliases; defaults come from the family's config."""
    with pytest.raises(SystemExit):
        run.main(["--model", family, "--help"])
    out = capsys.readouterr().out
    assert "--num_epochs" in out and "--embedding_size" in out and "--epochs" in out
    default = REGISTRY[family].default_config()
    assert f"(default: {default.epochs})" in out


def test_bad_numbers_fail_before_any_data_is_read(tmp_path, capsys):
    for flags in (["--model", "cf", "--learning_rate", "nan"], ["--model", "cf", "--learning_rate", "inf"],
                  ["--model", "cf", "--num_epochs", "0"], ["--model", "ease", "--l2_grid", "-1"],
                  ["--model", "sasrec", "--members", "0"], ["--model", "sasrec", "--member_embedding_sizes", "0"],
                  ["--model", "sasrec", "--members", "3", "--member_embedding_sizes", "64", "128"],
                  ["--model", "sasrec", "--split", "random", "--split_validation_users", "10"],
                  ["--model", "sasrec", "--split", "leave_last_out", "--split_validation_users", "-1"],
                  ["--model", "sasrec", "--split", "leave_last_out", "--split_validation_users", "nan"]):
        code = None
        try:
            code = run.main([*flags, "--data_dir", str(tmp_path / "does-not-exist")])
        except SystemExit as error:  # argparse's own one-line usage error
            code = error.code
        assert code == 2, flags
        err = capsys.readouterr().err
        assert "Traceback" not in err and "does-not-exist" not in err, (flags, err)


def test_run_measures_the_model_beside_the_baselines(planted_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOVIELENS_REPORTS_DIR", str(tmp_path / "reports"))
    _, _, folder = planted_files
    assert run.main(["--model", "item_knn", *FAST_FLAGS["item_knn"], *_data_flags(folder),
                     "--generate_recommendations_for_user", "7", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "| popularity | baseline |" in out and "| ease | baseline |" in out and "| item_knn | baseline |" in out
    assert "top 3 for user 7" in out
    report = tmp_path / "reports" / "run-item_knn-100k-random-popularity+ease+item_knn"
    results = json.loads((report / "results.json").read_text())
    assert [row["label"] for row in results["rows"]] == ["popularity", "ease", "item_knn"]
    assert (report / "report.html").stat().st_size > 10_000  # plotly inlined: opens without the terminal


def test_run_trains_an_ensemble_of_seeds(planted_files, tmp_path, monkeypatch, capsys):
    """--members 2: two SASRecs (seeds 42 and 43), each trained as an ordinary model, ranked as one row."""
    monkeypatch.setenv("MOVIELENS_REPORTS_DIR", str(tmp_path / "reports"))
    _, _, folder = planted_files
    assert run.main(["--model", "sasrec", *FAST_FLAGS["sasrec"], "--members", "2", *_data_flags(folder),
                     "--split", "leave_last_out", "--baselines", "popularity", "--no_plots"]) == 0
    out = capsys.readouterr().out
    assert "| sasrec[2 seeds] |" in out and out.count("[sasrec] not in saved_models/: training it") == 2, out
    # One hidden size per member: the seed-42 member of width 32 is the one just trained (reused).
    assert run.main(["--model", "sasrec", *FAST_FLAGS["sasrec"], "--member_embedding_sizes", "32", "16",
                     *_data_flags(folder), "--split", "leave_last_out", "--baselines", "popularity", "--no_plots"]) == 0
    out = capsys.readouterr().out
    assert "| sasrec[hidden 32+16] |" in out and out.count("[sasrec] not in saved_models/: training it") == 1, out


def test_run_with_the_gsasrec_validation_protocol(planted_files, tmp_path, monkeypatch, capsys):
    """--split_validation_users 20: 20 users validate, the others' second-to-last movie is trained on; the model
    and its baselines train on that split, and the report says so."""
    monkeypatch.setenv("MOVIELENS_REPORTS_DIR", str(tmp_path / "reports"))
    _, _, folder = planted_files
    assert run.main(["--model", "sasrec", *FAST_FLAGS["sasrec"], *_data_flags(folder), "--split", "leave_last_out",
                     "--split_validation_users", "20", "--baselines", "popularity", "--no_plots"]) == 0
    out = capsys.readouterr().out
    assert "validation on 20 sampled users" in out and "| sasrec |" in out, out
    report = next((tmp_path / "reports").iterdir())
    assert "validation on 20 sampled users" in (report / "results.json").read_text()


def test_compare_writes_a_report_named_after_what_it_compared(planted_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOVIELENS_REPORTS_DIR", str(tmp_path / "reports"))
    _, _, folder = planted_files
    assert compare.main(["--models", "popularity", "ease", *_data_flags(folder), "--split", "leave_last_out"]) == 0
    assert (tmp_path / "reports" / "compare-100k-leave_last_out-popularity+ease" / "report.html").is_file()
    assert compare.main(["--models", "popularity", *_data_flags(folder), "--split", "leave_last_out"]) == 0
    assert (tmp_path / "reports" / "compare-100k-leave_last_out-popularity+ease" / "report.html").is_file()
    assert "loaded" in capsys.readouterr().out


@pytest.mark.parametrize("family", list(REGISTRY))
def test_recommend_from_typed_titles_for_every_family(family, planted_files, capsys):
    data, truth, folder = planted_files
    titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
    cluster_zero = [str(m + 1) for m, c in enumerate(truth.movie_cluster) if c == 0][:3]
    history = [titles[m] for m in cluster_zero]
    args = ["--model", family, *FAST_FLAGS.get(family, []), *_data_flags(folder), "--k", "4"]
    assert recommend.main([*args, "--no_train", "--history", *history]) == 2
    assert "--no_train" in capsys.readouterr().err
    assert recommend.main([*args, "--history", *history]) == 0
    out = capsys.readouterr().out
    assert "not in saved_models/ with these settings: training it now" in out
    lines = [line for line in out.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert len(lines) == 4 and not any(title in line for line in lines for title in history)
    assert recommend.main([*args, "--no_train", "--user_id", "7"]) == 0  # trained now: loads
    assert "excluding the" in capsys.readouterr().out
    assert recommend.main([*args, "--no_train", "--similar_to", history[0]]) == 0


def test_recommend_bad_input_is_one_line(planted_files, capsys):
    _, _, folder = planted_files
    args = ["--model", "popularity", *_data_flags(folder)]
    assert recommend.main([*args, "--user_id", "999999"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown user id '999999'")
    assert recommend.main([*args, "--history", "zzzz qqqq xxxx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown title") and "Traceback" not in err
