"""Finding a MovieLens movie among another source's titles (a runtime table, IMDb, Cinemagoer results).

Title and year matching is `movielens.titles.TitleIndex`'s, in its strict
form for joining data (`find` / `find_parts`: whole names only, no partial
words or typos), so a runtime is never taken from a merely similar film.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rapidfuzz import fuzz

from movielens.titles import TitleIndex, match_keys, normalise, parse_title

# Cinemagoer search results less similar than this (rapidfuzz ratio, 0-100) to every MovieLens name are
# other films: a search that returns only those counts as "not found".
_SEARCH_RESULT_RATIO = 60.0


class RuntimesByTitle:
    """Runtimes of a source's films, found by MovieLens title and year.

    Tried in order: the whole name (main or alternate title) of the same year
    (the first film given wins); of the year before or after (festival vs.
    theatrical release); last, a part of a longer title of the same year ("Star
    Wars (1977)" in ML-100K is "Star Wars: Episode IV - A New Hope (1977)" in
    ML-1M), but only when that part names a single film.

    Args:
      titles: the films' titles, "Name (Year)".
      minutes: their runtimes, aligned with `titles`.
      other_titles: another title of each film (IMDb's original title) with the
        same year, or "" / None; found like `titles`.
    """

    def __init__(self, titles: Sequence[str], minutes: Sequence[float], other_titles: Sequence[str | None] = ()):
        self._minutes = [float(m) for m in minutes]
        self._titles = list(titles)
        film_of_name, names = [], []
        for film, title in enumerate(titles):
            film_of_name.append(film)
            names.append(title)
            other = other_titles[film] if film < len(other_titles) else None
            if other:
                film_of_name.append(film)
                names.append(other)
        self._index = TitleIndex(film_of_name, names)

    def __len__(self) -> int:
        return len(self._minutes)

    def lookup(self, title: str) -> float | None:
        """The runtime of the film `title` names, or None."""
        films = self._index.find(title, year_tolerance=1)
        if films:
            return self._minutes[films[0]]
        films = self._index.find_parts(title)
        # A film listed twice (two datasets in one table) is one film: its main name identifies it.
        if films and len({(match_keys(self._titles[f]) or (self._titles[f],))[0] for f in films}) == 1:
            return self._minutes[films[0]]
        return None


def field(record: Any, name: str) -> Any:
    """A field of a Cinemagoer record (dict-like) or of a plain object; None when absent."""
    try:
        return record.get(name)
    except AttributeError:
        return getattr(record, name, None)


def choose_search_result(results: Sequence[Any], title: str) -> Any | None:
    """Best Cinemagoer search result for a MovieLens title.

    A result whose year matches wins over one that does not; among those, the
    closest title (over the MovieLens main and alternate titles) wins. Results
    whose title is not even close (similarity < 60%) are ignored, so a search
    that returns only unrelated films counts as "not found".
    """
    keys, year = match_keys(title), parse_title(title).year
    keys = keys or (normalise(title),)
    best, best_score = None, 0.0
    for result in results:
        name = str(field(result, "title") or "")
        result_keys = match_keys(name) or (normalise(name),)
        score = max(fuzz.ratio(k, r) for k in keys for r in result_keys)
        if score < _SEARCH_RESULT_RATIO:
            continue
        try:
            same_year = year is not None and int(str(field(result, "year"))[:4]) == year
        except (TypeError, ValueError):
            same_year = False
        kind = str(field(result, "kind") or "movie")
        total = score / 100 + (1.0 if same_year else 0.0) + (0.05 if kind == "movie" else 0.0)
        if total > best_score:
            best, best_score = result, total
    return best
