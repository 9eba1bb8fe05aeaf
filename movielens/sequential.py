"""Training, evaluation, caching and recommendations for the sequential models: BERT4Rec
(`movielens.models.bert4rec`) and SASRec / gSASRec (`movielens.models.sasrec`).

Protocol (leave-last-out, `movielens.sequences`), the same for both: the model trains on each user's
training movies (BERT4Rec: masked afresh every epoch; SASRec: every position predicts the
next movie), validates on the second-to-last movie
(history = the training movies) every `evaluate_every` epochs with early stopping on
`val_ndcg@10` (best weights kept), and is tested on the last movie (history =
training movies + the validation movie). With `--split_validation_users N` only N users validate and the
others' second-to-last movie is a training movie (`movielens.data.splits`); nothing here changes.

Metrics:
  full ranking  - the target ranked among all n_items training movies, the input
                  history excluded: hr@1/5/10, ndcg@5/10, mrr (`test_*`, `val_*`).
  sampled       - the BERT4Rec paper's protocol, for comparison with it only: the target
                  ranked among 100 negatives sampled by popularity (training
                  interaction counts) from movies outside the history (`test_sampled100_*`).
A held-out movie never rated in training cannot be ranked and counts as a miss.

Cache: through the shared train-or-load of the families (`movielens.families.sequential`):
`saved_models/<bert4rec|sasrec>-<variant>-<split>-<hash>/` with config.json (the identity), history.json,
metrics.json, sequential.json (the architecture as trained) and weights/; `load_network` rebuilds either.
Item index i is the split vocabulary's movie i - 1. Recommendations go through the shared recommender.

SASRec's data-dependent defaults (`adapt_config`; BERT4Rec keeps the paper's fixed ones):
  max_len  min(200, the 90th percentile of the users' training sequence lengths, rounded up to a
           multiple of 8): 200 (the SASRec/BERT4Rec ML-1M setting) caps it; shorter data gets
           shorter (cheaper) windows, and the 10% longer histories are still cut into several windows.
  dropout  0.2, the SASRec paper's ML-1M value. Higher dropout for small data was tried on
           validation NDCG@10 only (benchmarks/results/sequential.json, 8-minute budget, Adam 1e-3):
           on ML-100K (943 users) 0.5 lost to 0.2 (0.098 vs 0.104; 0.097 with hidden 128), so 0.5 is
           kept only below 500 users (`SMALL_DATA_USERS`), where no real data set here could validate
           it: a guess that over-fitting dominates there, as gSASRec's 0.5 on ML-1M suggests.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from movielens import evaluation
from movielens.config import Config
from movielens.data.splits import Split, Vocabulary
from movielens.data.table import MovieLensData
from movielens.io import CorruptFileError
from movielens.models.bert4rec import Bert4Rec, Bert4RecConfig
from movielens.models.sasrec import SasRec, SasRecConfig
from movielens.persistence import ModelDir, load_weights, save_weights
from movielens.schedules import WarmupConstant
from movielens.sequences import (
    PAD,
    NextItemTask,
    UserSequences,
    build_sequences,
    leave_last_out_tasks,
    length_quantile,
    masked_epochs,
    shifted_epochs,
    training_windows,
)
from movielens.training import EpochData

MODEL_TYPES = ("bert4rec", "sasrec")
MONITOR = "val_ndcg@10"
KS = (1, 5, 10)
SAMPLED_NEGATIVES = 100
SAMPLED_PREFIX = f"sampled{SAMPLED_NEGATIVES}_"
# adapt_config: SASRec's max_len = min(MAX_LEN_CAP, this quantile of training lengths, rounded up to 8s);
# dropout = SMALL_DATA_DROPOUT below SMALL_DATA_USERS training users, else LARGE_DATA_DROPOUT.
MAX_LEN_CAP, MAX_LEN_QUANTILE = 200, 0.9
SMALL_DATA_USERS, SMALL_DATA_DROPOUT, LARGE_DATA_DROPOUT = 500, 0.5, 0.2


@dataclasses.dataclass(frozen=True)
class SequentialTrainingConfig(Config):
    """Optimisation and early stopping (shared by the sequential models; defaults are BERT4Rec's)."""

    # The benchmarked settings (benchmarks/bert4rec.py): Adam 2e-3 beat 1e-3 on ML-100K's validation curve.
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 100       # linear warm-up, then constant (Adam)
    clipnorm: float = 5.0         # global gradient-norm clipping (as the original code)
    epochs: int = 200             # upper bound; early stopping usually ends sooner
    evaluate_every: int = 3       # epochs between validations
    patience: int = 5             # validations without a better val_ndcg@10 before stopping (0: never stop early)
    # ... raised to at least this many training steps (`early_stopping_patience`); 0: validations only.
    patience_steps: int = 0
    # Keras' ReduceLROnPlateau: the learning rate x plateau_factor after every plateau_patience validations
    # without a better val_ndcg@10 (before the early stop); plateau_factor 1 -> never.
    plateau_factor: float = 1.0
    plateau_patience: int = 3
    window_stride: int = 0        # items between training windows of long histories; 0 -> max_len
    time_budget_minutes: float = 0.0  # stop before an epoch would end past this (this run's time); 0: no limit

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 1 or self.evaluate_every < 1 or self.learning_rate <= 0:
            raise ValueError(f"batch_size, epochs, evaluate_every must be >= 1 and learning_rate > 0: {self}")
        if not 0 < self.plateau_factor <= 1 or self.plateau_patience < 1:
            raise ValueError(f"plateau_factor must be in (0, 1] and plateau_patience >= 1: {self}")
        if min(self.patience, self.patience_steps, self.window_stride, self.warmup_steps, self.clipnorm,
               self.time_budget_minutes) < 0:
            raise ValueError(f"patience, patience_steps, window_stride, warmup_steps, clipnorm, time_budget_minutes "
                             f"must be >= 0: {self}")


@dataclasses.dataclass(frozen=True)
class Bert4RecTrainingConfig(SequentialTrainingConfig):
    """BERT4Rec's training (the fields and defaults of `SequentialTrainingConfig`, but `patience_steps`).

    Patience in steps as well as validations: a validation every 3 epochs is 201 steps of 64 windows on ML-1M
    (users 1–2999) but 42 on ml-latest-small (610 users), so 5 validations waited 1,005 steps on the first and
    210 on the second, and masked training, which learns from 20% of the positions, stopped on a noisy early
    peak: on ml-latest-small's validation (leave-last-out, 2026-11-29) patience 5 stopped at epoch 39 with
    NDCG@10 0.0255 (best epoch 24); patience 20 reached 0.0413 at epoch 78. 1,000 steps keeps ML-1M's
    patience (5) and gives 24 validations on ml-latest-small, 19 on ML-100K; the best weights are kept, so a
    longer wait costs time, never validation quality. SASRec, which learns from every position, gained
    nothing from it on ml-latest-small (validation 0.0671 at epoch 30 either way): its default stays 0.
    """

    patience_steps: int = 1000


@dataclasses.dataclass(frozen=True)
class SasRecTrainingConfig(SequentialTrainingConfig):
    """SASRec's training: Adam with BERT4Rec's warm-up and clipping.

    Adam 2e-3 (as BERT4Rec here) rather than SASRec's 1e-3: chosen on ML-100K's validation NDCG@10
    (0.108 at epoch 46 vs 0.104 at epoch 24, 8-minute budget; benchmarks/results/sequential.json).
    Full-softmax SASRec learns in far fewer epochs than masked BERT4Rec (every position is a
    training example), so it validates every 2 epochs. Patience 10 validations: on ML-100K at Adam
    2e-3 validation NDCG@10 peaked at epoch 14 (0.099), sagged for 7 validations and rose again to
    0.110 at epoch 62, so patience 4 stopped at epoch 22 with the worse model.
    """

    learning_rate: float = 2e-3
    evaluate_every: int = 2
    patience: int = 10


class TimeBudget(tf.keras.callbacks.Callback):
    """Stops training after the epoch past which the next one would end beyond `minutes` of this run, taking
    the longest epoch so far (its validation included) as the next one's length: training ends within the
    budget rather than one epoch past it (the best weights are still kept)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes, self.started = minutes, time.perf_counter()
        self.last, self.longest = self.started, 0.0

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.longest, self.last = max(self.longest, now - self.last), now
        if self.minutes and now - self.started + self.longest > 60.0 * self.minutes:
            print(f"time budget of {self.minutes:.1f} minutes: stopping after epoch {epoch + 1} "
                  f"({(now - self.started) / 60:.1f} minutes; another epoch would end past it)", flush=True)
            self.model.stop_training = True


SequentialModel = Bert4Rec | SasRec  # anything with n_items and score_histories(histories) -> [n, n_items]
# (a SequentialEnsemble of them too)


# --- evaluation ------------------------------------------------------------------------------------------

def next_item_ranks(model: SequentialModel, task: NextItemTask, batch_size: int = 256) -> np.ndarray:
    """0-based full-ranking rank of each target among all items, the input history excluded: [U] int.

    Unknown targets (PAD) get rank n_items (a miss at every cut-off).
    """
    ranks = np.full(len(task), model.n_items, np.int64)
    for start in range(0, len(task), 2048):  # chunks bound the [chunk, n_items] score matrix
        stop = min(start + 2048, len(task))
        scores = model.score_histories(task.histories[start:stop], batch_size)
        targets = task.targets[start:stop]
        known = targets != PAD
        seen = evaluation.ItemSets.from_lists([h - 1 for h in task.histories[start:stop]])
        held_out = evaluation.ItemSets.from_lists([[t - 1] if t != PAD else [] for t in targets])
        scores = evaluation.exclude_seen(scores, seen, held_out)
        chunk = evaluation.target_ranks(scores, np.maximum(targets - 1, 0))
        ranks[start:stop] = np.where(known, chunk, model.n_items)
    return ranks


def next_item_metrics(model: SequentialModel, task: NextItemTask, prefix: str = "") -> dict[str, float]:
    """Full-ranking hr@1/5/10, ndcg@1/5/10, mrr of a next-item task."""
    metrics = evaluation.leave_one_out_metrics(next_item_ranks(model, task), KS)
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def sampled_metrics(model: SequentialModel, task: NextItemTask, popularity: np.ndarray, prefix: str = "",
                    n_negatives: int = SAMPLED_NEGATIVES, seed: int = 0) -> dict[str, float]:
    """The paper's protocol: the target against `n_negatives` popularity-sampled unseen items.

    popularity: float [n_items] sampling weights (column j = item index j + 1).
    """
    known = task.targets != PAD
    seen = evaluation.ItemSets.from_lists([h - 1 for h in task.histories])
    negatives = evaluation.sample_negatives(seen, np.maximum(task.targets - 1, 0), popularity, n_negatives, seed)
    scores = model.score_histories(task.histories)
    ranks = evaluation.sampled_target_ranks(scores, np.maximum(task.targets - 1, 0), negatives)
    ranks = np.where(known, ranks, n_negatives)
    metrics = evaluation.leave_one_out_metrics(ranks, KS)
    return {f"{prefix}{SAMPLED_PREFIX}{k}": v for k, v in metrics.items()}


# --- training ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainedSequential:
    """A trained (or loaded) sequential model with everything needed to use and report it."""

    model: SequentialModel
    config: Bert4RecConfig | SasRecConfig
    training: SequentialTrainingConfig
    vocabulary: Vocabulary
    history: dict
    metrics: dict
    model_dir: ModelDir | None
    loaded: bool = False

    @property
    def model_type(self) -> str:
        return model_type_of(self.config)


TrainedBert4Rec = TrainedSequential  # the old name


def model_type_of(config: Bert4RecConfig | SasRecConfig) -> str:
    if isinstance(config, Bert4RecConfig):
        return "bert4rec"
    if isinstance(config, SasRecConfig):
        return "sasrec"
    raise TypeError(f"not a sequential model config: {config!r}")


def adapt_config(config: SasRecConfig, sequences: UserSequences) -> SasRecConfig:
    """Fills SASRec's data-dependent defaults (max_len 0, dropout < 0) from the training sequences.

    max_len: min(MAX_LEN_CAP, the MAX_LEN_QUANTILE quantile of training lengths rounded up to a multiple of 8).
    dropout: SMALL_DATA_DROPOUT below SMALL_DATA_USERS users, else LARGE_DATA_DROPOUT (picked on validation
    NDCG@10, see the module docstring). Explicit values are kept.
    """
    changes = {}
    if config.max_len == 0:
        quantile = length_quantile(sequences, MAX_LEN_QUANTILE)
        changes["max_len"] = int(min(MAX_LEN_CAP, max(8, -(-quantile // 8) * 8)))
    if config.dropout < 0:
        changes["dropout"] = SMALL_DATA_DROPOUT if len(sequences) < SMALL_DATA_USERS else LARGE_DATA_DROPOUT
    return config.replace(**changes) if changes else config


def build_model(config: Bert4RecConfig | SasRecConfig, training: SequentialTrainingConfig,
                n_items: int, lr_scale: tf.Variable | None = None) -> SequentialModel:
    """The model of `config`'s type with its variables created, compiled with Adam (warm-up, clipping; the
    rate times `lr_scale` when given, the variable a plateau decay lowers)."""
    model_class = Bert4Rec if isinstance(config, Bert4RecConfig) else SasRec
    model = model_class(config, n_items).build_variables()
    optimizer = tf.keras.optimizers.Adam(WarmupConstant(training.learning_rate, training.warmup_steps, lr_scale),
                                         global_clipnorm=training.clipnorm or None)
    model.compile(optimizer=optimizer)
    return model


def default_configs(model: str) -> tuple[Bert4RecConfig | SasRecConfig, SequentialTrainingConfig]:
    """(model config, training config) defaults of "bert4rec" or "sasrec"."""
    if model == "bert4rec":
        return Bert4RecConfig(), Bert4RecTrainingConfig()
    if model == "sasrec":
        return SasRecConfig(), SasRecTrainingConfig()
    raise ValueError(f"unknown sequential model {model!r}; choose from {MODEL_TYPES}")


def training_dataset(config: Bert4RecConfig | SasRecConfig, training: SequentialTrainingConfig,
                     sequences: UserSequences, n_items: int, seed: int) -> tuple[EpochData, int]:
    """(the model's training data, number of windows): BERT4Rec masked windows, SASRec shifted pairs; each
    epoch a function of (seed, epoch) only, so a resumed run trains on exactly the batches it would have."""
    if isinstance(config, Bert4RecConfig):
        windows = training_windows(sequences, config.max_len, training.window_stride or None)
        return masked_epochs(windows, n_items, training.batch_size, config.mask_prob,
                             config.predictions_per_window, seed, config.last_only_prob), len(windows)
    # One item longer than the input: input = window[:-1], target = window[1:].
    windows = training_windows(sequences, config.max_len + 1, training.window_stride or None)
    return shifted_epochs(windows, training.batch_size, seed), len(windows)


def fit_sequential(data: MovieLensData, split: Split, config: Bert4RecConfig | SasRecConfig,
                   training: SequentialTrainingConfig, model_dir: ModelDir, seed: int = 42, verbose: int = 1,
                   evaluate=None, callbacks: Sequence[tf.keras.callbacks.Callback] = ()
                   ) -> tuple[SequentialModel, dict, dict]:
    """Trains BERT4Rec or SASRec (by `config`'s type) on `split.train`, checkpointing into `model_dir`.

    Validation: on a leave-last-out split each user's second-to-last movie (the sequential protocol);
    otherwise `evaluate(model) -> {"val_ndcg@10": ...}` when given (the families pass the leaderboard
    protocol), or none. Early stopping on val_ndcg@10 with the best weights kept. SASRec's data-dependent
    fields are filled from the training sequences first (`adapt_config`). Returns (network, history,
    metrics); on leave-last-out the metrics hold the full-ranking and sampled test figures.
    """
    vocabulary = split.vocabulary
    n_items = len(vocabulary.movie_ids)
    sequences = build_sequences(split.train, vocabulary)
    if isinstance(config, SasRecConfig):
        config = adapt_config(config, sequences)
    tf.keras.utils.set_random_seed(seed)
    # The variable a plateau decay lowers; none when the decay is off.
    lr_scale = tf.Variable(1.0, trainable=False, dtype=tf.float32) if training.plateau_factor < 1 else None
    network = build_model(config, training, n_items, lr_scale)
    dataset, n_windows = training_dataset(config, training, sequences, n_items, seed)
    tasks = leave_last_out_tasks(split) if split.name == "leave_last_out" else None
    if tasks:
        evaluate = lambda m: next_item_metrics(m, tasks[0], "val_")  # noqa: E731
    started = time.perf_counter()
    callbacks = [*callbacks, TimeBudget(training.time_budget_minutes)]
    history = _fit(network, dataset, model_dir, training, evaluate, verbose, callbacks, lr_scale)
    history["train_seconds_this_run"] = time.perf_counter() - started
    metrics: dict[str, float] = {"n_items": n_items, "n_windows": n_windows, "n_users": len(sequences),
                                 "epochs_run": len(history.get("epoch", [])), "best_epoch": history.get("best_epoch")}
    if tasks:
        popularity = np.bincount(np.concatenate(sequences.items), minlength=n_items + 1)[1:].astype(np.float64)
        metrics.update(leave_last_out_test_metrics(network, tasks[1], popularity, seed))
    return network, history, metrics


def leave_last_out_test_metrics(network, task: NextItemTask, popularity: np.ndarray, seed: int = 42) -> dict:
    """The sequential protocol's test figures of `network` (a model or an ensemble) on the test task of a
    leave-last-out split: full ranking (test_*), the sampled-100 figures (test_sampled100_*, negatives drawn
    by `popularity`, float [n_items] training interactions per item column), unknown targets and users."""
    metrics = next_item_metrics(network, task, "test_")
    try:
        metrics.update(sampled_metrics(network, task, popularity, "test_", seed=seed))
    except ValueError as error:  # a catalogue too small for 100 negatives (tiny synthetic data)
        print(f"sampled protocol skipped: {error}", flush=True)
    metrics["test_unknown_targets"] = int((task.targets == PAD).sum())
    metrics["test_users"] = len(task)
    return metrics


def resolved_config(network) -> Bert4RecConfig | SasRecConfig:
    """The architecture a trained network (or an ensemble's first member) was built with."""
    network = getattr(network, "members", [network])[0]
    return network.bert_config if isinstance(network, Bert4Rec) else network.sasrec_config


def save_sequential(network: SequentialModel, model_dir: ModelDir) -> None:
    """The weights, and the architecture as trained (SASRec's data-dependent fields filled in)."""
    config = resolved_config(network)
    save_weights(network, model_dir.weights_prefix)
    model_dir.write_json("sequential.json", {"model_type": model_type_of(config), "model": config.to_dict(),
                                             "n_items": int(network.n_items)})


def load_network(model_dir: ModelDir, training: SequentialTrainingConfig, n_items: int) -> SequentialModel:
    """Rebuilds the network saved by `save_sequential` and restores its weights (CorruptFileError if it fails)."""
    saved = model_dir.read_json("sequential.json")
    config_class = SasRecConfig if saved["model_type"] == "sasrec" else Bert4RecConfig
    if int(saved["n_items"]) != n_items:
        raise CorruptFileError(f"{model_dir.path} has {saved['n_items']} items, the split has {n_items}")
    network = build_model(config_class.from_dict(saved["model"]), training, n_items)
    load_weights(network, model_dir.weights_prefix)
    return network


def train_sequential(data: MovieLensData, split: Split, model: str = "bert4rec",
                     config: Bert4RecConfig | SasRecConfig | None = None,
                     training: SequentialTrainingConfig | None = None, seed: int = 42, retrain: bool = False,
                     verbose: int = 1, root=None,
                     callbacks: Sequence[tf.keras.callbacks.Callback] = (), members: int = 1,
                     member_hidden_dims: tuple[int, ...] = ()) -> TrainedSequential:
    """BERT4Rec or SASRec on `split` through the shared train-or-load path (`movielens.families`, family
    `model`): loaded from saved_models/ when there, else trained (`fit_sequential`) and saved.

    `config` (Bert4RecConfig / SasRecConfig) must match `model`; `training` defaults to the model's.
    `members` > 1: an ensemble of that many models, seeds `seed`, `seed` + 1, ..., each with its hidden size
    from `member_hidden_dims` when given (`SequentialConfig`).
    """
    from movielens.families import get_family
    from movielens.families.base import Context, train_or_load
    from movielens.families.sequential import SequentialConfig

    default_config, default_training = default_configs(model)
    config, training = config or default_config, training or default_training
    if model_type_of(config) != model:
        raise ValueError(f"model {model!r} needs a {type(default_config).__name__}, got {type(config).__name__}")
    wanted = SequentialConfig(config, training, seed, members, tuple(member_hidden_dims))
    context = Context(data, split, verbose, options={"callbacks": list(callbacks)})
    record = train_or_load(get_family(model), wanted, context, retrain=retrain, root=root)
    network = record.state
    return TrainedSequential(network, resolved_config(network), training, split.vocabulary, record.history,
                             record.metrics, record.model_dir, record.loaded)


def train_bert4rec(data: MovieLensData, split: Split, config: Bert4RecConfig | None = None,
                   training: SequentialTrainingConfig | None = None, seed: int = 42,
                   retrain: bool = False, verbose: int = 1, root=None,
                   callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> TrainedSequential:
    """`train_sequential(..., model="bert4rec", ...)` (the original entry point)."""
    return train_sequential(data, split, "bert4rec", config, training, seed=seed, retrain=retrain, verbose=verbose,
                            root=root, callbacks=callbacks)


def early_stopping_patience(training: SequentialTrainingConfig, steps_per_epoch: int) -> int:
    """Validations without a better val_ndcg@10 before the early stop: `patience`, raised so that the wait is
    at least `patience_steps` training steps (`evaluate_every` epochs of `steps_per_epoch` per validation).
    0: never stop early."""
    if not training.patience or not training.patience_steps:
        return training.patience
    per_validation = training.evaluate_every * max(int(steps_per_epoch), 1)
    return max(training.patience, -(-training.patience_steps // per_validation))


def _fit(model, dataset, model_dir: ModelDir, training: SequentialTrainingConfig, evaluate, verbose,
         callbacks, lr_scale: tf.Variable | None) -> dict:
    from movielens.training import PlateauDecay, fit_resumable

    if evaluate is None:
        return fit_resumable(model, dataset, epochs=training.epochs, checkpoint_dir=model_dir.checkpoint_dir,
                             verbose=verbose, callbacks=callbacks)
    patience = early_stopping_patience(training, dataset.steps_per_epoch)
    history = fit_resumable(model, dataset, epochs=training.epochs, checkpoint_dir=model_dir.checkpoint_dir,
                            evaluate=evaluate, evaluate_every=training.evaluate_every, monitor=MONITOR, mode="max",
                            patience=patience or None, restore_best=True, verbose=verbose,
                            callbacks=callbacks, plateau=None if lr_scale is None else PlateauDecay(
                                lr_scale, training.plateau_factor, training.plateau_patience))
    history["patience"] = patience  # in validations, as used
    return history
