"""Sparse-aware optimizers for embedding tables: an update touches only the rows a batch looked up.

Keras' Adam turns the sparse gradient of an embedding lookup (`tf.IndexedSlices`, the batch's rows) into a
dense update: every step decays both moment tables and moves every row of the table, so a step costs
O(rows x d) however small the batch. At ML-25M (162,541 users, 59,047 movies, d = 96) that is most of a
rating-model epoch. `LazyAdam` (the tensorflow-addons / PyTorch `SparseAdam` rule) updates the moments and
the weights of the looked-up rows only; a row not in the batch is left exactly as it was. Dense gradients
(biases, dense layers, the global offset) get the ordinary Adam update.

    m_r <- b1 m_r + (1 - b1) g_r,  v_r <- b2 v_r + (1 - b2) g_r^2,  w_r <- w_r - a_t m_r / (sqrt(v_r) + eps)
    for the rows r in the batch, with a_t = lr sqrt(1 - b2^t) / (1 - b1^t) (t = global step, as in Adam).

Whether a model uses it (`sparse_optimizer`): "auto" switches it on when the embedding tables are large
(`LARGE_TABLE_ROWS` rows or more), where the dense update dominates the step; small data keeps plain Adam,
whose results the published ML-100K figures were measured with.
"""

from __future__ import annotations

import tensorflow as tf

SPARSE_OPTIMIZER = ("auto", "on", "off")
# From this many rows in a model's embedding tables "auto" uses the sparse update. cf (users + movies): ML-100K
# 2.6k, ML-1M 9.7k, ml-latest-small 10.3k stay below, ML-20M 165k and ML-25M 222k are above; knn (movies):
# ML-1M 3.7k and ml-latest-small 9.7k below, ML-20M 26.7k and ML-25M 59k above.
LARGE_TABLE_ROWS = 20_000


def use_sparse_updates(setting: str, table_rows: int) -> bool:
    """Whether `sparse_optimizer` setting "auto" / "on" / "off" means the sparse update for tables of `table_rows`."""
    if setting not in SPARSE_OPTIMIZER:
        raise ValueError(f"sparse_optimizer must be one of {', '.join(SPARSE_OPTIMIZER)}, got {setting!r}")
    return setting == "on" or (setting == "auto" and table_rows >= LARGE_TABLE_ROWS)


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-sparse updates for `tf.IndexedSlices` gradients (embedding lookups); dense gradients as Adam.

    Same arguments as `tf.keras.optimizers.Adam` (amsgrad is not supported). Keras has already summed
    repeated indices of a sparse gradient (`_deduplicate_sparse_grad`) when `update_step` runs.
    """

    def __init__(self, learning_rate=0.001, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam does not support amsgrad")
        kwargs.setdefault("name", "LazyAdam")
        super().__init__(learning_rate, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = tf.pow(beta_1, local_step), tf.pow(beta_2, local_step)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon = self.epsilon * tf.sqrt(1 - beta_2_power) if self.adaptive_epsilon else self.epsilon
        key = self._var_key(variable)
        m, v = self._momentums[self._index_dict[key]], self._velocities[self._index_dict[key]]
        indices, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, indices) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, indices) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, indices))
        v.scatter_update(tf.IndexedSlices(v_rows, indices))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), indices))
