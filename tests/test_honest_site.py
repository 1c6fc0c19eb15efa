"""Issue 26 on the site: captions that match the k-NN split the build used, scores that do not
clear the simple baselines marked (with a legend in words), and the baselines drawn on the
k-NN-vs-k and channel-removal curves. Synthetic records only (no model), rendered to Markdown."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import pytest

from atlas.measures.registry import measure_info
from atlas.pipeline import payloads
from atlas.records import RANDOM_INIT_LABEL, Baseline
from atlas.site import render_site
from atlas.site.measure_words import WORDS
from conftest import make_synthetic_results

SEG = WORDS["seg_miou"].title


def _evaluation_record(split_kind: str, groups: int) -> dict:
    """The evaluation's section of the Methods record (ids and numbers, as EvaluationRun.methods)."""
    units = {"unit": "groups", "units": groups, "groups": groups} if split_kind == "groups" else \
        {"unit": "frame blocks", "units": 7, "groups": groups}
    return {"dataset": "camvid", "images": 50, "classes": ["sky", "road", "car"], "ignore_index": 255,
            "split": None, "image_list": None, "max_images": 50, "geometry": "model",
            "split_kind": split_kind, "group_regex": "^(\\w+?)_", "groups": groups, "split_seed": 0,
            "folds": {"selection": 10, "test": 40, "support": 20, "query": 20},
            "fold_groups": {"selection": ["a"], "support": ["b"], "query": ["c"]}, "over_clustering": "hungarian",
            "knn_ks": [1, 5, 10, 20], "removal_ms": [0, 1, 2], "similarity_images": 16, "variants": ["full"],
            "foreground": ["car"], "level": 0.95, "resamples": 20, "seeds": 2,
            "resampling": {w: {**units, "images": 40} for w in ("test", "query", "similarity")}}


FALLBACK = _evaluation_record("contiguous blocks", 2)
GROUPED = _evaluation_record("groups", 6)
LEGEND = "below a baseline: the interval of the model's number minus a simple baseline's"


def _render(tmp_path: Path, splits: dict = GROUPED, variant: str = "", bands: bool = False) -> dict[str, str]:
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.measure_info["knn_miou_k10"] = measure_info()["knn_miou_k10"]  # the registry's own caption
    results.methods["evaluation"] = splits
    dino = results.models[0]
    assert dino.card.slug == "dino-vit-s16"
    # DINO's chosen seg_miou is 0.55 [0.52, 0.58]: a colour + position baseline wholly above it
    strong = Baseline("seg_miou", "colour + position", 0.70, 0.68, 0.72)
    if variant:
        object.__setattr__(strong, "variant", variant)  # the field may or may not be in atlas/records.py yet
    dino.baselines.append(strong)
    dino.baselines.append(Baseline("knn_miou_k10", "colour", 0.2, 0.18, 0.22))
    # the model-page curves the evaluation draws at its last block
    for m in (dino, results.models[2]):
        m.figures.setdefault("curves", []).extend([
            payloads.knn_curve({1: 0.4, 5: 0.45, 10: 0.5, 20: 0.48}, [1, 5, 10, 20], 11,
                               {k: (0.3, 0.6) for k in (1, 5, 10, 20)} if bands else None),
            payloads.removal_curve({"none": {0: {10: 0.5}, 1: {10: 0.49}, 4: {10: 0.45}}}, 10, 11,
                                   {"none": {m: (0.3, 0.6) for m in (0, 1, 4)}} if bands else None)])
    render_site(results, docs)
    return {"dino": (docs / "models/dino-vit-s16.md").read_text(encoding="utf-8"),
            "random": (docs / "models/vit-s16-random.md").read_text(encoding="utf-8"),
            "leaderboard": (docs / "compare/segmentation-quality.md").read_text(encoding="utf-8"),
            "methods": (docs / "methods.md").read_text(encoding="utf-8"),
            "dino_specs": (docs / "models/dino-vit-s16.figures.js").read_text(encoding="utf-8")}


def _eval_row(page: str, title: str) -> str:
    """The model page's evaluation-table row of the measure ``title``."""
    return next(line for line in page.splitlines() if line.startswith(f"<tr><td>{html.escape(title)}</td>"))


def _leaderboard_cells(page: str, label: str) -> list[str]:
    table = re.search(r'id="leaderboard-table">\s*<table>(.*?)</table>', page, re.S).group(1)
    row = next(tr for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S) if f">{label}</a>" in tr)
    return re.findall(r"<td[^>]*>.*?</td>", row)[2:-3]  # the measure columns (seg_miou, k-NN, ...)


def _traces(pages: dict[str, str], anchor: str) -> list[dict]:
    """The plotly traces of a DINO figure (its spec lives in the page's ``.figures.js``)."""
    div = re.search(rf'<figure class="atlas-figure" id="{anchor}"[^>]*>\s*<div class="atlas-plot"[^>]*>\s*'
                    r'<div id="([^"]+)"', pages["dino"]).group(1)
    script = pages["dino_specs"]
    return json.loads(script[len("atlasFigures("):-len(");\n")])[div]["data"]


def _figure(page: str, anchor: str) -> str:
    return re.search(rf'<figure class="atlas-figure" id="{anchor}".*?</figure>', page, re.S).group(0)


def test_beaten_cell_marked_on_model_page_with_legend(tmp_path):
    pages = _render(tmp_path)
    row = _eval_row(pages["dino"], SEG)
    assert 'class="atlas-flag atlas-flag--below"' in row and "▼" in row
    assert '<span class="atlas-where">block 11 keys</span>' in row  # where it was taken, in its cell
    assert "below a baseline: colour + position scores 0.700 [0.680, 0.720]" in row
    assert LEGEND in html.unescape(pages["dino"]) and "not above a baseline" in pages["dino"]
    # control: the k-NN value 0.50 is clearly above every simple baseline of its measure
    assert "atlas-flag" not in _eval_row(pages["dino"], "k-NN patch probe mIoU (k = 10)")
    # control: the random model's seg_miou 0.283 [0.253, 0.313] clears position 0.21 [0.18, 0.24]
    assert "atlas-flag" not in _eval_row(pages["random"], SEG)


def test_beaten_cell_marked_on_leaderboard(tmp_path):
    pages = _render(tmp_path)
    seg, knn = _leaderboard_cells(pages["leaderboard"], "DINO ViT-S/16")[:2]
    assert 'class="atlas-flagged"' in seg and "atlas-flag--below" in seg and "▼" in seg
    assert "atlas-flag" not in knn
    rand_seg = _leaderboard_cells(pages["leaderboard"], f"ViT-S/16 ({RANDOM_INIT_LABEL})")[0]
    assert "atlas-flag" not in rand_seg
    assert LEGEND in html.unescape(pages["leaderboard"])


def test_overlapping_interval_marked_not_above(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.models[0].baselines.append(Baseline("seg_miou", "colour", 0.56, 0.50, 0.62))  # overlaps 0.55 [0.52, 0.58]
    render_site(results, docs)
    row = _eval_row((docs / "models/dino-vit-s16.md").read_text(encoding="utf-8"), SEG)
    assert "atlas-flag--not-above" in row and "≈" in row and "not above a baseline: colour scores" in row


def test_baseline_variant_named_in_words(tmp_path):
    pages = _render(tmp_path, variant="lab+plain")
    assert "colour + position (CIELAB, plain coordinates)" in pages["dino"]
    assert "colour + position (CIELAB, plain coordinates)" in pages["leaderboard"]


@pytest.mark.parametrize("anchor", ["fig-knn-k", "fig-channel-removal"])
def test_knn_curves_draw_the_baselines(tmp_path, anchor):
    pages = _render(tmp_path)
    lines = {t["name"]: t["y"] for t in _traces(pages, anchor) if "baseline" in t["name"]}
    # DINO's k-NN baselines: position 0.33 and colour 0.2, as horizontal lines labelled as such
    assert lines == {"position baseline, k-NN (k = 10)": [0.33, 0.33], "colour baseline, k-NN (k = 10)": [0.2, 0.2]}
    assert "k-NN mIoU at k = 10" in _figure(pages["dino"], anchor)  # the caption says what the lines are


@pytest.mark.parametrize("bands", [True, False])
def test_knn_curve_captions_say_what_their_bands_are(tmp_path, bands):
    pages = _render(tmp_path, bands=bands)
    for anchor, fixed in (("fig-knn-k", "(the support set of all"), ("fig-channel-removal", "its channel ranking")):
        caption = html.unescape(_figure(pages["dino"], anchor))
        assert ("Bands: 95% intervals from random halves of the query images" in caption) is bands, anchor
        assert (fixed in caption) is bands and ("(no interval)" in caption) is not bands, anchor
        assert any(t.get("fill") == "toself" for t in _traces(pages, anchor)) is bands, anchor


def test_fallback_split_captions_say_contiguous_frame_blocks(tmp_path):
    pages = _render(tmp_path, splits=FALLBACK)
    for where, page in pages.items():
        assert "split by group" not in page, where
    for page in (pages["dino"], pages["leaderboard"], pages["methods"]):
        assert "contiguous frame blocks" in page and "neighbouring frames may meet" in page
    for anchor in ("fig-measure-knn-miou-k10", "fig-knn-k", "fig-channel-removal"):
        assert "contiguous frame blocks" in _figure(pages["dino"], anchor), anchor


def test_group_split_captions_say_group(tmp_path):
    pages = _render(tmp_path, splits=GROUPED)
    for where, page in pages.items():
        assert "contiguous frame blocks" not in page, where
    for page in (pages["dino"], pages["leaderboard"], pages["methods"]):
        assert "split by group" in page
    for anchor in ("fig-measure-knn-miou-k10", "fig-knn-k", "fig-channel-removal"):
        assert "split by group" in _figure(pages["dino"], anchor), anchor


# ---------------------------------------------------------------- the random-init label, verbatim


def _front_matter(page: str) -> dict:
    from mkdocs.utils.meta import get_data

    return get_data(page)[1]


def test_highlight_of_a_random_init_model_carries_the_label():
    from atlas.site.highlights import make_highlights

    results = make_synthetic_results(comparisons=False)
    info = {"seg_miou": {"title": "Cluster mIoU", "highlight": 1}}
    _, per_model = make_highlights(results.models, info)
    (text,) = [h.text for h in per_model["vit-s16-random"]]
    assert RANDOM_INIT_LABEL in text, text
    assert all(RANDOM_INIT_LABEL not in h.text for h in per_model["dino-vit-s16"])


def test_changes_page_labels_a_random_init_model(tmp_path):
    from atlas.site.changes import PreviousVersion
    from atlas.site.table import results_table

    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.published_version = "2"
    previous = []
    for r in results_table(results):  # version 1: every seg_miou one whole unit lower, outside its interval
        r = dict(r)
        if r["measure"] == "seg_miou" and r["lo"] is not None and not r["baseline"] and not r["reference"]:
            r.update(value=r["value"] - 1, lo=r["lo"] - 1, hi=r["hi"] - 1)
        previous.append(r)
    index = {"models": [{"slug": m.card.slug} for m in results.models]}
    render_site(results, docs, previous=PreviousVersion("1", previous, index, "0" * 64))
    page = (docs / "changes.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ") and SEG in line]
    random_rows = [line for line in rows if line.startswith("| vit-s16-random")]
    assert random_rows and all(RANDOM_INIT_LABEL in line for line in random_rows)
    assert all(RANDOM_INIT_LABEL not in line for line in rows if line.startswith("| dino-vit-s16"))


def test_meta_description_carries_the_random_init_label(tmp_path):
    """Every page's <meta name="description"> was the site's, without the label; mkdocs-material
    prints a page's front-matter ``description`` there, raw (escaped once, by the page)."""
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs)
    results.models[2].card.display_name = 'ViT "S" <16>'
    render_site(results, docs)

    def description(page: str) -> str:
        return _front_matter((docs / page).read_text(encoding="utf-8")).get("description", "")

    random = description("models/vit-s16-random.md")
    assert RANDOM_INIT_LABEL in random
    assert "ViT &quot;S&quot; &lt;16&gt;" in random and "<" not in random and '"' not in random
    for page in ("index.md", "compare/ssl-vs-random.md", "compare/segmentation-quality.md"):
        assert RANDOM_INIT_LABEL in description(page), page
    assert description("models/dino-vit-s16.md") == ""  # a pretrained model keeps the site's


# ---- ranks in tiers: without replicates to pair, intervals that overlap are not told apart (the guide's "How to read")

OVERLAPPING = [(0.410, 0.310, 0.510), (0.400, 0.300, 0.500), (0.390, 0.290, 0.490)]
TWO_TIERS = [(0.41, 0.40, 0.42), (0.30, 0.29, 0.31), (0.299, 0.28, 0.30)]
RANK_SENTENCE = "a row shares the rank of its tier's first row (\"2=\") when this atlas does not tell the two apart"


def test_rank_tiers_share_overlapping_intervals():
    from atlas.site.leaderboard import rank_tiers

    assert rank_tiers(OVERLAPPING) == [(1, True), (1, True), (1, True)]  # not a 1-2-3 ranking
    assert rank_tiers(TWO_TIERS) == [(1, False), (2, True), (2, True)]
    # joining is against the tier's first row: 0.30 [0.25, 0.35] overlaps 0.36's, 0.24 [0.20, 0.28] only 0.30's
    assert rank_tiers([(0.36, 0.32, 0.40), (0.30, 0.25, 0.35), (0.24, 0.20, 0.28)]) == [(1, True), (1, True),
                                                                                         (2, False)]
    # a row without an interval is a tier of its own, and nothing joins it; a row without a value has no rank
    assert rank_tiers([(0.41, 0.31, 0.51), (0.40, None, None), (0.39, 0.29, 0.49), (None, None, None)]) == [
        (1, False), (2, False), (3, False), None]
    assert rank_tiers([]) == []


def test_rank_tiers_widen_intervals_for_the_ranking_at_their_own_degrees_of_freedom():
    """Three ranked rows, 3 pairs: each comparison at 1 - 5% / 3. Two rows whose 95% t intervals (df 4)
    do not overlap are not told apart once both are widened to that level at df 4; the normal
    quantiles' ratio (what rows without se / df fall back to) would widen too little and split them.
    The legend names the level and the number of pairs."""
    from scipy.stats import t

    from atlas.site.leaderboard import rank_tiers, rank_words

    half = t.ppf(0.975, 4) * 0.04
    rows = [(v, v - half, v + half, 0.04, 4.0) for v in (0.65, 0.35, -0.9)]
    assert rows[0][1] > rows[1][2]  # the 95% intervals are apart
    assert rank_tiers(rows) == [(1, True), (1, True), (2, False)]
    assert rank_tiers([r[:3] for r in rows]) == [(1, False), (2, False), (3, False)]  # normal scaling: too narrow
    words = rank_words(0.95, 4)
    assert "at 95% family-wise" in words and "each at 99.1667%" in words and "6 pairs of models" in words
    assert rank_words(0.95, 1) == "one model has this number: nothing to rank it against."


def _plant(model, measure: str, value: float, lo: float, hi: float, k: int | None = 8) -> None:
    """``model``'s number of ``measure`` at its chosen (block 11, keys), replaced by the given one."""
    import dataclasses

    from atlas.records import MeasureRow

    model.selected[measure] = {"block": 11, "representation": "keys", "k": k, "selected_by": measure,
                               "selection_images": 2, "selection_value": value}
    model.measures = [r for r in model.measures if not (r.measure == measure and r.block == 11
                                                       and r.representation == "keys")]
    model.measures.append(dataclasses.replace(MeasureRow(11, 1.0, "keys", measure, value, k=k), lo=lo, hi=hi))


def _rank_column(page: str, table_id: str) -> dict[str, str]:
    table = re.search(rf'id="{table_id}">\s*<table>(.*?)</table>', page, re.S).group(1)
    heads = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    assert heads[:2] == ["Model", "Rank"]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return {re.search(r">([^<]+)</a>", tr).group(1): re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>.*?</td>", tr)[1])
            for tr in rows}


@pytest.mark.parametrize("planted, shown", [(OVERLAPPING, ["1=", "1=", "1="]), (TWO_TIERS, ["1", "2=", "2="])])
def test_leaderboard_shows_shared_ranks(tmp_path, planted, shown):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    for m, (value, lo, hi) in zip(results.models, planted):  # DINO, MAE, the random model, best first
        _plant(m, "seg_miou", value, lo, hi)
    render_site(results, docs)
    page = html.unescape((docs / "compare/segmentation-quality.md").read_text(encoding="utf-8"))
    labels = [m.card.display_name for m in results.models]
    ranks = _rank_column(page, "leaderboard-table")
    assert [next(v for k, v in ranks.items() if k.startswith(label)) for label in labels] == shown
    assert RANK_SENTENCE in page and f"Rank: by {SEG}, best first" in page
    # the downloads carry the tier number (the words, "=", are the page's)
    board = [r for r in csv.DictReader(io.StringIO((docs / "compare/segmentation-quality.csv").read_text()))
             if r["measure"] == "seg_miou" and not r["baseline"]]
    expected = [int(s.rstrip("=")) for s in shown]
    assert [int(r["rank"]) for r in board] == expected
    data = json.loads((docs / "compare/segmentation-quality.json").read_text())
    assert data["ranked_by"] == "seg_miou" and [m["rank"] for m in data["models"]] == expected


def test_propagation_page_shows_shared_ranks(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    registry = measure_info()
    for name in ("propagation_jf", "propagation_j", "propagation_f"):
        results.measure_info[name] = registry[name]
    planted = [OVERLAPPING[0], (0.12, 0.10, 0.14), OVERLAPPING[2]]  # DINO and the random model overlap
    for m, (value, lo, hi) in zip(results.models, planted):
        for name in ("propagation_jf", "propagation_j", "propagation_f"):
            _plant(m, name, value, lo, hi, k=None)
    render_site(results, docs)
    page = html.unescape((docs / "compare/label-propagation.md").read_text(encoding="utf-8"))
    ranks = _rank_column(page, "propagation-table")
    assert list(ranks.values()) == ["1=", "1=", "2"]
    assert ranks["MAE ViT-B/16"] == "2"
    assert RANK_SENTENCE in page and "Rank: by Label propagation J&F (DINO's recipe), best first" in page
    table = json.loads((docs / "compare/label-propagation.json").read_text(encoding="utf-8"))  # as shown
    assert [(m["label"], m["rank"], m["rank_shared"]) for m in table["models"]] == [
        (label, int(rank.rstrip("=")), rank.endswith("=")) for label, rank in ranks.items()]
    assert sorted(m["values"]["propagation_jf"]["value"] for m in table["models"]) == pytest.approx([0.12, 0.39, 0.41])
    assert "(label-propagation.json)" in page


@pytest.mark.parametrize("dataset, said", [("camvid", True), ("davis", False)])
def test_propagation_page_says_when_its_units_come_from_one_drive(tmp_path, dataset, said):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.methods["propagation"] = {  # as PropagationRun.methods() records it
        "dataset": dataset, "sequences": 8, "frames": [5] * 8, "frame_step": 1, "clip_length": 5,
        "temperature": 0.2, "n_context": 7, "top_k": 5, "radius": 12, "size": [224, 288], "short_side": 224,
        "selection": ["a", "b"], "test": 6, "level": 0.95, "resamples": 200, "intervals": True}
    for m in results.models:
        _plant(m, "propagation_jf", 0.5, 0.4, 0.6, k=None)
    render_site(results, docs)
    page = html.unescape((docs / "compare/label-propagation.md").read_text(encoding="utf-8"))
    assert "rest on 6 test sequences, the resampling units" in page
    assert ("clips come from one drive" in page) == said
    assert ("read the ranks as indicative" in page) == said
    assert "- **Context**: the first frame and the 7 most recent ones; each patch keeps its top 5 affinities " \
        "within 12 patches" in page


@pytest.mark.parametrize("colour, said", [((0.90, 0.88, 0.92), True), ((0.01, 0.0, 0.02), False)])
def test_leaderboard_says_when_no_model_clears_the_baselines(tmp_path, colour, said):
    """Every model below its colour baseline: the ranks are no finding, and the page says so; the
    same ranks above the baseline (the control) need no such sentence."""
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    for m, (value, lo, hi) in zip(results.models, TWO_TIERS):
        _plant(m, "seg_miou", value, lo, hi)
        m.baselines = [b for b in m.baselines if b.measure != "seg_miou"] + [Baseline("seg_miou", "colour", *colour)]
    render_site(results, docs)
    page = " ".join(html.unescape((docs / "compare/segmentation-quality.md").read_text(encoding="utf-8")).split())
    assert ("No model clears the simple baselines** on it" in page) == said
    assert f"Rank: by {SEG}, best first" in page
