"""The registry of model families: every CLI, the leaderboard and the tests find families here.

    from movielens.families import get_family, family_names
    family = get_family("ease")
"""

from __future__ import annotations

from movielens.families.base import Family
from movielens.families.ease import Ease
from movielens.families.item_knn import ItemKnn
from movielens.families.knn import Knn
from movielens.families.popularity import Popularity
from movielens.families.rating import FAMILIES as RATING_FAMILIES
from movielens.families.sequential import FAMILIES as SEQUENTIAL_FAMILIES
from movielens.families.two_tower import TwoTower

REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in REGISTRY:
        raise ValueError(f"family {family.name!r} is registered twice")
    REGISTRY[family.name] = family
    return family


for _family in (Popularity(), ItemKnn(), Ease(), TwoTower(), Knn(), *SEQUENTIAL_FAMILIES, *RATING_FAMILIES):
    register(_family)


def family_names(kind: str | None = None) -> list[str]:
    return [name for name, family in REGISTRY.items() if kind is None or family.kind == kind]


def get_family(name: str) -> Family:
    if name not in REGISTRY:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name]
