"""Figures are stored as ids and numbers; the site names them (records carry numbers, the site
owns the words and looks)."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.measures.knn import CONTROLS
from atlas.pipeline import payloads
from atlas.pipeline.propagation_run import BASELINES
from atlas.site.figure_words import FIGURES, dressed

WORDS = {"title", "colorscale", "zlabel", "xaxis", "yaxis", "section", "bounds"}


def _every_payload() -> list[dict]:
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 4, (3, 3))
    results = {"positional_clustering": {"dominant_freq": rng.random((3, 3)), "dominant": grid},
               "boundary_artifacts": {"norm_map": rng.random((3, 3)), "outlier_count_map": grid}}
    loc = {"distances": [1, 2], "within": [0.5, 0.4], "across": [0.3, float("nan")], "beyond": [0.2, 0.1]}
    shift = {"shifts": [1, 2], "content": [0.6, 0.5], "position": [0.3, 0.2], "self_agreement": [0.2, 0.1],
             "content_fraction_adjusted": [0.5, 0.6]}
    removal = {c: {0: {10: 0.5}, 4: {10: 0.4}} for c in CONTROLS}
    return [*payloads.measure_maps(results, 7, "keys"), payloads.locality_curve(loc, 7, "keys"),
            *payloads.blank_maps(grid[None], ["constant-grey"], 7, "keys"),
            *payloads.shift_pair_maps(grid[None], grid[None], ["street"], 2, 7, "tokens"),
            payloads.shift_curve(shift, 7, "tokens"), payloads.knn_curve({1: 0.3, 5: 0.4}, [1, 5], 7),
            payloads.variance_curve(np.array([2.0, 1.0]), 7), payloads.removal_curve(removal, 10, 7),
            payloads.masking_matrix("linear_cka", np.eye(2), ["full", "foreground_only"], 7),
            payloads.propagation_sequences(["a", "b"], [0.5, 0.6], {b: [0.1, 0.2] for b in BASELINES}, 7, "keys")]


def test_payloads_carry_no_words_and_every_kind_is_named():
    shown = _every_payload()
    assert {p["kind"] for p in shown} == set(FIGURES)  # every kind the build stores, and no stale words
    for p in shown:
        assert not WORDS & set(p), (p["id"], WORDS & set(p))
        d = dressed(p)
        assert d["title"] and "{" not in d["title"], d["title"]
        assert d["section"] in ("positional", "evaluation")
        for series in p.get("series", {}):  # every series id has a name
            assert series in FIGURES[p["kind"]].series, (p["kind"], series)


@pytest.mark.parametrize("kind, words", [
    ("shift-pair", ("Shift test pair, street, crop b (content moved 2 patches left): block 7 tokens clusters",)),
    ("masking", ("linear_cka between masking variants, block 7 tokens",)),
    ("channel-removal", ("k-NN (k = 10)", "PCA-whitened channels")),
])
def test_titles_and_series_names_come_from_the_payloads_ids(kind, words):
    text = [str(dressed(p)) for p in _every_payload() if p["kind"] == kind]
    assert any(all(w in t for w in words) for t in text), text


def test_rewording_a_title_changes_the_page_not_the_record(monkeypatch):
    from atlas.site import figure_words

    p = payloads.knn_curve({1: 0.3}, [1], 7, {1: (0.2, 0.4)})
    monkeypatch.setitem(figure_words.FIGURES, "knn-k", figure_words.FigureWords("Probe at block {block}",
                                                                                 section="evaluation"))
    assert dressed(p)["title"] == "Probe at block 7" and "title" not in p
