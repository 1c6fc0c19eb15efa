"""Every score a plot shows stands beside its interval and its references (synthetic records only,
no model): the scaling plots' error bars, baselines, positional references and random-init label;
the model pages' k-NN curves and per-sequence figure say they have no interval; the Resolution
page's references carry theirs (or say they have none); categorical x values are escaped."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from atlas.pipeline import payloads
from atlas.records import RANDOM_INIT_LABEL
from atlas.site import render_site
from atlas.site.figure_words import dressed
from atlas.site.figures import curve_figure, plain_title, scaling_figure
from atlas.site.scaling import scaling, scaling_view
from atlas.site.wording import model_label
from conftest import make_synthetic_results


def _spec(fig: dict) -> dict:
    """The Plotly spec inside a figure dict's HTML fragment."""
    payload = re.search(r'<script type="application/json" class="atlas-plot-spec"[^>]*>(.*?)</script>',
                        str(fig["html"]), re.S).group(1)
    return json.loads(payload)


@pytest.fixture(scope="module")
def scaled():
    results = make_synthetic_results()
    c = next(c for c in results.comparisons if c.kind == "scaling")
    labels = {m.card.slug: model_label(m.card) for m in results.models}
    data = scaling(results, c, labels)
    view = scaling_view(data, results, "compare/vit-scaling.md", "compare-vit-scaling", c)
    figs = {f["anchor"]: f for f in view["figs"]}
    return results, data, figs


def _depth_traces(spec: dict) -> list[dict]:
    return [t for t in spec["data"] if t["name"].startswith("rel. depth")]


def test_scaling_points_draw_the_records_intervals_as_error_bars(scaled):
    results, data, figs = scaled
    by_slug = {m.card.slug: m for m in results.models}
    spec = _spec(figs["fig-scaling-seg-miou"])
    traces = _depth_traces(spec)
    assert traces
    for trace, target in zip(traces, data["depths"]):
        pts = sorted((p for p in data["points"] if p["measure"] == "seg_miou" and p["target"] == target),
                     key=lambda p: p["params"])
        rows = [next(r for r in by_slug[p["model"]].measures if r.measure == "seg_miou" and r.block == p["block"]
                     and r.representation == p["representation"] and r.k == p["k"]) for p in pts]
        assert [p["lo"] for p in pts] == [r.lo for r in rows] and [p["hi"] for p in pts] == [r.hi for r in rows]
        assert trace["error_y"]["array"] == pytest.approx([r.hi - r.value for r in rows])
        assert trace["error_y"]["arrayminus"] == pytest.approx([r.value - r.lo for r in rows])
        assert all("[" in c[4] for c in trace["customdata"])  # and in the hover


def test_scaling_without_intervals_says_so(scaled):
    _, _, figs = scaled
    knn = figs["fig-scaling-knn-miou-k10"]  # the synthetic k-NN rows hold no interval
    assert all("error_y" not in t or not t["error_y"] for t in _depth_traces(_spec(knn)))
    assert "no interval" in knn["caption"]
    assert "no interval" not in figs["fig-scaling-seg-miou"]["caption"]
    assert "Error bars: 95% intervals" in figs["fig-scaling-seg-miou"]["caption"]


def test_scaling_plots_draw_the_baselines(scaled):
    _, _, figs = scaled
    lines = {t["name"]: t for t in _spec(figs["fig-scaling-seg-miou"])["data"] if t["name"].endswith(" baseline")}
    assert {n: t["y"] for n, t in lines.items()} == {"chance baseline": [0.05, 0.05], "position baseline": [0.21, 0.21],
                                                      "ceiling baseline": [0.62, 0.62]}
    assert lines["position baseline"]["x"] == [22_000_000, 150_000_000]  # across the drawn sizes
    assert "[0.18, 0.24]" in lines["position baseline"]["hovertemplate"]
    knn = {t["name"]: t["y"] for t in _spec(figs["fig-scaling-knn-miou-k10"])["data"] if "baseline" in t["name"]}
    assert knn == {"position baseline": [0.33, 0.33]}
    assert "baselines" in figs["fig-scaling-seg-miou"]["caption"]


def test_scaling_plots_draw_the_positional_references(scaled):
    _, data, figs = scaled
    refs = [t for t in _spec(figs["fig-scaling-positional-nce"])["data"] if t["name"].endswith(" reference")]
    assert {t["name"] for t in refs} == {"content-only reference", "position-only reference"}
    for t in refs:
        assert t["y"] == pytest.approx([0.01] * 2 if t["name"].startswith("content") else [0.97] * 2)
    assert sum(t["showlegend"] is not False for t in refs) == 2  # one legend entry per kind
    assert all(p["references"] for p in data["points"] if p["measure"] == "positional_nce")
    assert "position-only" in figs["fig-scaling-positional-nce"]["caption"]
    # a measure without references draws none
    assert not [t for t in _spec(figs["fig-scaling-seg-miou"])["data"] if t["name"].endswith(" reference")]


def test_scaling_plot_names_a_random_init_model_in_the_figure(scaled):
    _, _, figs = scaled
    xaxis = _spec(figs["fig-scaling-positional-nce"])["layout"]["xaxis"]
    assert xaxis["tickvals"] == [22_000_000, 150_000_000]
    assert RANDOM_INIT_LABEL in xaxis["ticktext"][1] and "ViT-S/16" in xaxis["ticktext"][1]
    assert "DINO ViT-S/16" in xaxis["ticktext"][0] and RANDOM_INIT_LABEL not in xaxis["ticktext"][0]


def test_scaling_tick_labels_are_escaped():
    pts = [{"target": 1.0, "model": m, "label": label, "params": p, "block": 11, "rel_depth": 1.0, "value": 0.5}
           for m, label, p in (("a", "<b>x</b>", 10), ("b", "y", 100))]
    ticks = scaling_figure(pts, "m", "t").to_plotly_json()["layout"]["xaxis"]["ticktext"]
    assert ticks[0].startswith("&lt;b&gt;x&lt;/b&gt;") and "<b>" not in ticks[0]


@pytest.mark.parametrize("payload", [
    payloads.knn_curve({1: 0.3, 5: 0.4}, [1, 5], 11),
    payloads.removal_curve({"none": {0: {10: 0.5}, 4: {10: 0.4}}}, 10, 11),
    payloads.propagation_sequences(["a", "b"], [0.5, 0.6], {"zero motion": [0.1, 0.2]}, 11, "keys"),
], ids=lambda p: p["kind"])
def test_score_curves_without_intervals_say_so(payload):
    d = dressed(payload)
    assert "no interval" in d["title"]  # the caption's head (the model page's figure title) ...
    assert "no interval" in plain_title(curve_figure(d, "DINO ViT-S/16"))  # ... and the plot's own title
    assert not any(t.get("error_y") for t in curve_figure(d, "DINO ViT-S/16").to_plotly_json()["data"])


@pytest.mark.parametrize("payload", [
    payloads.knn_curve({1: 0.3, 5: 0.4}, [1, 5], 11, {1: (0.25, 0.35), 5: (0.33, 0.47)}),
    payloads.removal_curve({"none": {0: {10: 0.5}, 4: {10: 0.4}}, "zscore": {0: {10: 0.45}}}, 10, 11,
                           {"none": {0: (0.45, 0.55), 4: (0.35, 0.45)}, "zscore": {0: (0.4, 0.5)}}),
], ids=lambda p: p["kind"])
def test_score_curves_with_intervals_draw_them_as_bands(payload):
    d = dressed(payload)
    assert "no interval" not in d["title"]
    spec = curve_figure(d, "DINO ViT-S/16", level=0.9).to_plotly_json()
    bands = {t["legendgroup"]: t for t in spec["data"] if t.get("fill") == "toself"}
    lines = {t["name"]: t for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert set(bands) == set(lines) == set(d["series"])  # one band per series, grouped with its line
    assert all(band["mode"] == "lines" for band in bands.values())  # no marker at the band's corners
    for name, line in lines.items():
        lo, hi = d["lo"][name], d["hi"][name]
        drawn = [(x, l, h) for x, l, h in zip(d["x"], lo, hi) if l is not None]  # a skipped m has no band point
        assert list(bands[name]["x"]) == [x for x, _, _ in drawn] + [x for x, _, _ in drawn][::-1]
        assert list(bands[name]["y"]) == [h for _, _, h in drawn] + [l for _, l, _ in drawn][::-1]
        assert "90% interval" in bands[name]["name"]
        assert all(f"[{l:.3g}, {h:.3g}]" == c.strip() for l, h, c in zip(lo, hi, line["customdata"]) if l is not None)
    low = min(v for side in d["lo"].values() for v in side if v is not None)
    assert spec["layout"]["yaxis"]["range"][0] <= low  # the axis shows the whole band


def test_a_curve_whose_intervals_are_not_finite_says_it_has_none():
    p = payloads.knn_curve({1: 0.3, 5: 0.4}, [1, 5], 11, {1: (float("nan"), float("nan")), 5: None})
    assert "lo" not in p and "no interval" in dressed(p)["title"]


def test_categorical_curve_x_values_are_escaped():
    d = dressed(payloads.propagation_sequences(["<b>x</b>", "bike"], [0.5, 0.6], {"colour": [0.1, 0.2]}, 11, "keys"))
    spec = curve_figure(d, "m").to_plotly_json()
    for trace in spec["data"]:
        assert list(trace["x"]) == ["&lt;b&gt;x&lt;/b&gt;", "bike"]
    assert spec["layout"]["xaxis"]["type"] == "category"


def test_reference_text_carries_the_interval_or_says_none():
    from atlas.records import Baseline
    from atlas.site.resolution import reference_text

    assert reference_text(Baseline("seg_miou", "position", 0.21, 0.18, 0.24)) == "0.210 [0.180, 0.240]"
    assert reference_text(Baseline("knn_miou_k10", "position", 0.33)) == "0.330 (no interval)"


def test_resolution_page_references_carry_their_intervals(tmp_path: Path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    other = copy.deepcopy(results.models[0])
    other.card.input_size, other.card.resolution, other.card.requested_size = [320, 320], "320", [320, 320]
    results.resolutions, results.resolution_runs = ["native", "320"], [other]
    render_site(results, docs)
    page = next(docs.rglob("resolution*.md")).read_text(encoding="utf-8")
    assert "position baseline: 0.210 [0.180, 0.240]" in page  # seg_miou's best simple baseline, with its interval
    assert "position baseline: 0.330 (no interval)" in page  # k-NN's: none in the records
    assert "position-only tokens: 0.970 (no interval)" in page
    csv = next(docs.rglob("resolution*.csv")).read_text(encoding="utf-8")
    assert csv.splitlines()[0].endswith("reference,reference_value,reference_lo,reference_hi")


def test_a_measure_of_one_block_beside_other_sizes_draws_its_intervals_as_error_bars():
    """CKA and the pseudo-masks are taken at the last block only. With the resolution axis the
    layer sweep draws a line per size, and a band through one point has no width: each point's
    interval is an error bar instead (the demo's pages showed CKA without its interval)."""
    from types import SimpleNamespace

    from atlas.site.figures import layer_sweep_figure

    def row(value, lo, hi):
        return SimpleNamespace(block=11, rel_depth=1.0, representation="tokens", k=None, value=value, lo=lo, hi=hi)

    fig = layer_sweep_figure([row(0.84, 0.62, 1.0)], "Debiased CKA", "m",
                             other_sizes=[("320 px", [row(0.91, 0.7, 0.99)])], main_size="224 px")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 2 and not [t for t in fig.data if t.fill == "toself"]
    for t, (v, lo, hi) in zip(lines, [(0.84, 0.62, 1.0), (0.91, 0.7, 0.99)]):
        assert t.error_y.array == pytest.approx((hi - v,)) and t.error_y.arrayminus == pytest.approx((v - lo,))
    # side by side, not one bar over the other; the hover says the true depth
    assert lines[0].x[0] < 1.0 < lines[1].x[0] and lines[1].x[0] - lines[0].x[0] < 0.03
    assert all(t.customdata[0][2] == 1.0 and "customdata[2]" in t.hovertemplate for t in lines)
    several = [SimpleNamespace(**{**vars(row(0.5, 0.4, 0.6)), "block": b, "rel_depth": b / 12}) for b in (5, 11)]
    fig = layer_sweep_figure(several, "x", "m", other_sizes=[("320 px", several)], main_size="224 px")
    assert [t for t in fig.data if t.fill == "toself"] and all(t.error_y.array is None for t in fig.data
                                                              if t.mode == "lines+markers")  # the control: bands
    assert all(t.x == pytest.approx((5 / 12, 11 / 12)) for t in fig.data if t.mode == "lines+markers")  # no dodge


def test_other_sizes_do_not_borrow_the_main_sizes_baselines():
    """With the resolution axis a layer sweep draws every size's curves but only the main size's
    baselines and references (another size has another patch grid): the legend says whose they are;
    without other sizes it names none."""
    from types import SimpleNamespace

    from atlas.records import Baseline
    from atlas.site.figures import layer_sweep_figure

    rows = [SimpleNamespace(block=b, rel_depth=(b + 1) / 12, representation="tokens", k=None, value=0.5, lo=0.4,
                            hi=0.6) for b in (5, 11)]
    refs = [SimpleNamespace(**{**vars(r), "reference": "content-only"}) for r in rows]
    chance = [Baseline("seg_miou", "chance", 0.05, 0.04, 0.06)]
    fig = layer_sweep_figure(rows, "x", "m", references=refs, baselines=chance,
                             other_sizes=[("320 px", rows)], main_size="224 px")
    names = {t.name for t in fig.data}
    assert {"chance baseline · 224 px", "content-only reference · 224 px"} <= names
    assert "chance baseline" not in names
    alone = {t.name for t in layer_sweep_figure(rows, "x", "m", references=refs, baselines=chance).data}
    assert {"chance baseline", "content-only reference"} <= alone


def test_coinciding_curves_stay_told_apart():
    """The shift test's content and position lines coincide for maps that follow neither: each series
    has its own dash and marker, so the one drawn last does not hide the other."""
    from atlas.site.figures import curve_figure

    same = [0.2, 0.2, 0.2]
    fig = curve_figure({"id": "shift-tokens", "x": [1, 2, 3], "series": {"content": same, "position": same}}, "m")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 2 and lines[0].y == lines[1].y
    assert lines[0].line.dash != lines[1].line.dash and lines[0].marker.symbol != lines[1].marker.symbol
    assert lines[0].line.width > lines[1].line.width  # the one drawn first shows around the one over it


def test_baseline_lines_draw_their_intervals_as_bands():
    """A baseline with an interval is a line and a band from lo to hi, toggled together, the band
    behind the models' traces; one without an interval is the line alone."""
    from atlas.records import Baseline
    from atlas.site.figures import baseline_lines, behind_and_over

    band, line = baseline_lines([Baseline("seg_miou", "colour", 0.30, 0.26, 0.35)], "Cluster mIoU", x=(0.2, 1.0))
    bare = baseline_lines([Baseline("seg_miou", "chance", 0.10)], "Cluster mIoU")
    assert band.fill == "toself" and min(band.y) == 0.26 and max(band.y) == 0.35 and set(band.x) == {0.2, 1.0}
    assert list(line.y) == [0.30, 0.30] and band.legendgroup == line.legendgroup and not band.showlegend
    assert [t.fill for t in bare] == [None] and list(bare[0].y) == [0.10, 0.10]
    model = object()  # a model's traces: the baseline's band behind them, its line over them
    assert behind_and_over([model], [band, line]) == [band, model, line]
