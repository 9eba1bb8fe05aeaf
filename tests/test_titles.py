"""Title parsing and tolerant matching."""

import pytest

from movielens.titles import TitleIndex, UnknownTitleError, match_keys, normalise, parse_title


@pytest.mark.parametrize("title, name, alternates, year", [
    ("Shawshank Redemption, The (1994)", "The Shawshank Redemption", (), 1994),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "The City of Lost Children",
     ("La Cité des enfants perdus",), 1995),
    ("Toy Story", "Toy Story", (), None),
    ("Heidi Fleiss: Hollywood Madam (1995) ", "Heidi Fleiss: Hollywood Madam", (), 1995),
    ("Seven (a.k.a. Se7en) (1995)", "Seven", ("Se7en",), 1995),
    ("Misérables, Les (1995)", "Les Misérables", (), 1995),
    ("Big Bang Theory, The (2007-)", "The Big Bang Theory", (), 2007),
    ("Land Before Time III: The Time Rift (1995) (V)", "Land Before Time III: The Time Rift", (), 1995),
])
def test_parse_title(title, name, alternates, year):
    parsed = parse_title(title)
    assert (parsed.name, parsed.alternates, parsed.year) == (name, alternates, year)


def test_normalise_folds_case_accents_and_punctuation():
    assert normalise("Amélie & Co.: L'Été!") == "amelie and co l ete"
    assert match_keys("Matrix, The (1999)") == match_keys("the matrix") == ("matrix",)


@pytest.fixture
def index():
    titles = ["Toy Story (1995)", "Matrix, The (1999)", "Hamlet (1990)", "Hamlet (1996)", "Amélie (2001)",
              "City of Lost Children, The (Cité des enfants perdus, La) (1995)"]
    return TitleIndex([str(i) for i in range(1, len(titles) + 1)], titles)


@pytest.mark.parametrize("query, movie_id", [
    ("Toy Story (1995)", "1"), ("toy story", "1"), ("TOY STORY (1995)", "1"), ("The Matrix", "2"),
    ("Matrix, The", "2"), ("matrix (1999)", "2"), ("Hamlet (1996)", "4"), ("amelie", "5"),
    ("Cité des enfants perdus", "6"), ("The City of Lost Children (1995)", "6"),
])
def test_lookup_is_tolerant(index, query, movie_id):
    assert index.lookup(query) == movie_id


def test_unknown_title_lists_closest_matches(index):
    with pytest.raises(UnknownTitleError) as error:
        index.lookup("Toy Stroy")
    assert error.value.suggestions[0] == "Toy Story (1995)"
    assert "Closest matches: Toy Story (1995)" in str(error.value)


def test_ambiguous_title_asks_for_the_year(index):
    with pytest.raises(UnknownTitleError, match="ambiguous; add the year.*Hamlet \\(1990\\); Hamlet \\(1996\\)"):
        index.lookup("Hamlet")


def test_wrong_year_is_not_silently_matched(index):
    with pytest.raises(UnknownTitleError, match="Toy Story \\(1995\\)"):
        index.lookup("Toy Story (2010)")


def test_nothing_similar(index):
    with pytest.raises(UnknownTitleError, match="nothing similar"):
        index.lookup("zzzzqqqq")
