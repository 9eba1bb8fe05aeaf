"""MovieLens title parsing and matching titles the way people type them, in one place.

MovieLens titles look like "Shawshank Redemption, The (1994)" or
"City of Lost Children, The (Cité des enfants perdus, La) (1995)": a trailing
article after a comma, alternate titles in parentheses, and the year last
(sometimes missing, sometimes "(1995-1996)" style ranges, sometimes trailing
spaces).

People type "empire strikes back", "godfather 1972", "shawshank" or
"jurrasic park": `TitleIndex` matches words in any order, a year with or
without parentheses, and small typos (rapidfuzz scores the words), and says
when a query could mean several movies instead of guessing.
"""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rapidfuzz import fuzz, process

# Articles MovieLens moves to the end ("Matrix, The"), in the languages that occur.
_ARTICLES = (
    "the", "a", "an", "les", "la", "le", "l'", "il", "el", "los", "las", "lo", "die", "der", "das",
    "den", "det", "de", "een", "het", "une", "un", "i", "gli", "os", "o", "as", "ta",
)
# "(1995)", "(2007-)", "(1995-1996)", optionally followed by ML-100K's "(V)" / "(TV)" release-kind marks.
_YEAR_RE = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)(?:\s*\((?:V|TV)\))?\s*$")
_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")
# Where a long title splits into parts: "Star Wars: Episode IV - A New Hope".
_PART_SPLIT_RE = re.compile(r":\s+|\s+-\s+")
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
    if not text.isascii():  # most titles are ASCII; decomposing them is the slow part of building an index
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().replace("&", " and ")
    return " ".join(_NON_ALNUM_RE.sub(" ", text).split())


def _strip_leading_article(normalised: str) -> str:
    head, _, rest = normalised.partition(" ")
    return rest if rest and head in _ARTICLES else normalised


def _keys_and_year(title: str) -> tuple[tuple[str, ...], int | None]:
    """`match_keys(title)` and the year, parsing the title once."""
    parsed = parse_title(title)
    keys: list[str] = []
    for name in parsed.all_names:
        key = _strip_leading_article(normalise(name))
        if key and key not in keys:
            keys.append(key)
    return tuple(keys), parsed.year


def match_keys(title: str) -> tuple[str, ...]:
    """Keys under which a title (MovieLens form or free text) can be found.

    Without the year and leading article, so "the matrix", "Matrix, The" and
    "Matrix (1999)" share the key "matrix".
    """
    return _keys_and_year(title)[0]


def part_keys(title: str) -> tuple[str, ...]:
    """`match_keys` of the parts of a title split at ': ' and ' - ', parts of 4+ characters only.

    "Star Wars: Episode IV - A New Hope (1977)" -> ("star wars", "episode iv", "new hope");
    a title without such a split has none.
    """
    keys: list[str] = []
    for name in parse_title(title).all_names:
        parts = _PART_SPLIT_RE.split(name)
        if len(parts) < 2:
            continue
        for part in parts:
            keys += [k for k in match_keys(part) if len(k) >= 4 and k not in keys]
    return tuple(keys)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class UnknownTitleError(KeyError):
    """No single movie matches a title; carries the candidates (ambiguous) or the closest known titles.

    Args:
      query: the title as typed.
      suggestions: MovieLens titles (with their years), best first.
      ambiguous: the query matches each of `suggestions` about equally well.
      counts: number of ratings of each suggestion (shown in the message), or None.
    """

    def __init__(self, query: str, suggestions: Sequence[str], ambiguous: bool = False,
                 counts: Sequence[int] | None = None):
        self.query = query
        self.suggestions = list(suggestions)
        self.ambiguous = ambiguous
        self.counts = None if counts is None else [int(c) for c in counts]
        shown = self.suggestions if self.counts is None else [
            f"{title} [{_plural(count, 'rating')}]" for title, count in zip(self.suggestions, self.counts)]
        if ambiguous:
            message = f"title {query!r} is ambiguous; did you mean: " + "; ".join(shown)
        elif self.suggestions:
            message = f"unknown title {query!r}. Closest matches: " + "; ".join(shown)
        else:
            message = f"unknown title {query!r} and nothing similar is known"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


# Roman numerals of sequels read as digits, so "godfather part 2" finds "Part II". Not "i", "v" and "x",
# which are also words and letters ("I, Robot", "V for Vendetta", "Malcolm X").
_NUMERALS = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}
# A typed word of 3+ letters counts as a misspelling of a title word from this rapidfuzz ratio (0-100) on:
# a letter dropped or added, or two swapped, in a word of 4+ letters ("bak", "stroy", "prak", "jurrasic").
_TYPO_RATIO = 75.0
# Candidates scoring within this many points of the best are equally good answers (the query is ambiguous).
_SIMILAR = 5.0
# `closest` lists titles from this similarity (0-100) on; below it a title is not worth suggesting.
_CLOSEST_RATIO = 60.0
# "godfather 1972": a bare trailing number in this range is read as the year (and, failing that, as a word).
_BARE_YEAR_RE = re.compile(r"^(.*\S)\s+((?:18|19|20)\d\d)$")


def _words(key: str) -> tuple[str, ...]:
    return tuple(_NUMERALS.get(word, word) for word in key.split())


class _Match(NamedTuple):
    """How well a query's words are found in one movie's name."""

    row: int
    score: float  # the query's words found in the name: 100 = all spelt exactly, less for typos
    extra: int  # words of the name the query does not have (0: the whole name was typed)


class TitleIndex:
    """Finds movie ids by title the way people type them.

    Case, accents, punctuation, a leading or trailing article ("The Matrix" /
    "Matrix, The") and alternate titles do not matter. The year may be given
    as "(1972)" or "1972", or left out. Words may come in any order and some
    may be missing ("shawshank", "empire strikes back"), and a word may be
    misspelt ("jurrasic park") as long as at least half of the typed words are
    spelt right: one misspelt word alone ("Matrixx") is too little to tell a
    typo from another title, so it is reported with suggestions instead.

    A movie whose whole name was typed wins over ones that only contain the
    words ("toy story" is Toy Story, not Toy Story 2); several movies that
    match equally well (two "Hamlet"s, "godfather part") raise an ambiguous
    `UnknownTitleError` listing them, most rated first when rating counts are
    known.

    Args:
      movie_ids: identifiers, one per movie.
      titles: MovieLens titles, aligned with `movie_ids`.
      rating_counts: number of ratings per movie, aligned with `movie_ids`, shown in
        error messages (and ordering the candidates); None to show titles only.
    """

    def __init__(self, movie_ids: Iterable, titles: Iterable[str], rating_counts: Iterable[int] | None = None):
        self.movie_ids = list(movie_ids)
        self.titles = [str(t) for t in titles]
        if len(self.movie_ids) != len(self.titles):
            raise ValueError("movie_ids and titles differ in length")
        self.rating_counts = None if rating_counts is None else [int(c) for c in rating_counts]
        if self.rating_counts is not None and len(self.rating_counts) != len(self.titles):
            raise ValueError("rating_counts and titles differ in length")
        self._exact: dict[str, list[int]] = {}
        self._full_keys: list[str] = []  # normalised whole titles, year included
        self.years: list[int | None] = []
        # One entry per (movie, main or alternate name): its row and words.
        self._entry_rows: list[int] = []
        self._entry_words: list[tuple[str, ...]] = []
        self._postings: dict[str, list[int]] = {}  # word -> entries with that word
        for row, title in enumerate(self.titles):
            self._full_keys.append(normalise(title))
            self._exact.setdefault(self._full_keys[-1], []).append(row)
            keys, year = _keys_and_year(title)
            self.years.append(year)
            for key in keys:
                words = _words(key)
                entry = len(self._entry_rows)
                self._entry_rows.append(row)
                self._entry_words.append(words)
                for word in set(words):
                    self._postings.setdefault(word, []).append(entry)
        self._vocabulary = list(self._postings)
        self._entry_texts = [" ".join(words) for words in self._entry_words]
        self._entry_sizes = [len(set(words)) for words in self._entry_words]
        self._by_name: dict[str, list[int]] = {}  # whole name -> rows, in order
        for row, text in zip(self._entry_rows, self._entry_texts):
            rows = self._by_name.setdefault(text, [])
            if not rows or rows[-1] != row:
                rows.append(row)
        self._by_part: dict[str, list[int]] | None = None  # part name -> rows, made by the first `find_parts`

    @classmethod
    def from_movies(cls, movies, ratings=None) -> TitleIndex:
        """From a catalogue frame with `movie_id` and `movie_title` columns (ids as strings).

        `ratings`, a frame with a `movie_id` column, adds each movie's number of ratings
        to the error messages ("Godfather, The (1972) [413 ratings]").
        """
        movie_ids = movies["movie_id"].astype(str)
        counts = None
        if ratings is not None:
            per_movie = ratings["movie_id"].astype(str).value_counts()
            counts = per_movie.reindex(movie_ids, fill_value=0).to_numpy()
        return cls(movie_ids, movies["movie_title"], counts)

    def lookup(self, query: str):
        """Returns the movie id for `query`.

        Raises:
          UnknownTitleError: nothing matches (lists the closest titles), or
            several movies match about equally well (`ambiguous=True`, lists them).
        """
        rows = self._exact.get(normalise(query))
        if rows and len(rows) == 1:
            return self.movie_ids[rows[0]]
        for keys, year in self._readings(query):
            matches = self._best_matches(keys, year)
            if len({self._full_keys[r] for r in matches}) == 1:
                # One title listed under several ids (ML-100K has 18 such pairs): asking "which of these
                # identical titles?" cannot be answered, so the most rated (else the first) is taken.
                return self.movie_ids[self._by_popularity(matches)[0]]
            if matches:
                rows = self._by_popularity(matches)[:10]
                raise UnknownTitleError(query, [self.titles[r] for r in rows], ambiguous=True,
                                        counts=self._counts(rows))
        rows = self._closest_rows(query, 5)
        raise UnknownTitleError(query, [self.titles[r] for r in rows], counts=self._counts(rows))

    def closest(self, query: str, n: int = 5) -> list[str]:
        """The `n` known titles most similar to `query` (for error messages)."""
        return [self.titles[r] for r in self._closest_rows(query, n)]

    def find(self, title: str, year_tolerance: int = 0) -> list:
        """Movie ids whose whole name is `title`'s, of the same year; for joining data sources.

        Unlike `lookup` (what people type) there are no partial words and no typos:
        only case, accents, punctuation, articles, alternate titles and roman
        numerals are ignored. A title without a year finds only titles without one.

        Args:
          title: a MovieLens-style title, "Name (Year)".
          year_tolerance: when no movie of that year has the name, years up to this
            far off are tried, nearest (and earlier) first: release years differ by
            one between sources (festival vs. theatrical release).

        Returns:
          the ids in the order the movies were given (main-title matches before
          alternate-title ones); empty when none.
        """
        keys, year = _keys_and_year(title)
        years = [year]
        if year is not None:
            years += [year + sign * delta for delta in range(1, year_tolerance + 1) for sign in (-1, 1)]
        for wanted in years:
            rows = self._rows_named(self._by_name, keys, wanted)
            if rows:
                return [self.movie_ids[r] for r in rows]
        return []

    def find_parts(self, title: str) -> list:
        """Movie ids of the same year with a part (split at ': ' and ' - ') named like `title`.

        "Star Wars (1977)" (ML-100K) finds "Star Wars: Episode IV - A New Hope (1977)"
        (ML-1M). Parts shorter than 4 characters are left out; a title without a year
        finds nothing. Callers decide what several ids mean.
        """
        keys, year = _keys_and_year(title)
        if year is None:
            return []
        if self._by_part is None:
            self._by_part = {}
            for row, title in enumerate(self.titles):
                if ":" in title or " - " in title:
                    for key in part_keys(title):
                        self._by_part.setdefault(" ".join(_words(key)), []).append(row)
        return [self.movie_ids[r] for r in self._rows_named(self._by_part, keys, year)]

    def _rows_named(self, table: dict[str, list[int]], keys: tuple[str, ...], year: int | None) -> list[int]:
        rows: list[int] = []
        for key in keys:
            rows += [r for r in table.get(" ".join(_words(key)), ()) if self.years[r] == year and r not in rows]
        return rows

    # ------------------------------------------------------------------ matching

    @staticmethod
    def _readings(query: str) -> list[tuple[tuple[str, ...], int | None]]:
        """(keys, year) readings of a query, the likelier first.

        "godfather 1972" is first "godfather" of 1972, then a title ending in "1972"
        (so "Blade Runner 2049" is still found when no "Blade Runner" is of 2049).
        """
        keys, year = _keys_and_year(query)
        readings = []
        bare = _BARE_YEAR_RE.match(query.strip()) if year is None else None
        if bare:
            name_keys = match_keys(bare.group(1))
            if name_keys:
                readings.append((name_keys, int(bare.group(2))))
        if keys:
            readings.append((keys, year))
        return readings

    def _best_matches(self, keys: tuple[str, ...], year: int | None) -> list[int]:
        """The rows that match the query best, equally well (empty when nothing matches)."""
        by_row: dict[int, _Match] = {}
        for key in keys:
            for match in self._word_matches(_words(key), year):
                known = by_row.get(match.row)
                if known is None or (match.score, -match.extra) > (known.score, -known.extra):
                    by_row[match.row] = match
        if not by_row:
            return []
        best = max(m.score for m in by_row.values())
        contenders = [m for m in by_row.values() if m.score >= best - _SIMILAR]
        whole = [m for m in contenders if m.extra == 0]
        # The whole name typed beats names that merely contain the words ("toy story" vs "toy story 2").
        contenders = whole or contenders
        contenders.sort(key=lambda m: (-m.score, m.extra, m.row))
        return [m.row for m in contenders]

    def _word_matches(self, words: tuple[str, ...], year: int | None) -> list[_Match]:
        """Names holding every typed word (spelt right, or misspelt when at least half are right)."""
        if not words:
            return []
        # For each typed word: how well each entry holds it (100 = spelt right), over the title words
        # it may stand for. Walking posting lists keeps a common word ("the") to dict operations.
        held: list[dict[int, float]] = []
        for word in dict.fromkeys(words):
            spellings = {word: 100.0} if word in self._postings else {}
            if len(word) >= 3:
                for near, score, _ in process.extract(word, self._vocabulary, scorer=fuzz.ratio,
                                                      score_cutoff=_TYPO_RATIO, limit=None):
                    spellings.setdefault(near, score)
            by_entry: dict[int, float] = {}
            for near, score in sorted(spellings.items(), key=lambda item: item[1]):  # best spelling last
                by_entry.update(dict.fromkeys(self._postings[near], score))
            if not by_entry:
                return []
            held.append(by_entry)
        n_words = len(held)
        n_right_needed = math.ceil(n_words / 2)
        weights = [len(word) for word in dict.fromkeys(words)]  # long words weigh more
        total_weight = sum(weights)
        held_order = sorted(range(n_words), key=lambda i: len(held[i]))
        entries = set(held[held_order[0]]).intersection(*(held[i] for i in held_order[1:]))
        matches = []
        for entry in entries:
            row = self._entry_rows[entry]
            if year is not None and self.years[row] != year:
                continue
            scores = [h[entry] for h in held]
            n_right = scores.count(100.0)
            if n_right < n_right_needed:
                continue
            score = 100.0 if n_right == n_words else sum(s * w for s, w in zip(scores, weights)) / total_weight
            matches.append(_Match(row, score, max(0, self._entry_sizes[entry] - n_words)))
        return matches

    def _closest_rows(self, query: str, n: int) -> list[int]:
        """Rows of the titles most like `query`, best first.

        The whole name's similarity, or (a little less) how much of it shares the
        typed words, so "Star Wars 7" suggests "Star Wars" and "Matrixx" "The Matrix".
        rapidfuzz's WRatio is not used: its partial matching ranks one-letter titles
        ("M", "I.Q.") close to anything.
        """
        keys, _ = _keys_and_year(query)
        texts = [" ".join(_words(k)) for k in keys] or [normalise(query)]
        scored: dict[int, float] = {}
        for text in filter(None, texts):
            for scorer, weight in ((fuzz.ratio, 1.0), (fuzz.token_set_ratio, 0.9)):
                for _, score, entry in process.extract(text, self._entry_texts, scorer=scorer,
                                                       score_cutoff=_CLOSEST_RATIO / weight, limit=4 * n):
                    row = self._entry_rows[entry]
                    scored[row] = max(scored.get(row, 0.0), weight * score)
        counts = self.rating_counts
        order = sorted(scored, key=lambda r: (-scored[r], -(counts[r] if counts else 0), self.titles[r]))
        return order[:n]

    def _by_popularity(self, rows: list[int]) -> list[int]:
        if self.rating_counts is None:
            return rows
        return sorted(rows, key=lambda r: -self.rating_counts[r])  # stable: equal counts keep match order

    def _counts(self, rows: Sequence[int]) -> list[int] | None:
        return None if self.rating_counts is None else [self.rating_counts[r] for r in rows]
