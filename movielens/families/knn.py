"""`knn`: KNN over movie embeddings learned from co-occurrence (item2vec; model in `movielens.models.knn`).

Training: pairs of movies one person rated within `window` positions of each other in their training
history, an in-batch softmax with the logQ correction and accidental-hit masking, early stopping on the
protocol's validation NDCG@10 (the split's validation part, or a carve-out of train when it has none)
with the best epoch's weights kept.

At scale: the pairs are stored once each and read through a bounded shuffle when there are more than
`SHUFFLE_WINDOW` (`movielens.models.knn.pair_batches`), the embedding tables get row-sparse Adam updates when the
catalogue is large (`sparse_optimizer`), and `validation_users` validates on a fixed sample of users.

Scoring (item-based KNN over the embeddings): every movie is a unit vector u_j; a person's query is the
normalised mean of their movies' unit vectors, so score(j) = cos(mean_h u_h, u_j), which ranks movies
exactly as the sum of j's cosines to the history's movies does (no neighbour cut-off). Which unit vectors
(the input table, the output table or the average of both) is chosen on validation with `vectors="auto"`.

Defaults (KnnConfig) were chosen on the validation part of ML-100K's random 80/10/10 split (seed 42) and
checked on ML-1M (users 1–2999); the figures are in benchmarks/neighbours.py's results.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from movielens.families.base import Context, Family, Fitted
from movielens.families.histories import Histories
from movielens.models.knn import KnnConfig, l2_normalise
from movielens.persistence import ModelDir

STATE_FILE = "knn.json"  # which movie vectors the KNN searches (chosen on validation)


@dataclasses.dataclass
class KnnState:
    model: object   # movielens.models.knn.Item2VecModel
    vectors: str    # "input", "output" or "average"

    def movie_vectors(self) -> np.ndarray:
        """float32 [n_items, d] unit vectors."""
        return self.model.movie_vectors(self.vectors)


class KnnScorer:
    """candidates = unit movie vectors [n_items, d]; query = normalised mean of the history's unit vectors [n, d]."""

    def __init__(self, unit_vectors: np.ndarray):
        self.unit_vectors = np.asarray(unit_vectors, np.float32)

    def candidates(self) -> np.ndarray:
        return self.unit_vectors

    def queries(self, histories: Histories) -> np.ndarray:
        # A movie rated twice counts once (binary row); an empty history gives a zero query (all scores 0).
        sums = histories.binary_matrix(len(self.unit_vectors)) @ self.unit_vectors
        return l2_normalise(np.asarray(sums, np.float32))


def build_model(config: KnnConfig, n_items: int, sampling_probability: np.ndarray | None = None):
    """An `Item2VecModel` of `config` (variables created). Without `sampling_probability` (a loaded model, which
    only scores) the logQ constant is uniform: it is used by the loss only."""
    from movielens.models.knn import Item2VecModel

    if sampling_probability is None:
        sampling_probability = np.full(n_items, 1.0 / max(n_items, 1), np.float32)
    return Item2VecModel(n_items, sampling_probability, embedding_size=config.embedding_size, shared=config.shared,
                         temperature=config.temperature, l2=config.l2, init_std=config.init_std, seed=config.seed)


def _sparse_updates(config: KnnConfig, n_items: int) -> bool:
    from movielens.optimizers import use_sparse_updates

    return use_sparse_updates(config.sparse_optimizer, n_items)


def vector_options(config: KnnConfig) -> tuple[str, ...]:
    """The movie vectors compared on validation: the output table and the average of both with `vectors="auto"`
    (the one table when it is shared)."""
    if config.vectors != "auto":
        return (config.vectors,)
    return ("output",) if config.shared else ("output", "average")


class Knn(Family):
    name, kind = "knn", "retrieval"
    summary = ("KNN over learned embeddings: item2vec movie vectors from co-rated movies (in-batch softmax, "
               "logQ corrected), cosine neighbours")
    fold_in = "cosine of each movie to the normalised mean unit vector of the history's movies"
    config_class = KnnConfig
    version = 2  # 1 was the concatenation rating model's movie table

    def identity_config(self, config: KnnConfig) -> dict:
        # Fields added for scale stay out of the identity at their small-data default (models trained before they
        # existed keep their cache entry); sparse_optimizer counts through what it resolves to (identity_extras).
        values = super().identity_config(config)
        values.pop("sparse_optimizer", None)
        if not values.get("validation_users"):
            values.pop("validation_users", None)
        return values

    def identity_extras(self, config: KnnConfig, context: Context) -> dict:
        return {"sparse_updates": True} if _sparse_updates(config, context.n_items) else {}

    def fit(self, config: KnnConfig, context: Context, model_dir: ModelDir) -> Fitted:
        import tensorflow as tf

        from movielens import protocol
        from movielens.models.knn import (
            SHUFFLE_WINDOW,
            cooccurrence_pairs,
            pair_batches,
            sampling_probabilities,
            undirected_pairs,
        )
        from movielens.optimizers import LazyAdam
        from movielens.training import fit_resumable, shuffled_batches

        # Early stopping must not look at the test part: a split without its own validation part gets one
        # carved out of train, and the model trains on the rest.
        selection = protocol.selection_split(context.split)
        histories = context.train_histories if selection is context.split else \
            Context(context.data, selection).train_histories
        pairs = undirected_pairs(histories.items, histories.row_ids(), config.window)
        n_pairs = 2 * len(pairs)
        if n_pairs == 0:
            raise ValueError("knn learns from movies rated by the same person, and no one has two training movies")
        if n_pairs <= SHUFFLE_WINDOW:  # the directed pairs, shuffled whole each epoch
            queries, candidates = cooccurrence_pairs(histories.items, histories.row_ids(), config.window)
            del pairs
            probabilities = sampling_probabilities(candidates, context.n_items)
            data = shuffled_batches({"query": queries, "candidate": candidates}, config.batch_size, config.seed)
        else:  # each pair once, block-shuffled (bounded memory)
            probabilities = sampling_probabilities(pairs.ravel(), context.n_items)
            data = pair_batches(pairs, config.batch_size, config.seed)
        model = build_model(config, context.n_items, probabilities)
        adam = LazyAdam if _sparse_updates(config, context.n_items) else tf.keras.optimizers.Adam
        model.compile(optimizer=adam(learning_rate=config.learning_rate))
        task = protocol.evaluation_task(selection, "validation", sample_users=config.validation_users,
                                        seed=config.seed)
        options = vector_options(config)
        monitor = f"val_{protocol.PRIMARY}"

        def evaluate(trained) -> dict[str, float]:
            values = {f"{monitor}_{option}": float(protocol.rank(KnnScorer(trained.movie_vectors(option)), task)
                                                   .per_user[protocol.PRIMARY].mean()) for option in options}
            values[monitor] = max(values.values())
            return values

        has_validation = len(task) > 0
        history = fit_resumable(model, data, epochs=config.epochs, checkpoint_dir=model_dir.checkpoint_dir,
                                evaluate=evaluate if has_validation else None,
                                evaluate_every=config.validation_freq, monitor=monitor if has_validation else None,
                                mode="max", patience=config.patience, restore_best=True,
                                verbose={0: 0, 1: 2}.get(context.verbose, 1))
        vectors, best = options[0], None
        best_epoch = history.get("best_epoch")
        if best_epoch is not None:
            at = history["epoch"].index(best_epoch)
            vectors = max(options, key=lambda option: history[f"{monitor}_{option}"][at])
            best = history[monitor][at]
        metrics = {"vectors": vectors, "best_epoch": best_epoch, "epochs_trained": len(history.get("epoch", [])),
                   monitor: best, "training_pairs": n_pairs, "selection_split": selection.name,
                   "validation_users": len(task)}
        return Fitted(KnnState(model, vectors), history, metrics)

    def save(self, state: KnnState, model_dir: ModelDir) -> None:
        from movielens.persistence import save_weights

        save_weights(state.model, model_dir.weights_prefix)
        model_dir.write_json(STATE_FILE, {"vectors": state.vectors})

    def load(self, config: KnnConfig, context: Context, model_dir: ModelDir) -> KnnState:
        from movielens.persistence import load_weights

        vectors = model_dir.read_json(STATE_FILE)["vectors"]
        if vectors not in ("input", "output", "average"):
            raise ValueError(f"{model_dir.path / STATE_FILE} names unknown movie vectors {vectors!r}")
        model = build_model(config, context.n_items)
        load_weights(model, model_dir.weights_prefix)
        return KnnState(model, vectors)

    def scorer(self, state: KnnState, config: KnnConfig, context: Context) -> KnnScorer:
        return KnnScorer(state.movie_vectors())
