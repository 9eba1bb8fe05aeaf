"""What a model family supplies, and the one train-or-load path every family goes through.

A family (`Family` subclass, registered in `movielens.families.REGISTRY`) supplies only
what is its own:
  - `config_class` and `default_config()`: its typed config (movielens.config.Config);
  - `fit(config, context, model_dir) -> Fitted`: build and train (TF families through
    `movielens.training.fit_resumable`, checkpointing into `model_dir`), returning its
    trained state, the per-epoch history and its own metrics;
  - `save(state, model_dir)` / `load(config, context, model_dir)`: its files in the model folder;
  - `scorer(state, config, context) -> Scorer`: a person's history -> a query vector, and one
    candidate vector per movie, so that scores = query . candidate over the whole catalogue.

Written once, here: the cache identity (family, code version, config, data fingerprint
and split), loading with a damaged folder moved aside and retrained, "not cached"
notices and `no_train`, and the trained-model record.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
import zipfile
from typing import Any, Protocol

import numpy as np
import pandas as pd

from movielens.config import Config
from movielens.data.splits import Split
from movielens.data.table import MovieLensData
from movielens.errors import TrainingDivergedError
from movielens.families.histories import Histories
from movielens.io import CorruptFileError
from movielens.persistence import ModelDir, readable_name


class ModelNotTrainedError(ValueError):
    """`--no_train` and the model is not in saved_models/."""


class Scorer(Protocol):
    """Scores = queries(histories) @ candidates().T, column j = the split vocabulary's movie j."""

    def candidates(self) -> np.ndarray:
        """float32 [n_items, d]."""

    def queries(self, histories: Histories) -> np.ndarray:
        """float32 [n, d], one per person."""


@dataclasses.dataclass
class Context:
    """The data a family trains on and scores against: the whole data set and the split."""

    data: MovieLensData
    split: Split
    verbose: int = 1
    # Run settings a family reads that are not model settings (e.g. where movie runtimes come from,
    # whether to export), and what a family computed once per run (e.g. the runtimes themselves).
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.split.vocabulary.movie_ids)

    @functools.cached_property
    def train_histories(self) -> Histories:
        """Every training user's training movies (the fitting data of the non-neural families)."""
        return Histories.from_frame(self.split.train, self.split.vocabulary, self.split.vocabulary.user_ids)

    @functools.cached_property
    def item_counts(self) -> np.ndarray:
        """float64 [n_items] training interactions per movie column."""
        columns = self.split.vocabulary.encode_movies(self.split.train["movie_id"]) - 1
        return np.bincount(columns[columns >= 0], minlength=self.n_items).astype(np.float64)


@dataclasses.dataclass
class Fitted:
    state: Any
    history: dict
    metrics: dict


@dataclasses.dataclass
class TrainedModel:
    """One trained (or loaded) model of a family, with its record in saved_models/."""

    family: Family
    config: Config
    state: Any
    history: dict
    metrics: dict
    model_dir: ModelDir
    loaded: bool
    context: Context

    @property
    def name(self) -> str:
        return self.family.label(self.config)

    def scorer(self) -> Scorer:
        return self.family.scorer(self.state, self.config, self.context)


class Family(abc.ABC):
    """A model family: see the module docstring for what a subclass supplies."""

    name: str = ""
    kind: str = ""          # "baseline", "retrieval", "sequential" or "rating"
    summary: str = ""       # one line for --help and the README
    fold_in: str = ""       # how a person who is not in the data (typed titles) is scored
    config_class: type[Config] = Config
    default_split: str = "random"
    version: int = 1        # bumped when saved files or training change, so old models are not reused
    default_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)  # random split: train / validation / test
    headline_metrics: tuple[str, ...] = ()  # the family's own metrics worth printing beside the protocol's
    headline_labels: dict[str, str] = {}    # how to name them when the key is not self-explanatory
    # Config fields that do not change the trained weights (time budgets): left out of the identity.
    not_identity: tuple[str, ...] = ()
    # Trains under a tf.distribute strategy with the single-device result (`movielens.distribute`); the
    # closed-form baselines need no strategy and run under any.
    distributable: bool = False

    def default_config(self) -> Config:
        return self.config_class()

    def label(self, config: Config) -> str:
        """How rows of tables name a model of this family."""
        return self.name

    # --- the command line (movielens.cli): one flag per config field, one name per concept ---------------
    def add_flags(self, parser) -> None:
        """Adds this family's flags (its config's fields, defaults shown) to an argparse parser."""
        from movielens.cli import add_config_flags

        add_config_flags(parser, self.default_config(), f"{self.name} ({self.kind}): {self.summary}")

    def configs_from_args(self, args) -> list[Config]:
        """The configs the flags ask for (several for a family that compares variants, e.g. feature sets).
        Building them validates every value, before any data is loaded."""
        from movielens.cli import config_from_flags

        return [config_from_flags(args, self.default_config(), seed=getattr(args, "seed", 42))]

    def report_extras(self, trained: TrainedModel, folder, plots: bool = True) -> list[str]:
        """Family-specific outputs written beside a run's report (pictures, exports); lines to print."""
        return []

    def identity_config(self, config: Config) -> dict:
        """The config's part of the identity: every field but those in `not_identity`."""
        return {k: v for k, v in config.to_dict().items() if k not in self.not_identity}

    def identity_extras(self, config: Config, context: Context) -> dict:
        """Inputs besides the config and the ratings that change the trained model (e.g. movie runtimes)."""
        return {}

    def options_from_args(self, args) -> dict:
        """Run inputs from this family's flags that are not part of a config (e.g. where movie runtimes come
        from, whether to export): they reach `fit` / `report_extras` as `context.options`."""
        return {}

    def check(self, config: Config, data: MovieLensData) -> None:
        """Raises ValueError when the config cannot run on this data (before any training)."""
        return None

    @abc.abstractmethod
    def fit(self, config: Config, context: Context, model_dir: ModelDir) -> Fitted: ...

    @abc.abstractmethod
    def save(self, state: Any, model_dir: ModelDir) -> None: ...

    @abc.abstractmethod
    def load(self, config: Config, context: Context, model_dir: ModelDir) -> Any: ...

    @abc.abstractmethod
    def scorer(self, state: Any, config: Config, context: Context) -> Scorer: ...


def _fingerprint(frame: pd.DataFrame) -> str:
    columns = [c for c in ("user_id", "movie_id", "user_rating", "timestamp") if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def data_identity(data: MovieLensData, split: Split) -> dict:
    """The data part of a model's identity: the variant and exactly which ratings train, validate and test.

    By content, not by path: the same files anywhere give the same identity.
    """
    return {"variant": data.variant, "split": split.name, "validation_is_test": bool(split.validation_is_test),
            "train": _fingerprint(split.train), "validation": _fingerprint(split.validation),
            "test": _fingerprint(split.test), "catalogue": int(len(data.movies))}


def model_dir_for(family: Family, config: Config, context: Context, root=None) -> ModelDir:
    from movielens import distribute, paths

    root = distribute.models_root(root or paths.models_dir())  # a non-chief worker keeps its own copies
    identity = {"family": family.name, "version": family.version, "config": family.identity_config(config),
                "data": data_identity(context.data, context.split), **family.identity_extras(config, context)}
    return ModelDir(readable_name(family.label(config), context.data.variant, context.split.name), identity, root=root)


def is_trained(family: Family, config: Config, context: Context, root=None) -> bool:
    """True when saved_models/ holds this model (train_or_load would load it)."""
    return model_dir_for(family, config, context, root).is_complete()


def train_or_load(family: Family, config: Config, context: Context, *, retrain: bool = False,
                  no_train: bool = False, root=None) -> TrainedModel:
    """The model of (family, config, data): loaded from saved_models/ when there, else trained and saved.

    A saved model that fails to load is moved aside (kept for inspection) and retrained, with one line said.
    `no_train` turns "not saved yet" into a ModelNotTrainedError instead of training.
    """
    family.check(config, context.data)
    model_dir = model_dir_for(family, config, context, root)
    say = print if context.verbose else (lambda *a, **k: None)
    if model_dir.is_complete() and not retrain:
        try:
            state = family.load(config, context, model_dir)
            history, metrics = model_dir.read_json("history.json"), model_dir.read_json("metrics.json")
            say(f"[{family.label(config)}] loaded from {model_dir.path}", flush=True)
            return TrainedModel(family, config, state, history, metrics, model_dir, True, context)
        except (CorruptFileError, FileNotFoundError, KeyError, ValueError) as error:
            moved = model_dir.move_aside(str(error))
            print(f"[{family.label(config)}] saved model could not be loaded ({error}); moved to {moved}, "
                  f"training again", flush=True)
    if no_train:
        raise ModelNotTrainedError(f"{family.label(config)} with these settings is not in {model_dir.path.parent} "
                                   f"(it would train now); run without --no_train to train it")
    say(f"[{family.label(config)}] not in saved_models/: training it -> {model_dir.path}", flush=True)
    model_dir.start(retrain)
    # `retrain` reaches fit as a run option, so that a model made of other cached models (an ensemble's
    # members) retrains them too; set on this context (not a copy, which would lose what it computed once,
    # e.g. the training histories) for the length of the fit only.
    outer = context.options.get("retrain")
    context.options["retrain"] = retrain
    try:
        fitted = family.fit(config, context, model_dir)
    except TrainingDivergedError:
        model_dir.discard()  # a diverged model is never kept, resumed or reported
        raise
    finally:
        if outer is None:
            context.options.pop("retrain")
        else:
            context.options["retrain"] = outer
    family.save(fitted.state, model_dir)
    model_dir.finish(fitted.history, fitted.metrics)
    return TrainedModel(family, config, fitted.state, fitted.history, fitted.metrics, model_dir, False, context)


def write_arrays(model_dir: ModelDir, name: str, **arrays: np.ndarray) -> None:
    """Numeric arrays to `<model dir>/<name>.npz`, atomically (never pickle)."""
    import os
    import tempfile

    final = model_dir.path / f"{name}.npz"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".npz", dir=model_dir.path)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_arrays(model_dir: ModelDir, name: str) -> dict[str, np.ndarray]:
    path = model_dir.path / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CorruptFileError(f"{path} is unreadable ({error})") from error
