"""The name search's grams on plain data: a name containing the query holds the query's grams."""

from __future__ import annotations

import random

from indexer.name_grams import name_grams, query_grams


def test_grams_of_a_name() -> None:
    assert name_grams("王小明") == {"王", "小", "明", "王小", "小明"}
    assert name_grams("Wei") == {"w", "e", "i", "we", "ei"}
    assert name_grams("") == set()


def test_query_grams() -> None:
    assert query_grams("") == []
    assert query_grams("王") == ["王"]
    assert query_grams("小明") == ["小明"]
    assert query_grams("欧阳娜娜") == ["欧阳", "娜娜"]
    assert query_grams("AbA") == ["ab", "ba"]
    assert query_grams("aaa") == ["aa"]  # first and last bigram alike: one lookup


def test_every_substring_of_a_name_finds_it() -> None:
    rng = random.Random(7)
    alphabet = "王李张小明娜Aa%_ 1"
    for _ in range(500):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        grams = name_grams(name)
        for i in range(len(name)):
            for j in range(i + 1, len(name) + 1):
                assert set(query_grams(name[i:j])) <= grams, (name, name[i:j])
