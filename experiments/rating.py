"""Rating models: embedding CF (`--model cf`), KNN over learned embeddings (`--model knn`), I-AutoRec (`autorec`).

    python -m experiments.run --model cf                         # ML-100K, random 90/10 seed 42
    python -m experiments.run --model cf --data_dir ../shared/datasets/ml-100k --fold u1
    python -m experiments.run --model knn --ranking --plot
    python -m experiments.run --model autorec --fold u1 --data_dir ../shared/datasets/ml-100k
    python -m experiments.recommend --model cf --user_id 42
    python -m experiments.recommend --model knn --similar_to "Toy Story (1995)"

Trains, or loads the model from saved_models/ when this configuration was trained before.
The test RMSE is on the held-out part; early stopping uses a validation part carved out of train.
Model flags left unset take the family's defaults (movielens.rating.FAMILY_DEFAULTS).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from movielens import rating
from movielens.data import cli as data_cli
from movielens.recommender import UserHistory
from movielens.titles import TitleIndex

# Fields the CLI does not expose as model flags: the family comes from --model, the seed from --seed.
_NOT_FLAGS = ("model", "seed")


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (unset = family default)")
    hints = typing.get_type_hints(rating.RatingConfig)
    for field in dataclasses.fields(rating.RatingConfig):
        if field.name in _NOT_FLAGS:
            continue
        hint = str(hints[field.name])
        choices = {"optimizer": rating.OPTIMIZERS, "schedule": rating.SCHEDULES}.get(field.name)
        if "tuple" in hint:
            group.add_argument(f"--{field.name}", type=int, nargs="*", default=None)
        elif hints[field.name] is bool:
            group.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, default=None)
        else:
            group.add_argument(f"--{field.name}", type=hints[field.name], default=None, choices=choices)
    parser.add_argument("--fold", choices=rating.FOLDS, default=None,
                        help="ML-100K canonical fold u1..u5 (u{i}.base/u{i}.test in --data_dir) instead of --split")
    parser.add_argument("--retrain", action="store_true", help="ignore a saved model and train again")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data_cli.add_data_arguments(parser, default_split="random")
    _add_config_arguments(parser)
    parser.add_argument("--ranking", action="store_true",
                        help="also report Recall@10/NDCG@10 on held-out movies rated 4+ (cosine index and rating)")
    parser.add_argument("--plot", action="store_true", help="write a 2-D movie-embedding picture to reports/")
    parser.add_argument("--plot_method", choices=("pca", "tsne"), default="pca")
    parser.add_argument("--plot_color", choices=("rating", "genre"), default="rating")


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    data_cli.add_data_arguments(parser, default_split="random")
    _add_config_arguments(parser)
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--user_id", help="recommend unseen movies for this user")
    query.add_argument("--similar_to", help='movies most similar to this title, e.g. "Toy Story (1995)"')
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rank_by", choices=rating.RANKINGS, default=None,
                        help="user recommendations by predicted rating or by the cosine KNN index "
                             "(default: rating for cf and autorec, cosine for knn)")
    parser.add_argument("--index_backend", choices=("auto", "brute_force", "scann"), default="auto")


def config_from_args(args: argparse.Namespace) -> rating.RatingConfig:
    overrides = {f: getattr(args, f) for f in rating.RatingConfig.field_names()
                 if f not in _NOT_FLAGS and getattr(args, f, None) is not None}
    if "hidden_units" in overrides:
        overrides["hidden_units"] = tuple(overrides["hidden_units"])
    return rating.default_config(args.model, seed=args.seed, **overrides)


def _fold_folder(data_dir) -> Path:
    if not data_dir:
        raise ValueError("--fold needs --data_dir pointing at the ML-100K folder (with u1.base ... u5.test)")
    for folder in (Path(data_dir), Path(data_dir) / "ml-100k"):
        if (folder / "u1.base").is_file():
            return folder
    raise FileNotFoundError(f"no u1.base in {data_dir} or {Path(data_dir) / 'ml-100k'}")


def load_model(args: argparse.Namespace, check_input=None):
    """(data, split, trained model) for the flags; trains on first use.

    `check_input(data, split)` runs before any training, so a bad id or title fails at once.
    """
    config = config_from_args(args)
    if args.fold:
        if args.dataset != "100k":
            raise ValueError("--fold is ML-100K's canonical u1..u5 split; use --dataset 100k")
        folder = _fold_folder(args.data_dir)
        data = data_cli.load_data(args)
        split = rating.fold_split(data, folder, args.fold)
        key = rating.data_key(data, split)
    else:
        if args.split == "random" and not args.split_fractions:
            args.split_fractions = list(rating.DEFAULT_RANDOM_FRACTIONS)
        data, split = data_cli.load_split(args)
        key = rating.data_key(data, split, args.split_fractions, args.seed)
    if check_input is not None:
        check_input(data, split)
    trained = rating.train_or_load(config, data, split, key, retrain=args.retrain, verbose=0 if args.quiet else 1)
    return data, split, trained


def run(args: argparse.Namespace) -> int:
    data, split, trained = load_model(args)
    m = trained.metrics
    state = "loaded from" if trained.loaded else "saved to"
    print(f"\n{args.model} on ML-{data.variant.upper()} ({data.source}); {m['protocol']}.")
    print(f"Model {state} {trained.model_dir.path}")
    print(f"test MSE {m['test_mse']:.4f}  RMSE {m['test_rmse']:.4f}  MAE {m['test_mae']:.4f}  "
          f"({m['n_test']:,} test ratings; global-mean baseline RMSE {m['test_rmse_global_mean']:.4f})")
    print(f"validation RMSE {m['val_rmse']:.4f} at epoch {m['best_epoch']} of {m['epochs_trained']}; "
          f"fit {m['fit_seconds']:.1f} s ({m['n_fit']:,} training ratings)")
    if args.ranking:
        users, targets, seen, info = rating.ranking_targets(trained, split)
        print(f"\nRanking: held-out movies rated {rating.LIKED_RATING:g}+ ({len(users):,} users), all known movies, "
              f"training movies excluded:")
        for rank_by in rating.RANKINGS:
            scores = rating.score_matrix(trained, rank_by, users)
            result = rating.ranking_metrics(scores, targets, seen)
            print(f"  {rank_by:>7}: Recall@10 {result['recall@10']:.4f}  NDCG@10 {result['ndcg@10']:.4f}")
    if args.plot:
        from movielens import embedding_plot

        figure = embedding_plot.embedding_figure(trained.vocabulary.movie_ids, trained.movie_vectors()[1:],
                                                 data.movies, split.train, args.plot_color, args.plot_method)
        path = embedding_plot.write_embedding_plot(
            figure, f"embeddings-{args.model}-{data.variant}-{args.plot_method}-{args.plot_color}")
        print(f"\nEmbedding picture: {path}")
    return 0


def recommend(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ValueError(f"--k must be positive, got {args.k}")
    def check_input(data, split):
        if args.similar_to:
            TitleIndex.from_movies(data.movies).lookup(args.similar_to)
        else:
            UserHistory(split.train).check_user(args.user_id)

    data, split, trained = load_model(args, check_input)
    rank_by = args.rank_by or ("cosine" if args.model == "knn" else "rating")
    recommender = rating.EmbeddingRecommender(trained, data, split.train, rank_by, args.index_backend)
    if args.similar_to:
        movie_id, recs = recommender.similar_to(args.similar_to, args.k)
        print(f"Movies most similar to {recommender.titles[movie_id]} ({args.model} movie embeddings, cosine):")
    else:
        recs = recommender.recommend(args.user_id, args.k)
        what = "predicted rating" if rank_by == "rating" else "cosine of user and movie embeddings"
        print(f"Top {args.k} unseen movies for user {args.user_id} ({args.model}, by {what}):")
    for position, rec in enumerate(recs, 1):
        print(f"{position:3d}. {rec.movie_title}  [{rec.score:.3f}]")
    return 0
