"""The sequential families, `bert4rec` and `sasrec` (models in `movielens.models`, training in `movielens.sequential`).

A person's query is the model's state after reading their history in time order (the last
`max_len` movies): BERT4Rec's output head at a [MASK] appended after it, SASRec's last position.
Someone typed in is just that history, so folding in needs nothing else. Candidates are the item
embeddings the output layer is tied to (plus BERT4Rec's output bias).

On a leave-last-out split the model validates on each user's second-to-last movie (the sequential
protocol); on any other split it validates with the leaderboard protocol on the split's validation
part (a carve-out of train when it has none). Both keep the best-validation weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens import sequential
from movielens.config import Config
from movielens.families.base import Context, Family, Fitted
from movielens.families.histories import Histories
from movielens.models.bert4rec import Bert4Rec, Bert4RecConfig


@dataclasses.dataclass(frozen=True)
class SequentialConfig(Config):
    """A sequential model: its architecture config, its training config and the seed."""

    model: Config = dataclasses.field(default_factory=Bert4RecConfig)
    training: Config = dataclasses.field(default_factory=sequential.Bert4RecTrainingConfig)
    seed: int = 42


class SequentialScorer:
    """query = the model's output state after the history; candidate = the tied item embedding (+ bias)."""

    def __init__(self, model):
        self.model = model
        if isinstance(model, Bert4Rec):
            items = model.item_embedding.embeddings[1:model.n_items + 1].numpy()
            self._candidates = np.hstack([items, model.output_bias.numpy()[:, None]]).astype(np.float32)
        else:
            self._candidates = np.asarray(model.item_vectors(), np.float32)
        self._state = _state_function(model)

    def candidates(self) -> np.ndarray:
        return self._candidates

    def queries(self, histories: Histories, batch_size: int = 256) -> np.ndarray:
        import tensorflow as tf

        inputs = self.model.next_item_inputs([h + 1 for h in histories.lists()])  # columns -> item indices
        out = []
        for start in range(0, len(inputs), batch_size):
            out.append(self._state(tf.constant(inputs[start:start + batch_size])).numpy())
        queries = np.concatenate(out) if out else np.zeros((0, self._candidates.shape[1] - 1), np.float32)
        if isinstance(self.model, Bert4Rec):
            queries = np.hstack([queries, np.ones((len(queries), 1), np.float32)])
        return queries.astype(np.float32)


def _state_function(model):
    """The compiled history -> output-state function of `model`, built once per model (validation builds a
    scorer every epoch; a new tf.function each time would retrace)."""
    import tensorflow as tf

    state = getattr(model, "_output_state", None)
    if state is not None:
        return state
    if isinstance(model, Bert4Rec):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
        def state(inputs):
            # The output head at the [MASK] after the history; [B, 1, H] as in training.
            return model.head_norm(model.head(model.encode(inputs)[:, -1:, :]))[:, 0, :]
    else:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
        def state(inputs):
            return model(inputs, training=False)[:, -1, :]
    model._output_state = state
    return state


FULL_SOFTMAX_MAX_ITEMS = 20_000  # full-softmax losses beyond this: sampled_ce (see Sequential.check)


class Sequential(Family):
    kind = "sequential"
    distributable = True
    # 2: training batches and masks drawn per (seed, epoch) with stateless ops (exact resumption).
    version = 2
    # A time budget stops training early but does not make another model: not part of the identity.
    not_identity = ("time_budget_minutes",)
    default_split = "leave_last_out"
    # On leave-last-out: the sequential protocol's own figures (full ranking; sampled-100 for the papers).
    headline_metrics = ("test_hr@10", "test_ndcg@10", "test_sampled100_hr@10", "test_sampled100_ndcg@10",
                        "best_epoch", "epochs_run")

    def __init__(self, name: str, summary: str):
        self.name, self.summary = name, summary
        self.fold_in = "the typed titles are the history the model reads (oldest first); nothing else is needed"

    def default_config(self) -> SequentialConfig:
        model, training = sequential.default_configs(self.name)
        return SequentialConfig(model, training)

    def identity_config(self, config: SequentialConfig) -> dict:
        values = config.to_dict()
        values["training"] = {k: v for k, v in values["training"].items() if k not in self.not_identity}
        if values["training"].get("plateau_factor") == 1.0:  # no decay: the models trained before it existed
            values["training"].pop("plateau_factor")
            values["training"].pop("plateau_patience")
        return values

    def label(self, config: SequentialConfig) -> str:
        return self.name

    def check(self, config: SequentialConfig, data) -> None:
        """A full softmax scores every movie at every trained position ([positions, movies] per step: 6 GB at
        ML-25M's 59,047 rated movies and SASRec's 128 x 200 positions): larger catalogues need SASRec's sampled
        softmax, and are refused up front otherwise."""
        movies = len(data.movies)
        sampled = getattr(config.model, "loss", "") == "sampled_ce"
        if movies > FULL_SOFTMAX_MAX_ITEMS and not sampled:
            what = "BERT4Rec's masked-item softmax" if self.name == "bert4rec" else f"--loss {config.model.loss}"
            raise ValueError(f"{self.name}: {what} scores all {movies:,} movies at every position; it runs up to "
                             f"{FULL_SOFTMAX_MAX_ITEMS:,} movies (use --model sasrec --loss sampled_ce)")

    def add_flags(self, parser) -> None:
        from movielens.cli import add_config_flags

        default, existing = self.default_config(), set()
        add_config_flags(parser, default.model, f"{self.name} ({self.kind}): {self.summary}", existing=existing)
        add_config_flags(parser, default.training, f"{self.name} training", existing=existing)

    def configs_from_args(self, args) -> list[SequentialConfig]:
        from movielens.cli import config_from_flags

        default = self.default_config()
        return [SequentialConfig(config_from_flags(args, default.model), config_from_flags(args, default.training),
                                 seed=args.seed)]

    def fit(self, config: SequentialConfig, context: Context, model_dir) -> Fitted:
        split, evaluate = context.split, None
        if split.name != "leave_last_out":
            # Validate with the leaderboard protocol; a split without its own validation part trains on a
            # carve-out of train, so that validation is never the test part nor movies it trained on.
            from movielens import protocol

            split = protocol.selection_split(context.split)
            evaluate = _protocol_validation(split)
        network, history, metrics = sequential.fit_sequential(
            context.data, split, config.model, config.training, model_dir, seed=config.seed,
            verbose=context.verbose, evaluate=evaluate, callbacks=context.options.get("callbacks", ()))
        return Fitted(network, history, metrics)

    def save(self, state, model_dir) -> None:
        sequential.save_sequential(state, model_dir)

    def load(self, config: SequentialConfig, context: Context, model_dir):
        return sequential.load_network(model_dir, config.training, context.n_items)

    def scorer(self, state, config, context) -> SequentialScorer:
        return SequentialScorer(state)


def _protocol_validation(split):
    """evaluate(model) -> {"val_ndcg@10", "val_recall@10"} with the leaderboard protocol on `split.validation`."""
    from movielens import protocol

    task = protocol.evaluation_task(split, "validation")

    def evaluate(model) -> dict[str, float]:
        ranking = protocol.rank(SequentialScorer(model), task)
        return {"val_ndcg@10": float(ranking.per_user["ndcg@10"].mean()),
                "val_recall@10": float(ranking.per_user["recall@10"].mean())}

    return evaluate


FAMILIES = (
    Sequential("bert4rec", "BERT4Rec (Sun et al. 2019): bidirectional transformer over the history, masked items"),
    Sequential("sasrec", "SASRec (Kang & McAuley 2018): causal transformer, next-movie cross-entropy over all movies"),
)
