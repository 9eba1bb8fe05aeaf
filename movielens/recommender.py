"""What every recommender offers, and the one place that knows what a user has seen.

A recommender answers `recommend(user_id, k, exclude_seen=True)` with k
`Recommendation`s, best first, never a movie the user rated in training
(unless asked), and raises `UnknownUserError` (a KeyError naming the valid ids)
for a user it cannot serve. The shared contract tests in `tests/contract.py`
check exactly this for every model family.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class Recommendation:
    movie_id: str
    movie_title: str
    score: float


class UnknownUserError(KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class Recommender(Protocol):
    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]: ...


class UserHistory:
    """Each user's training movies, for excluding seen movies and listing a user's favourites.

    Args:
      ratings: the training ratings (columns user_id, movie_id, user_rating, timestamp).
    """

    def __init__(self, ratings: pd.DataFrame):
        ordered = ratings.sort_values(["user_id", "timestamp"], kind="stable")
        self._groups = {u: g for u, g in ordered.groupby("user_id", sort=False)}
        numeric = pd.to_numeric(pd.Series(list(self._groups), dtype=object), errors="coerce")
        numeric_ids = numeric.notna().all() and len(numeric)
        self._numeric_range = (int(numeric.min()), int(numeric.max())) if numeric_ids else None

    def __contains__(self, user_id) -> bool:
        return str(user_id) in self._groups

    @property
    def user_ids(self) -> list[str]:
        return list(self._groups)

    def check_user(self, user_id) -> str:
        """Returns the id as text; raises UnknownUserError describing the valid ids."""
        key = str(user_id).strip()
        if key not in self._groups:
            if self._numeric_range:
                low, high = self._numeric_range
                valid = f"valid ids are {low}..{high} ({len(self._groups):,} users)"
            else:
                valid = f"{len(self._groups):,} known users, e.g. {', '.join(self.user_ids[:5])}"
            raise UnknownUserError(f"unknown user id {user_id!r} (no training ratings); {valid}")
        return key

    def seen_movies(self, user_id) -> np.ndarray:
        """Movie ids the user rated in training, oldest first."""
        return self._groups[self.check_user(user_id)]["movie_id"].to_numpy(dtype=object)

    def favourites(self, user_id, n: int = 10) -> pd.DataFrame:
        """The user's highest-rated training movies (ties: most recent first)."""
        group = self._groups[self.check_user(user_id)]
        return group.sort_values(["user_rating", "timestamp"], ascending=[False, False], kind="stable").head(n)
