"""Two-tower retrieval (TFRS) over feature sets: train or load one model per set, compare, recommend.

    python -m experiments.run --num_epochs 3 --layer_sizes 32 \\
        --additional_feature_sets None --additional_feature_sets timestamp movie_title_text
    python -m experiments.run --generate_recommendations_for_user 42
    python -m experiments.recommend --user_id 42 --additional_feature_sets timestamp

Feature names (repeat --additional_feature_sets for several models; None = id-only baseline):
  query tower:     timestamp, bucketized_user_age, user_gender, user_occupation_label (user_id always)
  candidate tower: movie_title_text, movie_genres, movie_length (movie_title id always)
Models are cached in saved_models/ by config hash (--retrain to train again); curves go to reports/.
"""

from __future__ import annotations

import argparse

from movielens.data.cli import add_data_arguments, load_split
from movielens.features import NONE_FEATURE_SET, OPTIONAL_FEATURES, feature_name
from movielens.movie_length import add_movie_length_arguments, movie_length_config_from_args

DEFAULT_FEATURE_SETS = ([NONE_FEATURE_SET], ["timestamp", "movie_title_text"],
                        ["timestamp", "movie_title_text", "movie_genres", "bucketized_user_age", "user_gender",
                         "user_occupation_label"])


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, default_split="random")
    group = parser.add_argument_group("two-tower model")
    group.add_argument("--additional_feature_sets", action="append", nargs="+", type=feature_name,
                       metavar="FEATURE",
                       help=f"one feature set per use (repeat for several models); {NONE_FEATURE_SET} = id-only "
                            f"baseline; features: {', '.join(OPTIONAL_FEATURES)}. Default: "
                            + "; ".join(" ".join(s) for s in DEFAULT_FEATURE_SETS))
    group.add_argument("--num_epochs", type=int, default=5, help="training epochs")
    group.add_argument("--embedding_size", type=int, default=32, help="size of every feature embedding")
    group.add_argument("--layer_sizes", type=int, nargs="*", default=[32],
                       help="dense layers of each tower, e.g. 64 32 (ReLU between, last linear); none: embeddings "
                            "only (id-only models)")
    group.add_argument("--batch_size", type=int, default=2048)
    group.add_argument("--learning_rate", type=float, default=0.1)
    group.add_argument("--optimizer", default="adagrad", choices=("adagrad", "adam", "sgd"))
    group.add_argument("--validation_freq", type=int, default=1, help="validate every N epochs (the curves)")
    group.add_argument("--retrain", action="store_true", help="train again even if saved_models/ has the model")
    group.add_argument("--constant_movie_length", action="store_true",
                       help="movie_length: use the default 90 minutes for every movie (baseline)")
    add_movie_length_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--generate_recommendations_for_user", default=None, metavar="USER_ID",
                       help="print the user's favourite movies, then each model's top 10")
    group.add_argument("--include_seen", action="store_true", help="recommendations may include rated movies")
    group.add_argument("--export", action="store_true",
                       help="also write each model as a SavedModel (user_id, timestamp -> top-10 titles)")
    group.add_argument("--no_plots", action="store_true", help="skip the plotly reports")


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--user_id", required=True, help="the user to recommend for")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--include_seen", action="store_true", help="recommendations may include rated movies")


def _trainer(args, data, split):
    from movielens.trainer import MovieLensTrainer

    return MovieLensTrainer(
        data, split, num_epochs=args.num_epochs, embedding_size=args.embedding_size, layer_sizes=args.layer_sizes,
        additional_feature_sets=args.additional_feature_sets or DEFAULT_FEATURE_SETS, retrain=args.retrain,
        batch_size=args.batch_size, learning_rate=args.learning_rate, optimizer=args.optimizer, seed=args.seed,
        validation_freq=args.validation_freq, constant_movie_length=args.constant_movie_length,
        movie_length_config=movie_length_config_from_args(args))


def run(args: argparse.Namespace) -> int:
    from movielens.plots import save_reports
    from movielens.recommender import UserHistory
    from movielens.trainer import recommendations_text, results_table

    data, split = load_split(args)
    print(split.describe())
    if split.validation_is_test:
        print("note: validation IS the test split here (TFRS tutorial protocol): the curves are test curves")
    user = args.generate_recommendations_for_user
    if user is not None:
        UserHistory(split.train).check_user(user)  # a bad id fails before any training
    models, histories = _trainer(args, data, split).train_all_models()
    print()
    print(results_table(models, data, split))
    if not args.no_plots:
        for line in save_reports(models, histories, data):
            print(line)
    if args.export:
        for name, trained in models.items():
            print(f"[{name}] SavedModel: {trained.export()}")
    if user is not None:
        print()
        print(recommendations_text(models, split, user, exclude_seen=not args.include_seen))
    return 0


def recommend(args: argparse.Namespace) -> int:
    from movielens.recommender import UserHistory
    from movielens.trainer import recommendations_text

    data, split = load_split(args)
    UserHistory(split.train).check_user(args.user_id)
    models, _ = _trainer(args, data, split).train_all_models()
    print(recommendations_text(models, split, args.user_id, k=args.k, exclude_seen=not args.include_seen))
    return 0
