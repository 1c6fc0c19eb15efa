"""Issue 27, part 5 (and the plots' aria-labels of part 7): comparison plots carry the references
that the model pages draw. Planted synthetic records only (no model): the baselines of each model's
patch grid, with their intervals, as on the model pages; one set per grid when the grids differ;
none where the records hold none; the model pages' ▼/≈ marks in the scaling family summary."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import pytest

from atlas.records import Baseline, MeasureRow
from atlas.site import render_site
from atlas.site.figures import (BASELINE_STYLE, GRID_SHADES, PALETTE, baseline_groups, comparison_measure_figure,
                                figure, figure_html)
from atlas.site.honesty import comparison_baseline_note
from atlas.site.pages import comparison_baselines, comparison_rows
from atlas.site.measure_words import WORDS
from conftest import make_synthetic_results

SEG_TITLE = WORDS["seg_miou"].title
PSEUDO = WORDS["pseudomask_miou"].title

SEG = "seg_miou"
#: The synthetic DINO and random models' seg_miou baselines (tests/conftest.py): 14 x 14 patches of 16 px.
PLANTED = {"chance baseline": (0.05, "[0.04, 0.06]"), "position baseline": (0.21, "[0.18, 0.24]"),
           "ceiling baseline": (0.62, "[0.6, 0.64]")}


def _specs(docs: Path, page: str) -> dict[str, dict]:
    """Plotly specs of a rendered page by figure anchor, from the page's ``.figures.js``."""
    text = (docs / page).read_text(encoding="utf-8")
    anchors = dict((div, anchor) for anchor, div in re.findall(
        r'<figure class="atlas-figure" id="([^"]+)"[^>]*>\s*<div class="atlas-plot"[^>]*>\s*<div id="([^"]+)"', text))
    script = (docs / page.replace(".md", ".figures.js")).read_text(encoding="utf-8")
    specs = json.loads(script[len("atlasFigures("):-len(");\n")])
    return {anchors[div]: spec for div, spec in specs.items()}


def _baselines(traces: list[dict]) -> dict[str, dict]:
    """The baseline lines by name (``<baseline> baseline`` or ``<baseline> baseline · <grid>``)."""
    return {t["name"]: t for t in traces if re.search(r"\bbaseline(?: · .*)?$", t.get("name", ""))}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("refs") / "site_src"
    render_site(make_synthetic_results(docs), docs)
    return docs


def test_comparison_draws_the_model_pages_baselines(site):
    comp = _baselines(_specs(site, "compare/ssl-vs-random.md")["fig-measure-seg-miou"]["data"])
    assert set(comp) == set(PLANTED)
    for name, (value, interval) in PLANTED.items():
        assert comp[name]["y"] == [value, value] and comp[name]["x"] == [0.0, 1.0]
        assert interval in comp[name]["hovertemplate"]
    # the very traces of the model page (same grid): names, numbers, intervals, grey levels and dashes
    model = _baselines(_specs(site, "models/dino-vit-s16.md")["fig-measure-seg-miou"]["data"])
    assert comp == model
    # the k-NN baseline (no interval) too; a measure without baselines draws none
    knn = _baselines(_specs(site, "compare/ssl-vs-random.md")["fig-measure-knn-miou-k10"]["data"])
    assert {n: t["y"] for n, t in knn.items()} == {"position baseline": [0.33, 0.33]}
    assert not _baselines(_specs(site, "compare/ssl-vs-random.md")["fig-measure-positional-nce"]["data"])
    page = (site / "compare/ssl-vs-random.md").read_text(encoding="utf-8")
    caption = re.search(r'id="fig-measure-seg-miou".*?</figcaption>', page, re.S).group(0)
    assert "baselines of these models&#39; patch grid" in caption
    assert "patch grid" not in re.search(r'id="fig-measure-positional-nce".*?</figcaption>', page, re.S).group(0)
    # the comparison's JSON download holds the numbers it draws
    data = json.loads((site / "compare/ssl-vs-random.json").read_text(encoding="utf-8"))
    seg = [g for g in data["baselines"] if g["measure"] == SEG]
    assert len(seg) == 1 and seg[0]["models"] == ["dino-vit-s16", "vit-s16-random"]
    assert {(b["name"], b["value"], b["lo"], b["hi"]) for b in seg[0]["baselines"]} == {
        ("chance", 0.05, 0.04, 0.06), ("position", 0.21, 0.18, 0.24), ("ceiling", 0.62, 0.6, 0.64)}


def test_comparison_plots_carry_each_models_positional_references(site):
    """Positional measures on a comparison page: every model's content-only and position-only
    references, thin lines of its colour, hidden until their legend entry is clicked (one entry per
    kind), said in the caption and held in the JSON download; none for an evaluation measure."""
    traces = _specs(site, "compare/ssl-vs-random.md")["fig-measure-positional-nce"]["data"]
    refs = [t for t in traces if t.get("legendgroup") in ("content-only", "position-only")]
    data = json.loads((site / "compare/ssl-vs-random.json").read_text(encoding="utf-8"))
    stored = {(r["model"], r["representation"], r["reference"]) for r in data["references"]
              if r["measure"] == "positional_nce"}
    assert stored and len(refs) == len(stored)  # one line per model, representation and reference kind
    assert all(t["visible"] == "legendonly" and t["line"]["width"] == 1 for t in refs)
    assert sorted(t["name"] for t in refs if t.get("showlegend", True)) == ["content-only references",
                                                                           "position-only references"]
    position_only = [t for t in refs if t["legendgroup"] == "position-only"]
    assert all(set(t["y"]) == {0.97} for t in position_only)  # conftest's planted reference values
    page = (site / "compare/ssl-vs-random.md").read_text(encoding="utf-8")
    caption = re.search(r'id="fig-measure-positional-nce".*?</figcaption>', page, re.S).group(0)
    assert "positional references" in caption
    seg = _specs(site, "compare/ssl-vs-random.md")["fig-measure-seg-miou"]["data"]
    assert not [t for t in seg if t.get("legendgroup") in ("content-only", "position-only")]


def test_leaderboard_plots_draw_the_baselines(site):
    lines = _baselines(_specs(site, "compare/segmentation-quality.md")["fig-measure-seg-miou"]["data"])
    assert {n: t["y"][0] for n, t in lines.items()} == {n: v for n, (v, _) in PLANTED.items()}


def test_every_plot_is_labelled(site):
    for page, subject in (("models/dino-vit-s16.md", "DINO ViT-S/16"),
                          ("compare/ssl-vs-random.md", "SSL vs random init"),
                          ("compare/vit-scaling.md", "ViT scaling: S to B")):
        text = (site / page).read_text(encoding="utf-8")
        plots = re.findall(r'<div class="atlas-plot"[^>]*>', text)
        assert plots, page
        for div in plots:
            label = re.search(r' role="figure" aria-label="([^"]+)"', div)
            assert label and html.unescape(label.group(1)).endswith(f" — {subject}"), (page, div)
    comp = (site / "compare/ssl-vs-random.md").read_text(encoding="utf-8")
    assert f'aria-label="{SEG_TITLE} — SSL vs random init"' in comp
    model = (site / "models/dino-vit-s16.md").read_text(encoding="utf-8")
    assert f'aria-label="{PSEUDO} at block 11 — DINO ViT-S/16"' in model
    assert 'aria-label="Cluster sizes per block — DINO ViT-S/16"' in model


def test_aria_label_is_escaped():
    results = make_synthetic_results()
    rows = [r for r in comparison_rows(results, results.comparisons[0]) if r["measure"] == SEG]
    evil = 'A "quoted" <b>model</b> & co'
    fig = comparison_measure_figure(rows, "Cluster mIoU", {"dino-vit-s16": evil}, 'Cmp "<x>"')
    out = str(figure(fig, "compare-x", "fig-a", "Cluster mIoU")["html"])
    div = re.search(r'<div class="atlas-plot"[^>]*>', out).group(0)
    assert '"<x>"' not in div and "<x>" not in div
    assert html.unescape(re.search(r'aria-label="([^"]*)"', div).group(1)) == 'Cluster mIoU — Cmp "<x>"'
    assert 'aria-label="plain words"' in figure_html(fig, "d", "f", label="plain words")


def test_comparisons_keep_measures_taken_at_their_own_k():
    """The evaluation clusters at K = classes, not at a comparison's K: its rows are kept (the
    architectures page lost every mask evaluation); a measure taken at the comparison's K and others
    shows that K only; the CLS-attention rows join a comparison of models, not one of representations."""
    results = make_synthetic_results()
    m = results.models[0]
    for r in m.measures:
        if r.measure == SEG:
            r.k = 11
    m.measures.append(MeasureRow(11, 1.0, "attention", "attention_entropy", 0.6, lo=0.55, hi=0.65))
    models = results.comparisons[0]
    rows = comparison_rows(results, models)
    mine = [r for r in rows if r["model"] == m.card.slug]
    assert {r["measure"] for r in mine} >= {SEG, "positional_nce", "attention_entropy"}
    sizes = [r for r in mine if r["measure"] == "cluster size entropy"]  # at K = 4 and 8: K = 8 only
    assert sizes and len(sizes) == len({(r["block"], r["representation"]) for r in sizes})
    reps = dataclasses.replace(models, kind="representations", representations=["tokens", "keys"])
    assert "attention_entropy" not in {r["measure"] for r in comparison_rows(results, reps)}
    assert SEG in {r["measure"] for r in comparison_rows(results, reps)}


def test_one_models_representations_take_their_model_page_colours():
    """A comparison of one model's representations colours each as its model page does (one colour
    for all, told apart by dash alone, was hard to read); a comparison of models keeps a colour per
    model (test_each_grid_draws_its_own_baselines)."""
    from atlas.site.figures import rep_colour

    results = make_synthetic_results()
    one = dataclasses.replace(results.comparisons[0], kind="representations", models=["dino-vit-s16"],
                              representations=["tokens", "keys"])
    rows = [r for r in comparison_rows(results, one) if r["measure"] == "positional_nce"]
    refs = [r for r in comparison_rows(results, one, references=True) if r["measure"] == "positional_nce"]
    fig = comparison_measure_figure(rows, "NCE", {"dino-vit-s16": "DINO"}, one.title, references=refs)
    lines = {t.name: t.line for t in fig.data if t.mode == "lines+markers"}
    assert {n: (line.color, line.dash) for n, line in lines.items()} == {
        "DINO · tokens": (rep_colour("tokens"), "solid"), "DINO · keys": (rep_colour("keys"), "solid")}
    assert rep_colour("tokens") != rep_colour("keys")
    assert {t.line.color for t in fig.data if t.legendgroup == "content-only"} == {rep_colour("tokens"),
                                                                                   rep_colour("keys")}


def _two_grids():
    """The random model on 14 x 14 patches of 14 px (196 px input), with baselines of its own."""
    results = make_synthetic_results()
    rand = results.models[2]
    rand.card.patch_size, rand.card.input_size = 14, [196, 196]
    rand.baselines = [Baseline(SEG, "chance", 0.07, 0.06, 0.08), Baseline(SEG, "position", 0.26, 0.22, 0.30),
                      Baseline(SEG, "colour + position", 0.31, 0.28, 0.34, variant="lab+plain")]
    return results


def _comparison_figure(results, measure=SEG, comp=0):
    c = results.comparisons[comp]
    rows = [r for r in comparison_rows(results, c) if r["measure"] == measure]
    labels = {m.card.slug: m.card.display_name for m in results.models}
    groups = comparison_baselines(results, c, measure)
    return comparison_measure_figure(rows, "Cluster mIoU", labels, c.title, bounds=[0, 1], baselines=groups), groups


def test_each_grid_draws_its_own_baselines():
    results = _two_grids()
    fig, groups = _comparison_figure(results)
    assert [(g["grid"], g["models"]) for g in groups] == [("14 × 14 patches of 16 px", ["dino-vit-s16"]),
                                                         ("14 × 14 patches of 14 px", ["vit-s16-random"])]
    spec = fig.to_plotly_json()
    lines = _baselines(spec["data"])
    dino, rand = " · 14 × 14 patches of 16 px", " · 14 × 14 patches of 14 px"
    first, second = GRID_SHADES[:2]
    assert {n: (t["y"], t["line"]["color"]) for n, t in lines.items()} == {
        f"chance baseline{dino}": ([0.05, 0.05], first),
        f"position baseline{dino}": ([0.21, 0.21], first),
        f"ceiling baseline{dino}": ([0.62, 0.62], first),
        f"chance baseline{rand}": ([0.07, 0.07], second),
        f"position baseline{rand}": ([0.26, 0.26], second),
        f"colour + position (CIELAB, plain coordinates) baseline{rand}": ([0.31, 0.31], second)}
    # each grid in a shade of its own that is no model's colour, named in the legend, its interval and
    # models in the hover
    models = {t["name"]: t["line"]["color"] for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert models == {"DINO ViT-S/16": PALETTE[0], "ViT-S/16": PALETTE[1]}
    assert not set(GRID_SHADES) & set(PALETTE)
    assert all(t.get("showlegend", True) for t in lines.values())
    assert "[0.22, 0.3]" in lines[f"position baseline{rand}"]["hovertemplate"]
    assert "14 × 14 patches of 14 px: ViT-S/16" in lines[f"position baseline{rand}"]["hovertemplate"]
    assert "[0.18, 0.24]" in lines[f"position baseline{dino}"]["hovertemplate"]
    # the dash says which baseline, as on the model pages, and no two baselines share one
    assert lines[f"position baseline{dino}"]["line"]["dash"] == lines[f"position baseline{rand}"]["line"]["dash"]
    dashes = [dash for _, dash in BASELINE_STYLE.values()]
    assert len(set(dashes)) == len(dashes)
    assert lines[f"chance baseline{rand}"]["line"]["dash"] != lines[f"position baseline{rand}"]["line"]["dash"]


def test_a_model_without_baselines_gets_none():
    results = make_synthetic_results()
    results.models[2].baselines = []  # the random model's records hold no baseline
    fig, groups = _comparison_figure(results)
    lines = _baselines(fig.to_plotly_json()["data"])
    suffix = " · 14 × 14 patches of 16 px"  # DINO's only: named by its grid, not drawn as everyone's
    assert {n: t["y"][0] for n, t in lines.items()} == {f"{n}{suffix}": v for n, (v, _) in PLANTED.items()}
    assert all("DINO ViT-S/16" in t["hovertemplate"] for t in lines.values())


def test_no_baselines_in_the_records_draws_none():
    """Control: the same comparison with no baseline in any record draws no reference line, and its
    captions claim none."""
    results = make_synthetic_results()
    for m in results.models:
        m.baselines = []
    fig, groups = _comparison_figure(results)
    assert groups == [] and not _baselines(fig.to_plotly_json()["data"])
    assert comparison_baseline_note(groups, ["dino-vit-s16", "vit-s16-random"]) == ""
    assert [t["type"] for t in fig.to_plotly_json()["data"]] == ["scatter"] * 4  # bands and lines of 2 models


def test_missing_value_draws_nothing():
    results = make_synthetic_results()
    for m in results.models:
        m.baselines = [b if b.name != "position" else dataclasses.replace(b, value=float("nan")) for b in m.baselines]
    lines = _baselines(_comparison_figure(results)[0].to_plotly_json()["data"])
    assert set(lines) == {"chance baseline", "ceiling baseline"}  # no invented number for the position baseline


def test_single_block_comparison_bars_carry_baselines_and_intervals():
    results = _two_grids()
    for m in (results.models[0], results.models[2]):
        m.measures = [r for r in m.measures if r.measure != "pseudomask_miou"]
        m.measures.append(MeasureRow(11, 1.0, "tokens", "pseudomask_miou", 0.18, lo=0.16, hi=0.2))
    # DINO keeps its planted colour baseline 0.25 [0.23, 0.27] (tests/conftest.py); the random model's grid:
    results.models[2].baselines.append(Baseline("pseudomask_miou", "colour", 0.2, 0.17, 0.24))
    fig, _ = _comparison_figure(results, "pseudomask_miou")
    bars = fig.to_plotly_json()["data"]
    assert [t["type"] for t in bars] == ["bar"] * 3  # the models, then one trace of baselines per grid
    assert all(t["orientation"] == "h" for t in bars)  # long model names stay level on the y axis
    assert fig.to_plotly_json()["layout"]["yaxis"]["autorange"] == "reversed"  # the first model on top
    dino, rand = bars[1], bars[2]
    assert dino["y"] == ["colour baseline · 14 × 14 patches of<br>16\u00a0px"] and list(dino["x"]) == [0.25]
    assert rand["y"] == ["colour baseline · 14 × 14 patches of<br>14\u00a0px"] and list(rand["x"]) == [0.2]
    assert dino["error_x"]["array"] == [pytest.approx(0.02)] and dino["error_x"]["arrayminus"] == [pytest.approx(0.02)]
    assert rand["error_x"]["array"] == [pytest.approx(0.04)] and rand["error_x"]["arrayminus"] == [pytest.approx(0.03)]
    assert (dino["marker"]["line"]["color"], rand["marker"]["line"]["color"]) == GRID_SHADES[:2]
    assert dino["showlegend"] and rand["showlegend"]
    # one grid for every model: as on the model page (grey bars, no legend)
    same = make_synthetic_results()
    for m in (same.models[0], same.models[2]):
        m.measures.append(MeasureRow(11, 1.0, "tokens", "pseudomask_miou", 0.18, lo=0.16, hi=0.2))
    bars = _comparison_figure(same, "pseudomask_miou")[0].to_plotly_json()["data"]
    assert len(bars) == 2 and bars[1]["y"] == ["colour baseline"] and bars[1]["showlegend"] is False


def test_baseline_groups_keep_a_grid_together():
    results = make_synthetic_results()
    groups = baseline_groups(results.models, SEG)  # MAE holds no baseline: in no group
    assert [(g["grid"], g["models"]) for g in groups] == [("14 × 14 patches of 16 px",
                                                           ["dino-vit-s16", "vit-s16-random"])]


def test_family_summary_marks_numbers_that_do_not_clear_their_baselines(site):
    page = (site / "compare/vit-scaling.md").read_text(encoding="utf-8")
    table = re.search(r"family-summary.*?<table>(.*?)</table>", page, re.S).group(1)
    rows = {re.search(r">([^<]+)</a>", tr).group(1): re.findall(r"<td[^>]*>.*?</td>", tr)[4:]
            for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]}
    dino, rand = rows["DINO ViT-S/16"], rows["ViT-S/16 (random init — architecture baseline)"]
    # columns: positional NCE (no baselines), seg_miou, k-NN mIoU
    assert not any("atlas-flag" in c for c in dino)  # 0.50 [0.47, 0.53] and 0.50 clear every baseline
    assert "atlas-flag" not in rand[0]
    # 0.233 [0.203, 0.263] overlaps position 0.21 [0.18, 0.24]; the k-NN 0.30 lies under position 0.33
    assert "atlas-flag--not-above" in rand[1] and "≈" in rand[1] and "position scores 0.210 [0.180, 0.240]" in rand[1]
    assert "atlas-flag--below" in rand[2] and "▼" in rand[2]
    assert 'class="atlas-flag-legend"' in page and "The ceiling does not count." in page
    data = json.loads((site / "compare/vit-scaling.json").read_text(encoding="utf-8"))
    flags = {s["model"]: s["flags"] for s in data["scaling"]["summary"]}
    assert flags["vit-s16-random"] == {"positional_nce": None, "seg_miou": "not above", "knn_miou_k10": "below"}
    # control: the other comparison has no table, so no legend of marks
    assert "atlas-flag-legend" not in (site / "compare/ssl-vs-random.md").read_text(encoding="utf-8")
