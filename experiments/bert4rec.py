"""BERT4Rec: masked-movie training over watch histories, leave-last-out full-ranking evaluation.

    python -m experiments.run --model bert4rec [--dataset 100k] [--max_len 200 --hidden_dim 64 ...] [--retrain]
    python -m experiments.recommend --model bert4rec --history "Toy Story (1995)" "Aladdin (1992)"
    python -m experiments.recommend --model bert4rec --user_id 42

A trained model is cached in saved_models/ (config, history, metrics as JSON); an interrupted
run resumes from its last epoch. Every Bert4RecConfig / Bert4RecTrainingConfig field is a flag.
"""

from __future__ import annotations

import argparse
import dataclasses

from movielens.data.cli import add_data_arguments, load_split
from movielens.recommender import UserHistory
from movielens.titles import TitleIndex

# The dataclasses are imported lazily (TensorFlow is slow to import); their fields are mirrored here
# through `_config_classes()` so `--help` still lists every field with its default.


def _config_classes():
    from movielens.bert4rec_trainer import Bert4RecTrainingConfig
    from movielens.models.bert4rec import Bert4RecConfig

    return Bert4RecConfig, Bert4RecTrainingConfig


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for cls in _config_classes():
        group = parser.add_argument_group(cls.__name__)
        for field in dataclasses.fields(cls):
            group.add_argument(f"--{field.name}", type=type(field.default), default=field.default,
                               help=f"default {field.default}")


def _configs(args):
    model_cls, training_cls = _config_classes()
    pick = lambda cls: cls.from_dict({f: getattr(args, f) for f in cls.field_names()})  # noqa: E731
    return pick(model_cls), pick(training_cls)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    add_data_arguments(parser, default_split="leave_last_out")
    parser.add_argument("--retrain", action="store_true", help="ignore a cached model and train again")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch output")


def _train(args, check_input=None):
    """(data, split, trained model); `check_input(data)` runs first, so bad input fails before any training."""
    from movielens.bert4rec_trainer import train_bert4rec

    data, split = load_split(args)
    if check_input is not None:
        check_input(data)
    config, training = _configs(args)
    trained = train_bert4rec(data, split, config, training, seed=args.seed, retrain=args.retrain,
                             verbose=0 if args.quiet else 2)
    return data, split, trained


def run(args: argparse.Namespace) -> int:
    data, split, trained = _train(args)
    state = "loaded from" if trained.loaded else "saved to"
    print(f"BERT4Rec on {data.variant} ({data.source}), {split.describe()}; {state} {trained.model_dir.path}")
    history = trained.history
    if history.get("best_epoch"):
        print(f"epochs run: {history['epoch'][-1]}, best val_ndcg@10 at epoch {history['best_epoch']}")
    if not any(k.startswith("test_") for k in trained.metrics):
        print("no next-item metrics: evaluation needs --split leave_last_out")
    print("| metric | value |\n|---|---:|")
    for key, value in trained.metrics.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return 0


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--history", nargs="+", metavar="TITLE",
                     help='movies watched, oldest first, e.g. "Toy Story (1995)" "Aladdin" (tolerant matching)')
    who.add_argument("--user_id", help="recommend after this user's whole rating history")
    parser.add_argument("--k", type=int, default=10, help="number of recommendations")


def recommend(args: argparse.Namespace) -> int:
    from movielens.bert4rec_trainer import Bert4RecRecommender

    def check_input(data):
        if args.history:
            index = TitleIndex.from_movies(data.movies)
            for title in args.history:
                index.lookup(title)
        else:
            UserHistory(data.ratings).check_user(args.user_id)

    data, _, trained = _train(args, check_input)
    recommender = Bert4RecRecommender.from_trained(trained, data)
    if args.history:
        watched = recommender.history_ids(args.history)
        print("History:", "; ".join(recommender.titles[m] for m in watched))
        recs = recommender.recommend_for_history(args.history, k=args.k)
    else:
        user = recommender.users.check_user(args.user_id)
        seen = recommender.users.seen_movies(user)
        print(f"User {user}: {len(seen)} movies; last 5: " + "; ".join(recommender.titles[m] for m in seen[-5:]))
        recs = recommender.recommend(user, k=args.k)
    for rank, rec in enumerate(recs, 1):
        print(f"{rank:2d}. {rec.movie_title}  (score {rec.score:.3f})")
    return 0
