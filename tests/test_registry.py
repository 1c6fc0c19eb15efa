"""The measure registry: every stored number described once, completely and consistently."""

from __future__ import annotations

import pytest

from atlas.measures.registry import REGISTRY, measure_info


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_entry_is_complete(key):
    m = REGISTRY[key]
    assert m.title and m.definition and m.formula, key
    assert len(m.definition) > len(m.title), key  # a sentence, not a repeat of the title
    assert callable(m.function) and m.function_name.startswith("atlas.measures."), key
    assert m.section in ("positional", "evaluation")
    assert m.direction in ("bias", "content", "quality", "none")
    lo, hi = m.value_range
    assert lo is None or hi is None or lo < hi
    assert (m.inputs in ("human masks", "video masks")) == (m.section == "evaluation"), key


def test_orders_are_unique():
    for field in ("leaderboard", "highlight", "summary"):
        ranks = [getattr(m, field) for m in REGISTRY.values() if getattr(m, field) is not None]
        assert len(ranks) == len(set(ranks)), field
    # only measures with a "better" direction may be ranked on the leaderboard
    assert all(m.direction == "quality" for m in REGISTRY.values() if m.leaderboard is not None)


def test_measure_info_mirrors_the_registry():
    info = measure_info()
    assert list(info) == list(REGISTRY)
    for key, m in REGISTRY.items():
        assert info[key]["title"] == m.title and info[key]["section"] == m.section
        assert info[key]["depends_on_k"] == m.depends_on_k
        assert ("leaderboard" in info[key]) == (m.leaderboard is not None)
    assert info["outlier_fraction"]["range"] == "[0, 1]"
    assert info["locality_slope"]["range"] == "(−∞, ∞)"
