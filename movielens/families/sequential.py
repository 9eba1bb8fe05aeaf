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
import time

import numpy as np

from movielens import sequential
from movielens.config import Config
from movielens.families.base import Context, Family, Fitted
from movielens.families.histories import Histories
from movielens.models.bert4rec import Bert4Rec, Bert4RecConfig
from movielens.models.sequential_ensemble import SequentialEnsemble


@dataclasses.dataclass(frozen=True)
class SequentialConfig(Config):
    """A sequential model: its architecture config, its training config and the seed.

    members > 1: an ensemble (`movielens.models.sequential_ensemble`) of that many models with seeds
    seed, seed + 1, ...; each is an ordinary cached model of the family (reused by any ensemble or run
    that asks for it), trained in turn, sharing the time budget: each gets what is left of it divided
    by the members still to train. `member_hidden_dims` gives each member its own hidden size (one per
    member; empty: all have model.hidden_dim): members that differ in width err more differently than
    seeds alone (on ML-1M (users 1-2999) validation, 64 + 128 beat two 64s: benchmarks/sequential.py).
    """

    model: Config = dataclasses.field(default_factory=Bert4RecConfig)
    training: Config = dataclasses.field(default_factory=sequential.Bert4RecTrainingConfig)
    seed: int = 42
    members: int = 1
    member_hidden_dims: tuple[int, ...] = ()

    def __post_init__(self):
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ValueError(f"invalid SequentialConfig (members must be an integer >= 1, got {self.members!r})")
        dims = self.member_hidden_dims
        if dims and self.members == 1:  # the widths alone say how many members there are
            object.__setattr__(self, "members", len(dims))
        if dims and (len(dims) != self.members or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                                      for d in dims)):
            raise ValueError(f"invalid SequentialConfig (member_hidden_dims needs one integer >= 1 per member; "
                             f"members = {self.members}): {dims!r}")
        for dim in dims:
            self.model.replace(hidden_dim=dim)  # the architecture's own checks (heads must divide it)

    def member(self, index: int) -> SequentialConfig:
        """The config of the ensemble's member `index` (a single model, seed + index, its own hidden size)."""
        model = self.model.replace(hidden_dim=self.member_hidden_dims[index]) if self.member_hidden_dims else self.model
        return self.replace(model=model, seed=self.seed + index, members=1, member_hidden_dims=())


class EnsembleScorer:
    """The members' query and candidate vectors side by side: the dot product is the sum of their logits."""

    def __init__(self, ensemble: SequentialEnsemble):
        self.parts = [SequentialScorer(member) for member in ensemble.members]

    def candidates(self) -> np.ndarray:
        return np.hstack([part.candidates() for part in self.parts])

    def queries(self, histories: Histories, batch_size: int = 256) -> np.ndarray:
        return np.hstack([part.queries(histories, batch_size) for part in self.parts])


def scorer_of(network) -> SequentialScorer | EnsembleScorer:
    return EnsembleScorer(network) if isinstance(network, SequentialEnsemble) else SequentialScorer(network)


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
        if not values["training"].get("patience_steps"):  # validations only: as before the field existed
            values["training"].pop("patience_steps", None)
        if values["members"] == 1:  # one model: the identity of the models trained before ensembles existed
            values.pop("members")
        if not values["member_hidden_dims"]:
            values.pop("member_hidden_dims")
        return values

    def label(self, config: SequentialConfig) -> str:
        if config.member_hidden_dims:
            return f"{self.name}[hidden {'+'.join(map(str, config.member_hidden_dims))}]"
        return self.name if config.members == 1 else f"{self.name}[{config.members} seeds]"

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
        group = parser.add_argument_group(f"{self.name} ensemble")
        group.add_argument("--members", type=int, default=1,
                           help="an ensemble of this many models, seeds --seed, --seed + 1, ...: ranks by the sum "
                                "of their logits; they share --time_budget_minutes (default: 1, one model)")
        group.add_argument("--member_embedding_sizes", "--member_hidden_dims", dest="member_hidden_dims", type=int,
                           nargs="+", default=None, metavar="INT",
                           help="each member's --embedding_size, one per member (e.g. 64 128; sets --members to "
                                "their number; default: every member has --embedding_size)")

    def configs_from_args(self, args) -> list[SequentialConfig]:
        from movielens.cli import config_from_flags

        default = self.default_config()
        return [SequentialConfig(config_from_flags(args, default.model), config_from_flags(args, default.training),
                                 seed=args.seed, members=getattr(args, "members", 1),
                                 member_hidden_dims=tuple(getattr(args, "member_hidden_dims", None) or ()))]

    def fit(self, config: SequentialConfig, context: Context, model_dir) -> Fitted:
        if config.members > 1:
            return self._fit_ensemble(config, context, model_dir)
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

    def _fit_ensemble(self, config: SequentialConfig, context: Context, model_dir) -> Fitted:
        """Trains (or loads) each member as an ordinary model of this family, then measures the ensemble."""
        from movielens.families.base import train_or_load

        started, budget = time.perf_counter(), config.training.time_budget_minutes
        members = []
        for index in range(config.members):
            member = config.member(index)
            if budget:  # what is left of the budget, shared by the members still to train
                left = budget - (time.perf_counter() - started) / 60
                member = member.replace(training=member.training.replace(
                    time_budget_minutes=max(left / (config.members - index), 0.01)))
            members.append(train_or_load(self, member, context, retrain=context.options.get("retrain", False),
                                         root=model_dir.path.parent))
        ensemble = SequentialEnsemble([m.state for m in members])
        history = {"members": [{"seed": m.config.seed, "model_dir": m.model_dir.path.name, "loaded": m.loaded,
                                **m.history} for m in members],
                   "train_seconds_this_run": time.perf_counter() - started}
        metrics = {"members": [m.metrics for m in members]}
        if context.split.name == "leave_last_out":
            validation, test = sequential.leave_last_out_tasks(context.split)
            metrics.update(sequential.next_item_metrics(ensemble, validation, "val_"))
            metrics.update(sequential.leave_last_out_test_metrics(ensemble, test, context.item_counts, config.seed))
        return Fitted(ensemble, history, metrics)

    def save(self, state, model_dir) -> None:
        if isinstance(state, SequentialEnsemble):  # the members are saved in their own folders
            return
        sequential.save_sequential(state, model_dir)

    def load(self, config: SequentialConfig, context: Context, model_dir):
        if config.members > 1:
            from movielens.families.base import train_or_load

            # A member that is gone (ModelNotTrainedError, a ValueError) makes the ensemble retrain: the
            # members still there load, the missing one trains.
            return SequentialEnsemble([train_or_load(self, config.member(i), context, no_train=True,
                                                     root=model_dir.path.parent).state
                                       for i in range(config.members)])
        return sequential.load_network(model_dir, config.training, context.n_items)

    def scorer(self, state, config, context) -> SequentialScorer | EnsembleScorer:
        return scorer_of(state)


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
