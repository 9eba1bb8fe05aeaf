"""Learning-rate schedules shared by the model families: functions of the optimizer's step, so a run
resumed from a checkpoint continues on the same schedule."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class OneCycle(tf.keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle: cosine warm-up from peak/div to peak over `warmup` of the steps, then cosine down
    to peak/final_div. A function of the optimizer's step, so it resumes exactly from a checkpoint."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.25, div: float = 25.0,
                 final_div: float = 1e4):
        self.peak, self.total_steps, self.warmup, self.div, self.final_div = peak, total_steps, warmup, div, final_div

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = tf.maximum(1.0, self.warmup * self.total_steps)
        down = tf.maximum(1.0, self.total_steps - up)

        def cosine(start, end, fraction):
            fraction = tf.clip_by_value(fraction, 0.0, 1.0)
            return end + (start - end) * (1.0 + tf.cos(np.pi * fraction)) / 2.0

        return tf.where(step < up, cosine(self.peak / self.div, self.peak, step / up),
                        cosine(self.peak, self.peak / self.final_div, (step - up) / down))

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup": self.warmup, "div": self.div,
                "final_div": self.final_div}


class WarmupConstant(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ~0 to `rate` over `warmup_steps`, constant afterwards; times `scale` when given
    (a variable `movielens.training.PlateauDecay` lowers when validation stalls)."""

    def __init__(self, rate: float, warmup_steps: int, scale: tf.Variable | None = None):
        self.rate, self.warmup_steps, self.scale = rate, warmup_steps, scale

    def __call__(self, step):
        rate = tf.constant(self.rate, tf.float32)
        if self.warmup_steps:
            rate = rate * tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(self.warmup_steps))
        return rate if self.scale is None else rate * tf.cast(self.scale, tf.float32)

    def get_config(self):
        return {"rate": self.rate, "warmup_steps": self.warmup_steps}
