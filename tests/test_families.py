"""The contract every registered model family passes (LensKit style), on planted synthetic data.

Each family is trained once per module on 4 planted taste clusters (random 80/10/10 split), with a
few settings made small so the whole contract runs in seconds per family.
"""

from __future__ import annotations

import numpy as np
import pytest

from movielens.data.splits import random_split
from movielens.data.synthetic import SyntheticSpec, synthetic_movielens
from movielens.families import REGISTRY, get_family
from movielens.families.base import Context, ModelNotTrainedError, model_dir_for, train_or_load
from movielens.families.histories import Histories
from movielens.models.bert4rec import Bert4RecConfig
from movielens.models.sasrec import SasRecConfig
from movielens.recommender import Recommender, UnknownUserError, UserHistory
from movielens.sequential import Bert4RecTrainingConfig, SasRecTrainingConfig

# 20 movies per cluster, so a user's 16 ratings stay inside their cluster (sequence models see the clusters).
SPEC = SyntheticSpec(n_users=120, n_movies=80, ratings_per_user=16, seed=5)
# Settings that keep each family's contract to seconds (defaults are for real data sets).
FAST = {
    "item_knn": {"neighbours_grid": (10,)},
    "ease": {"l2_grid": (10.0,)},
    "cf": {"epochs": 15, "refit_full": False},
    "knn": {"epochs": 10, "batch_size": 256},
    "autorec": {"epochs": 15, "n_factors": 32},
    # The history feature is how a two-tower model serves someone typed in (id-only gives them one list).
    "two_tower": {"features": ("history",), "num_epochs": 15, "batch_size": 128, "unknown_user_rate": 0.3},
    # Patience 6: masked training can sit on a plateau for several validations before it separates the
    # clusters (seed 42: val NDCG@10 0.21 at epoch 6, no better until epoch 16, then 0.53).
    "bert4rec": {"model": Bert4RecConfig(max_len=16, hidden_dim=32, num_layers=1, num_heads=2, dropout=0.0),
                 "training": Bert4RecTrainingConfig(batch_size=32, epochs=40, evaluate_every=2, patience=6,
                                                    warmup_steps=0, learning_rate=1e-2)},
    "sasrec": {"model": SasRecConfig(max_len=16, hidden_dim=32, num_layers=1, num_heads=1, dropout=0.0),
               "training": SasRecTrainingConfig(batch_size=32, epochs=40, evaluate_every=2, patience=4,
                                                warmup_steps=0, learning_rate=1e-2)},
}
NOT_PERSONAL = {"popularity"}  # same list for everyone, by design


@pytest.fixture(scope="module")
def planted():
    data, truth = synthetic_movielens(SPEC)
    return data, truth, random_split(data, (0.8, 0.1, 0.1), seed=42)


def fast_config(family):
    config = family.default_config()
    overrides = FAST.get(family.name, {})
    return config.replace(**overrides) if overrides else config


@pytest.fixture(scope="module", params=list(REGISTRY))
def trained(request, planted, tmp_path_factory):
    data, truth, split = planted
    family = get_family(request.param)
    root = tmp_path_factory.mktemp(f"models-{family.name}")
    model = train_or_load(family, fast_config(family), Context(data, split, verbose=0), root=root)
    return model, truth, root


def test_recommends_k_unique_unseen_movies_best_first(trained):
    model, _, _ = trained
    recommender = Recommender(model, backend="brute_force")
    data = model.context.data
    titles = dict(zip(data.movies["movie_id"], data.movies["movie_title"]))
    rated = UserHistory(data.ratings)
    for user in rated.user_ids[:5]:
        recs = recommender.recommend(user, k=5)
        ids = [r.movie_id for r in recs]
        assert len(ids) == 5 and len(set(ids)) == 5
        assert not set(ids) & set(rated.seen_movies(user))  # nothing rated in train, validation or test
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
        assert all(r.movie_title == titles[r.movie_id] for r in recs)
        assert all(np.isfinite(r.score) for r in recs)


def test_unknown_user_is_a_clear_error(trained):
    model, _, _ = trained
    with pytest.raises(UnknownUserError, match="unknown user id '999999'"):
        Recommender(model).recommend("999999")


def test_reload_gives_identical_scores(trained):
    model, _, root = trained
    again = train_or_load(model.family, model.config, model.context, root=root)
    assert again.loaded and again.metrics == model.metrics
    histories = model.context.train_histories.take(np.arange(10))
    first, second = model.scorer(), again.scorer()
    np.testing.assert_allclose(first.queries(histories) @ first.candidates().T,
                               second.queries(histories) @ second.candidates().T, rtol=1e-5, atol=1e-5)


def test_no_train_refuses_instead_of_training(trained, tmp_path):
    model, _, _ = trained
    with pytest.raises(ModelNotTrainedError, match="--no_train"):
        train_or_load(model.family, model.config, model.context, root=tmp_path, no_train=True)


def test_a_damaged_saved_model_is_moved_aside_and_retrained(trained, tmp_path, capsys):
    model, _, _ = trained
    first = train_or_load(model.family, model.config, model.context, root=tmp_path)
    for path in first.model_dir.path.rglob("*"):
        if path.is_file() and (path.suffix in (".npz",) or ".data-" in path.name):
            path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    again = train_or_load(model.family, model.config, model.context, root=tmp_path)
    assert not again.loaded
    assert "could not be loaded" in capsys.readouterr().out
    assert any(p.name.startswith(first.model_dir.path.name + ".broken") for p in tmp_path.iterdir())


def test_typed_histories_from_two_clusters_get_their_own_movies(trained):
    """Two people who typed movies of two different planted clusters get two different lists, each drawn
    mostly from its own cluster (the popularity list is the same for everyone by design)."""
    model, truth, _ = trained
    recommender = Recommender(model, backend="brute_force")
    vocabulary = model.context.split.vocabulary
    cluster_of = {str(m + 1): int(c) for m, c in enumerate(truth.movie_cluster)}
    lists = {}
    for cluster in (0, 1):
        movies = [m for m in vocabulary.movie_ids if cluster_of[m] == cluster][:4]
        titles = [recommender.titles[m] for m in movies]
        result = recommender.for_history(titles, k=5)
        assert not {r.movie_id for r in result.items} & set(movies)
        lists[cluster] = [cluster_of[r.movie_id] for r in result.items]
    if model.family.name in NOT_PERSONAL:  # one ranking for everyone: only the excluded movies differ
        queries = model.scorer().queries(Histories.from_lists([[0], [1]]))
        np.testing.assert_array_equal(queries[0], queries[1])
        return
    assert lists[0] != lists[1]
    for cluster, clusters in lists.items():
        assert clusters.count(cluster) >= 3, (model.family.name, cluster, lists)


def test_identity_depends_on_content_not_path(trained, planted):
    model, _, _ = trained
    data, _, split = planted
    moved = type(data)(data.variant, "local:/elsewhere", data.ratings, data.movies)
    assert model_dir_for(model.family, model.config, Context(moved, split)).hash == model.model_dir.hash


@pytest.mark.parametrize("name", ["ease", "item_knn"])
def test_dense_item_item_families_refuse_a_large_catalogue_before_any_work(name, monkeypatch):
    """ML-25M's 62,423 movies would need ~90 GB of movies x movies matrices: one clear line, nothing run."""
    from movielens.families import item_item

    data, _ = synthetic_movielens(SyntheticSpec(n_users=30, n_movies=40, seed=1))
    family = get_family(name)
    family.check(family.default_config(), data)  # 40 movies: fine
    monkeypatch.setattr(item_item, "MAX_ITEMS", 39)
    with pytest.raises(ValueError, match=f"{name} keeps dense movies x movies matrices: 40 movies"):
        family.check(family.default_config(), data)


@pytest.mark.parametrize("name,loss,refused", [("bert4rec", None, True), ("sasrec", "ce", True),
                                               ("sasrec", "gbce", True), ("sasrec", "sampled_ce", False)])
def test_full_softmax_sequential_models_refuse_a_large_catalogue_up_front(name, loss, refused, monkeypatch):
    from movielens.families import sequential

    data, _ = synthetic_movielens(SyntheticSpec(n_users=30, n_movies=40, seed=1))
    family = get_family(name)
    config = family.default_config()
    if loss:
        config = config.replace(model=config.model.replace(loss=loss))
    family.check(config, data)
    monkeypatch.setattr(sequential, "FULL_SOFTMAX_MAX_ITEMS", 39)
    if refused:
        with pytest.raises(ValueError, match="scores all 40 movies at every position.*sampled_ce"):
            family.check(config, data)
    else:
        family.check(config, data)
