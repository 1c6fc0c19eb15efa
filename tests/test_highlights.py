"""Highlight sentences: "highest" only when the interval clears every other model's."""

from __future__ import annotations

from atlas.formatting import fixed
from atlas.measures.registry import measure_info
from atlas.site.highlights import make_highlights
from atlas.records import MeasureRow, ModelResult
from conftest import make_synthetic_results


def _models(values: list[tuple[float, float, float]]) -> list[ModelResult]:
    models = make_synthetic_results(comparisons=False).models
    for m, (v, lo, hi) in zip(models, values):
        m.measures = [MeasureRow(11, 1.0, "tokens", "position_r2", v, lo=lo, hi=hi)]
    return models


def test_highest_only_when_intervals_do_not_overlap():
    clear, per_model = make_highlights(_models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)]), measure_info())
    assert len(clear) == 1 and "highest in this atlas" in clear[0].text and clear[0].model == "dino-vit-s16"
    assert "0.80 [0.75, 0.85]" in clear[0].text
    overlap, per_model = make_highlights(_models([(0.8, 0.6, 0.9), (0.7, 0.65, 0.75), (0.1, 0.0, 0.2)]), measure_info())
    assert overlap == []
    assert not any("highest" in h.text for hs in per_model.values() for h in hs)
    assert len(per_model) == 3  # every model still gets its own sentence


def test_numbers_never_read_minus_zero():
    assert fixed(-0.0004) == "0.00" and fixed(-0.004) == "0.00" and fixed(-0.006) == "-0.01"
    _, per_model = make_highlights(_models([(-0.0004, -0.01, 0.01), (0.2, 0.1, 0.3), (0.3, 0.2, 0.4)]), measure_info())
    assert all("-0.00" not in h.text for hs in per_model.values() for h in hs)


def test_a_chosen_value_says_what_it_was_chosen_from_and_stands_beside_its_references():
    """The highlight is the largest of a model's values: the sentence says of how many, and gives
    the content-only and position-only references of that very cell."""
    models = _models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)])
    first = models[0]
    first.measures.append(MeasureRow(5, 0.5, "keys", "position_r2", 0.3, lo=0.2, hi=0.4))
    first.references = [MeasureRow(11, 1.0, "tokens", "position_r2", 0.05, lo=0.0, hi=0.1, reference="content-only"),
                        MeasureRow(11, 1.0, "tokens", "position_r2", 0.97, lo=0.95, hi=0.99, reference="position-only"),
                        MeasureRow(5, 0.5, "keys", "position_r2", 0.5, reference="content-only")]  # another cell
    _, per_model = make_highlights(models, measure_info())
    text = per_model[first.card.slug][0].text
    assert "the largest of its 2 values in this model" in text, text
    assert "references: content-only 0.05 [0.00, 0.10], position-only 0.97 [0.95, 0.99]" in text, text
    assert "0.50" not in text.split("references:")[1]  # not the other cell's reference
    alone = per_model[models[1].card.slug][0].text
    assert "largest of" not in alone and "references" not in alone  # one value, no stored reference
