"""Plotly figure builders for the site: records in, HTML fragments out.

Every builder returns a ``plotly.graph_objects.Figure``; :func:`figure_html` turns one into a
``<div>`` fragment that ``atlas.js`` draws with plotly.js (loaded only where plots are), with a
deterministic div id and a modebar offering PNG and SVG export.

Text handed to Plotly is HTML-escaped first: Plotly renders a subset of HTML in titles, legend
names and hover labels, and model names come from configs.
"""

from __future__ import annotations

import html
import json
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from markupsafe import Markup

from ..formatting import level_percent
from ..records import RANDOM_INIT_LABEL
from .honesty import baseline_label, grid_words
from .palette import palette_hex
from .wording import measure_definition, measure_title

__all__ = [
    "figure",
    "measure_figure",
    "baseline_groups",
    "cluster_size_figure",
    "comparison_measure_figure",
    "curve_figure",
    "figure_html",
    "plain_title",
    "heatmap_figure",
    "layer_sweep_figure",
    "scaling_figure",
]

# Colour-blind-safe qualitative palette (Okabe-Ito, black replaced by grey for dark mode).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def _t(text: Any) -> str:
    """Escape text for Plotly's pseudo-HTML labels."""
    return html.escape(str(text), quote=False)


def _title(text: str) -> str:
    """Escaped title; a long one breaks after its first " — " so the model label (and the
    random-init label) stays visible on narrow screens instead of being clipped, and a head
    too long for one line breaks once more."""
    head, sep, tail = text.partition(" — ")
    if sep and len(text) > 48:
        return f"{_axis_title(head, 64)}<br><span style=\"font-size:12px\">{_t(tail)}</span>"
    return _axis_title(text, 64)


def _axis_title(text: str, width: int = 28) -> str:
    """Escaped axis title; a long one (a readable measure title) breaks at the space nearest
    its middle so it fits beside the plot instead of running over the figure title."""
    if len(text) <= width or " " not in text:
        return _t(text)
    mid = len(text) // 2
    cut = min((i for i, ch in enumerate(text) if ch == " "), key=lambda i: (abs(i - mid), i))
    return f"{_t(text[:cut])}<br>{_t(text[cut + 1:])}"


def _layout(traces: list, title: str, xaxis: str, yaxis: str, *, x: dict | None = None, y: dict | None = None,
            height: int = 420, **extra: Any) -> go.Figure:
    """The figure with the site's layout, built in one step (``update_layout`` calls cost ~10x more).

    ``x`` / ``y``: extra axis settings; ``extra``: extra layout settings.
    """
    # Transparent backgrounds and neutral grid colours so one figure reads in light and dark
    # mode; atlas.js re-colours fonts and grids when the reader toggles the palette.
    title_html = _title(title)
    # Plotly makes room for a legend below the plot by shrinking the plot, and scrolls a legend taller
    # than half the figure: the figure grows by the legend's height beyond two rows instead, and the
    # legend may be as tall as it is, so the plot keeps its height, its axis title clears the legend
    # and every entry shows
    legend_px = legend_height(traces)
    height += max(0, legend_px - LEGEND_ROOM_PX)
    axis = {"gridcolor": "rgba(128,128,128,0.25)", "zerolinecolor": "rgba(128,128,128,0.45)",
            "linecolor": "rgba(128,128,128,0.6)", "showline": True, "ticks": "outside", "automargin": True}
    layout = {
        "title": {"text": title_html, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        "xaxis": {**axis, "title": {"text": _t(xaxis)}, **(x or {})},
        "yaxis": {**axis, "title": {"text": _axis_title(yaxis)}, **(y or {})},
        "template": "none",  # no 7 kB template per figure; the few styles we want are here
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "margin": {"l": 60, "r": 20, "t": 52 + 18 * title_html.count("<br>"), "b": 60},  # room for every title line
        "hoverlabel": {"namelength": -1},
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "height": height,
        "autosize": True,
        **extra,
    }
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.24, "x": 0.0, **extra.get("legend", {}),
                        "maxheight": max(legend_px, LEGEND_ROOM_PX) + LEGEND_ITEM_PX}  # > 1: pixels
    return go.Figure(data=traces, layout=layout)


#: Plotly's horizontal legend (plotly.js 4, ``components/legend/draw.js``) at the site's 12 px font:
#: an entry is 19 px tall and 40 px of symbol and gaps wide plus its text (about 6.8 px a
#: character), entries 5 px apart, 10 px of padding. It wraps at the plot area's width (the content
#: column less the figure's margins). The figure leaves room for two rows of entries.
LEGEND_ITEM_PX, LEGEND_PAD_PX, LEGEND_GROUP_GAP_PX, LEGEND_WIDTH_PX = 19, 10, 10, 600
LEGEND_ROOM_PX = 2 * LEGEND_ITEM_PX + LEGEND_PAD_PX


def legend_height(traces: Sequence[Any]) -> int:
    """Height in px of the horizontal legend of ``traces``, laid out as Plotly lays it out.

    A legend is *grouped* when any trace has a ``legendgroup`` (Plotly's default ``traceorder``):
    its groups (a trace without a group is one) are packed in rows by their own widths, a group's
    entries stacked, rows :data:`LEGEND_GROUP_GAP_PX` apart. Otherwise the entries share one row
    when they fit, and else every entry takes the widest entry's width.

    >>> legend_height([go.Scatter(name="a"), go.Scatter(name="b", showlegend=False)])
    29
    >>> legend_height([go.Scatter(name="x" * 80) for _ in range(3)])  # too wide for two a row
    67
    >>> legend_height([go.Scatter(name="x" * 80, legendgroup=str(i)) for i in range(3)])  # grouped: gaps
    87
    """
    shown = [t for t in traces if t.showlegend is not False and t.name]
    if not shown:
        return 0
    widths = [40 + 6.8 * len(html.unescape(re.sub(r"<[^>]+>", "", str(t.name)))) for t in shown]
    if not any(t.legendgroup for t in traces if t.visible is not False):
        if sum(widths) + 5 * (len(widths) - 1) < LEGEND_WIDTH_PX:
            return LEGEND_ITEM_PX + LEGEND_PAD_PX
        per_row = max(1, int((LEGEND_WIDTH_PX + 5) // (max(widths) + 5)))
        return -(-len(shown) // per_row) * LEGEND_ITEM_PX + LEGEND_PAD_PX
    groups: dict[str, list[float]] = {}
    for i, (t, w) in enumerate(zip(shown, widths)):
        groups.setdefault(t.legendgroup or f"\0{i}", []).append(w)
    rows, used, tallest = [], 0.0, 0
    for entries in groups.values():
        width = max(entries) + 5
        if used > 0 and used + width > LEGEND_WIDTH_PX:
            rows.append(tallest)
            used, tallest = 0.0, 0
        used += width
        tallest = max(tallest, len(entries) * LEGEND_ITEM_PX)
    rows.append(tallest)
    return sum(rows) + LEGEND_GROUP_GAP_PX * (len(rows) - 1) + LEGEND_PAD_PX


_BREAK_TO_TAIL = re.compile(r'<br><span style="font-size:12px">(.*?)</span>', re.S)


def plain_title(fig: go.Figure) -> str:
    """The figure's title as plain text (what it shows, then " — " and its model or comparison):
    :func:`_title`'s line breaks undone, tags dropped, entities decoded.

    >>> plain_title(_layout([], "Cluster mIoU vs human masks at block 11 — DINO <ViT-S/16>", "x", "y"))
    'Cluster mIoU vs human masks at block 11 — DINO <ViT-S/16>'
    """
    text = str(fig.layout.title.text or "")
    text = _BREAK_TO_TAIL.sub(r" — \1", text).replace("<br>", " ")
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def figure_html(fig: go.Figure, div_id: str, filename: str, label: str | None = None) -> str:
    """Render ``fig`` as an HTML fragment: a target ``<div>`` plus its JSON spec.

    The container is named for assistive technology (``role="figure"``, ``aria-label``): ``label``,
    by default the figure's title (:func:`plain_title`: what it shows and for which model or
    comparison).

    ``render_site`` moves the specs of a page into ``<page>.figures.js``
    (:func:`atlas.site.pages.split_figures`); ``atlas.js`` loads plotly.js and that script when a
    plot nears the viewport and draws it. The modebar's camera exports PNG at 2x; the caption
    buttons export PNG and SVG.
    """
    spec = json.loads(pio.to_json(fig, validate=True, pretty=False))
    spec["config"] = {
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["select2d", "lasso2d", "sendChartToCloud"],
        "showSendToCloud": False,  # plotly.js 4 shows "Share chart" (an upload to Plotly Cloud) by default
        "plotlyServerURL": "",  # and nothing is ever sent anywhere
    }
    # Escape "<", ">", "&" so no "</script>" can end the JSON block early.
    payload = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    payload = payload.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    div = html.escape(div_id)
    name = label if label is not None else plain_title(fig)
    aria = f' role="figure" aria-label="{html.escape(name, quote=True)}"' if name else ""
    return (
        f'<div class="atlas-plot" data-export-name="{html.escape(filename)}"{aria}>'
        f'<div id="{div}" class="atlas-plot-target" style="height:{int(fig.layout.height or 420)}px"></div>'
        f'<script type="application/json" class="atlas-plot-spec" data-target="{div}">{payload}</script>'
        "</div>"
    )


def _label_rep(rep: str, k: int | None, several_k: bool) -> str:
    return f"{rep} · K={k}" if several_k and k is not None else rep


#: One colour per representation on every page (Okabe-Ito).
REP_COLOURS = {"tokens": "#0072B2", "keys": "#E69F00", "queries": "#009E73", "values": "#CC79A7",
               "tokens_normed": "#D55E00", "attention": "#56B4E9"}  # attention: the CLS's, from queries and keys
#: Reference lines of the positional measures (same colour as their representation).
#: Relative depth between series of one point drawn side by side (:func:`layer_sweep_figure`).
SIDE_BY_SIDE = 0.012
REFERENCE_DASH = {"content-only": "dot", "position-only": "dashdot"}
#: Markers of the resolutions of the axis in a layer sweep (the main one first).
SIZE_MARKERS = ("circle", "square", "diamond", "triangle-up", "x")
#: Evaluation baselines: a grey level and a dash of its own per baseline (the dash alone says which
#: baseline where a comparison shades each patch grid's baselines alike, :data:`GRID_SHADES`).
BASELINE_STYLE = {"chance": ("#9E9E9E", "dot"), "constant": ("#BDBDBD", "longdashdot"),
                  "zero motion": ("#78909C", "6px,2px,1px,2px,1px,2px"), "colour": ("#8D6E63", "dash"),
                  "position": ("#546E7A", "dashdot"), "colour + position": ("#37474F", "longdash"),
                  "ceiling": ("#212121", "solid")}
#: The baselines of each patch grid in a comparison of several grids: neutral shades, none of them a
#: model's colour (:data:`PALETTE`), so no baseline reads as one model's.
GRID_SHADES = ("#37474F", "#A1887F", "#90A4AE", "#616161", "#BCAAA4", "#CFD8DC")


#: The x axis of every plot across depth, as Methods defines relative depth.
DEPTH_AXIS = "relative depth ((block + 1) / depth)"


def value_axis(bounds: Sequence[float | None] | None, values: Iterable[float | None]) -> dict[str, Any]:
    """An honest y axis for a measure: never zoomed into a sliver of its range.

    A measure bounded above by 1 or less (fractions, AMI, R², mIoU) is drawn up to that bound; one
    bounded below at 0 or more from that bound; otherwise the axis spans the data and 0.

    >>> value_axis([0, 1], [0.471, 0.475])["range"]
    [0.0, 1.0]
    >>> value_axis([None, None], [0.2, 0.4])["range"]
    [-0.012, 0.412]
    """
    finite = [float(v) for v in values if v is not None and v == v and abs(float(v)) != float("inf")]
    lo_b, hi_b = (list(bounds) + [None, None])[:2] if bounds else (None, None)
    lo = min(finite + [0.0]) if finite else 0.0
    hi = max(finite + [0.0]) if finite else 1.0
    if hi_b is not None and hi_b <= 1:
        hi = max(hi, float(hi_b))
    if lo_b is not None and lo_b >= 0:
        lo = float(lo_b)
    if hi_b is not None and hi_b <= 1 and lo_b is not None and lo_b >= 0:
        return {"range": [lo, hi]}  # the whole scale: nothing to pad
    pad = 0.03 * ((hi - lo) or 1.0)
    return {"range": [round(lo - (pad if lo_b is None or lo < 0 else 0.0), 6), round(hi + pad, 6)]}


def rep_colour(rep: str, order: Sequence[str] = ()) -> str:
    """The colour of a representation (unknown names: by position in ``order``)."""
    if rep in REP_COLOURS:
        return REP_COLOURS[rep]
    extra = [c for c in PALETTE if c not in REP_COLOURS.values()]
    return extra[list(order).index(rep) % len(extra)] if rep in order else extra[0]


def series_colour(model: str, rep: str, models: Sequence[str], reps: Sequence[str]) -> str:
    """A comparison series' colour: its model's (:data:`PALETTE`, in ``models`` order); in a
    comparison of one model's representations, the representation's, as on the model page."""
    return rep_colour(rep, reps) if len(models) == 1 else PALETTE[list(models).index(model) % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(xs: list, lo: list, hi: list, colour: str, group: str, name: str, alpha: float = 0.15) -> go.Scatter:
    """An interval band: the area between ``lo`` and ``hi`` over ``xs``, in ``colour``, grouped with
    its line (legend group ``group``). An outline only: Plotly's default markers would put a dot of
    another colour at every corner, like data points."""
    return go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], fill="toself", mode="lines", fillcolor=_rgba(colour, alpha),
                      line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group, name=name)


def _interval_text(lo: Any, hi: Any) -> str:
    return "" if lo is None or hi is None else f" [{lo:.3g}, {hi:.3g}]"


def layer_sweep_figure(rows: Sequence[Any], measure: str, model_label: str, references: Sequence[Any] = (),
                       baselines: Sequence[Any] = (), level: float = 0.95,
                       bounds: Sequence[float | None] | None = None,
                       other_sizes: Sequence[tuple[str, Sequence[Any]]] = (), main_size: str = "") -> go.Figure:
    """One measure across depth: x = relative depth, one line per representation (and K), its
    interval as a band; the positional references as thin lines of the same colour; the
    evaluation baselines as grey horizontal lines, their intervals as faint bands. A measure taken
    at a single block is drawn as bars instead (:func:`single_block_figure`). ``other_sizes``: the model's rows at the other
    resolutions of the axis, ``(label, rows)``: one more line (and band) per representation and
    resolution, in the representation's colour with its own marker; ``main_size`` labels the main one,
    and then the references and baselines too: they are the main size's (another size has its own
    patch grid, hence its own baselines, on the Resolution page).

    ``measure`` is the text shown (the measure's readable title, or its raw name); ``bounds`` its
    value range (``measure_info[...]["bounds"]``), for an honest y axis (:func:`value_axis`).
    """
    other_sizes = [(size, other) for size, other in other_sizes if other]
    if len({r.block for r in rows}) == 1 and not other_sizes:
        return single_block_figure(rows, measure, model_label, baselines, level, bounds)
    ks = {getattr(r, "k", None) for r in rows}
    several_k = len(ks) > 1
    series: dict[tuple[str, Any, int], list[Any]] = defaultdict(list)
    for zi, size_rows in enumerate([rows] + [other for _, other in other_sizes]):
        for r in size_rows:
            series[(r.representation, r.k, zi)].append(r)
    sizes = [main_size] + [size for size, _ in other_sizes]
    at_main = f" · {main_size}" if other_sizes and main_size else ""  # references and baselines: the main size's
    traces = []
    reps = list(dict.fromkeys(rep for rep, _, _ in series))  # the model's own order
    klist = sorted({k for _, k, _ in series}, key=lambda v: (v is None, v or 0))
    band = f"{level_percent(level)} interval"
    ordered = sorted(series.items(), key=lambda kv: (kv[0][2], reps.index(kv[0][0]), klist.index(kv[0][1])))
    # series of one point (a last-block measure at each size) side by side, so that no error bar
    # hides another; the hover gives the true depth
    alone = [key for key, pts in ordered if len(pts) == 1]
    dodge = {key: (i - (len(alone) - 1) / 2) * SIDE_BY_SIDE for i, key in enumerate(alone)}
    for (rep, k, zi), pts in ordered:
        pts = sorted(pts, key=lambda r: (r.rel_depth, r.block))
        name = _label_rep(rep, k, several_k) + (f" · {sizes[zi]}" if other_sizes else "")
        colour = rep_colour(rep, reps)
        xs = [round(p.rel_depth + dodge.get((rep, k, zi), 0.0), 6) for p in pts]
        with_band = [p for p in pts if getattr(p, "lo", None) is not None and getattr(p, "hi", None) is not None]
        # a band through one point has no width: one point's interval is an error bar (a measure of the
        # last block only, e.g. CKA or pseudo-masks, with the resolution axis's lines beside it)
        bars = {**_bar_errors(pts), "color": colour} if len(with_band) == 1 else None
        if len(with_band) > 1:
            traces.append(_band([round(p.rel_depth, 6) for p in with_band], [p.lo for p in with_band],
                                [p.hi for p in with_band], colour, name, _t(f"{name} · {band}")))
        traces.append(
            go.Scatter(
                x=xs,
                y=[p.value for p in pts],
                customdata=[[p.block, _interval_text(getattr(p, "lo", None), getattr(p, "hi", None)), p.rel_depth]
                            for p in pts],
                mode="lines+markers",
                name=_t(name),
                legendgroup=name,
                line={"color": colour, "dash": DASHES[klist.index(k) % len(DASHES)], "width": 2 if zi == 0 else 1.2},
                marker={"symbol": SIZE_MARKERS[zi % len(SIZE_MARKERS)]},
                error_y=bars,
                hovertemplate=(
                    f"<b>{_t(name)}</b><br>block %{{customdata[0]}} · rel. depth %{{customdata[2]:.2f}}"
                    f"<br>{_t(measure)} = %{{y:.4g}}%{{customdata[1]}}<extra></extra>"
                ),
            )
        )
        for ref, dash in REFERENCE_DASH.items() if zi == 0 else ():  # references: at the main resolution
            ref_pts = sorted((x for x in references if x.representation == rep and x.k == k and x.reference == ref),
                             key=lambda r: (r.rel_depth, r.block))
            if ref_pts:
                # one legend entry per reference kind (clicking it toggles the reference of every representation)
                first = not any(t.legendgroup == ref for t in traces)
                traces.append(go.Scatter(
                    x=[round(p.rel_depth, 6) for p in ref_pts], y=[p.value for p in ref_pts], mode="lines",
                    name=_t(f"{ref} reference{at_main}"), legendgroup=ref, showlegend=first,
                    line={"color": colour, "dash": dash, "width": 1},
                    hovertemplate=f"<b>{_t(name)} · {_t(ref)} reference</b><br>rel. depth %{{x:.2f}}"
                                  f"<br>{_t(measure)} = %{{y:.4g}}<extra></extra>"))
    traces = behind_and_over(traces, baseline_lines(baselines, measure, suffix=at_main))
    every = [p for pts in series.values() for p in pts]
    shown = [p.value for p in every] + [v for p in every for v in (getattr(p, "lo", None), getattr(p, "hi", None))]
    shown += [x.value for x in references] + [b.value for b in baselines]
    legend = {"legend": {"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0.0}, "height": 540} if other_sizes else {}
    return _layout(traces, f"{measure} — {model_label}", DEPTH_AXIS, measure,
                   x={"range": [-0.03, 1.03]}, y=value_axis(bounds, shown), **legend)


def against_size_figure(series: dict[str, Sequence[tuple[int, int, Any]]], measure: str,
                        bounds: Sequence[float | None] | None = None) -> go.Figure:
    """One measure against input size (the resolution axis): one line per model, its intervals as
    error bars. ``series``: ``{model label: [(input height px, patches a side, row)]}``."""
    traces, shown = [], []
    for label, pts in series.items():
        rows = [p[2] for p in pts]
        shown += [v for r in rows for v in (r.value, getattr(r, "lo", None), getattr(r, "hi", None))]
        traces.append(go.Scatter(
            x=[p[0] for p in pts], y=[r.value for r in rows], mode="lines+markers", name=_t(label),
            error_y=_bar_errors(rows),
            customdata=[[patches, r.block, _interval_text(getattr(r, "lo", None), getattr(r, "hi", None))]
                        for _, patches, r in pts],
            hovertemplate=(f"<b>{_t(label)}</b><br>%{{x}} px · %{{customdata[0]}} patches a side · block "
                           f"%{{customdata[1]}}<br>{_t(measure)} = %{{y:.4g}}%{{customdata[2]}}<extra></extra>")))
    return _layout(traces, f"{measure} — against input size", "input height (px)", measure,
                   y=value_axis(bounds, shown))


def _bar_errors(items: Sequence[Any]) -> dict[str, Any] | None:
    lo = [getattr(i, "lo", None) for i in items]
    hi = [getattr(i, "hi", None) for i in items]
    if all(v is None for v in lo + hi):
        return None
    return {"type": "data", "symmetric": False, "color": "rgba(90,90,90,0.9)", "thickness": 1.5,
            "array": [(h - i.value) if h is not None else 0 for i, h in zip(items, hi)],
            "arrayminus": [(i.value - v) if v is not None else 0 for i, v in zip(items, lo)]}


def single_block_figure(rows: Sequence[Any], measure: str, model_label: str, baselines: Sequence[Any] = (),
                        level: float = 0.95, bounds: Sequence[float | None] | None = None) -> go.Figure:
    """A measure taken at one block only (pseudo-masks, similarity under masking): one bar per
    representation (and K) with its interval, then one grey bar per baseline."""
    rows = sorted(rows, key=lambda r: (r.representation, r.k or 0))
    several_k = len({r.k for r in rows}) > 1
    reps = list(dict.fromkeys(r.representation for r in rows))
    block = rows[0].block if rows else 0
    names = [_t(_label_rep(r.representation, r.k, several_k)) for r in rows]
    traces = [go.Bar(
        x=names, y=[r.value for r in rows], name=_t(f"block {block}"), error_y=_bar_errors(rows),
        marker={"color": [rep_colour(r.representation, reps) for r in rows]},
        customdata=[_interval_text(r.lo, r.hi) for r in rows], showlegend=False,
        hovertemplate=f"<b>%{{x}}</b> · block {block}<br>{_t(measure)} = %{{y:.4g}}%{{customdata}}<extra></extra>")]
    traces += baseline_bars(baselines, measure)
    shown = [r.value for r in rows] + [v for r in [*rows, *baselines] for v in (r.lo, r.hi)]
    shown += [b.value for b in baselines]
    return _layout(traces, f"{measure} at block {block} — {model_label}",
                   f"representation (bars: {level_percent(level)} intervals)", measure,
                   y=value_axis(bounds, shown), x={"type": "category"}, bargap=0.35)


def cluster_size_figure(runs: Sequence[Any], model_label: str) -> go.Figure:
    """Distribution of cluster sizes (share of all tokens) per block, per representation.

    One box per (block, representation); a dropdown switches K when the model has several.
    """
    ks = sorted({r.k for r in runs})
    reps = sorted({r.representation for r in runs}, key=lambda x: [r.representation for r in runs].index(x))
    traces = []
    trace_k: list[int] = []
    for k in ks:
        for ri, rep in enumerate(reps):
            xs: list[str] = []
            ys: list[float] = []
            cd: list[list[Any]] = []
            for run in sorted((r for r in runs if r.k == k and r.representation == rep), key=lambda r: r.block):
                total = float(sum(run.sizes)) or 1.0
                for cid, size in enumerate(run.sizes):
                    xs.append(f"block {run.block}")
                    ys.append(size / total)
                    cd.append([cid, int(size), run.block])
            if not xs:
                continue
            traces.append(
                go.Box(
                    x=xs,
                    y=ys,
                    customdata=cd,
                    name=_t(rep),
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"size": 4, "color": rep_colour(rep, reps)},
                    line={"color": rep_colour(rep, reps)},
                    visible=(k == ks[len(ks) // 2]),
                    hovertemplate=(
                        f"<b>{_t(rep)}</b> · K={k}<br>block %{{customdata[2]}} · cluster %{{customdata[0]}}"
                        "<br>%{customdata[1]} tokens (%{y:.1%})<extra></extra>"
                    ),
                )
            )
            trace_k.append(k)
    extra: dict[str, Any] = {"boxmode": "group"}
    if len(ks) > 1:
        buttons = [
            {
                "label": f"K = {k}",
                "method": "update",
                "args": [{"visible": [tk == k for tk in trace_k]}],
            }
            for k in ks
        ]
        extra["updatemenus"] = [{"buttons": buttons, "active": len(ks) // 2, "x": 1.0, "xanchor": "right",
                                 "y": 1.12, "yanchor": "bottom", "direction": "down"}]
    # No x-axis title: the tick labels already say "block n", and the legend sits there.
    return _layout(traces, f"Cluster sizes per block — {model_label}", "", "share of all patch tokens",
                   y={"tickformat": ".0%", "rangemode": "tozero"}, **extra)


def _cluster_colours(k: int) -> list[list[Any]]:
    """A stepped colorscale: cluster id i in ``[i - 0.5, i + 0.5]`` gets the gallery's colour i."""
    colours = palette_hex(max(k, 1))
    scale: list[list[Any]] = []
    for i, c in enumerate(colours):
        scale += [[i / len(colours), c], [(i + 1) / len(colours), c]]
    return scale


def heatmap_figure(payload: dict[str, Any], model_label: str) -> go.Figure:
    """A 2D map (e.g. per-patch statistic); hover shows image, patch row/col, value, label.

    A cluster map (``z`` are the cluster ids) is drawn in the gallery's categorical palette, with
    integer ids in the hover and no colour bar. With ``x_labels`` / ``y_labels`` (e.g. the masking
    variants of a similarity matrix) the axes are categorical, ticked and hovered with those labels
    instead of patch row/col.
    """
    z = payload["z"]
    rows = len(z)
    cols = len(z[0]) if rows else 0
    image = payload.get("image") or "all images"
    labels = payload.get("labels")
    clusters = labels is not None and labels == z
    zlabel = payload.get("zlabel") or "value"
    x_labels = [_t(v) for v in payload.get("x_labels") or []]
    y_labels = [_t(v) for v in payload.get("y_labels") or []]
    categorical = len(x_labels) == cols and len(y_labels) == rows and rows > 0
    custom = [[[_t(image), (labels[i][j] if labels else "")] for j in range(cols)] for i in range(rows)]
    where = "%{y} × %{x}" if categorical else "patch row %{y}, col %{x}"
    if clusters:
        hover = f"{_t('image')}: %{{customdata[0]}}<br>{where}<br>cluster %{{customdata[1]}}"
        k = max((max(r) for r in z if r), default=0) + 1
        colour = {"colorscale": _cluster_colours(k), "zmin": -0.5, "zmax": k - 0.5, "showscale": False}
    else:
        hover = f"{_t('image')}: %{{customdata[0]}}<br>{where}<br>{_t(zlabel)} = %{{z:.4g}}"
        if labels:
            hover += "<br>cluster %{customdata[1]}"
        colour = {"colorscale": payload.get("colorscale") or "Viridis",
                  "colorbar": {"title": {"text": _t(zlabel), "side": "right"}}}
    axes = {"x": x_labels, "y": y_labels} if categorical else {}
    trace = go.Heatmap(z=z, **axes, customdata=custom, hovertemplate=hover + "<extra></extra>", **colour)
    x_axis = {"constrain": "domain"}
    y_axis = {"autorange": "reversed", "scaleanchor": "x", "constrain": "domain"}
    parts = [payload.get("title") or payload.get("id", "")]
    # block and representation, unless the title already names them
    if payload.get("block") is not None and f"block {payload['block']} " not in parts[0].lower():
        parts.append(f"block {payload['block']}")
    if payload.get("representation") and f" {payload['representation']}" not in parts[0].lower():
        parts.append(str(payload["representation"]))
    title = " · ".join(str(p) for p in parts) + f" — {model_label}"
    if categorical:
        return _layout([trace], title, payload.get("xaxis") or "", payload.get("yaxis") or "",
                       x={**x_axis, "type": "category", "tickangle": -30}, y={**y_axis, "type": "category"})
    return _layout([trace], title, "patch column", "patch row", x=x_axis, y=y_axis)


def curve_figure(payload: dict[str, Any], model_label: str, baselines: Sequence[Any] = (),
                 baseline_suffix: str = " baseline", level: float = 0.95) -> go.Figure:
    """Generic x/y curves, one line per named series, its interval (the payload's ``lo`` / ``hi``
    of the series, where it has them) as a band of ``level``; ``baselines`` (Baseline records) as
    grey horizontal reference lines across the x range, each named ``<baseline><baseline_suffix>``."""
    traces = []
    x = payload.get("x", [])
    # named x values (video sequences) have no order between them: points, not a line through them
    categorical = any(not isinstance(v, (int, float)) for v in x)
    shown_x = [_t(v) for v in x] if categorical else x  # names (e.g. from folder names) are escaped
    lows, highs = payload.get("lo") or {}, payload.get("hi") or {}
    bounds_shown = []
    for i, (name, ys) in enumerate(payload.get("series", {}).items()):
        colour = PALETTE[i % len(PALETTE)]
        lo, hi = lows.get(name) or [None] * len(ys), highs.get(name) or [None] * len(ys)
        banded = [j for j in range(len(ys)) if lo[j] is not None and hi[j] is not None]
        if banded and not categorical:
            traces.append(_band([x[j] for j in banded], [lo[j] for j in banded], [hi[j] for j in banded], colour,
                                _t(name), _t(f"{name} · {level_percent(level)} interval")))
            bounds_shown += [v for j in banded for v in (lo[j], hi[j])]
        traces.append(
            go.Scatter(
                x=shown_x,
                y=ys,
                customdata=[_interval_text(a, b) for a, b in zip(lo, hi)],
                mode="markers" if categorical else "lines+markers",
                name=_t(name),
                legendgroup=_t(name),
                # a dash, a marker and a narrower line per series: where two series coincide (the
                # shift test's lines of maps that follow neither content nor position) both stay visible
                line={"color": colour, "dash": DASHES[i % len(DASHES)], "width": max(1.2, 3.0 - 0.6 * i)},
                marker={"size": 9 if categorical else 7, "symbol": SIZE_MARKERS[i % len(SIZE_MARKERS)]},
                hovertemplate=f"<b>{_t(name)}</b><br>%{{x}}: %{{y:.4g}}%{{customdata}}<extra></extra>",
            )
        )
    xs = [float(v) for v in x if isinstance(v, (int, float)) and v == v]
    for b in baselines if xs else ():
        colour, dash = BASELINE_STYLE.get(b.name, ("#757575", "dash"))
        name = f"{baseline_label(b)}{baseline_suffix}"
        traces.append(go.Scatter(
            x=[min(xs), max(xs)], y=[b.value, b.value], mode="lines", name=_t(name),
            line={"color": colour, "dash": dash, "width": 1.5},
            hovertemplate=f"<b>{_t(name)}</b><br>{b.value:.4g}{_t(_interval_text(b.lo, b.hi))}<extra></extra>"))
    title = f"{payload.get('title') or payload.get('id', '')} — {model_label}"
    shown = [v for ys in payload.get("series", {}).values() for v in ys] + bounds_shown
    shown += [b.value for b in baselines] if xs else []
    return _layout(traces, title, payload.get("xaxis", "x"), payload.get("yaxis", "y"),
                   y=value_axis(payload.get("bounds"), shown), x={"type": "category"} if categorical else None)


# --------------------------------------------------------------------------- baselines


def _has_value(b: Any) -> bool:
    try:
        return math.isfinite(float(b.value))
    except (TypeError, ValueError):
        return False


def baseline_lines(baselines: Sequence[Any], measure: str, *, suffix: str = "", colour: str | None = None,
                   about: str = "", x: Sequence[float] = (0.0, 1.0)) -> list[go.Scatter]:
    """The evaluation baselines (``Baseline`` records) as horizontal lines across ``x``, a grey level
    and a dash per baseline (:data:`BASELINE_STYLE`), each named ``<baseline> baseline<suffix>``,
    its interval a faint band of its colour (toggled with its line) and in the hover. ``colour``
    replaces the grey (comparisons: one shade per patch grid); ``about`` is a hover line (the
    models the baseline belongs to). A baseline without a finite value draws nothing."""
    traces = []
    for b in baselines:
        if not _has_value(b):
            continue
        grey, dash = BASELINE_STYLE.get(b.name, ("#757575", "dash"))
        name = f"{baseline_label(b)} baseline{suffix}"
        lo, hi = getattr(b, "lo", None), getattr(b, "hi", None)
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            traces.append(_band(list(x), [lo, lo], [hi, hi], colour or grey, _t(name), _t(name), alpha=0.1))
        traces.append(go.Scatter(
            x=list(x), y=[b.value, b.value], mode="lines", name=_t(name), legendgroup=_t(name),
            line={"color": colour or grey, "dash": dash, "width": 1.5},
            hovertemplate=f"<b>{_t(name)}</b>{'<br>' + _t(about) if about else ''}<br>{_t(measure)} = {b.value:.4g}"
                          f"{_t(_interval_text(b.lo, b.hi))}<extra></extra>"))
    return traces


def behind_and_over(traces: list, baselines: list) -> list:
    """``traces`` with the baselines' interval bands drawn behind them (a grey band over a model's
    coloured band would hide its colour) and the baselines' lines over them."""
    bands = [t for t in baselines if t.fill == "toself"]
    return bands + list(traces) + [t for t in baselines if t.fill != "toself"]


def baseline_bars(baselines: Sequence[Any], measure: str, *, suffix: str = "", name: str = "baselines",
                  outline: str | None = None, about: str = "", horizontal: bool = False) -> list[go.Bar]:
    """The evaluation baselines as one trace of grey bars (one per baseline) with their intervals as
    error bars, each labelled ``<baseline> baseline<suffix>``. ``outline``: a border colour and a
    legend entry named ``name`` (comparisons: one trace per patch grid); ``about`` is a hover line.
    ``horizontal``: bars along x, labels on the y axis in lines of :data:`BAR_LABEL_WIDTH` characters."""
    shown = [b for b in baselines if _has_value(b)]
    if not shown:
        return []
    extra = {"showlegend": False}
    marker: dict[str, Any] = {"color": [BASELINE_STYLE.get(b.name, ("#757575", ""))[0] for b in shown]}
    if outline:
        marker["line"] = {"color": outline, "width": 2.5}
        extra = {"showlegend": True}
    labels = [f"{baseline_label(b)} baseline{suffix}" for b in shown]
    values, errors = [b.value for b in shown], _bar_errors(shown)
    if horizontal:
        label, value = "y", "x"
        axes = {"y": [_model_tick(t, BAR_LABEL_WIDTH) for t in labels], "x": values, "error_x": errors,
                "orientation": "h"}
    else:
        label, value = "x", "y"
        axes = {"x": [_t(t) for t in labels], "y": values, "error_y": errors}
    return [go.Bar(
        **axes, name=_t(name), marker=marker, customdata=[_interval_text(b.lo, b.hi) for b in shown],
        hovertemplate=f"<b>%{{{label}}}</b>{'<br>' + _t(about) if about else ''}<br>{_t(measure)} = %{{{value}:.4g}}"
                      "%{customdata}<extra></extra>", **extra)]


def baseline_groups(models: Iterable[Any], measure: str) -> list[dict[str, Any]]:
    """The baselines of ``measure`` that ``models`` (``ModelResult``) carry, one group per patch grid
    (models of one grid share their baselines): ``[{"grid": words, "models": [slugs],
    "baselines": [Baseline]}]`` in model order. A model without baselines of the measure is in no
    group: nothing is drawn for it."""
    groups: dict[Any, dict[str, Any]] = {}
    for m in models:
        own = [b for b in m.baselines if b.measure == measure and _has_value(b)]
        if not own:
            continue
        numbers = tuple(sorted((((str(b.name), str(getattr(b, "variant", "") or "")), float(b.value), b.lo, b.hi)
                                for b in own), key=lambda t: (t[0], t[1])))
        key = (grid_words(m.card, getattr(own[0], "grid", None)), numbers)
        groups.setdefault(key, {"grid": key[0], "models": [], "baselines": own})["models"].append(m.card.slug)
    return list(groups.values())


def _few(names: Sequence[str], most: int = 3) -> str:
    return ", ".join(names) if len(names) <= most else f"{', '.join(names[:most])} and {len(names) - most} more"


def _grid_groups(groups: Sequence[dict[str, Any]], models: Sequence[str],
                 labels: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """The baseline groups of the models drawn in a comparison plot (``models``, in their order),
    each with its legend suffix, colour and hover line, and whether they need telling apart: one
    grid covering every drawn model is drawn as on a model page (grey, no suffix)."""
    drawn = []
    for g in groups:
        mine = [s for s in g["models"] if s in models]
        if mine and g["baselines"]:
            drawn.append({**g, "models": mine})
    plain = len(drawn) == 1 and set(drawn[0]["models"]) == set(models)
    grids = [g["grid"] for g in drawn]
    for g in drawn:
        names = [labels.get(s, s) for s in g["models"]]
        words = g["grid"] if grids.count(g["grid"]) == 1 else f"{g['grid']}, {_few(names)}"
        g["suffix"] = "" if plain else f" · {words}"
        g["about"] = "" if plain else f"{g['grid']}: {_few(names)}"
        g["colour"] = None if plain or len(drawn) == 1 else GRID_SHADES[drawn.index(g) % len(GRID_SHADES)]
    return drawn, not plain


def comparison_measure_figure(
    rows: Iterable[dict[str, Any]], measure: str, labels: dict[str, str], title_suffix: str,
    bounds: Sequence[float | None] | None = None, baselines: Sequence[dict[str, Any]] = (),
    references: Iterable[dict[str, Any]] = (),
) -> go.Figure:
    """One measure across depth overlaid across models: colour = model, dash = representation,
    intervals as bands; a comparison of one model's representations colours them as its model
    page does (:func:`rep_colour`, solid lines). When every model has the measure at one block
    only, one bar per model (and representation) with its interval.

    ``labels`` maps model slug -> display label (random-init models carry their label).
    ``references``: rows like ``rows`` with a ``reference`` ("content-only", "position-only"): the
    positional references of each model's line, thin lines in its colour, hidden until their legend
    entry (one per kind, toggling every model's) is clicked: with several models they would hide
    the lines they stand beside.
    ``baselines``: :func:`baseline_groups` of the measure, drawn as on the model pages (grey lines,
    or bars, with their intervals in the hover / as error bars). When the drawn models do not all
    share one grid's baselines, each grid's are named by the grid in the legend (and drawn in a
    shade of their own, :data:`GRID_SHADES`, when there are several grids); a model without
    baselines gets none.
    """
    rows = list(rows)
    if rows and len({(r["model"], r["representation"]) for r in rows}) == len(rows):
        return _comparison_bars(rows, measure, labels, title_suffix, bounds, baselines)
    models = list(dict.fromkeys(r["model"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    series: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        series[(r["model"], r["representation"])].append(r)
    one_model = len(models) == 1
    traces = []
    for m in models:
        for rep in reps:
            pts = sorted(series.get((m, rep), []), key=lambda r: (r["rel_depth"], r.get("block", 0)))
            if not pts:
                continue
            name = labels.get(m, m) + (f" · {rep}" if len(reps) > 1 else "")
            colour = series_colour(m, rep, models, reps)
            banded = [p for p in pts if p.get("lo") is not None and p.get("hi") is not None]
            if banded:
                traces.append(_band([round(float(p["rel_depth"]), 6) for p in banded], [p["lo"] for p in banded],
                                    [p["hi"] for p in banded], colour, name, _t(name), alpha=0.12))
            traces.append(
                go.Scatter(
                    x=[round(float(p["rel_depth"]), 6) for p in pts],
                    y=[p["value"] for p in pts],
                    customdata=[[p.get("block", ""), _interval_text(p.get("lo"), p.get("hi"))] for p in pts],
                    mode="lines+markers",
                    name=_t(name),
                    legendgroup=name,
                    line={"color": colour, "dash": "solid" if one_model else DASHES[reps.index(rep) % len(DASHES)]},
                    hovertemplate=(
                        f"<b>{_t(name)}</b><br>block %{{customdata[0]}} · rel. depth %{{x:.2f}}"
                        f"<br>{_t(measure)} = %{{y:.4g}}%{{customdata[1]}}<extra></extra>"
                    ),
                )
            )
    references = [r for r in references if r["model"] in models and r["representation"] in reps]
    for m in models:
        for rep in reps:
            for ref, dash in REFERENCE_DASH.items():
                pts = sorted((r for r in references if (r["model"], r["representation"], r["reference"]) == (m, rep, ref)),
                             key=lambda r: (r["rel_depth"], r.get("block", 0)))
                if not pts:
                    continue
                name = labels.get(m, m) + (f" · {rep}" if len(reps) > 1 else "")
                first = not any(t.legendgroup == ref for t in traces)  # one legend entry per reference kind
                traces.append(go.Scatter(
                    x=[round(float(p["rel_depth"]), 6) for p in pts], y=[p["value"] for p in pts], mode="lines",
                    name=_t(f"{ref} references"), legendgroup=ref, showlegend=first, visible="legendonly",
                    line={"color": series_colour(m, rep, models, reps), "dash": dash, "width": 1},
                    customdata=[[p.get("block", ""), _interval_text(p.get("lo"), p.get("hi"))] for p in pts],
                    hovertemplate=(f"<b>{_t(name)} · {_t(ref)} reference</b><br>block %{{customdata[0]}} · rel. "
                                   f"depth %{{x:.2f}}<br>{_t(measure)} = %{{y:.4g}}%{{customdata[1]}}<extra></extra>")))
    groups, _ = _grid_groups(baselines, models, labels)
    for g in groups:
        traces = behind_and_over(traces, baseline_lines(g["baselines"], measure, suffix=g["suffix"], colour=g["colour"],
                                                        about=g["about"]))
    shown = [r["value"] for r in rows] + [r.get(x) for r in rows for x in ("lo", "hi")]
    shown += [b.value for g in groups for b in g["baselines"]] + [r["value"] for r in references]
    return _layout(traces, f"{measure} — {title_suffix}", DEPTH_AXIS, measure,
                   x={"range": [-0.03, 1.03]}, y=value_axis(bounds, shown))


#: Characters per line of a horizontal bar's label (model names are long: "ViT-S/16 learned-abs + CLS
#: (DINO arch) (random init — architecture baseline)"), and the height of a label line and of a bar.
BAR_LABEL_WIDTH, BAR_LINE_PX, BAR_MIN_PX = 40, 15, 30


def _comparison_bars(rows: list[dict[str, Any]], measure: str, labels: dict[str, str], title_suffix: str,
                     bounds: Sequence[float | None] | None, baselines: Sequence[dict[str, Any]] = ()) -> go.Figure:
    """One horizontal bar per model (and representation) with its interval, then the baselines: the
    models' names, long as they are, stay level and readable on the y axis, first model on top."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    several = len(reps) > 1
    names = [_model_tick(labels.get(r["model"], r["model"]) + (f" · {r['representation']}" if several else ""),
                         BAR_LABEL_WIDTH) for r in rows]
    items = [SimpleNamespace(value=r["value"], lo=r.get("lo"), hi=r.get("hi")) for r in rows]
    trace = go.Bar(
        y=names, x=[r["value"] for r in rows], error_x=_bar_errors(items), orientation="h", showlegend=False,
        marker={"color": [series_colour(r["model"], r["representation"], models, reps) for r in rows]},
        customdata=[[r.get("block", ""), _interval_text(r.get("lo"), r.get("hi"))] for r in rows],
        hovertemplate=f"<b>%{{y}}</b><br>block %{{customdata[0]}}<br>{_t(measure)} = %{{x:.4g}}%{{customdata[1]}}"
                      "<extra></extra>")
    traces = [trace]
    groups, apart = _grid_groups(baselines, models, labels)
    for g in groups:
        traces += baseline_bars(g["baselines"], measure, suffix=g["suffix"], about=g["about"], horizontal=True,
                                name=f"baselines{g['suffix']}", outline=g["colour"] if apart else None)
    shown = [r["value"] for r in rows] + [r.get(x) for r in rows for x in ("lo", "hi")]
    shown += [v for g in groups for b in g["baselines"] for v in (b.value, b.lo, b.hi)]
    # Plotly gives every category the same slot: the tallest label sets it
    labels_shown = [label for t in traces for label in t.y]
    slot = max(BAR_MIN_PX, BAR_LINE_PX * max(label.count("<br>") + 1 for label in labels_shown) + 12)
    plot_px = slot * len(labels_shown)
    return _layout(traces, f"{measure} — {title_suffix}", measure, "",
                   x=value_axis(bounds, shown), y={"type": "category", "autorange": "reversed"}, bargap=0.3,
                   height=plot_px + 170, legend={"y": round(-75 / plot_px, 4)})  # legend 75 px below the plot


def _model_tick(label: str, width: int = 24) -> str:
    """A model's label on an axis tick, escaped, in lines of at most ``width`` characters (ticks stay
    level and clear of each other); the random-init label, verbatim, on a line of its own."""
    tail = f" ({RANDOM_INIT_LABEL})"
    head, random = (label[:-len(tail)], True) if label.endswith(tail) else (label, False)
    head = re.sub(r"(\d) (?=px\b)", "\\1\u00a0", head)  # "16 px" stays on one line
    lines = textwrap.wrap(head, width, break_long_words=False) or [head]
    return "<br>".join([*map(_t, lines), *([_t(tail.strip())] if random else [])])


def _size_ticks(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ticks of the parameter axis at the models' sizes, each naming its models (their labels,
    the random-init label included) and the size."""
    sizes = sorted({int(p["params"]) for p in points})
    if not sizes:
        return {"tickmode": "array", "tickvals": [], "ticktext": []}
    text = []
    for size in sizes:
        names = dict.fromkeys(p["label"] for p in points if int(p["params"]) == size)
        text.append("<br>".join([*(_model_tick(n) for n in names), f"{size / 1e6:.1f} M"]))
    # labels are centred on their ticks and Plotly hides one that would stick out of the figure: the
    # range (log10 units) leaves at least a quarter of the axis beyond the smallest and largest model
    lo, hi = math.log10(sizes[0]), math.log10(sizes[-1])
    pad = max((hi - lo) / 2, 0.25)
    return {"tickmode": "array", "tickvals": sizes, "ticktext": text, "tickangle": 0,
            "range": [round(lo - pad, 4), round(hi + pad, 4)]}


def scaling_figure(points: Iterable[dict[str, Any]], measure: str, title_suffix: str,
                   bounds: Sequence[float | None] | None = None,
                   baselines: Sequence[dict[str, Any]] = ()) -> go.Figure:
    """One measure against model size: x = parameter count (log axis, ticked with the models'
    labels, the random-init label included), one line per matched relative depth, the points'
    intervals as error bars. ``points``: ``{"target", "model", "label", "params", "block",
    "rel_depth", "value", "lo", "hi", "references"}`` (``target`` is the matched relative depth
    the point stands for; ``references``: ``{"content-only" | "position-only": {"value", "lo",
    "hi"}}``, the positional references at the point's block, drawn as thin lines of the depth's
    colour). ``baselines``: :func:`baseline_groups` of the measure, drawn as grey lines across the
    sizes of the models they belong to (named by their grid where the models' grids differ).
    """
    points = list(points)
    targets = sorted({float(p["target"]) for p in points})
    traces = []
    shown: list[Any] = []
    for i, target in enumerate(targets):
        pts = sorted((p for p in points if float(p["target"]) == target), key=lambda p: (p["params"], p["label"]))
        name = f"rel. depth {target:.2f}"
        colour = PALETTE[i % len(PALETTE)]
        items = [SimpleNamespace(value=p["value"], lo=p.get("lo") if p["value"] is not None else None,
                                 hi=p.get("hi") if p["value"] is not None else None) for p in pts]
        errors = _bar_errors(items)
        shown += [v for it in items for v in (it.value, it.lo, it.hi)]
        traces.append(
            go.Scatter(
                x=[int(p["params"]) for p in pts],
                y=[p["value"] for p in pts],
                error_y={**errors, "color": colour} if errors else None,
                customdata=[[_t(p["label"]), f"{p['params'] / 1e6:.1f} M", p["block"],
                             round(float(p["rel_depth"]), 4), _interval_text(it.lo, it.hi) or " (no interval)"]
                            for p, it in zip(pts, items)],
                mode="lines+markers",
                name=_t(name),
                legendgroup=name,
                line={"color": colour, "dash": DASHES[i % len(DASHES)], "width": max(1.2, 3.0 - 0.6 * i)},
                hovertemplate=(
                    f"<b>%{{customdata[0]}}</b><br>%{{customdata[1]}} parameters"
                    f"<br>block %{{customdata[2]}} (rel. depth %{{customdata[3]:.2f}}, matched to {target:.2f})"
                    f"<br>{_t(measure)} = %{{y:.4g}}%{{customdata[4]}}<extra></extra>"
                ),
            )
        )
        for ref, dash in REFERENCE_DASH.items():
            ref_pts = [(p, (p.get("references") or {})[ref]) for p in pts
                       if (p.get("references") or {}).get(ref) and p["references"][ref].get("value") is not None]
            if not ref_pts:
                continue
            first = not any(t.legendgroup == ref for t in traces)  # one legend entry per reference kind
            shown += [r["value"] for _, r in ref_pts]
            traces.append(go.Scatter(
                x=[int(p["params"]) for p, _ in ref_pts], y=[r["value"] for _, r in ref_pts], mode="lines+markers",
                name=_t(f"{ref} reference"), legendgroup=ref, showlegend=first,
                line={"color": colour, "dash": dash, "width": 1}, marker={"size": 4},
                customdata=[[_t(p["label"]), p["block"], _interval_text(r.get("lo"), r.get("hi"))] for p, r in ref_pts],
                hovertemplate=(f"<b>%{{customdata[0]}} · {_t(ref)} reference</b><br>block %{{customdata[1]}} "
                               f"(matched to {target:.2f})<br>{_t(measure)} = %{{y:.4g}}%{{customdata[2]}}"
                               "<extra></extra>")))
    order = sorted(points, key=lambda p: (p["params"], p["label"]))
    models = list(dict.fromkeys(p.get("model", p["label"]) for p in order))
    labels = {p.get("model", p["label"]): p["label"] for p in order}
    groups, _ = _grid_groups(baselines, models, labels)
    for g in groups:  # grey (colour tells the depths apart); each grid's lines span its models' sizes
        sizes = [int(p["params"]) for p in order if p.get("model", p["label"]) in g["models"]]
        lo, hi = min(sizes), max(sizes)
        span = (lo, hi) if lo < hi else (lo / 1.15, hi * 1.15)
        traces = behind_and_over(traces, baseline_lines(g["baselines"], measure, suffix=g["suffix"], about=g["about"],
                                                        x=span))
        shown += [b.value for b in g["baselines"]]
    ticks = _size_ticks(points)
    lines = max((t.count("<br>") + 1 for t in ticks["ticktext"]), default=1)
    legend = {"orientation": "h", "yanchor": "top", "y": round(-0.2 - 0.06 * lines, 3), "x": 0.0}
    return _layout(traces, f"{measure} vs model size — {title_suffix}", "parameters (log scale)", measure,
                   x={"type": "log", **ticks}, y=value_axis(bounds, shown), legend=legend,
                   height=460 + 16 * (lines - 1))  # the plot taller than a two-line axis title under its tick lines


def figure(fig: go.Figure, page_slug: str, anchor: str, title: str, caption: str = "", raw: str = "") -> dict[str, Any]:
    """A figure for the pages' ``ui.figure`` macro: ``title`` heads the caption, ``caption``
    follows it, ``raw`` (a measure's raw name, as in the CSV) is shown when it differs. The plot's
    container is labelled for assistive technology with the plot's own title (what it shows and
    for which model or comparison), else ``title``."""
    label = plain_title(fig) or str(title)
    return {
        "anchor": anchor,
        "title": title,
        "caption": caption,
        "raw": raw if raw != title else "",
        "label": label,
        "html": Markup(figure_html(fig, div_id=f"plot-{page_slug}-{anchor}", filename=f"{page_slug}-{anchor}",
                                   label=label)),
        "height": int(fig.layout.height or 420),
    }


def has_values(values: Sequence[Any]) -> bool:
    """Whether any of ``values`` is a finite number (a measure undefined everywhere gets no plot)."""
    return any(v is not None and math.isfinite(float(v)) for v in values)


def undefined_measure(anchor: str, name: str, info: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """In place of a measure's plot (the ``ui.figure`` macro): the measure has no finite value
    ``where`` (e.g. "at any block of this model"); its definition says when it is undefined."""
    return {"anchor": anchor, "title": measure_title(info, name), "raw": name,
            "undefined": f"undefined {where}.", "caption": measure_definition(info, name)}


def measure_figure(fig: go.Figure, page_slug: str, anchor: str, name: str, info: dict[str, dict[str, Any]],
                   note: str = "") -> dict[str, Any]:
    """:func:`figure` of one measure, titled and explained from ``measure_info``."""
    caption = " ".join(t for t in (measure_definition(info, name), note) if t)
    return figure(fig, page_slug, anchor, measure_title(info, name), caption, name)
