"""Issue 26 on the site: captions that match the k-NN split the build used, scores that do not
clear the simple baselines marked (with a legend in words), and the baselines drawn on the
k-NN-vs-k and channel-removal curves. Synthetic records only (no model), rendered to Markdown."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from atlas.measures.registry import measure_info
from atlas.pipeline import payloads
from atlas.records import RANDOM_INIT_LABEL, Baseline
from atlas.site import render_site
from conftest import make_synthetic_results


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
LEGEND = "below a baseline: the model's whole interval lies under the interval of a simple baseline"


def _render(tmp_path: Path, splits: dict = GROUPED, variant: str = "") -> dict[str, str]:
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
            payloads.knn_curve({1: 0.4, 5: 0.45, 10: 0.5, 20: 0.48}, [1, 5, 10, 20], 11),
            payloads.removal_curve({"none": {0: {10: 0.5}, 1: {10: 0.49}, 4: {10: 0.45}}}, 10, 11)])
    render_site(results, docs)
    return {"dino": (docs / "models/dino-vit-s16.md").read_text(encoding="utf-8"),
            "random": (docs / "models/vit-s16-random.md").read_text(encoding="utf-8"),
            "leaderboard": (docs / "compare/segmentation-quality.md").read_text(encoding="utf-8"),
            "methods": (docs / "methods.md").read_text(encoding="utf-8"),
            "dino_specs": (docs / "models/dino-vit-s16.figures.js").read_text(encoding="utf-8")}


def _eval_row(page: str, title: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(f"| {title} |"))


def _leaderboard_cells(page: str, label: str) -> list[str]:
    table = re.search(r'id="leaderboard-table">\s*<table>(.*?)</table>', page, re.S).group(1)
    row = next(tr for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S) if f">{label}</a>" in tr)
    return re.findall(r"<td[^>]*>.*?</td>", row)[4:]  # the measure columns (seg_miou, k-NN, ...)


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
    row = _eval_row(pages["dino"], "Cluster mIoU vs human masks")
    assert 'class="atlas-flag atlas-flag--below"' in row and "▼" in row
    assert "below a baseline: colour + position scores 0.700 [0.680, 0.720]" in row
    assert LEGEND in html.unescape(pages["dino"]) and "not above a baseline" in pages["dino"]
    # control: the k-NN value 0.50 is clearly above every simple baseline of its measure
    assert "atlas-flag" not in _eval_row(pages["dino"], "k-NN patch probe mIoU (k = 10)")
    # control: the random model's seg_miou 0.283 [0.253, 0.313] clears position 0.21 [0.18, 0.24]
    assert "atlas-flag" not in _eval_row(pages["random"], "Cluster mIoU vs human masks")


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
    row = _eval_row((docs / "models/dino-vit-s16.md").read_text(encoding="utf-8"), "Cluster mIoU vs human masks")
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
