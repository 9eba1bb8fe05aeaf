"""Tests of the movie runtime provider (movielens.movie_length) with a fake Cinemagoer."""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

import movielens  # noqa: F401  (sets the Keras environment first)
from movielens import movie_length as ml
from movielens.paths import shared_datasets_dir
from movielens.titles import normalise, parse_title


class FakeMovie(dict):
    """What Cinemagoer returns: a dict-like record with a movieID."""

    def __init__(self, movie_id: str, **data):
        super().__init__({k: v for k, v in data.items() if v is not None})
        self.movieID = movie_id


class FakeCinemagoer:
    """Cinemagoer-shaped fake.

    Like the real web client, search results carry title/year/kind but no runtime;
    `update(movie, info=["main"])` fills in `runtimes`, and `get_movie(id)` returns
    the full record.

    Args:
      films: dicts with id, title, year, runtimes (any IMDb form, or None), kind.
      error: raise this from every call (network down).
    """

    def __init__(self, films, error: BaseException | None = None):
        self.films = {f["id"]: f for f in films}
        self.error = error
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _record(self, kind, arg):
        with self._lock:
            self.calls.append((kind, arg))
        if self.error is not None:
            raise self.error

    def search_movie(self, query):
        self._record("search", query)
        parsed = parse_title(query)
        wanted = normalise(parsed.name)
        hits = []
        for film in self.films.values():
            # Like IMDb: loose matching, the year only ranks results.
            if wanted in normalise(film["title"]) or normalise(film["title"]) in wanted:
                hits.append(FakeMovie(film["id"], title=film["title"], year=film.get("year"), kind=film.get("kind")))
        return hits

    def update(self, movie, info=None):
        self._record("update", movie.movieID)
        runtimes = self.films[movie.movieID].get("runtimes")
        if runtimes is not None:
            movie["runtimes"] = runtimes

    def get_movie(self, movie_id):
        self._record("get_movie", movie_id)
        film = self.films.get(movie_id)
        if film is None:
            return FakeMovie(movie_id)
        return FakeMovie(movie_id, title=film["title"], year=film.get("year"), runtimes=film.get("runtimes"))


FILMS = [
    {"id": "0111161", "title": "The Shawshank Redemption", "year": 1994, "runtimes": ["142"]},
    {"id": "0112682", "title": "La cité des enfants perdus", "year": 1995, "runtimes": ["USA:112::(cut)"]},
    {"id": "0116477", "title": "Hamlet", "year": 1996, "runtimes": ["4h 2m"]},
    {"id": "0099726", "title": "Hamlet", "year": 1990, "runtimes": ["134 min"]},
    {"id": "0113828", "title": "Les Misérables", "year": 1995, "runtimes": [175]},
    {"id": "0114709", "title": "Toy Story", "year": 1995, "runtimes": ["81"]},
    {"id": "0999999", "title": "Obscure Short", "year": 1995, "runtimes": None},
]


def movies_frame(titles, imdb_ids=None, movie_ids=None):
    return pd.DataFrame(
        {
            "movie_id": movie_ids or [str(i + 1) for i in range(len(titles))],
            "movie_title": titles,
            "imdb_id": imdb_ids or [""] * len(titles),
        }
    )


@pytest.fixture(autouse=True)
def datasets_dir(tmp_path, monkeypatch):
    path = tmp_path / "datasets"
    monkeypatch.setenv("MOVIELENS_DATASETS_DIR", str(path))
    return path


def resolve(movies, client=None, variant="1m", **config):
    config.setdefault("max_workers", 2)
    return ml.resolve_movie_lengths(
        movies, variant, ml.MovieLengthConfig(**config), imdb_client=client, progress=False, verbose=False
    )


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "value, minutes",
    [
        (142, 142.0),
        ("142", 142.0),
        ("142 min", 142.0),
        ("USA:142", 142.0),
        ("USA:142::(director's cut)", 142.0),
        (["Argentina:x", "USA:95"], 95.0),
        ("2h 22m", 142.0),
        ("1h", 60.0),
        ("45m", 45.0),
        (np.int64(90), 90.0),
        (None, None),
        ("", None),
        ("\\N", None),
        (0, None),
        ("USA:", None),
        ("unknown", None),
        ([], None),
    ],
)
def test_parse_runtime_forms(value, minutes):
    assert ml.parse_runtime(value) == minutes


@pytest.mark.parametrize(
    "title, key",
    [
        ("Shawshank Redemption, The (1994)", "title:shawshank redemption|1994"),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "title:city of lost children|1995"),
        ("Misérables, Les (1995)", "title:miserables|1995"),
        ("Hamlet", "title:hamlet|"),
    ],
)
def test_lookup_key_normalises_movielens_titles(title, key):
    assert ml.lookup_key(title, "") == key
    assert ml.lookup_key(title, "tt0114709") == "imdb:tt0114709"
    assert ml.lookup_key(title, "114709") == "imdb:tt0114709"


# --------------------------------------------------------------------------- Cinemagoer lookups


def test_title_quirks_resolved_through_fake_cinemagoer():
    client = FakeCinemagoer(FILMS)
    titles = [
        "Shawshank Redemption, The (1994)",  # trailing article
        "City of Lost Children, The (Cité des enfants perdus, La) (1995)",  # only the alternate title is on IMDb
        "Hamlet (1996)",  # two Hamlets: the year decides
        "Hamlet (1990)",
        "Misérables, Les (1995)",  # latin-1 accent, decoded
        "Obscure Short (1995)",  # IMDb has no runtime
        "Nonexistent Film (2001)",  # not found at all
    ]
    result = resolve(movies_frame(titles), client)
    np.testing.assert_array_equal(result.minutes, np.array([142, 112, 242, 134, 175, 90, 90], dtype=np.float32))
    assert result.minutes.dtype == np.float32
    assert list(result.source) == ["cinemagoer"] * 5 + ["default"] * 2
    assert result.report["counts"]["cinemagoer"] == 5
    assert result.report["n_default"] == 2
    assert result.report["n_default_imdb_has_no_runtime"] == 2
    assert result.report["fraction_real"] == pytest.approx(5 / 7)
    searches = [arg for kind, arg in client.calls if kind == "search"]
    assert "The Shawshank Redemption (1994)" in searches
    assert "La Cité des enfants perdus (1995)" in searches  # second query: the alternate title


def test_best_title_match_when_no_year_matches():
    client = FakeCinemagoer(FILMS)
    # Year missing, and a year IMDb disagrees with: fall back to the closest title.
    result = resolve(movies_frame(["Toy Story", "Toy Story (1996)"]), client)
    np.testing.assert_array_equal(result.minutes, [81, 81])


def test_unrelated_search_results_are_not_found():
    client = FakeCinemagoer([{"id": "1", "title": "Toy Story of Terror and Other Long Things", "year": 2013}])
    result = resolve(movies_frame(["Toy Story (1995)"]), client)
    assert list(result.source) == ["default"]


def test_imdb_id_uses_get_movie_not_search():
    client = FakeCinemagoer(FILMS)
    result = resolve(movies_frame(["Toy Story (1995)"], imdb_ids=["tt0114709"]), client)
    assert result.minutes[0] == 81
    assert client.calls == [("get_movie", "0114709")]


def test_second_call_is_a_cache_hit_and_does_not_call_the_client(datasets_dir):
    titles = ["Shawshank Redemption, The (1994)", "Obscure Short (1995)", "Hamlet (1990)"]
    first = FakeCinemagoer(FILMS)
    resolve(movies_frame(titles), first)
    assert first.calls
    assert (datasets_dir / "movie_lengths" / "cachier").is_dir()
    second = FakeCinemagoer(FILMS)
    result = resolve(movies_frame(titles), second)
    assert second.calls == []
    assert list(result.source) == ["cache", "default", "cache"]  # "no runtime" was cached, still a default
    np.testing.assert_array_equal(result.minutes, [142, 90, 134])
    # The cache is also read with lookups switched off.
    offline = resolve(movies_frame(titles), FakeCinemagoer(FILMS), use_network=False)
    np.testing.assert_array_equal(offline.minutes, [142, 90, 134])


def test_duplicate_titles_are_looked_up_once():
    client = FakeCinemagoer(FILMS)
    result = resolve(movies_frame(["Toy Story (1995)", "Toy Story (1995)"]), client)
    np.testing.assert_array_equal(result.minutes, [81, 81])
    assert len([c for c in client.calls if c[0] == "search"]) == 1


def test_network_error_is_not_cached_and_later_run_fills_it_in():
    titles = ["Shawshank Redemption, The (1994)"]
    down = FakeCinemagoer(FILMS, error=ConnectionError("connection refused"))
    result = resolve(movies_frame(titles), down)
    assert result.minutes[0] == 90 and list(result.source) == ["default"]
    assert result.report["n_default_not_looked_up_or_failed"] == 1
    assert len(down.calls) == 1
    up = FakeCinemagoer(FILMS)
    result = resolve(movies_frame(titles), up)
    assert up.calls, "the failure must not have been cached"
    assert result.minutes[0] == 142 and list(result.source) == ["cinemagoer"]


@pytest.mark.parametrize("workers", [1, 4])
def test_plainly_down_network_stops_after_a_few_failures(workers):
    titles = [f"Film Number {i} (19{50 + i % 40})" for i in range(200)]
    down = FakeCinemagoer([], error=TimeoutError("timed out"))
    started = time.perf_counter()
    result = resolve(movies_frame(titles), down, max_workers=workers, connect_failures_before_offline=3)
    assert time.perf_counter() - started < 5
    # At most the tripping failures plus the lookups already in flight.
    assert 3 <= len(down.calls) <= 3 + workers
    assert result.report["n_default"] == 200
    assert any("stopped looking up" in note for note in result.report["notes"])


def test_no_network_lookups_never_calls_the_client():
    client = FakeCinemagoer(FILMS)
    result = resolve(movies_frame(["Toy Story (1995)"]), client, use_network=False)
    assert client.calls == []
    assert list(result.source) == ["default"]
    assert "ALL 1 movies use the default 90 min" in result.summary()


# --------------------------------------------------------------------------- table source


def write_table(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def test_table_matches_movie_id_per_dataset_imdb_id_and_title(tmp_path):
    table = write_table(
        tmp_path / "runtimes.csv",
        pd.DataFrame(
            {
                "dataset": ["ml-1m", "ml-1m", "ml-latest-small", "ml-1m"],
                "movieId": ["1", "2", "1", "3"],
                "title": [
                    "Toy Story (1995)",
                    "Jumanji (1995)",
                    "Other Film (2001)",
                    "Cité des enfants perdus, La (1995)",
                ],
                "imdbId": ["tt0114709", "tt0113497", "tt0000001", "tt0112682"],
                "runtime_min": ["81", "104", "55", "112"],
            }
        ),
    )
    client = FakeCinemagoer(FILMS)
    # ML-1M ids match within the ml-1m rows only.
    result = resolve(movies_frame(["Toy Story (1995)", "Jumanji (1995)"]), client, table_path=table)
    np.testing.assert_array_equal(result.minutes, [81, 104])
    assert list(result.source) == ["table", "table"]
    assert client.calls == []  # table comes before any lookup
    # ML-100K ids are not ML-1M ids: id 1 here is another film, matched by title + year instead.
    movies = movies_frame(
        [
            "Jumanji (1995)",
            "Shawshank Redemption, The (1994)",
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
        ],
        movie_ids=["1", "2", "3"],
    )
    result = resolve(movies, None, variant="100k", table_path=table, use_network=False)
    np.testing.assert_array_equal(result.minutes, [104, 90, 112])
    assert list(result.source) == ["table", "default", "table"]
    # latest-small: its own id 1, or the IMDb id from links.csv.
    movies = movies_frame(["Other Film (2001)", "Renamed (1995)"], imdb_ids=["", "tt0113497"], movie_ids=["1", "99"])
    result = resolve(movies, None, variant="latest-small", table_path=table, use_network=False)
    np.testing.assert_array_equal(result.minutes, [55, 104])


@pytest.mark.parametrize("column", ["runtime", "runtimeMinutes", "minutes"])
def test_table_without_dataset_column_and_other_runtime_names(tmp_path, column):
    table = write_table(
        tmp_path / "t.csv", pd.DataFrame({"title": ["Toy Story (1995)", "Heat (1995)"], column: [81, ""]})
    )
    result = resolve(movies_frame(["Toy Story (1995)", "Heat (1995)"]), None, table_path=table, use_network=False)
    np.testing.assert_array_equal(result.minutes, [81, 90])  # an empty runtime is not a runtime


def test_bad_table_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="movie_lengths_file"):
        resolve(movies_frame(["Toy Story (1995)"]), None, table_path=str(tmp_path / "missing.csv"))
    bad = write_table(tmp_path / "bad.csv", pd.DataFrame({"title": ["Toy Story (1995)"], "length": [81]}))
    with pytest.raises(ValueError, match="runtime_min"):
        resolve(movies_frame(["Toy Story (1995)"]), None, table_path=bad)
    with pytest.raises(KeyError, match="movie_title"):
        ml.resolve_movie_lengths(pd.DataFrame({"x": [1]}), "1m", progress=False, verbose=False)


# --------------------------------------------------------------------------- IMDb bulk file


BASICS_HEADER = "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres\n"
BASICS_ROWS = [
    "tt0111161\tmovie\tThe Shawshank Redemption\tThe Shawshank Redemption\t0\t1994\t\\N\t142\tDrama",
    "tt0112682\tmovie\tThe City of Lost Children\tLa cité des enfants perdus\t0\t1995\t\\N\t112\tFantasy",
    "tt0113497\tmovie\tJumanji\tJumanji\t0\t1995\t\\N\t104\tAdventure",
    "tt5555555\ttvEpisode\tJumanji\tJumanji\t0\t1995\t\\N\t22\tComedy",  # an episode: never a film's length
    "tt0114709\tmovie\tToy Story\tToy Story\t0\t1995\t\\N\t\\N\tAnimation",  # no runtime
    'tt0120363\tmovie\t"Quoted" Title\t"Quoted" Title\t0\t1999\t\\N\t95\tComedy',
    "tt0000009\tshort\tHeat\tHeat\t0\t1995\t\\N\t7\tShort",
    "tt0113277\tmovie\tHeat\tHeat\t0\t1995\t\\N\t170\tCrime",
]


@pytest.mark.parametrize("compressed", [True, False])
def test_imdb_bulk_file_by_id_and_by_title_year(tmp_path, compressed):
    text = BASICS_HEADER + "\n".join(BASICS_ROWS) + "\n"
    if compressed:
        path = tmp_path / "title.basics.tsv.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path = tmp_path / "title.basics.tsv"
        path.write_text(text, encoding="utf-8")
    titles = [
        "Shawshank Redemption, The (1994)",
        "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
        "Some Title (1995)",  # matched by IMDb id only
        "Toy Story (1995)",
        '"Quoted" Title (1999)',
        "Heat (1995)",  # the feature, not the short of the same name and year
        "Unknown (1995)",
    ]
    imdb_ids = ["", "", "tt0113497", "", "", "", ""]
    client = FakeCinemagoer([], error=ConnectionError("down"))
    result = resolve(movies_frame(titles, imdb_ids=imdb_ids), client, imdb_basics_path=str(path))
    np.testing.assert_array_equal(result.minutes, [142, 112, 104, 90, 95, 170, 90])
    assert list(result.source) == ["imdb_bulk"] * 3 + ["default"] + ["imdb_bulk"] * 2 + ["default"]


def test_source_order_table_then_bulk(tmp_path):
    table = write_table(tmp_path / "t.csv", pd.DataFrame({"title": ["Jumanji (1995)"], "runtime_min": [100]}))
    basics = tmp_path / "title.basics.tsv"
    basics.write_text(BASICS_HEADER + "\n".join(BASICS_ROWS) + "\n", encoding="utf-8")
    client = FakeCinemagoer(FILMS)
    movies = movies_frame(["Jumanji (1995)", "Heat (1995)", "Toy Story (1995)"])
    result = resolve(movies, client, table_path=table, imdb_basics_path=str(basics))
    np.testing.assert_array_equal(result.minutes, [100, 170, 81])
    assert list(result.source) == ["table", "imdb_bulk", "cinemagoer"]
    assert [c for c in client.calls if c[0] == "search"] == [("search", "Toy Story (1995)")]


# --------------------------------------------------------------------------- report, CLI, real client


def test_coverage_report_written_beside_the_data_cache(datasets_dir):
    result = ml.resolve_movie_lengths(
        movies_frame(["Toy Story (1995)", "Nope (1990)"]),
        "latest-small",
        ml.MovieLengthConfig(),
        imdb_client=FakeCinemagoer(FILMS),
        progress=False,
        verbose=False,
    )
    report = json.loads((datasets_dir / "movie_lengths" / "latest-small-coverage.json").read_text())
    assert report["counts"] == result.report["counts"]
    assert report["n_real"] == 1 and report["n_default"] == 1
    assert "1/2 movies (50.0%)" in result.summary()


def test_cli_arguments_build_the_config():
    parser = ml.add_movie_length_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--movie_lengths_file", "t.csv", "--imdb_basics_file", "b.tsv.gz", "--no_network_lookups"]
    )
    config = ml.movie_length_config_from_args(args)
    assert config == ml.MovieLengthConfig(table_path="t.csv", imdb_basics_path="b.tsv.gz", use_network=False)
    assert ml.movie_length_config_from_args(parser.parse_args([])) == ml.MovieLengthConfig()
    with pytest.raises(ValueError, match="unknown MovieLengthConfig keys"):
        ml.MovieLengthConfig.from_dict({"tabel_path": "x"})


def test_real_cinemagoer_without_database_is_skipped_at_once(datasets_dir, capsys):
    titles = [f"Film {i} (19{50 + i % 40})" for i in range(50)]
    started = time.perf_counter()
    result = ml.resolve_movie_lengths(movies_frame(titles), "1m", ml.MovieLengthConfig(), progress=False)
    assert time.perf_counter() - started < 5
    assert result.report["n_default"] == 50
    assert "ALL 50 movies use the default" in capsys.readouterr().out
    assert any("Cinemagoer unavailable" in note for note in result.report["notes"])
    cachier_dir = datasets_dir / "movie_lengths" / "cachier"
    assert not cachier_dir.exists() or not any(cachier_dir.iterdir())
    assert not (datasets_dir / "movie_lengths" / "cinemagoer.db").exists()  # no empty database was created


def _tsv_gz(path, header, rows):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))


def test_real_cinemagoer_client_on_a_tiny_imdb_database(tmp_path, datasets_dir):
    """The installed Cinemagoer (local IMDb database flavour) behind the same provider code."""
    pytest.importorskip("imdb")
    from imdb.parser.s3.importer import import_dir

    tsv = tmp_path / "tsv"
    tsv.mkdir()
    (tsv / "title.basics.tsv.gz").write_bytes(gzip.compress((BASICS_HEADER + "\n".join(BASICS_ROWS) + "\n").encode()))
    _tsv_gz(
        tsv / "title.akas.tsv.gz",
        ["titleId", "ordering", "title", "region", "language", "types", "attributes", "isOriginalTitle"],
        [["tt0112682", "1", "La cité des enfants perdus", "FR", "\\N", "\\N", "\\N", "1"]],
    )
    _tsv_gz(tsv / "title.crew.tsv.gz", ["tconst", "directors", "writers"], [["tt0111161", "\\N", "\\N"]])
    _tsv_gz(
        tsv / "title.episode.tsv.gz",
        ["tconst", "parentTconst", "seasonNumber", "episodeNumber"],
        [["tt5555555", "tt0000001", "1", "1"]],
    )
    _tsv_gz(tsv / "title.ratings.tsv.gz", ["tconst", "averageRating", "numVotes"], [["tt0111161", "9.3", "10"]])
    _tsv_gz(
        tsv / "title.principals.tsv.gz",
        ["tconst", "ordering", "nconst", "category", "job", "characters"],
        [["tt0111161", "1", "nm0000209", "actor", "\\N", "\\N"]],
    )
    _tsv_gz(
        tsv / "name.basics.tsv.gz",
        ["nconst", "primaryName", "birthYear", "deathYear", "primaryProfession", "knownForTitles"],
        [["nm0000209", "Tim Robbins", "1958", "\\N", "actor", "tt0111161"]],
    )
    uri = f"sqlite:///{tmp_path / 'cinemagoer.db'}"
    movies = movies_frame(
        [
            "Shawshank Redemption, The (1994)",
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "Anything (1995)",
            "Toy Story (1995)",
        ],
        imdb_ids=["", "", "tt0113497", ""],
    )
    config = ml.MovieLengthConfig(cinemagoer_uri=uri, max_workers=2)
    # A database that exists but is empty: every real lookup fails (like a service that is down).
    (tmp_path / "cinemagoer.db").write_bytes(b"")
    many = pd.concat([movies, movies_frame([f"Film {i} (19{50 + i % 40})" for i in range(50)])], ignore_index=True)
    started = time.perf_counter()
    failed = ml.resolve_movie_lengths(many, "latest-small", config, progress=False, verbose=False)
    assert time.perf_counter() - started < 5
    assert failed.report["n_default"] == len(many)
    assert any("stopped looking up" in note for note in failed.report["notes"])
    # Nothing from those failures is cached: once the database is filled, the same movies are looked up.
    import_dir(str(tsv), uri)
    result = ml.resolve_movie_lengths(movies, "latest-small", config, progress=False, verbose=False)
    np.testing.assert_array_equal(result.minutes, [142, 112, 104, 90])
    assert list(result.source) == ["cinemagoer"] * 3 + ["default"]
    again = ml.resolve_movie_lengths(movies, "latest-small", config, progress=False, verbose=False)
    assert list(again.source) == ["cache"] * 3 + ["default"]


@pytest.mark.real_data
def test_ml1m_offline_coverage_with_shared_table():
    shared = shared_datasets_dir()
    if shared is None or not (shared / "runtimes" / "movielens_runtimes.csv").is_file():
        pytest.skip("shared datasets absent")
    movies = pd.read_csv(
        shared / "ml-1m" / "movies.dat",
        sep="::",
        engine="python",
        encoding="latin-1",
        header=None,
        names=["movie_id", "movie_title", "genres"],
        dtype=str,
    )
    config = ml.MovieLengthConfig(table_path=str(shared / "runtimes" / "movielens_runtimes.csv"), use_network=False)
    result = ml.resolve_movie_lengths(movies, "1m", config, progress=False, verbose=False)
    assert len(result.minutes) == 3883
    assert result.report["fraction_real"] >= 0.97
    toy_story = int(np.flatnonzero(movies["movie_id"] == "1")[0])
    assert result.minutes[toy_story] == 81


def test_table_title_part_match_only_when_unambiguous(tmp_path):
    table = write_table(
        tmp_path / "t.csv",
        pd.DataFrame(
            {
                "dataset": ["ml-1m", "ml-latest-small", "ml-1m", "ml-1m"],
                "title": [
                    "Star Wars: Episode IV - A New Hope (1977)",
                    "Star Wars: Episode IV - A New Hope (1977)",  # same film in another dataset: not ambiguous
                    "Batman: Mask of the Phantasm (1993)",
                    "Batman - The Other One (1993)",
                ],
                "runtime_min": [121, 124, 76, 50],
            }
        ),
    )
    movies = movies_frame(["Star Wars (1977)", "A New Hope (1977)", "Batman (1993)", "Star Wars (1978)"])
    result = resolve(movies, None, variant="100k", table_path=table, use_network=False)
    np.testing.assert_array_equal(result.minutes, [121, 121, 90, 90])


def test_table_title_of_the_year_before_or_after_and_roman_numerals(tmp_path):
    table = write_table(
        tmp_path / "t.csv",
        pd.DataFrame(
            {
                "title": ["Heat (1996)", "Rocky 2 (1979)", "Dead Heat (1995)", "Heat Wave (1995)"],
                "runtime_min": [170, 119, 86, 95],
            }
        ),
    )
    movies = movies_frame(["Heat (1995)", "Rocky II (1979)", "Heat (1993)", "Heat Wave (1995)"])
    result = resolve(movies, None, variant="100k", table_path=table, use_network=False)
    # A film that merely shares a word ("Dead Heat") is never taken; two years off is another film.
    np.testing.assert_array_equal(result.minutes, [170, 119, 90, 95])
