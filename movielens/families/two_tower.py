"""The two-tower retrieval family (TFRS; model in `movielens.models.two_tower`, training in `movielens.trainer`).

A person's query is the query tower at the latest moment known (a known user: their own id
embedding; someone typed in: the unknown-user slot) with, for models with the `history` feature,
the mean embedding of the movies in their history (the last `history_length`). A model without
the history feature cannot tell typed people apart: it gives them the unknown user's list.
Candidates are the candidate tower's embeddings of the split's training movies.
"""

from __future__ import annotations

import hashlib

import numpy as np

from movielens import features as feature_registry
from movielens.families.base import Context, Family, Fitted
from movielens.families.histories import Histories
from movielens.trainer import MovieLensTrainer, TwoTowerConfig

# The original experiment's comparison: id-only, + timestamp and title text, + everything but the runtime.
DEFAULT_FEATURE_SETS = ((), ("timestamp", "movie_title_text"),
                        ("timestamp", "movie_title_text", "movie_genres", "bucketized_user_age", "user_gender",
                         "user_occupation_label"))


class TwoTowerScorer:
    """query = the query tower's output, candidate = the candidate tower's, for the split's movie columns."""

    def __init__(self, model, tables, split):
        from movielens.retrieval import candidate_embeddings

        self.model, self.tables, self.vocabulary = model, tables, split.vocabulary
        # Someone typed in is asked about "now": the latest moment the training data knows.
        self.latest_time = float(split.train["timestamp"].max()) if len(split.train) else 0.0
        self.rows = tables.movie_rows(split.vocabulary.movie_ids)  # column j -> catalogue row
        self._candidates = candidate_embeddings(model, tables.num_candidates)[self.rows]

    def candidates(self) -> np.ndarray:
        return self._candidates

    def queries(self, histories: Histories) -> np.ndarray:
        from movielens.features import pad_histories
        from movielens.retrieval import query_embeddings

        users = self.vocabulary.encode_users(histories.user_ids)
        times = np.where(np.isnan(histories.query_times), self.latest_time, histories.query_times)
        padded = None
        if getattr(self.model.query_tower, "uses_history", False):
            length = int(self.model.query_tower.history_length)
            padded = pad_histories([self.rows[h] for h in histories.lists()], length)
        return query_embeddings(self.model, users, times, padded)


class TwoTower(Family):
    name, kind = "two_tower", "retrieval"
    distributable = True
    summary = "TFRS two-tower retrieval over configurable feature sets (logQ-corrected in-batch softmax)"
    fold_in = ("the query tower for the unknown user at the latest time, with the mean embedding of the typed "
               "movies when the model has the history feature (without it, every typed history gets one list)")
    config_class = TwoTowerConfig
    version = 2
    # The TFRS tutorials' FactorizedTopK figure (seen movies not excluded): the reproduction column.
    headline_metrics = ("test_top_100_accuracy", "val_ndcg@10", "selected_epoch")
    headline_labels = {"test_top_100_accuracy": "tutorial top-100 (seen kept)"}

    def label(self, config: TwoTowerConfig) -> str:
        return f"two_tower[{feature_registry.feature_set_label(config.features)}]"

    def add_flags(self, parser) -> None:
        from movielens.cli import add_config_flags
        from movielens.movie_length import add_movie_length_arguments

        gap, dropout = feature_registry.HISTORY_REGULARISATION_DEFAULT
        by_split = "-1 = by the split: off on leave_last_out, else"
        add_config_flags(parser, self.default_config(), f"{self.name} ({self.kind}): {self.summary}",
                         skip=("seed", "features"), help_text={
                             "history_gap_seconds": f"history feature, training only: a query at t sees the movies "
                                                    f"rated before t minus this; {by_split} {gap}",
                             "history_dropout": f"history feature, training only: share of queries without a "
                                                f"history; {by_split} {dropout}"})
        parser.add_argument(
            "--additional_feature_sets", action="append", nargs="+", type=feature_registry.feature_name,
            metavar="FEATURE",
            help=f"one model per use (repeat to compare); {feature_registry.NONE_FEATURE_SET} = id-only; features: "
                 f"{', '.join(feature_registry.OPTIONAL_FEATURES)}. Default: "
                 + "; ".join(" ".join(s) or "None" for s in DEFAULT_FEATURE_SETS)
                 + " (features the data set lacks are left out)")
        parser.add_argument("--export", action="store_true",
                            help="also write each model as a SavedModel (user_id, timestamp -> top-10 titles)")
        add_movie_length_arguments(parser)

    def options_from_args(self, args) -> dict:
        from movielens.movie_length.config import movie_length_config_from_args

        return {"movie_length_config": movie_length_config_from_args(args), "export": bool(getattr(args, "export",
                                                                                                      False))}

    def configs_from_args(self, args) -> list[TwoTowerConfig]:
        from movielens.cli import config_from_flags

        base = config_from_flags(args, self.default_config(), skip=("seed", "features"), seed=args.seed)
        if args.additional_feature_sets:
            sets = [feature_registry.validate_feature_set(names, args.dataset)
                    for names in args.additional_feature_sets]
        else:
            sets = [tuple(f for f in names if _has(f, args.dataset)) for names in DEFAULT_FEATURE_SETS]
        configs = []
        for features in sets:
            config = base.replace(features=feature_registry.validate_feature_set(features, args.dataset))
            if config not in configs:
                configs.append(config)
        return configs

    def check(self, config: TwoTowerConfig, data) -> None:
        feature_registry.validate_feature_set(config.features, data.variant)

    def _minutes(self, config: TwoTowerConfig, context: Context):
        if "movie_length" not in config.features:
            return None, ""
        key = ("movie_minutes", config.constant_movie_length)
        if key not in context.options:
            context.options[key] = feature_registry.movie_minutes_for(
                context.data, config.features, context.options.get("movie_length_config"),
                config.constant_movie_length, verbose=context.verbose > 0)
        return context.options[key]

    def identity_config(self, config: TwoTowerConfig) -> dict:
        identity = super().identity_config(config)
        if not identity.get("validation_users"):  # added later: at 0 (all users) the models trained before match
            identity.pop("validation_users", None)
        if "history" not in config.features:  # settings of the history feature only: other models keep their key
            identity.pop("history_gap_seconds", None)
            identity.pop("history_dropout", None)
        return identity

    def identity_extras(self, config: TwoTowerConfig, context: Context) -> dict:
        minutes, _ = self._minutes(config, context)
        if minutes is None:
            return {}
        return {"movie_minutes": hashlib.sha256(np.asarray(minutes, np.float32).tobytes()).hexdigest()[:16]}

    def _trainer(self, config: TwoTowerConfig, context: Context) -> MovieLensTrainer:
        """The run's trainer (`MovieLensTrainer.train_model` passes itself, with its speed settings)."""
        trainer = context.options.get("trainer")
        if trainer is None:
            trainer = MovieLensTrainer(context.data, context.split, verbose=2 if context.verbose else 0,
                                       movie_length_config=context.options.get("movie_length_config"))
        return trainer

    def fit(self, config: TwoTowerConfig, context: Context, model_dir) -> Fitted:
        minutes, summary = self._minutes(config, context)
        model, tables, history, metrics = self._trainer(config, context).fit(
            config, model_dir, minutes, summary, callbacks=context.options.get("callbacks", ()))
        return Fitted((model, tables), history, metrics)

    def save(self, state, model_dir) -> None:
        from movielens.persistence import save_weights

        model, tables = state
        save_weights(model, model_dir.weights_prefix)
        model_dir.write_json("features.json", {
            "features": list(model.query_tower.feature_names) + list(model.candidate_tower.feature_names),
            "title_vocabulary_size": len(tables.title_vocabulary),
            "timestamp_buckets": len(tables.timestamp_boundaries) + 1, "num_users": tables.num_users,
            "num_movies": tables.num_movies, "num_candidates": tables.num_candidates,
            "movie_length": tables.length_summary})

    def load(self, config: TwoTowerConfig, context: Context, model_dir):
        minutes, summary = self._minutes(config, context)
        return self._trainer(config, context).load(config, model_dir, minutes, summary)

    def scorer(self, state, config, context: Context) -> TwoTowerScorer:
        model, tables = state
        return TwoTowerScorer(model, tables, context.split)

    def report_extras(self, trained, folder, plots: bool = True) -> list[str]:
        if not trained.context.options.get("export"):
            return []
        from movielens.retrieval import export_saved_model

        model, tables = trained.state
        path = export_saved_model(model, tables, trained.context.split, trained.model_dir.path / "export")
        return [f"[{trained.name}] SavedModel: {path}"]


def _has(feature: str, variant: str) -> bool:
    try:
        feature_registry.validate_feature_set([feature], variant)
    except ValueError:
        return False
    return True
