"""Shared fixtures: isolated cache folders, fixed seeds, synthetic data with planted structure."""

from __future__ import annotations

import random

import numpy as np
import pytest

import movielens  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from movielens import paths
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens, write_grouplens

# The rating models' planted data: strong enough to learn in a few seconds: 4 taste clusters (+1 star in
# cluster), user biases N(0, 0.5), movie biases N(0, 0.4), noise 0.3.
RATING_SPEC = SyntheticSpec(n_users=240, n_movies=60, ratings_per_user=30, noise=0.3, seed=3)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every test gets its own datasets/, saved_models/ and reports/ folders."""
    for env, name in (("MOVIELENS_DATASETS_DIR", "datasets"), ("MOVIELENS_MODELS_DIR", "saved_models"),
                      ("MOVIELENS_REPORTS_DIR", "reports")):
        monkeypatch.setenv(env, str(tmp_path / name))
    monkeypatch.delenv("MOVIELENS_DATA_DIR", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def fixed_seeds():
    random.seed(0)
    np.random.seed(0)
    try:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(0)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session")
def synthetic():
    """(MovieLensData, PlantedTruth): 60 users x 40 movies, 4 taste clusters, 100k schema."""
    return synthetic_movielens(SyntheticSpec())


@pytest.fixture(scope="session")
def synthetic_1m():
    return synthetic_movielens(SyntheticSpec(seed=1), variant="1m")


def train_on_planted_ratings(tmp_path_factory, **configs) -> tuple:
    """Trains each rating config once on RATING_SPEC's data (random 80/20, seed 42), in its own saved_models/.

    Returns (data, truth, split, {name: TrainedRatingModel}).
    """
    from movielens import rating
    from movielens.data.splits import random_split

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOVIELENS_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
        data, truth = synthetic_movielens(RATING_SPEC)
        split = random_split(data, (0.8, 0.2), seed=42)
        trained = {name: rating.train_or_load(config, data, split, verbose=0) for name, config in configs.items()}
    return data, truth, split, trained


@pytest.fixture
def rating_data_folder(tmp_path):
    """(data, folder): RATING_SPEC's data written as GroupLens ML-100K files, for the CLI tests."""
    data, _ = synthetic_movielens(RATING_SPEC)
    return data, write_grouplens(data, tmp_path / "ml-100k", "100k")


@pytest.fixture
def shared_datasets():
    """../shared/datasets (read-only GroupLens copies); skips the test when absent."""
    path = paths.shared_datasets_dir()
    if path is None:
        pytest.skip("../shared/datasets is not present")
    return path
