"""Highlight sentences: "highest" only when the interval clears every other model's."""

from __future__ import annotations

import numpy as np

from atlas.formatting import fixed
from atlas.measures.registry import measure_info as stored_info
from atlas.site.highlights import make_highlights
from atlas.site.measure_words import with_words
from atlas.records import MeasureRow, ModelResult
from conftest import make_synthetic_results


def measure_info() -> dict:
    """What the site reads: the registry's records with the site's words."""
    return with_words(stored_info())


def _models(values: list[tuple[float, float, float]]) -> list[ModelResult]:
    models = make_synthetic_results(comparisons=False).models
    for m, (v, lo, hi) in zip(models, values):
        m.measures = [MeasureRow(11, 1.0, "tokens", "position_r2", v, lo=lo, hi=hi)]
    return models


def test_highest_only_when_intervals_do_not_overlap():
    clear, per_model = make_highlights(_models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)]), measure_info())
    assert len(clear) == 1 and "highest in this atlas" in clear[0].text and clear[0].model == "dino-vit-s16"
    assert "0.80 [0.75, 0.85]" in clear[0].text
    assert "not widened for the choice (records stored without the standard errors" in clear[0].text
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


def _rows(rng, n: int, truth: float, se: float, block0: int = 0) -> list[MeasureRow]:
    """``n`` numbers of one true value, each off by its own error of standard error ``se`` (df 20)."""
    from scipy.stats import t

    half = t.ppf(0.975, 20) * se
    return [MeasureRow(block0 + i, 1.0, "tokens", "position_r2", v, lo=v - half, hi=v + half, se=se, df=20.0)
            for i, v in enumerate(truth + se * rng.standard_t(20, n))]


def test_the_largest_of_many_values_gets_an_interval_widened_for_that_choice():
    """Planted: 24 values of one true 0.5. The largest one's own 95% interval misses 0.5 in most
    draws; widened for the choice among 24 (Bonferroni) it misses in at most 1 draw in 20. The
    sentence gives the widened interval and says so."""
    from atlas.site.highlights import widened

    rng = np.random.default_rng(0)
    plain = wide = 0
    draws = 200
    for _ in range(draws):
        top = max(_rows(rng, 24, 0.5, 0.02), key=lambda r: r.value)
        plain += not (top.lo <= 0.5 <= top.hi)
        lo, hi = widened(top, 0.95, 24)
        wide += not (lo <= 0.5 <= hi)
    assert plain > 0.5 * draws and wide <= 0.05 * draws, (plain, wide)
    models = _models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)])
    models[0].measures = _rows(rng, 24, 0.5, 0.02)
    top = max(models[0].measures, key=lambda r: r.value)
    _, per_model = make_highlights(models, measure_info())
    text = per_model[models[0].card.slug][0].text
    lo, hi = widened(top, 0.95, 24, (None, 1.0))
    assert f"{fixed(top.value)} [{fixed(lo)}, {fixed(hi)}]" in text, text
    assert "the largest of its 24 values in this model, the interval widened for that choice (each at 99.7917%)" \
        in text, text


def test_highest_in_this_atlas_needs_the_widened_intervals_apart():
    """Two models of 24 values each: 0.60 against 0.50 (se 0.01) is told apart with every value's
    interval widened for the choice among all 48; 0.535 against 0.50 clears the plain intervals of the
    top values but not the widened ones, and no "highest" is claimed."""
    rng = np.random.default_rng(1)
    for gap, claimed in ((0.10, True), (0.035, False)):
        models = _models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)])[:2]
        models[0].measures = _rows(rng, 24, 0.5 + gap, 0.01)
        models[1].measures = _rows(rng, 24, 0.5, 0.01)
        tops = [max(m.measures, key=lambda r: r.value) for m in models]
        assert tops[0].lo > tops[1].hi, (gap, tops[0].lo, tops[1].hi)  # the plain intervals of the tops are apart
        clear, _ = make_highlights(models, measure_info())
        assert bool(clear) == claimed, (gap, [h.text for h in clear])
        if claimed:
            assert "all widened for the choice among the atlas's 48 values (95% together)" in clear[0].text


def test_a_peak_that_holds_no_effect_is_listed_apart():
    """A model's peak whose widened interval holds its content-only reference (or, without one, the
    measure's chance level) is no finding: ``notable`` False, and the model page lists it under a
    collapsed note, not among the highlights. A peak clear of it stays a highlight; the sentence
    names the K of a K-dependent measure."""
    models = _models([(0.8, 0.75, 0.85), (0.5, 0.45, 0.55), (0.1, 0.0, 0.2)])
    first, second = models[0], models[1]
    first.references = [MeasureRow(11, 1.0, "tokens", "position_r2", 0.79, reference="content-only")]
    second.references = [MeasureRow(11, 1.0, "tokens", "position_r2", 0.05, reference="content-only")]
    blank = [MeasureRow(3, 0.3, "keys", "blank_position_score", v, k=8, lo=v - 0.05, hi=v + 0.05, se=0.025)
             for v in (0.01, 0.4)]
    first.measures.append(blank[0])  # holds 0, the probe's chance level
    second.measures.append(blank[1])
    _, per_model = make_highlights(models, measure_info())
    by = {slug: {h.anchor: h for h in hs} for slug, hs in per_model.items()}
    assert not by[first.card.slug]["fig-measure-position-r2"].notable  # 0.79 inside [0.75, 0.85]
    assert by[second.card.slug]["fig-measure-position-r2"].notable  # 0.05 below [0.45, 0.55]
    assert not by[first.card.slug]["fig-measure-blank-position-score"].notable
    assert by[second.card.slug]["fig-measure-blank-position-score"].notable
    assert by[second.card.slug]["fig-measure-blank-position-score"].text.startswith("Block 3 keys, K = 8: ")
    assert by[second.card.slug]["fig-measure-position-r2"].text.startswith("Block 11 tokens: ")  # no K


def test_a_peak_without_an_interval_is_no_finding():
    """A peak far from its content-only reference but without an interval (fewer than 3 units)
    has nothing that tells it apart from no effect: listed apart. The same value with its interval
    (the control) is a highlight."""
    for lo, hi, notable in ((None, None, False), (0.45, 0.55, True)):
        models = _models([(0.8, 0.75, 0.85), (0.5, lo, hi), (0.1, 0.0, 0.2)])
        models[1].references = [MeasureRow(11, 1.0, "tokens", "position_r2", 0.05, reference="content-only")]
        _, per_model = make_highlights(models, measure_info())
        peak = {h.anchor: h for h in per_model[models[1].card.slug]}["fig-measure-position-r2"]
        assert peak.notable is notable, (lo, hi)


def test_model_page_lists_peaks_without_a_finding_apart(tmp_path):
    from atlas.site import render_site

    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.measure_info = measure_info()
    m = results.models[0]
    m.measures += [MeasureRow(5, 0.5, "keys", "position_r2", 0.30, lo=0.20, hi=0.40, se=0.05),
                   MeasureRow(5, 0.5, "keys", "border_ami", 0.30, k=8, lo=0.20, hi=0.40, se=0.05)]
    m.references += [MeasureRow(5, 0.5, "keys", "position_r2", 0.29, reference="content-only"),
                     MeasureRow(5, 0.5, "keys", "border_ami", 0.01, k=8, reference="content-only")]
    render_site(results, docs)
    page = (docs / "models" / f"{m.card.slug}.md").read_text()
    highlights = page.split("## Highlights")[1].split("!!! info")[0]
    listed, quiet = highlights.split("not told apart from no effect")
    assert "Position decodability" not in listed and "Position decodability" in quiet
    assert "Block 5 keys, K = 8: Boundary: AMI" in listed and "Boundary" not in quiet
