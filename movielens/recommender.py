"""The one recommender every model family is served through, and the one place that knows what a user has seen.

    history lookup -> exclude seen -> the family's scorer -> one top-k index -> titles

A known user's history is every rating they have in the data (train, validation and test: at
the shell the model should use, and never recommend, anything the person has rated); a typed list
of titles is just another history. `recommend(user_id, k, exclude_seen=True)` answers with k
`Recommendation`s, best first, and raises `UnknownUserError` (naming the valid ids) for an id that
is not in the data. The contract tests in `tests/contract.py` check this for every family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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


@dataclasses.dataclass
class Recommendations:
    """A top-k list with what it was computed from (for the header the CLI prints)."""

    items: list[Recommendation]
    history_titles: list[str]
    excluded: str
    notes: list[str] = dataclasses.field(default_factory=list)


class Recommender:
    """Serves a trained model (`movielens.families.base.TrainedModel`) from the shell.

    Args:
      trained: the model; its context holds the data set and split.
      backend: the top-k index ("auto", "brute_force", "scann"; see `movielens.topk`).
    """

    def __init__(self, trained, backend: str = "auto"):
        from movielens.topk import make_index

        context = trained.context
        self.trained, self.data, self.split = trained, context.data, context.split
        self.scorer = trained.scorer()
        self.movie_ids = np.asarray(self.split.vocabulary.movie_ids, dtype=object)
        self.index = make_index(self.scorer.candidates(), self.movie_ids, backend)
        self.users = UserHistory(self.data.ratings)
        self.titles = dict(zip(self.data.movies["movie_id"].astype(str), self.data.movies["movie_title"]))
        self._title_index = None

    @property
    def title_index(self):

        if self._title_index is None:
            self._title_index = title_index(self.data)
        return self._title_index

    def _search(self, histories, k: int, exclude_seen: bool) -> list[Recommendation]:
        scores, positions = self.index.search(self.scorer.queries(histories), k,
                                              histories.seen() if exclude_seen else None)
        keep = np.isfinite(scores[0])
        ids = self.movie_ids[positions[0][keep]]
        return [Recommendation(str(m), self.titles[str(m)], float(s)) for m, s in zip(ids, scores[0][keep])]

    def user_history(self, user_id):
        """(the user's id as text, their Histories row): every rating they have in the data."""
        from movielens.families.histories import Histories

        user = self.users.check_user(user_id)
        return user, Histories.from_frame(self.data.ratings, self.split.vocabulary, [user])

    def recommend(self, user_id, k: int = 10, exclude_seen: bool = True) -> list[Recommendation]:
        return self.for_user(user_id, k, exclude_seen).items

    def for_user(self, user_id, k: int = 10, exclude_seen: bool = True) -> Recommendations:
        user, histories = self.user_history(user_id)
        rated = len(self.users.seen_movies(user))
        excluded = (f"excluding the {rated} movies user {user} rated in the data (train, validation and test)"
                    if exclude_seen else "INCLUDING movies the user already rated (--include_seen)")
        return Recommendations(self._search(histories, k, exclude_seen), [], excluded)

    def history_columns(self, titles: Sequence[str]) -> tuple[list[int], list[str], list[str]]:
        """Typed titles -> (columns, matched titles, notes); a movie with no training ratings is left out."""
        columns, matched, notes = [], [], []
        for text in titles:
            movie_id = str(self.title_index.lookup(text))
            column = int(self.split.vocabulary.encode_movies([movie_id])[0]) - 1
            if column < 0:
                notes.append(f"{self.titles[movie_id]} has no training ratings; the model cannot use it")
                continue
            if column not in columns:
                columns.append(column)
                matched.append(self.titles[movie_id])
        if not columns:
            raise UnknownUserError("none of the typed titles has training ratings: " + "; ".join(notes))
        return columns, matched, notes

    def for_history(self, titles: Sequence[str], k: int = 10) -> Recommendations:
        """Recommendations for someone described only by the movies they liked, oldest first."""
        from movielens.families.histories import Histories

        columns, matched, notes = self.history_columns(titles)
        histories = Histories.from_lists([columns])
        return Recommendations(self._search(histories, k, True), matched, "excluding the typed movies", notes)

    def similar_to(self, title: str, k: int = 10) -> Recommendations:
        """Movies for someone whose whole history is this one movie (its neighbours, for every family)."""
        result = self.for_history([title], k)
        result.excluded = "excluding the movie itself"
        return result


def title_index(data):
    """The title matcher of a data set's catalogue, with rating counts to tell ambiguous titles apart."""
    from movielens.titles import TitleIndex

    return TitleIndex.from_movies(data.movies, ratings=data.ratings)
