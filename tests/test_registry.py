"""The measure registry and the site's words for it: every stored number described once,
completely and consistently (rewording one keeps stored results:
tests/test_stored_results_integrity.py)."""

from __future__ import annotations

import pytest

from atlas.measures.registry import REGISTRY, measure_info
from atlas.site.measure_words import WORDS, with_words


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_entry_is_complete(key):
    m, w = REGISTRY[key], WORDS[key]
    assert w.title and w.definition and w.formula, key
    assert len(w.definition) > len(w.title), key  # a sentence, not a repeat of the title
    assert callable(m.function) and m.function_name.startswith("atlas.measures."), key
    assert m.section in ("positional", "evaluation")
    assert w.direction in ("bias", "locality", "content", "quality", "none")
    lo, hi = m.value_range
    assert lo is None or hi is None or lo < hi
    assert m.selected_by is None or m.selected_by in REGISTRY, key


def test_every_measure_has_words_and_no_words_lack_a_measure():
    assert list(WORDS) == list(REGISTRY)


def test_orders_are_unique():
    for field in ("leaderboard", "highlight", "summary"):
        ranks = [getattr(w, field) for w in WORDS.values() if getattr(w, field) is not None]
        assert len(ranks) == len(set(ranks)), field
    # the leaderboard's columns: the measures the evaluation selects a block for, each with a "better" direction
    assert {k for k, w in WORDS.items() if w.leaderboard is not None} == {k for k, m in REGISTRY.items() if m.ranked}
    assert all(WORDS[k].direction == "quality" for k, m in REGISTRY.items() if m.ranked)


def test_measure_info_holds_ids_and_numbers_and_the_site_adds_the_words():
    info = measure_info()
    assert list(info) == list(REGISTRY)
    for key, m in REGISTRY.items():
        assert info[key]["section"] == m.section and info[key]["depends_on_k"] == m.depends_on_k
        assert info[key].get("ranked", False) == m.ranked
        # no sentence in the records: every string is an id, a function path or a range
        assert not [v for v in info[key].values() if isinstance(v, str) and len(v.split()) >= 3], key
    assert info["outlier_fraction"]["range"] == "[0, 1]"
    assert info["locality_slope"]["range"] == "(−∞, ∞)"
    shown = with_words(info)
    for key, w in WORDS.items():
        assert shown[key]["title"] == w.title and shown[key]["section"] == REGISTRY[key].section
        assert ("leaderboard" in shown[key]) == (w.leaderboard is not None)

