"""End to end: `experiments.run --model bert4rec` and `experiments.recommend --model bert4rec` on GroupLens files."""

from __future__ import annotations

import json

import pytest

from experiments import recommend as recommend_cli
from experiments import run as run_cli
from movielens import paths
from movielens.data.synthetic import write_grouplens

TINY_FLAGS = ["--max_len", "16", "--hidden_dim", "16", "--num_layers", "1", "--num_heads", "2", "--batch_size", "32",
              "--epochs", "2", "--evaluate_every", "1", "--warmup_steps", "0", "--quiet"]


@pytest.mark.slow
def test_train_report_cache_and_recommend(synthetic, tmp_path, capsys):
    data, _ = synthetic
    folder = write_grouplens(data, tmp_path / "ml-100k", "100k")
    common = ["--model", "bert4rec", "--data_dir", str(folder), "--data_source", "local", *TINY_FLAGS]

    assert run_cli.main(common) == 0
    out = capsys.readouterr().out
    assert "| bert4rec | sequential |" in out and "[bert4rec] its own protocol: test_hr@10" in out
    assert "leave_last_out split" in out
    (model_dir,) = [p for p in paths.models_dir().iterdir() if p.name.startswith("bert4rec-100k-leave_last_out")]
    for name in ("config.json", "history.json", "metrics.json"):
        json.loads((model_dir / name).read_text())
    assert json.loads((model_dir / "config.json").read_text())["config"]["model"]["hidden_dim"] == 16

    assert run_cli.main(common) == 0  # cached: loaded, not retrained
    assert "| bert4rec | sequential |" in (out := capsys.readouterr().out) and "| loaded |" in out

    assert recommend_cli.main([*common, "--history", "the matrix", "cite des enfants perdus", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "history Matrix, The" in out
    recommended = [line for line in out.splitlines() if line[:4].strip(". ").isdigit()]
    assert len(recommended) == 3 and not any("Matrix, The" in line for line in recommended)

    assert recommend_cli.main([*common, "--user_id", "3", "--k", "4"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if line[:4].strip(". ").isdigit()]) == 4

    assert recommend_cli.main([*common, "--history", "The Matrx"]) == 2
    assert "Closest matches" in capsys.readouterr().err
    assert recommend_cli.main([*common, "--user_id", "100000"]) == 2
    assert "unknown user id" in capsys.readouterr().err
    assert run_cli.main([*common, "--hidden_dim", "15"]) == 2  # 2 heads do not divide 15
    assert "num_heads" in capsys.readouterr().err


def test_bad_title_or_user_fails_before_any_training(synthetic, tmp_path, monkeypatch, capsys):
    from experiments import recommend as recommend_cli
    from movielens import experiment
    from movielens.data.synthetic import write_grouplens

    folder = write_grouplens(synthetic[0], tmp_path / "ml-100k", "100k")
    monkeypatch.setattr(experiment, "train_or_load", lambda *a, **k: pytest.fail("trained before checking"))
    base = ["--model", "bert4rec", "--dataset", "100k", "--data_dir", str(folder), "--data_source", "local"]
    assert recommend_cli.main([*base, "--history", "Matrix (2099)"]) == 2
    assert "Closest matches: Matrix, The" in capsys.readouterr().err
    assert recommend_cli.main([*base, "--user_id", "99999"]) == 2
    assert "valid ids are 1..60" in capsys.readouterr().err
