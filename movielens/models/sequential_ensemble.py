"""An ensemble of sequential models (SASRec or BERT4Rec) trained with different seeds: the sum of their logits.

Each member scores every movie after a history with its own logits; the ensemble ranks by their
sum. Summing logits ranks exactly as summing the members' log-softmax probabilities (a product of
experts): each member's log-partition is one constant per history, which no ranking can see. So the
ensemble is still a dot product, `[q_1, ..., q_m] . [c_1, ..., c_m]`, over the members' concatenated
query and candidate vectors (`movielens.families.sequential.SequentialScorer`).

Why: seeds land in different minima whose errors differ, and the sum averages them out; on ML-1M
(users 1-2999) two SASRecs give a higher validation NDCG@10 than either (benchmarks/sequential.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SequentialEnsemble:
    """`members`: trained models over the same items (each has n_items and score_histories)."""

    def __init__(self, members: Sequence):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        sizes = {int(m.n_items) for m in members}
        if len(sizes) != 1:
            raise ValueError(f"ensemble members score different catalogues: {sorted(sizes)} items")
        self.members, self.n_items = list(members), sizes.pop()

    def score_histories(self, histories: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """float32 [n, n_items]: the sum of the members' next-item logits (column j = item index j + 1)."""
        scores = self.members[0].score_histories(histories, batch_size)
        for member in self.members[1:]:
            scores += member.score_histories(histories, batch_size)
        return scores
