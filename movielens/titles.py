"""MovieLens title parsing and tolerant title matching, in one place.

MovieLens titles look like "Shawshank Redemption, The (1994)" or
"City of Lost Children, The (Cité des enfants perdus, La) (1995)": a trailing
article after a comma, alternate titles in parentheses, and the year last
(sometimes missing, sometimes "(1995-1996)" style ranges, sometimes trailing
spaces).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence

# Articles MovieLens moves to the end ("Matrix, The"), in the languages that occur.
_ARTICLES = (
    "the", "a", "an", "les", "la", "le", "l'", "il", "el", "los", "las", "lo", "die", "der", "das",
    "den", "det", "de", "een", "het", "une", "un", "i", "gli", "os", "o", "as", "ta",
)
# "(1995)", "(2007-)", "(1995-1996)", optionally followed by ML-100K's "(V)" / "(TV)" release-kind marks.
_YEAR_RE = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)(?:\s*\((?:V|TV)\))?\s*$")
_TRAILING_ARTICLE_RE = re.compile(r"^(.*),\s*(" + "|".join(re.escape(a) for a in _ARTICLES) + r")$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ParsedTitle:
    """A MovieLens title taken apart.

    Attributes:
      name: the main title with a trailing article moved to the front
        ("The Shawshank Redemption").
      alternates: titles given in parentheses (a.k.a. / original-language
        titles), articles moved to the front too.
      year: the release year, or None when the title has none.
    """

    name: str
    alternates: tuple[str, ...]
    year: int | None

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.alternates)


def _front_article(title: str) -> str:
    match = _TRAILING_ARTICLE_RE.match(title.strip())
    if not match:
        return title.strip()
    body, article = match.groups()
    joiner = "" if article.endswith("'") else " "
    return f"{article}{joiner}{body}".strip()


def _split_parenthesised(text: str) -> tuple[str, list[str]]:
    """'City of Lost Children, The (Cité des enfants perdus, La)' -> main, ['Cité ...']."""
    alternates: list[str] = []
    while text.endswith(")"):
        depth, start = 0, None
        for i in range(len(text) - 1, -1, -1):
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    start = i
                    break
        if not start:  # unbalanced, or the whole title is parenthesised
            break
        inner = text[start + 1 : -1].strip()
        inner = re.sub(r"^(a\.k\.a\.|aka)\s*", "", inner, flags=re.IGNORECASE)
        alternates.insert(0, inner)
        text = text[:start].rstrip()
    return text, alternates


def parse_title(title: str) -> ParsedTitle:
    """Parses a MovieLens title.

    >>> parse_title("Shawshank Redemption, The (1994)")
    ParsedTitle(name='The Shawshank Redemption', alternates=(), year=1994)
    """
    text = " ".join(title.split())
    year = None
    match = _YEAR_RE.search(text)
    if match:
        year = int(match.group(1))
        text = text[: match.start()].rstrip()
    main, alternates = _split_parenthesised(text)
    return ParsedTitle(
        name=_front_article(main),
        alternates=tuple(_front_article(a) for a in alternates if a),
        year=year,
    )


def normalise(text: str) -> str:
    """Lower case, accents removed, '&' -> 'and', punctuation folded to single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower().replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _strip_leading_article(normalised: str) -> str:
    head, _, rest = normalised.partition(" ")
    return rest if rest and head in _ARTICLES else normalised


def match_keys(title: str) -> tuple[str, ...]:
    """Keys under which a title (MovieLens form or free text) can be found.

    Without the year and leading article, so "the matrix", "Matrix, The" and
    "Matrix (1999)" share the key "matrix".
    """
    parsed = parse_title(title)
    keys = []
    for name in parsed.all_names:
        key = _strip_leading_article(normalise(name))
        if key and key not in keys:
            keys.append(key)
    return tuple(keys)


class UnknownTitleError(KeyError):
    """No movie matches a title; carries the closest known titles."""

    def __init__(self, query: str, suggestions: Sequence[str], ambiguous: bool = False):
        self.query = query
        self.suggestions = list(suggestions)
        if ambiguous:
            message = f"title {query!r} is ambiguous; add the year. Candidates: " + "; ".join(self.suggestions)
        elif self.suggestions:
            message = f"unknown title {query!r}. Closest matches: " + "; ".join(self.suggestions)
        else:
            message = f"unknown title {query!r} and nothing similar is known"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class TitleIndex:
    """Finds movie ids by title, tolerating case, a leading/trailing article, accents and a missing year.

    Args:
      movie_ids: identifiers, one per movie.
      titles: MovieLens titles, aligned with `movie_ids`.
    """

    def __init__(self, movie_ids: Iterable, titles: Iterable[str]):
        self.movie_ids = list(movie_ids)
        self.titles = [str(t) for t in titles]
        if len(self.movie_ids) != len(self.titles):
            raise ValueError("movie_ids and titles differ in length")
        self._exact: dict[str, list[int]] = {}
        self._by_key: dict[str, list[int]] = {}
        for row, title in enumerate(self.titles):
            self._exact.setdefault(normalise(title), []).append(row)
            for key in match_keys(title):
                self._by_key.setdefault(key, []).append(row)
        self._keys = list(self._by_key)

    @classmethod
    def from_movies(cls, movies) -> TitleIndex:
        """From a catalogue frame with `movie_id` and `movie_title` columns (ids as strings)."""
        return cls(movies["movie_id"].astype(str), movies["movie_title"])

    def lookup(self, query: str):
        """Returns the movie id for `query`.

        Raises:
          UnknownTitleError: nothing matches (lists the closest titles), or
            several movies match and the year does not tell them apart.
        """
        rows = self._exact.get(normalise(query))
        if rows and len(rows) == 1:
            return self.movie_ids[rows[0]]
        parsed = parse_title(query)
        candidates: list[int] = []
        for key in match_keys(query):
            for row in self._by_key.get(key, []):
                if row not in candidates:
                    candidates.append(row)
        if parsed.year is not None:
            same_year = [r for r in candidates if parse_title(self.titles[r]).year == parsed.year]
            candidates = same_year
        if len(candidates) == 1:
            return self.movie_ids[candidates[0]]
        if len(candidates) > 1:
            raise UnknownTitleError(query, [self.titles[r] for r in candidates[:10]], ambiguous=True)
        raise UnknownTitleError(query, self.closest(query))

    def closest(self, query: str, n: int = 5) -> list[str]:
        """The `n` known titles most similar to `query` (for error messages)."""
        keys = match_keys(query) or (normalise(query),)
        scored: dict[int, float] = {}
        for key in keys:
            for near in difflib.get_close_matches(key, self._keys, n=n, cutoff=0.5):
                score = difflib.SequenceMatcher(None, key, near).ratio()
                for row in self._by_key[near]:
                    scored[row] = max(scored.get(row, 0.0), score)
            # Substring hits ("harry potter") matter more than edit distance.
            for near in self._keys:
                if key and key in near:
                    for row in self._by_key[near]:
                        scored[row] = max(scored.get(row, 0.0), 0.9)
        best = sorted(scored, key=lambda r: (-scored[r], self.titles[r]))[:n]
        return [self.titles[r] for r in best]
