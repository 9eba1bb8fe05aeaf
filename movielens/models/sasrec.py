"""SASRec (Kang & McAuley, ICDM 2018): a causal (left-to-right) transformer predicting each next movie.

Item indices follow `movielens.sequences` (0 padding, 1..n_items movies; no [MASK] is
needed). Sequences are left-padded and positions count from the end, as in BERT4Rec, so
the newest movie is always at position max_len - 1 and a batch trimmed of shared padding
computes the same scores. The hidden state at position i only sees movies 0..i and is
trained to predict movie i + 1, at every position of every window at once.

Losses (`SasRecConfig.loss`):
  "ce"    full softmax cross-entropy over all movies at every position (Petrov & Macdonald,
          RecSys 2023, "gSASRec" paper / "SASRec with CE beats BERT4Rec"); the default.
  "gbce"  gSASRec: k uniformly sampled negatives per positive, generalised binary cross-entropy
          -beta * log sigmoid(s+) - sum log sigmoid(-s-), with beta = alpha * (t * (1 - 1/alpha) + 1/alpha),
          alpha = k / (n_items - 1) (t = 0: plain BCE on k negatives; t = 1: calibrated to the full softmax).
          Builds the [positions, n_items] score matrix like "ce" (then picks k per positive).
  "sampled_ce"  sampled softmax for large catalogues (ML-20M/25M): cross-entropy over the positive and
          k movies drawn uniformly once per step, shared by every position of the batch ([positions, k]
          scores instead of [positions, n_items]); a drawn movie equal to a position's positive is masked
          there. Uniform sampling makes the logQ correction the same constant for every candidate, so it
          cancels in the softmax.
Scores are the final hidden state dotted with the item embeddings (tied output, no bias).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from movielens.config import Config
from movielens.distribute import global_batch_mean
from movielens.models.bert4rec import EncoderBlock, StatelessDropout
from movielens.sequences import PAD, pad_left, score_by_length

LOSSES = ("ce", "gbce", "sampled_ce")


@dataclasses.dataclass(frozen=True)
class SasRecConfig(Config):
    """Architecture and loss. `max_len` 0 and `dropout` < 0 mean "choose from the data".

    Fixed defaults: hidden 64, 2 blocks, 1 head (SASRec's ML-1M setting has 50-d, 2 blocks, 1 head;
    64 matches BERT4Rec here; 128 lost on ML-100K validation). The data-dependent ones are filled by
    `movielens.sequential.adapt_config` (documented there).
    """

    max_len: int = 0            # positions; 0 -> from the training sequence lengths
    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 1
    dropout: float = -1.0       # embeddings, attention weights, block outputs; < 0 -> from the data size
    loss: str = "ce"            # "ce" (full softmax) | "gbce" (gSASRec) | "sampled_ce" (large catalogues)
    num_negatives: int = 256    # gbce, sampled_ce: uniform negatives per positive (gSASRec's ML-1M setting)
    gbce_t: float = 0.75        # gbce only: calibration t in [0, 1] (gSASRec's ML-1M setting)

    def __post_init__(self):
        checks = {
            "max_len == 0 (auto) or >= 2": self.max_len == 0 or self.max_len >= 2,
            "hidden_dim >= 1": self.hidden_dim >= 1,
            "num_layers >= 1": self.num_layers >= 1,
            "num_heads >= 1 and divides hidden_dim": self.num_heads >= 1 and self.hidden_dim % self.num_heads == 0,
            "dropout < 1 (negative = auto)": self.dropout < 1.0,
            f"loss in {LOSSES}": self.loss in LOSSES,
            "num_negatives >= 1": self.num_negatives >= 1,
            "0 <= gbce_t <= 1": 0.0 <= self.gbce_t <= 1.0,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid SasRecConfig ({', '.join(failed)}): {self}")

    @property
    def resolved(self) -> bool:
        """True when nothing is left to choose from the data (a model can be built)."""
        return self.max_len >= 2 and self.dropout >= 0.0

    @property
    def variant(self) -> str:
        """'ce' or 'gbce' (the readable part of the cache folder name)."""
        return self.loss


def gbce_beta(num_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = k / (n_items - 1) (sampling rate)."""
    alpha = num_negatives / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


class SasRec(tfrs.Model):
    """SASRec over `n_items` movies.

    Inputs: {"items": int32 [B, L] left-padded item indices}.
    Output (`call`): hidden states float [B, L, H]; position i summarises items 0..i.
    Training inputs (`compute_loss`): (features, targets int32 [B, L]): the item after each position
    (PAD where the input is padding, which carries no loss).
    """

    def __init__(self, config: SasRecConfig, n_items: int, **kwargs):
        super().__init__(**kwargs)
        if n_items < 1:
            raise ValueError("SasRec needs at least one item")
        if not config.resolved:
            raise ValueError(f"SasRec needs max_len >= 2 and dropout >= 0 (resolve the config first): {config}")
        self.sasrec_config, self.n_items = config, n_items
        hidden = config.hidden_dim
        self.item_embedding = tf.keras.layers.Embedding(n_items + 1, hidden, name="item_embedding")
        self.position_embedding = tf.keras.layers.Embedding(config.max_len, hidden, name="position_embedding")
        self.embedding_dropout = StatelessDropout(config.dropout)
        # Pre-LN causal blocks with a ReLU feed-forward of width hidden_dim, as SASRec's reference code.
        self.blocks = [EncoderBlock(hidden, config.num_heads, hidden, config.dropout, causal=True, pre_norm=True,
                                    activation="relu", name=f"block_{i}") for i in range(config.num_layers)]
        self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.beta = gbce_beta(config.num_negatives, n_items, config.gbce_t)
        # Negatives are drawn from a generator variable: checkpointed, so a resumed run draws the same ones.
        self.negative_generator = tf.random.Generator.from_seed(int(np.random.randint(2**31 - 1)))
        # Not named "loss": TFRS logs the last batch's loss under that key; this is the epoch mean.
        self.loss_tracker = tf.keras.metrics.Mean(name="next_item_loss")

    def call(self, inputs, training=False):
        items = inputs["items"] if isinstance(inputs, dict) else inputs
        length = tf.shape(items)[1]
        max_len = self.sasrec_config.max_len
        positions = tf.range(max_len - length, max_len)  # counted from the end (see module docstring)
        # sqrt(d) scaling of the item embeddings as in SASRec (and the original transformer).
        x = self.item_embedding(items) * (self.sasrec_config.hidden_dim ** 0.5)
        x = self.embedding_dropout(x + self.position_embedding(positions)[None], training=training)
        key_mask = items != PAD
        for block in self.blocks:
            x = block(x, key_mask, training=training)
        return self.final_norm(x)

    def item_vectors(self):
        """float [n_items, H]: row j is item index j + 1 (the tied output layer)."""
        return self.item_embedding.embeddings[1 : self.n_items + 1]

    def compute_loss(self, inputs, training=False):
        """Mean next-item loss over the real (non-padding) input positions of the batch."""
        features, targets = inputs[0], inputs[1]
        hidden = self(features, training=training)
        real = features["items"] != PAD                                 # [B, L]
        states = tf.boolean_mask(hidden, real)                           # [N, H]: only real positions are scored
        labels = tf.boolean_mask(targets, real) - 1                      # [N] column of the next item
        if self.sasrec_config.loss == "ce":
            logits = tf.matmul(states, self.item_vectors(), transpose_b=True)  # [N, n_items]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        elif self.sasrec_config.loss == "sampled_ce":
            losses = self.sampled_ce_losses(states, labels)
        else:
            losses = self.gbce_losses(states, labels)
        # The mean over the global batch's positions (under tf.distribute, this replica's share of it).
        loss = global_batch_mean(tf.reduce_sum(losses), tf.size(losses))
        self.loss_tracker.update_state(loss * tf.distribute.get_strategy().num_replicas_in_sync)
        return loss

    def sampled_ce_losses(self, states, labels):
        """Sampled softmax: states float [N, H], labels int [N] -> [N] cross-entropy over the positive and k
        uniform movies shared by the batch (see the module docstring)."""
        vectors = self.item_vectors()
        negatives = self.negative_generator.uniform([self.sasrec_config.num_negatives], 0, self.n_items,
                                                    dtype=tf.int32)                        # [k]
        positive = tf.reduce_sum(states * tf.gather(vectors, labels), -1)                   # [N]
        negative = tf.matmul(states, tf.gather(vectors, negatives), transpose_b=True)       # [N, k]
        negative = tf.where(negatives[None, :] == labels[:, None], -1e9, negative)        # accidental hits
        logits = tf.concat([positive[:, None], negative], axis=1)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(labels), logits)

    def gbce_losses(self, states, labels):
        """Generalised BCE with k uniform negatives per positive: states float [N, H], labels int [N] -> [N].

        Each position draws its own k negatives, uniform over all items, as gSASRec (one equal to the
        positive is rare and kept, as there). They are picked from the full [N, n_items] score matrix
        rather than gathering [N, k, H] embeddings (840 MB at N 12,800, k 256, H 64): the same cost as
        the CE loss's matmul, which the MovieLens catalogues afford; gBCE is here for its calibrated
        training signal, not for speed.
        """
        logits = tf.matmul(states, self.item_vectors(), transpose_b=True)                     # [N, n_items]
        negatives = self.negative_generator.uniform([tf.shape(states)[0], self.sasrec_config.num_negatives], 0,
                                                    self.n_items, dtype=tf.int32)            # [N, k]
        negative = tf.gather(logits, negatives, batch_dims=1)                                  # [N, k]
        positive = tf.gather(logits, labels[:, None], batch_dims=1)[:, 0]                      # [N]
        return -self.beta * tf.math.log_sigmoid(positive) - tf.reduce_sum(tf.math.log_sigmoid(-negative), -1)

    @property
    def metrics(self):
        return [self.loss_tracker]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
    def score_last(self, items):
        """Scores of every item after the last position: int32 [B, L] -> float [B, n_items]."""
        last = self(items, training=False)[:, -1, :]
        return tf.matmul(last, self.item_vectors(), transpose_b=True)

    def next_item_inputs(self, histories: list[np.ndarray]) -> np.ndarray:
        """Histories (item indices, oldest first) -> int32 [n, max_len]: the last max_len items, left-padded."""
        return pad_left([np.asarray(h, np.int32) for h in histories], self.sasrec_config.max_len)

    def score_histories(self, histories: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Next-item scores for each history: -> float32 [n, n_items] (column j = item index j + 1).

        An empty history scores from position embeddings only (the same for everyone).
        """
        # An empty history still needs one position.
        return score_by_length(self.score_last, self.next_item_inputs(histories), self.n_items, batch_size,
                               min_length=1)

    def build_variables(self) -> SasRec:
        """Creates all variables (one dummy call), e.g. before restoring weights."""
        self({"items": np.ones((1, self.sasrec_config.max_len), np.int32)})
        return self
