"""The data layer: loaders per layout, the schema, the cache, sources and their errors, splits."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import data_summary as summary_cli
from experiments import run as run_cli
from movielens.data import (
    DataUnavailableError,
    cache,
    grouplens,
    leave_last_out_split,
    load_movielens,
    make_split,
    random_split,
    rating_columns,
    registry_copy,
    schema,
    temporal_split,
    tfds_source,
)
from movielens.data.synthetic import LATIN1_TITLES, generate_grouplens, write_grouplens, write_tables
from movielens.data.table import CATEGORICAL_COLUMNS, MovieLensData

LAYOUT_VARIANT = {"100k": "100k", "1m": "1m", "latest-small": "latest-small"}


@pytest.fixture
def offline(monkeypatch):
    """No GroupLens host and no registry: only local files and the cache can serve."""
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: False)

    def no_registry(cache_dir):
        raise registry_copy.RegistryUnavailableError("registry disabled in this test")

    monkeypatch.setattr(registry_copy, "fetch", no_registry)


def _written(synthetic, tmp_path, layout, synthetic_1m=None):
    data, _ = synthetic_1m if layout == "1m" and synthetic_1m else synthetic
    folder = write_grouplens(data, tmp_path / f"ml-{layout}", layout)
    return data, folder


def _assert_same_ratings(loaded: MovieLensData, expected: MovieLensData):
    columns = [c for c in rating_columns(loaded.variant) if c in expected.ratings.columns]
    pd.testing.assert_frame_equal(loaded.ratings[columns].reset_index(drop=True),
                                  expected.ratings[columns].reset_index(drop=True), check_dtype=False)


def test_found_local_files_win_over_a_cached_copy_of_another_source(synthetic, tmp_path, offline):
    """A registry copy cached by an earlier run must not stand in for the --data_dir files asked for."""
    data, folder = _written(synthetic, tmp_path, "100k")
    other = MovieLensData("100k", "registry:recbole==1.2.1", data.ratings.iloc[:10].copy(), data.movies)
    cache_dir = tmp_path / "datasets"
    cache.write(other, cache_dir, "registry-recbole121")
    loaded = load_movielens("100k", data_dir=folder, cache_dir=cache_dir)
    assert loaded.source.startswith("local:") and len(loaded.ratings) == len(data.ratings)
    # Without local files the cached registry copy still serves (no network needed).
    assert load_movielens("100k", cache_dir=cache_dir).source == "registry:recbole==1.2.1"


@pytest.mark.parametrize("layout", ["100k", "1m", "latest-small"])
def test_each_layout_loads_into_the_tfds_schema(synthetic, synthetic_1m, tmp_path, offline, layout):
    data, folder = _written(synthetic, tmp_path, layout, synthetic_1m)
    loaded = load_movielens(LAYOUT_VARIANT[layout], data_dir=folder)
    assert list(loaded.ratings.columns) == list(rating_columns(layout))
    for column, dtype in rating_columns(layout).items():
        values = loaded.ratings[column]
        if column in CATEGORICAL_COLUMNS:  # text ids and titles: integer codes, each distinct text once
            categories = values.cat.categories
            assert categories.dtype == object and all(isinstance(v, str) for v in values.iloc[:50])
            assert list(categories) == sorted(set(values.astype(object)))  # exactly those present, sorted as text
        elif column == "movie_genres":  # a Categorical of the genre tuples
            assert all(isinstance(v, tuple) for v in values.cat.categories) and values.cat.categories.is_unique
            assert all(isinstance(v, tuple) for v in values.iloc[:50])
        elif dtype in (np.str_, object):
            assert values.dtype == object and all(isinstance(v, (str, tuple)) for v in values.iloc[:50])
        else:
            assert values.dtype == dtype, column
    assert len(loaded.ratings) == len(data.ratings)
    assert loaded.ratings["user_id"].nunique() == data.ratings["user_id"].nunique()
    assert len(loaded.movies) == len(data.movies)
    # latin-1 titles decode to the same text, genres map to the same TFDS labels
    assert set(loaded.movies["movie_title"]) == set(data.movies["movie_title"])
    assert any(LATIN1_TITLES[0] in t for t in loaded.movies["movie_title"])
    _assert_same_ratings(loaded, data)
    assert list(loaded.movies["movie_genres"]) == list(data.movies["movie_genres"])


def test_1m_occupations_and_children_genre_follow_tfds(tmp_path, offline):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes("1::Amélie (2001)::Children's|Comedy\n".encode("latin-1"))
    (folder / "users.dat").write_text("7::F::25::4::55455\n8::M::1::10::02139\n")
    (folder / "ratings.dat").write_text("7::1::5::978300760\n8::1::3::978300761\n")
    data = load_movielens("1m", data_dir=folder)
    row = data.ratings.iloc[0]
    assert row["movie_title"] == "Amélie (2001)"
    assert row["movie_genres"] == (schema.GENRE_INDEX["Children"], schema.GENRE_INDEX["Comedy"])
    assert row["user_occupation_text"] == "college/grad student"
    assert row["user_occupation_label"] == schema.OCCUPATION_INDEX["student"]
    assert data.ratings.iloc[1]["user_occupation_text"] == "K-12 student"
    assert row["bucketized_user_age"] == 25.0 and not row["user_gender"]


@pytest.mark.parametrize("how", ["variant_zip", "parent_with_zip", "parent_with_folder"])
def test_data_dir_forms(synthetic, tmp_path, offline, how):
    data, folder = _written(synthetic, tmp_path / "src", "100k")
    parent = tmp_path / "user"
    parent.mkdir()
    if how == "parent_with_folder":
        shutil.copytree(folder, parent / "ml-100k")
        target = parent
    else:
        archive = parent / "ml-100k.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for file in folder.iterdir():
                zf.write(file, f"ml-100k/{file.name}")
        target = archive if how == "variant_zip" else parent
    loaded = load_movielens("100k", data_dir=target)
    _assert_same_ratings(loaded, data)


def test_cache_round_trip_does_not_reparse(synthetic, tmp_path, offline, monkeypatch):
    data, folder = _written(synthetic, tmp_path, "1m")
    first = load_movielens("1m", data_dir=folder)
    monkeypatch.setattr(grouplens, "load_grouplens", lambda *a: pytest.fail("reparsed despite the cache"))
    second = load_movielens("1m", data_dir=folder)
    pd.testing.assert_frame_equal(first.ratings, second.ratings)
    pd.testing.assert_frame_equal(first.movies, second.movies)
    assert second.source == first.source


def test_relative_and_absolute_paths_share_one_cache_entry(synthetic, tmp_path, offline, monkeypatch):
    _, folder = _written(synthetic, tmp_path, "100k")
    first = load_movielens("100k", data_dir=folder)
    monkeypatch.chdir(folder.parent)
    monkeypatch.setattr(grouplens, "load_grouplens", lambda *a: pytest.fail("a relative path missed the cache"))
    second = load_movielens("100k", data_dir=folder.name)
    assert second.source == first.source == f"local:{folder.resolve()}"


def test_rebuild_data_forces_a_reparse(synthetic, tmp_path, offline, monkeypatch):
    _, folder = _written(synthetic, tmp_path, "100k")
    load_movielens("100k", data_dir=folder)
    calls = []
    original = grouplens.load_grouplens

    def fewer_ratings(*args):
        calls.append(1)
        data = original(*args)
        return MovieLensData(data.variant, data.source, data.ratings.head(10), data.movies)

    monkeypatch.setattr(grouplens, "load_grouplens", fewer_ratings)
    load_movielens("100k", data_dir=folder, rebuild=True)
    assert calls == [1]
    monkeypatch.setattr(grouplens, "load_grouplens", original)
    assert len(load_movielens("100k", data_dir=folder).ratings) == 10  # the rebuilt entry replaced the old one


def test_changed_files_get_a_new_cache_entry(synthetic, tmp_path, offline):
    _, folder = _written(synthetic, tmp_path, "100k")
    assert len(load_movielens("100k", data_dir=folder).ratings) == len(synthetic[0].ratings)
    lines = (folder / "u.data").read_text().splitlines()[:100]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    assert len(load_movielens("100k", data_dir=folder).ratings) == 100


@pytest.mark.parametrize("damage", ["meta_garbled", "meta_missing", "shard_truncated", "counts_wrong"])
def test_corrupt_cache_is_detected_and_rebuilt(synthetic, tmp_path, offline, damage):
    data, folder = _written(synthetic, tmp_path, "100k")
    load_movielens("100k", data_dir=folder)
    entry = next((tmp_path / "datasets" / "processed").iterdir())
    if damage == "meta_garbled":
        (entry / "meta.json").write_text('{"schema_versi')
    elif damage == "meta_missing":
        (entry / "meta.json").unlink()
    elif damage == "counts_wrong":
        meta = (entry / "meta.json").read_text().replace(f'"ratings": {len(data.ratings)}', '"ratings": 7')
        (entry / "meta.json").write_text(meta)
    else:
        shard = max((p for p in (entry / "ratings").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(cache.CorruptCacheError):
        cache.read(tmp_path / "datasets", "100k", entry.name.split("-", 1)[1].rsplit("-s", 1)[0])
    reloaded = load_movielens("100k", data_dir=folder)
    _assert_same_ratings(reloaded, data)
    assert cache.read(tmp_path / "datasets", "100k", entry.name.split("-", 1)[1].rsplit("-s", 1)[0]) is not None


def test_unknown_variant_and_source_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid variants: 100k, 1m, 20m, 25m, latest-small"):
        load_movielens("10m")
    with pytest.raises(ValueError, match="valid sources"):
        load_movielens("100k", source="kaggle")
    with pytest.raises(ValueError, match="only has ML-100K"):
        load_movielens("1m", source="registry")


def test_missing_files_fail_fast_with_instructions(tmp_path, offline):
    empty = tmp_path / "empty"
    empty.mkdir()
    started = time.perf_counter()
    with pytest.raises(DataUnavailableError) as error:
        load_movielens("1m", data_dir=empty)
    message = str(error.value)
    # The files asked for are the only source tried: the error names them, no download is attempted.
    assert str(empty) in message and "tfds" not in message and "ml-1m.zip" in message and "--data_dir" in message
    assert time.perf_counter() - started < 15
    with pytest.raises(DataUnavailableError) as error:
        load_movielens("1m")
    message = str(error.value)
    assert "local files: none given" in message and "tfds" in message and "ml-1m.zip" in message
    with pytest.raises(DataUnavailableError, match="registry"):
        load_movielens("100k")


def test_a_folder_missing_one_file_names_it(synthetic, tmp_path, offline):
    _, folder = _written(synthetic, tmp_path, "1m")
    (folder / "users.dat").unlink()
    with pytest.raises(DataUnavailableError, match="lacks users.dat"):
        load_movielens("1m", data_dir=folder, source="auto")


def test_a_corrupt_zip_is_a_clear_error(tmp_path, offline):
    bad = tmp_path / "ml-100k.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataUnavailableError, match="not a readable zip"):
        load_movielens("100k", data_dir=bad)


def test_registry_wheel_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    def fake_pip(command, **kwargs):
        dest = Path(command[command.index("--dest") + 1])
        (dest / registry_copy.WHEEL).write_bytes(b"tampered")
        return type("Result", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(registry_copy.subprocess, "run", fake_pip)
    with pytest.raises(registry_copy.RegistryUnavailableError, match="refusing it"):
        registry_copy.fetch(tmp_path)
    assert not (tmp_path / "registry" / "recbole-1.2.1-ml-100k").exists()


@pytest.mark.slow
def test_registry_copy_of_ml100k(monkeypatch):
    """Downloads recbole 1.2.1 from PyPI (the path `make experiment` takes on a fresh machine)."""
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: False)
    try:
        data = load_movielens("100k", source="registry")
    except DataUnavailableError as error:  # pragma: no cover - only without PyPI
        pytest.skip(f"PyPI unreachable: {error}")
    assert data.source == "registry:recbole==1.2.1"
    assert (len(data.ratings), data.ratings["user_id"].nunique(), len(data.movies)) == (100_000, 943, 1_682)
    assert list(data.ratings.columns) == list(rating_columns("100k"))


@pytest.mark.real_data
@pytest.mark.slow
def test_registry_titles_match_the_original_u_item(shared_datasets, monkeypatch):
    monkeypatch.setattr(tfds_source, "host_reachable", lambda *a, **k: False)
    try:
        registry = load_movielens("100k", source="registry")
    except DataUnavailableError as error:  # pragma: no cover
        pytest.skip(f"PyPI unreachable: {error}")
    original = load_movielens("100k", data_dir=shared_datasets)
    merged = registry.movies.merge(original.movies, on="movie_id", suffixes=("_registry", "_original"))
    assert len(merged) == 1682
    mismatched = merged[merged["movie_title_registry"] != merged["movie_title_original"]]
    assert mismatched.empty, mismatched[["movie_id", "movie_title_registry", "movie_title_original"]]
    assert (merged["movie_genres_registry"] == merged["movie_genres_original"]).all()
    _assert_same_ratings(registry, original)


@pytest.mark.real_data
def test_real_ml100k_counts(shared_datasets, offline):
    data = load_movielens("100k", data_dir=shared_datasets)
    assert (len(data.ratings), data.ratings["user_id"].nunique(), len(data.movies)) == (100_000, 943, 1_682)
    assert data.ratings["movie_id"].nunique() == 1_682
    toy = data.movies.set_index("movie_id").loc["1"]
    assert toy["movie_title"] == "Toy Story (1995)"
    assert [schema.GENRES[g] for g in toy["movie_genres"]] == ["Animation", "Children", "Comedy"]


@pytest.mark.real_data
def test_real_ml1m_half_counts(shared_datasets, offline):
    data = load_movielens("1m", data_dir=shared_datasets / "ml-1m-half")
    assert (len(data.ratings), data.ratings["user_id"].nunique(), len(data.movies)) == (487_650, 2_999, 3_883)
    assert data.ratings["movie_id"].nunique() == 3_615


# ---------------------------------------------------------------- splits


def _keys(frame):
    return set(zip(frame["user_id"], frame["movie_id"], frame["timestamp"]))


def test_random_split_is_seeded_disjoint_and_sized(synthetic):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    assert split.validation_is_test and split.validation is split.test
    assert len(split.train) == int(0.8 * len(data.ratings)) and len(split.train) + len(split.test) == len(data.ratings)
    assert not _keys(split.train) & _keys(split.test)
    again = random_split(data, (0.8, 0.2), seed=42)
    pd.testing.assert_frame_equal(split.train, again.train)
    other = random_split(data, (0.8, 0.2), seed=7)
    assert not split.train.equals(other.train)
    three = random_split(data, (0.8, 0.1, 0.1), seed=42)
    assert not three.validation_is_test
    parts = [_keys(three.train), _keys(three.validation), _keys(three.test)]
    assert sum(map(len, parts)) == len(data.ratings) and not (parts[0] & parts[1] or parts[1] & parts[2])


def test_vocabulary_is_fitted_on_train_only(synthetic):
    data, _ = synthetic
    split = random_split(data, (0.8, 0.2), seed=42)
    assert set(split.vocabulary.movie_ids) == set(split.train["movie_id"])
    assert set(split.vocabulary.user_ids) == set(split.train["user_id"])
    codes = split.vocabulary.encode_movies(["no-such-movie", split.vocabulary.movie_ids[0]])
    assert codes.tolist() == [0, 1]


def test_temporal_split_never_trains_on_the_future(synthetic):
    data, _ = synthetic
    # put many ratings on the cutoff second: they must all land on the same (later) side
    data = MovieLensData(data.variant, data.source, data.ratings.copy(), data.movies)
    cutoff = int(np.quantile(data.ratings["timestamp"], 0.8))
    data.ratings.loc[data.ratings.index[::7], "timestamp"] = cutoff
    split = temporal_split(data, (0.8, 0.1, 0.1))
    assert split.train["timestamp"].max() < split.validation["timestamp"].min()
    assert split.validation["timestamp"].max() < split.test["timestamp"].min()
    assert len(split.train) + len(split.validation) + len(split.test) == len(data.ratings)
    assert 0.6 < len(split.train) / len(data.ratings) < 0.9


def test_leave_last_out_picks_the_last_two_by_time():
    ratings = pd.DataFrame({
        "user_id": ["1", "1", "1", "1", "2", "2", "3", "3", "3"],
        "movie_id": ["a", "b", "c", "d", "a", "b", "x", "y", "z"],
        "timestamp": [40, 10, 30, 20, 5, 6, 7, 7, 7],  # user 3: ties keep file order
        "user_rating": np.ones(9, np.float32),
    })
    data = MovieLensData("latest-small", "test", ratings, pd.DataFrame())
    split = leave_last_out_split(data)
    assert dict(zip(split.test["user_id"], split.test["movie_id"])) == {"1": "a", "3": "z"}
    assert dict(zip(split.validation["user_id"], split.validation["movie_id"])) == {"1": "c", "3": "y"}
    assert sorted(split.train["movie_id"]) == ["a", "b", "b", "d", "x"]  # user 2 has < 3 ratings: all train
    assert not split.validation_is_test


def test_leave_last_out_with_validation_users_moves_the_others_validation_to_train(synthetic):
    """--split_validation_users N (gSASRec's protocol): N seeded users validate; every other user's
    second-to-last rating is trained on; the test part is the plain split's."""
    data, _ = synthetic
    plain = leave_last_out_split(data)
    split = leave_last_out_split(data, validation_users=10, seed=3)
    assert split.validation_users == 10 and "validation on 10 sampled users" in split.describe()
    assert split.validation["user_id"].nunique() == len(split.validation) == 10

    def pairs(frame):
        return sorted(zip(frame["user_id"].astype(str), frame["movie_id"].astype(str), frame["timestamp"]))

    assert pairs(split.test) == pairs(plain.test)
    assert set(pairs(split.validation)) <= set(pairs(plain.validation))
    moved = set(pairs(plain.validation)) - set(pairs(split.validation))
    assert len(moved) == len(plain.validation) - 10 and moved <= set(pairs(split.train))
    assert len(split.train) == len(plain.train) + len(moved)
    # The draw is the seed's: the same again, another with another seed; N >= the users is the plain split.
    assert pairs(leave_last_out_split(data, 10, seed=3).validation) == pairs(split.validation)
    assert pairs(leave_last_out_split(data, 10, seed=4).validation) != pairs(split.validation)
    everyone = make_split(data, "leave_last_out", validation_users=10_000)
    assert everyone.validation_users == 0 and pairs(everyone.validation) == pairs(plain.validation)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="validation_users"):
            leave_last_out_split(data, validation_users=bad)
    with pytest.raises(ValueError, match="leave_last_out split only"):
        make_split(data, "random", (0.8, 0.1, 0.1), validation_users=10)


def test_split_arguments_are_checked(synthetic):
    data, _ = synthetic
    with pytest.raises(ValueError, match="valid splits"):
        make_split(data, "by_genre")
    with pytest.raises(ValueError, match="fractions"):
        make_split(data, "random", (0.5, 0.2))
    with pytest.raises(ValueError, match="no fractions"):
        make_split(data, "leave_last_out", (0.8, 0.2))


# ---------------------------------------------------------------- CLI


def test_data_summary_cli_end_to_end(synthetic, tmp_path, offline, capsys):
    _, folder = _written(synthetic, tmp_path, "1m")
    assert summary_cli.main(["--dataset", "1m", "--data_dir", str(folder), "--split", "leave_last_out"]) == 0
    out = capsys.readouterr().out
    assert '"ratings": 900' in out and "leave_last_out split" in out


def test_cli_bad_input_is_one_line_not_a_traceback(tmp_path, offline, capsys):
    assert summary_cli.main(["--dataset", "1m", "--data_dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not load MovieLens 1m") and "Traceback" not in err
    with pytest.raises(SystemExit):
        summary_cli.main(["--dataset", "5m"])
    with pytest.raises(SystemExit):
        run_cli.main(["--model", "no_such_model"])


# ---------------------------------------------------------------- content-based cache identity


def _entries(cache_dir):
    return sorted(p.name for p in (cache_dir / "processed").iterdir() if not p.name.startswith("."))


def test_the_same_files_elsewhere_hit_the_same_cache_entry(synthetic, tmp_path, offline, monkeypatch):
    """By content, not path or file times: a copy in another folder (new mtimes) or in a zip is the same data."""
    data, folder = _written(synthetic, tmp_path / "here", "100k")
    cache_dir = tmp_path / "datasets"
    first = load_movielens("100k", data_dir=folder, cache_dir=cache_dir)
    elsewhere = tmp_path / "another" / "machine" / "ml-100k"
    shutil.copytree(folder, elsewhere)
    for file in elsewhere.iterdir():
        file.touch()
    archive = tmp_path / "zipped" / "ml-100k.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in folder.iterdir():
            zf.write(file, f"ml-100k/{file.name}")
    monkeypatch.setattr(grouplens, "load_grouplens", lambda *a: pytest.fail("the same data was parsed again"))
    for where in (elsewhere, archive):
        again = load_movielens("100k", data_dir=where, cache_dir=cache_dir)
        pd.testing.assert_frame_equal(again.ratings, first.ratings)
        assert again.source == f"local:{grouplens.locate('100k', where)}"  # says where the files are now
    assert len(_entries(cache_dir)) == 1


def test_one_changed_rating_is_another_cache_entry(synthetic, tmp_path, offline):
    data, folder = _written(synthetic, tmp_path, "latest-small")
    cache_dir = tmp_path / "datasets"
    key = grouplens.locate("latest-small", folder).content_key(["ratings.csv", "movies.csv", "links.csv"])
    load_movielens("latest-small", data_dir=folder, cache_dir=cache_dir)
    path = folder / "ratings.csv"
    lines = path.read_bytes().split(b"\n")
    user, movie, rating, timestamp = lines[7].split(b",")
    lines[7] = b",".join([user, movie, b"1.0" if rating != b"1.0" else b"2.0", timestamp])
    path.write_bytes(b"\n".join(lines))
    changed = grouplens.locate("latest-small", folder).content_key(["ratings.csv", "movies.csv", "links.csv"])
    assert changed != key
    loaded = load_movielens("latest-small", data_dir=folder, cache_dir=cache_dir)
    assert loaded.ratings["user_rating"].iloc[6] == (1.0 if rating != b"1.0" else 2.0)
    assert len(_entries(cache_dir)) == 2 and any(key in name for name in _entries(cache_dir))


# ---------------------------------------------------------------- the streamed ratings parser


def _reference_parse(raw: bytes, sep: str, header: bool) -> pd.DataFrame:
    """The ratings as the whole-file, string-id parser read them before streaming (ids then as ints)."""
    text = raw.replace(sep.encode(), b"\x1f") if len(sep) > 1 else raw
    frame = pd.read_csv(io.BytesIO(text), sep="\x1f" if len(sep) > 1 else sep, header=0 if header else None,
                        names=["user_id", "movie_id", "user_rating", "timestamp"],
                        dtype={"user_id": str, "movie_id": str, "user_rating": np.float32, "timestamp": np.int64},
                        engine="c")
    return frame.assign(user_id=frame["user_id"].astype(np.int64), movie_id=frame["movie_id"].astype(np.int64))


@pytest.mark.parametrize("layout,name,sep,header", [("100k", "u.data", "\t", False), ("1m", "ratings.dat", "::", False),
                                                    ("25m", "ratings.csv", ",", True)])
def test_block_parsing_gives_the_whole_file_frame(tmp_path, monkeypatch, layout, name, sep, header):
    tables = generate_grouplens(layout, n_ratings=5_000, seed=4)
    raw = (write_tables(tables, tmp_path / layout, layout) / name).read_bytes()
    expected = _reference_parse(raw, sep, header)
    whole = grouplens.read_ratings(raw, name, sep, layout, grouplens.CSV_RATINGS_HEADER if header else None)
    pd.testing.assert_frame_equal(whole, expected, check_dtype=False)
    assert whole["user_id"].dtype == np.int32 and whole["timestamp"].dtype == np.int64
    monkeypatch.setattr(grouplens, "BLOCK_BYTES", 997)  # ~40 lines a block, cut mid-line
    blocks = grouplens.read_ratings(io.BytesIO(raw), name, sep, layout,
                                    grouplens.CSV_RATINGS_HEADER if header else None)
    pd.testing.assert_frame_equal(blocks, whole)


def test_line_numbers_count_across_blocks(tmp_path, monkeypatch):
    lines = [f"{u}\t{m}\t{1 + (u + m) % 5}\t{881250949 + u * 100 + m}" for u in range(1, 200) for m in (1, 2)]
    monkeypatch.setattr(grouplens, "BLOCK_BYTES", 256)
    for number, bad, problem in ((300, "196\t242\tx\t881250949", "rating 'x'"),
                                 (250, "196\t2.0\t3\t881250949", "movie id '2.0' is not a non-negative integer"),
                                 (333, "196\t242\t3\t88125.0949", "timestamp '88125.0949'")):
        text = lines.copy()
        text[number - 1] = bad
        with pytest.raises(grouplens.RatingFileError, match=f"x.data line {number}: {problem}"):
            grouplens.read_ratings(io.BytesIO(("\n".join(text) + "\n").encode()), "x.data", "\t", "100k")
    cut = ("\n".join(lines) + "\n").encode()[:-4]
    with pytest.raises(grouplens.RatingFileError, match=f"line {len(lines)}: the last line looks cut short"):
        grouplens.read_ratings(io.BytesIO(cut), "x.data", "\t", "100k")


@pytest.mark.parametrize("field,value,problem", [
    (0, "1.0", "user id '1.0' is not a non-negative integer"),
    (0, "+5", "user id '\\+5' is not a non-negative integer"),
    (1, " 5", "movie id ' 5' is not a non-negative integer"),
    (1, "1e3", "movie id '1e3' is not a non-negative integer"),
    (2, "4.5.0", "rating '4.5.0' is not a number"),
    (3, "9.7e8", "timestamp '9.7e8' is not a non-negative integer"),
])
def test_integer_ids_are_not_parsed_leniently(field, value, problem):
    """pandas would read '1.0', '+5', ' 5' or '1e3' into an integer column: they are rejected, as before."""
    good = ["1,10,4.0,978300760", "2,11,3.5,978300761", "3,12,5.0,978300762"]
    fields = good[1].split(",")
    fields[field] = value
    raw = "\n".join([grouplens.CSV_RATINGS_HEADER, good[0], ",".join(fields), good[2]]) + "\n"
    with pytest.raises(grouplens.RatingFileError, match=f"r.csv line 3: {problem}"):
        grouplens.read_ratings(raw.encode(), "r.csv", ",", "25m", grouplens.CSV_RATINGS_HEADER)


# ---------------------------------------------------------------- categorical columns and splits


def test_splits_of_categorical_columns_equal_those_of_plain_strings(synthetic):
    """Integer-keyed sorting and encoding give exactly the splits and vocabularies the string columns gave."""
    data, _ = synthetic
    plain = data.ratings.copy()
    for column in CATEGORICAL_COLUMNS:
        plain[column] = plain[column].astype(object)
    as_text = MovieLensData(data.variant, data.source, plain, data.movies)
    for name in ("random", "temporal", "leave_last_out"):
        split, reference = make_split(data, name), make_split(as_text, name)
        for part in ("train", "validation", "test"):
            ours, theirs = getattr(split, part), getattr(reference, part)
            pd.testing.assert_frame_equal(ours.astype({c: object for c in CATEGORICAL_COLUMNS}), theirs)
            for column in CATEGORICAL_COLUMNS:  # each part's categories are its own ids, sorted
                assert list(ours[column].cat.categories) == sorted(set(theirs[column]))
        np.testing.assert_array_equal(split.vocabulary.user_ids, reference.vocabulary.user_ids)
        np.testing.assert_array_equal(split.vocabulary.movie_ids, reference.vocabulary.movie_ids)
        for part in (split.test, split.train):
            np.testing.assert_array_equal(split.vocabulary.encode_movies(part["movie_id"]),
                                          split.vocabulary.encode_movies(part["movie_id"].astype(object)))
            np.testing.assert_array_equal(split.vocabulary.encode_users(part["user_id"]),
                                          split.vocabulary.encode_users(part["user_id"].astype(object)))


def test_categorical_ids_hash_like_strings(synthetic):
    """Model identities hash the ratings (`pd.util.hash_pandas_object`): the categorical columns hash exactly
    as the object columns did, so models trained before stay valid."""
    data, _ = synthetic
    columns = ["user_id", "movie_id", "user_rating", "timestamp"]
    plain = data.ratings[columns].astype({"user_id": object, "movie_id": object})
    np.testing.assert_array_equal(pd.util.hash_pandas_object(data.ratings[columns], index=False).to_numpy(),
                                  pd.util.hash_pandas_object(plain, index=False).to_numpy())


@pytest.mark.parametrize("batch_rows", [7, 9])  # 900 ratings: a short last batch, and none
def test_cache_round_trip_in_many_batches(synthetic, tmp_path, monkeypatch, batch_rows):
    data, _ = synthetic
    monkeypatch.setattr(cache, "BATCH_ROWS", batch_rows)
    cache.write(data, tmp_path, "key")
    loaded = cache.read(tmp_path, data.variant, "key")
    pd.testing.assert_frame_equal(loaded.ratings, data.ratings)
    pd.testing.assert_frame_equal(loaded.movies, data.movies)
