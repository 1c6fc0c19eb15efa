"""The site layer: ``AtlasResults`` -> Markdown pages + data files -> MkDocs-material site.

Two steps, so the (slow) pipeline and the (fast) site build stay decoupled::

    paths = render_site(results, Path("site_src"))   # pages, CSV/JSON downloads, atlas.json
    site = build_site("mkdocs.yml")                   # mkdocs build --strict -> site/

URLs are stable and portable: ``use_directory_urls: false`` gives ``models/<slug>.html`` that
also works from ``file://``; slugs come from the records (themselves slugs of display names).
Every string that comes from a config or a file name is HTML-escaped (Jinja autoescape), and
escaped for Markdown where it lands in Markdown text.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import io
import json
import math
import os
import posixpath
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import __version__
from .figures import (
    cluster_size_figure,
    comparison_measure_figure,
    curve_figure,
    figure_html,
    heatmap_figure,
    layer_sweep_figure,
    scaling_figure,
)
from .results import RANDOM_INIT_LABEL, AtlasResults, ComparisonResult, MeasureRow, ModelCard, ModelResult

__all__ = ["build_site", "serve_site", "measure_section", "measure_title", "model_label", "page_weight", "render_site", "slugify"]

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = REPO_ROOT / "templates" / "pages"
STATIC_SRC = REPO_ROOT / "site_src"  # committed static assets and hand-written guide pages
STATIC_DIRS = ("assets", "guide")
NAV_FILE = ".atlas-nav.json"  # dot-file: read by build_site, never published

SECTIONS = {
    "clusters": "Cluster statistics",
    "positional": "Positional behaviour",
    "evaluation": "Evaluation",
}
# Fallback when a MeasureRow has no explicit section: keywords of the measure name.
_SECTION_KEYWORDS = {
    "evaluation": ("miou", "iou", "eval", "purity", "nmi", "ari", "accuracy", "precision",
                   "recall", "f1", "fscore", "human", "mask"),
    "positional": ("pos", "locality", "local", "boundary", "border", "artifact", "artefact",
                   "distance", "spatial", "row", "col", "centre", "center", "edge"),
}
# Scaling pages: matched relative depths of the size plots, and the family summary's columns
# (taken at relative depth 1.0; only those some model has).
SCALING_DEPTHS = (0.25, 0.5, 0.75, 1.0)
SUMMARY_MEASURES = ("positional_nce", "position_r2", "shift_content_fraction", "border_ami", "seg_miou",
                    "knn_miou_k10")
# Segmentation-quality leaderboard: generated when any model has evaluation measures; these
# measures come first (the first present ranks the table), the others follow by name.
LEADERBOARD_PAGE = "compare/segmentation-quality.md"
LEADERBOARD_TITLE = "Segmentation quality"
LEADERBOARD_FIRST = ("seg_miou", "knn_miou_k10")
LEADERBOARD_BLURB = "every model's best score on each evaluation measure, over blocks and representations."


# --------------------------------------------------------------------------- small helpers


def slugify(text: str) -> str:
    """URL slug: lowercase ASCII letters, digits and single dashes."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "item"


def model_label(card: ModelCard) -> str:
    """Display name, carrying the random-init label wherever the model's numbers appear."""
    return f"{card.display_name} ({RANDOM_INIT_LABEL})" if card.is_random_init else card.display_name


def measure_section(row: Any) -> str:
    """Section key ("clusters", "positional", "evaluation") of a measure row."""
    section = getattr(row, "section", "") or (row.get("section", "") if isinstance(row, dict) else "")
    if section in SECTIONS:
        return section
    name = (row.measure if not isinstance(row, dict) else row["measure"]).lower()
    for key in ("evaluation", "positional"):
        if any(word in name for word in _SECTION_KEYWORDS[key]):
            return key
    return "clusters"


def measure_title(info: dict[str, dict[str, str]], name: str) -> str:
    """Readable title of a measure (``AtlasResults.measure_info``), else its raw name."""
    return str((info.get(name) or {}).get("title") or name)


def _measure_desc(info: dict[str, dict[str, str]], name: str) -> str:
    return str((info.get(name) or {}).get("description") or "")


def _breakable(text: str) -> Markup:
    """HTML-escaped text that may wrap after underscores (raw snake_case measure names)."""
    return Markup(html.escape(text).replace("_", "_<wbr>"))


def _md(text: Any) -> Markup:
    """Escape for Markdown inline text, then for HTML (Markdown passes raw HTML through)."""
    s = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", str(text))
    return Markup(html.escape(s, quote=True))


def _json_script(obj: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">`` (no ``</`` can appear)."""
    s = json.dumps(_clean(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(s)


def _clean(obj: Any) -> Any:
    """Plain JSON types; NaN/inf become null so files stay strict JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buf.getvalue()


def _rel(target: str, page: str) -> str:
    """URL of docs-dir path ``target`` as seen from the page at docs-dir path ``page``."""
    target, _, frag = target.partition("#")
    rel = posixpath.relpath(target, posixpath.dirname(page) or ".") if target else ""
    url = quote(rel, safe="/")
    return url + (f"#{frag}" if frag else "")


def _html_url(md_path: str) -> str:
    return md_path[:-3] + ".html" if md_path.endswith(".md") else md_path


class _Writer:
    """Atomic writes (temp file + os.replace) that skip unchanged files, recording paths."""

    def __init__(self, root: Path):
        self.root = root
        self.paths: list[Path] = []

    def write(self, rel: str, data: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.paths.append(path)
        if path.exists() and path.read_bytes() == raw:
            return path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    env.filters["json_script"] = _json_script
    env.filters["rel"] = _rel
    env.filters["code"] = lambda t: Markup(f"<code>{html.escape(str(t)).replace('|', '&#124;')}</code>")
    # Front-matter title: MkDocs themes print page titles unescaped, so store them escaped.
    env.filters["yaml_title"] = lambda t: Markup(json.dumps(html.escape(str(t), quote=False), ensure_ascii=False))
    return env


# --------------------------------------------------------------------------- page contexts


def _model_page(m: ModelResult) -> str:
    return f"models/{slugify(m.card.slug)}.md"


def _comparison_page(c: ComparisonResult) -> str:
    return f"compare/{slugify(c.slug)}.md"


def _card_rows(card: ModelCard) -> list[tuple[str, str]]:
    return [
        ("timm name", card.timm_name),
        ("family", card.family),
        ("training", card.training),
        ("group", card.group or "—"),
        ("parameters", f"{card.params / 1e6:.1f} M"),
        ("patch size", f"{card.patch_size} px"),
        ("embedding dim", str(card.embed_dim)),
        ("depth (blocks)", str(card.depth)),
        ("heads", str(card.num_heads)),
        ("prefix tokens", str(card.num_prefix_tokens)),
        ("registers", str(card.num_registers)),
        ("CLS token", "yes" if card.has_cls else "no"),
        ("position encoding", card.pos_encoding),
        ("input size in this atlas (H × W)", " × ".join(map(str, card.input_size))),
        ("pretraining input size (H × W)", " × ".join(map(str, card.pretrained_input_size))),
        ("normalisation mean", ", ".join(f"{v:.4g}" for v in card.mean)),
        ("normalisation std", ", ".join(f"{v:.4g}" for v in card.std)),
        ("weights source", card.weights_source),
        ("weights provenance", card.provenance),
    ]


def _entry(e: Any) -> dict[str, str]:
    if isinstance(e, dict):
        return {"image": e["image"], "overlay": e["overlay"], "bare": e["bare"]}
    return {"image": e.image, "overlay": e.overlay, "bare": e.bare}


def _image_order(results: AtlasResults, names: Iterable[str]) -> list[str]:
    order = {img.name: i for i, img in enumerate(results.images)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


def _model_gallery(results: AtlasResults, m: ModelResult, page: str) -> dict[str, Any] | None:
    runs = [r for r in m.runs if r.gallery]
    if not runs:
        return None
    blocks = sorted({r.block for r in runs})
    reps = [r for r in m.representations if any(x.representation == r for x in runs)]
    reps += sorted({r.representation for r in runs} - set(reps))
    ks = sorted({r.k for r in runs})
    images = _image_order(results, (e.image for r in runs for e in r.gallery))
    depth = {r.block: r.rel_depth for r in runs}
    views: dict[str, list[Any]] = {}
    for r in runs:
        by_image = {e.image: _entry(e) for e in r.gallery}
        key = f"{blocks.index(r.block)}|{reps.index(r.representation)}|{ks.index(r.k)}"
        views[key] = [
            [_rel(by_image[n]["overlay"], page), _rel(by_image[n]["bare"], page), ""] if n in by_image else None
            for n in images
        ]
    start = [len(blocks) // 2, 0, len(ks) // 2]
    if "|".join(map(str, start)) not in views:
        start = [int(v) for v in sorted(views)[0].split("|")]
    axes = [
        {"name": "block", "label": "Block", "kind": "range",
         "labels": [f"block {b} · rel. depth {depth[b]:.2f}" for b in blocks]},
        {"name": "representation", "label": "Representation", "kind": "select", "labels": reps},
        {"name": "k", "label": "K", "kind": "select", "labels": [str(k) for k in ks]},
    ]
    for ax, idx in zip(axes, start):
        ax["start"] = idx
    first = views["|".join(map(str, start))]
    h, w = (m.card.input_size + [0, 0])[:2]
    cells = [
        {"caption": n, "src": (first[i][0] if first[i] else ""), "alt": f"cluster map of {n}"}
        for i, n in enumerate(images)
    ]
    return {
        "id": "gallery",
        "axes": axes,
        "cells": cells,
        "columns": [],
        "width": w,
        "height": h,
        "manifest": {"axes": [{"name": a["name"], "labels": a["labels"]} for a in axes], "views": views},
    }


def _comparison_gallery(results: AtlasResults, c: ComparisonResult, page: str,
                        labels: dict[str, str]) -> dict[str, Any] | None:
    panels = [p for p in c.panels if p.get("columns")]
    if not panels:
        return None
    ncol = len(panels[0]["columns"])
    heads = []
    for col in panels[0]["columns"]:
        head = col.get("label") or labels.get(col.get("model", ""), col.get("model", ""))
        if not col.get("label") and c.kind != "models" and col.get("representation"):
            head = f"{head} · {col['representation']}"
        if col.get("model") in labels and labels[col["model"]].endswith(f"({RANDOM_INIT_LABEL})") \
                and RANDOM_INIT_LABEL not in head:
            head = f"{head} ({RANDOM_INIT_LABEL})"
        heads.append(head)
    images = _image_order(results, (_entry(e)["image"] for p in panels for col in p["columns"]
                                    for e in col.get("entries", [])))
    views: dict[str, list[Any]] = {}
    axis_labels = []
    for pi, p in enumerate(panels):
        label = f"rel. depth {float(p.get('rel_depth', 0.0)):.2f}"
        if p.get("representation"):
            label += f" · {p['representation']}"
        axis_labels.append(label)
        cells: list[Any] = []
        for name in images:
            for col in p["columns"][:ncol]:
                by_image = {(_entry(e))["image"]: _entry(e) for e in col.get("entries", [])}
                e = by_image.get(name)
                cap = f"block {col['block']}" if col.get("block") is not None else ""
                cells.append([_rel(e["overlay"], page), _rel(e["bare"], page), cap] if e else None)
        views[str(pi)] = cells
    start = 0
    axes = [{"name": "depth", "label": "Matched depth", "kind": "range", "labels": axis_labels, "start": start}]
    first = views[str(start)]
    cells = []
    for i, name in enumerate(images):
        for j in range(ncol):
            v = first[i * ncol + j]
            cells.append({"caption": v[2] if v else "", "src": v[0] if v else "",
                          "alt": f"{name}: {heads[j]}", "row": name if j == 0 else ""})
    return {
        "id": "gallery",
        "axes": axes,
        "cells": cells,
        "columns": heads,
        "width": 0,
        "height": 0,
        "manifest": {"axes": [{"name": a["name"], "labels": a["labels"]} for a in axes], "views": views},
    }


def _figure(fig: Any, page_slug: str, anchor: str, title: str, caption: str = "", raw: str = "") -> dict[str, Any]:
    """A figure for ``ui.figure``: ``title`` heads the caption, ``caption`` (one sentence)
    follows it, ``raw`` (a measure's raw name, as in the CSV) is shown when it differs."""
    return {
        "anchor": anchor,
        "title": title,
        "caption": caption,
        "raw": raw if raw != title else "",
        "html": Markup(figure_html(fig, div_id=f"plot-{page_slug}-{anchor}", filename=f"{page_slug}-{anchor}")),
    }


def _measure_figure(fig: Any, page_slug: str, anchor: str, name: str,
                    info: dict[str, dict[str, str]], note: str = "") -> dict[str, Any]:
    caption = " ".join(t for t in (_measure_desc(info, name), note) if t)
    return _figure(fig, page_slug, anchor, measure_title(info, name), caption, name)


def _model_sections(m: ModelResult, label: str, info: dict[str, dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    slug = slugify(m.card.slug)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in SECTIONS}
    if any(r.sizes for r in m.runs):
        out["clusters"].append(_figure(cluster_size_figure([r for r in m.runs if r.sizes], label), slug,
                                       "fig-sizes", "Cluster sizes per block"))
    by_measure: dict[str, list[Any]] = defaultdict(list)
    for row in m.measures:
        by_measure[row.measure].append(row)
    used: set[str] = set()
    for name in sorted(by_measure):
        anchor = f"fig-measure-{slugify(name)}"
        while anchor in used:
            anchor += "-x"
        used.add(anchor)
        rows = by_measure[name]
        fig = layer_sweep_figure(rows, measure_title(info, name), label)
        out[measure_section(rows[0])].append(_measure_figure(fig, slug, anchor, name, info))
    for kind, builder in (("heatmaps", heatmap_figure), ("curves", curve_figure)):
        for payload in m.figures.get(kind, []) or []:
            anchor = f"fig-{slugify(payload.get('id', ''))}"
            while anchor in used:
                anchor += "-x"
            used.add(anchor)
            section = payload.get("section", "positional")
            section = section if section in SECTIONS else "positional"
            out[section].append(_figure(builder(payload, label), slug, anchor,
                                        str(payload.get("title") or payload.get("id", ""))))
    return out


def _comparison_rows(results: AtlasResults, c: ComparisonResult) -> list[dict[str, Any]]:
    if c.measures:
        return [dict(r) for r in c.measures]
    by_slug = {m.card.slug: m for m in results.models}
    rows = []
    for slug in c.models:
        m = by_slug.get(slug)
        if m is None:
            continue
        for r in m.measures:
            if c.representations and r.representation not in c.representations:
                continue
            if r.k is not None and c.k and r.k != c.k and any(x.k == c.k for x in m.measures):
                continue
            rows.append({"model": slug, "representation": r.representation, "measure": r.measure,
                         "rel_depth": r.rel_depth, "block": r.block, "value": r.value})
    return rows


def _fmt3(v: Any) -> str:
    v = _num(v)
    return f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else "—"


def _measure_series(m: ModelResult, name: str, reps: Iterable[str], k: int | None) -> list[MeasureRow]:
    """Rows of one measure of one model for a single representation and K: the first of
    ``reps`` (then of the model's own) that has the measure; K = ``k`` where rows carry several."""
    rows = [r for r in m.measures if r.measure == name]
    for rep in [*reps, *m.representations, *sorted({r.representation for r in rows})]:
        sel = [r for r in rows if r.representation == rep]
        if sel:
            break
    else:
        return []
    ks = {r.k for r in sel}
    if len(ks) > 1:
        want = k if k in ks else max(ks, key=lambda v: (v is not None, v or 0))
        sel = [r for r in sel if r.k == want]
    return sel


def _nearest(rows: list[MeasureRow], target: float) -> MeasureRow | None:
    """The row whose relative depth is closest to ``target`` (ties: the shallower block)."""
    return min(rows, key=lambda r: (abs(r.rel_depth - target), r.block)) if rows else None


def _scaling(results: AtlasResults, c: ComparisonResult, labels: dict[str, str]) -> dict[str, Any] | None:
    """Data of a scaling page: each measure at matched relative depths against parameter
    count (``points``), and the family summary at relative depth 1.0 (``summary``)."""
    by_slug = {m.card.slug: m for m in results.models}
    members = sorted((by_slug[s] for s in c.models if s in by_slug),
                     key=lambda m: (m.card.params, c.models.index(m.card.slug)))
    if not members:
        return None
    points = []
    for name in sorted({r.measure for m in members for r in m.measures}):
        series = {m.card.slug: _measure_series(m, name, c.representations, c.k) for m in members}
        if sum(bool(v) for v in series.values()) < min(2, len(members)):
            continue  # a size trend needs two sizes
        for m in members:
            for target in SCALING_DEPTHS:
                r = _nearest(series[m.card.slug], target)
                if r is not None:
                    points.append({"measure": name, "target": target, "model": m.card.slug,
                                   "label": labels[m.card.slug], "params": m.card.params, "block": r.block,
                                   "rel_depth": r.rel_depth, "representation": r.representation, "k": r.k,
                                   "value": _num(r.value)})
    present = {r.measure for m in members for r in m.measures}
    columns = [n for n in SUMMARY_MEASURES if n in present]
    summary = []
    for m in members:
        values = {}
        for name in columns:
            r = _nearest(_measure_series(m, name, c.representations, c.k), 1.0)
            values[name] = _num(r.value) if r is not None else None
        summary.append({"model": m.card.slug, "label": labels[m.card.slug], "params": m.card.params,
                        "depth": m.card.depth, "patch_size": m.card.patch_size, "values": values})
    return {"depths": list(SCALING_DEPTHS), "measures": list(dict.fromkeys(p["measure"] for p in points)),
            "summary_measures": columns, "summary": summary, "points": points}


def _scaling_view(data: dict[str, Any], results: AtlasResults, page: str, page_slug: str,
                  c: ComparisonResult) -> dict[str, Any]:
    info = results.measure_info
    pages = {m.card.slug: _model_page(m) for m in results.models}
    figs = []
    for name in data["measures"]:
        fig = scaling_figure([p for p in data["points"] if p["measure"] == name], measure_title(info, name), c.title)
        figs.append(_measure_figure(fig, page_slug, f"fig-scaling-{slugify(name)}", name, info,
                                    "Each point is the model's block nearest to the matched relative depth."))
    rows = [{"label": s["label"], "href": _rel(_html_url(pages[s["model"]]), page), "params": s["params"],
             "params_text": f"{s['params'] / 1e6:.1f} M", "depth": s["depth"], "patch": s["patch_size"],
             "cells": [{"text": _fmt3(v), "value": None if _fmt3(v) == "—" else repr(float(v))}
                       for v in (s["values"][n] for n in data["summary_measures"])]}
            for s in data["summary"]]
    return {"head": [_breakable(measure_title(info, n)) for n in data["summary_measures"]], "rows": rows,
            "figs": figs}


def _evaluation_measures(results: AtlasResults) -> list[str]:
    names = {r.measure for m in results.models for r in m.measures if measure_section(r) == "evaluation"}
    first = [n for n in LEADERBOARD_FIRST if n in names]
    return first + sorted(names - set(first))


def _leaderboard_page(results: AtlasResults) -> str:
    """Docs path of the segmentation-quality page, or "" when no model has evaluation measures."""
    if not _evaluation_measures(results):
        return ""
    taken = {_comparison_page(c) for c in results.comparisons}
    return LEADERBOARD_PAGE if LEADERBOARD_PAGE not in taken else LEADERBOARD_PAGE[:-3] + "-leaderboard.md"


def _best(rows: list[MeasureRow], lower: bool) -> MeasureRow | None:
    """Best finite row (highest value, or lowest when ``lower``); ties: shallowest block."""
    rows = [r for r in rows if isinstance(_num(r.value), float) and math.isfinite(_num(r.value))]
    sign = 1.0 if lower else -1.0
    return min(rows, key=lambda r: (sign * float(r.value), r.block, r.representation, r.k is None, r.k or 0),
               default=None)


def _render_leaderboard(results: AtlasResults, page: str, labels: dict[str, str], env: Environment,
                        common: dict[str, Any], out: _Writer) -> None:
    info = results.measure_info
    names = _evaluation_measures(results)
    lower = {n: (info.get(n) or {}).get("better") == "lower" for n in names}
    stem = posixpath.splitext(page)[0]
    rows, csv_rows, best_json = [], [], {}
    for m in results.models:
        slug = m.card.slug
        cells, best_json[slug] = [], {}
        for name in names:
            mine = [r for r in m.measures if r.measure == name]
            b = _best(mine, lower[name])
            best_json[slug][name] = b and {"value": _num(b.value), "block": b.block, "rel_depth": b.rel_depth,
                                           "representation": b.representation, "k": b.k}
            if b is None:
                cells.append({"text": "—", "where": "", "value": None})
                continue
            where = f"b{b.block} {b.representation}"
            if len({r.k for r in mine}) > 1 and b.k is not None:
                where += f" K={b.k}"
            cells.append({"text": _fmt3(b.value), "where": f"({where})", "value": repr(float(b.value))})
            csv_rows.append([slug, labels[slug], m.card.family, m.card.training, m.card.params, name,
                             _num(b.value), b.block, b.rel_depth, b.representation, b.k])
        rows.append({"label": labels[slug], "href": _rel(_html_url(_model_page(m)), page),
                     "family": m.card.family, "training": m.card.training, "params": m.card.params,
                     "params_text": f"{m.card.params / 1e6:.1f} M", "cells": cells})
    # Ranked by the first measure, best first (models without it last, in atlas order).
    sign = 1.0 if lower[names[0]] else -1.0
    rows.sort(key=lambda r: (r["cells"][0]["value"] is None, sign * float(r["cells"][0]["value"] or 0.0)))

    figs = []
    for name in names:
        mine = [r for m in results.models for r in m.measures if r.measure == name]
        reps = list(dict.fromkeys(r.representation for r in mine))
        rep = "tokens" if "tokens" in reps else reps[0]
        fig_rows = []
        for m in results.models:
            sel = [r for r in m.measures if r.measure == name and r.representation == rep]
            b = _best(sel, lower[name])
            fig_rows += [{"model": m.card.slug, "representation": rep, "measure": name, "rel_depth": r.rel_depth,
                          "block": r.block, "value": r.value} for r in sel if b is None or r.k == b.k]
        fig = comparison_measure_figure(fig_rows, measure_title(info, name), labels, f"all models · {rep}")
        figs.append(_measure_figure(fig, slugify(stem), f"fig-measure-{slugify(name)}", name, info,
                                    f"Representation: {rep}."))

    base = posixpath.basename(stem)
    out.write(f"{stem}.csv", _csv(["model", "label", "family", "training", "params", "measure", "best_value",
                                   "block", "rel_depth", "representation", "k"], csv_rows))
    out.write(f"{stem}.json", _dumps({
        "atlas_version": results.atlas_version, "config_hash": results.config_hash,
        "measures": [{"name": n, "title": measure_title(info, n), "description": _measure_desc(info, n),
                      "better": "lower" if lower[n] else "higher"} for n in names],
        "models": [{"slug": m.card.slug, "label": labels[m.card.slug], "family": m.card.family,
                    "training": m.card.training, "params": m.card.params, "page": _html_url(_model_page(m)),
                    "best": best_json[m.card.slug]} for m in results.models],
    }))
    out.write(page, env.get_template("leaderboard.md.j2").render(
        **common,
        page=page,
        title=LEADERBOARD_TITLE,
        cite_key=_cite_key(page),
        measures=[{"name": n, "title": measure_title(info, n), "description": _measure_desc(info, n),
                   "lower": lower[n], "head": _breakable(measure_title(info, n))} for n in names],
        rows=rows,
        figs=figs,
        random_models=[labels[m.card.slug] for m in results.models if m.card.is_random_init],
        data={"csv": f"{base}.csv", "json": f"{base}.json"},
    ))


def _highlight(h: Any, page: str, results: AtlasResults) -> dict[str, Any]:
    target = ""
    if h.model:
        m = next((m for m in results.models if m.card.slug == h.model), None)
        target = _model_page(m) if m else ""
    elif h.comparison:
        c = next((c for c in results.comparisons if c.slug == h.comparison), None)
        target = _comparison_page(c) if c else ""
    else:
        target = "index.md"
    href = ""
    if target:
        href = _rel(target, page) if target != page else ""
        href = href + (f"#{h.anchor}" if h.anchor else "")
    return {"text": h.text, "href": href}


def _cite_key(page: str) -> str:
    return "ssl-vit-atlas-" + slugify(page[:-3] if page.endswith(".md") else page)


# --------------------------------------------------------------------------- public API


def render_site(results: AtlasResults, docs_dir: Path) -> list[Path]:
    """Write every generated page, its CSV/JSON downloads and ``atlas.json`` into ``docs_dir``.

    Gallery images named in the records must already be in ``docs_dir``. Committed static files
    (``site_src/assets``, ``site_src/guide``) are copied in when ``docs_dir`` is elsewhere, and
    ``plotly.min.js`` comes from the installed plotly package. Pages of models or comparisons
    that are no longer in ``results`` are removed. Returns the written paths.
    """
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    out = _Writer(docs_dir)
    env = _env()
    _copy_static(docs_dir, out)

    labels = {m.card.slug: model_label(m.card) for m in results.models}
    info = results.measure_info
    random_models = [m for m in results.models if m.card.is_random_init]
    leaderboard = _leaderboard_page(results)
    common = {
        "atlas": results,
        "version": results.atlas_version,
        "random_label": RANDOM_INIT_LABEL,
        "sections": SECTIONS,
    }

    # ---- model pages
    model_pages = []
    for m in results.models:
        page = _model_page(m)
        slug = slugify(m.card.slug)
        label = labels[m.card.slug]
        sections = _model_sections(m, label, results.measure_info)
        out.write(f"models/{slug}.csv", _model_csv(m))
        out.write(f"models/{slug}.json", _dumps(_model_json(results, m)))
        in_comparisons = [
            {"title": c.title, "href": _rel(_comparison_page(c), page)}
            for c in results.comparisons if m.card.slug in c.models
        ]
        text = env.get_template("model.md.j2").render(
            **common,
            page=page,
            m=m,
            card=m.card,
            label=label,
            title=label,
            cite_key=_cite_key(page),
            card_rows=_card_rows(m.card),
            highlights=[_highlight(h, page, results) for h in m.highlights],
            gallery=_model_gallery(results, m, page),
            figs=sections,
            comparisons=in_comparisons,
            data={"csv": f"{slug}.csv", "json": f"{slug}.json"},
        )
        out.write(page, text)
        model_pages.append(page)

    # ---- comparison pages
    comparison_pages = []
    for c in results.comparisons:
        page = _comparison_page(c)
        slug = slugify(c.slug)
        rows = _comparison_rows(results, c)
        figs = []
        for name in sorted({r["measure"] for r in rows}):
            fig = comparison_measure_figure([r for r in rows if r["measure"] == name],
                                            measure_title(info, name), labels, c.title)
            figs.append(_measure_figure(fig, f"compare-{slug}", f"fig-measure-{slugify(name)}", name, info))
        scaling = _scaling(results, c, labels) if c.kind == "scaling" else None
        out.write(f"compare/{slug}.csv", _csv(
            ["model", "representation", "measure", "block", "rel_depth", "value"],
            ([r["model"], r["representation"], r["measure"], r.get("block"), float(r["rel_depth"]),
              _num(r["value"])] for r in rows)))
        out.write(f"compare/{slug}.json", _dumps({
            "atlas_version": results.atlas_version, "config_hash": results.config_hash,
            "comparison": {k: v for k, v in dataclasses.asdict(c).items() if k not in ("panels", "measures")},
            "models": [{"slug": s, "label": labels.get(s, s)} for s in c.models],
            "panels": [_panel_json(p) for p in c.panels],
            "measures": rows,
            **({"scaling": scaling} if scaling else {}),
        }))
        models = [
            {"label": labels.get(s, s), "href": _rel(_model_page(m), page), "random": m.card.is_random_init}
            for s in c.models for m in results.models if m.card.slug == s
        ]
        text = env.get_template("comparison.md.j2").render(
            **common,
            page=page,
            c=c,
            title=c.title,
            cite_key=_cite_key(page),
            models=models,
            random_models=[labels[m.card.slug] for m in random_models if m.card.slug in c.models],
            gallery=_comparison_gallery(results, c, page, labels),
            figs=figs,
            scaling=scaling and _scaling_view(scaling, results, page, f"compare-{slug}", c),
            scaling_depths=SCALING_DEPTHS,
            data={"csv": f"{slug}.csv", "json": f"{slug}.json"},
        )
        out.write(page, text)
        comparison_pages.append(page)

    # ---- segmentation-quality leaderboard
    if leaderboard:
        _render_leaderboard(results, leaderboard, labels, env, common, out)

    # ---- home
    page = "index.md"
    model_rows = [
        {
            "label": labels[m.card.slug],
            "href": _model_page(m),
            "card": m.card,
        }
        for m in results.models
    ]
    out.write("index.csv", _csv(
        ["slug", "display_name", "label", "family", "training", "params", "patch_size",
         "weights_source", "provenance", "is_random_init", "page"],
        ([m.card.slug, m.card.display_name, labels[m.card.slug], m.card.family, m.card.training,
          m.card.params, m.card.patch_size, m.card.weights_source, m.card.provenance,
          m.card.is_random_init, _html_url(_model_page(m))] for m in results.models)))
    out.write("index.json", _dumps({
        "atlas_version": results.atlas_version, "config_hash": results.config_hash,
        "models": [dict(dataclasses.asdict(m.card), label=labels[m.card.slug],
                        page=_html_url(_model_page(m))) for m in results.models],
        "highlights": [dataclasses.asdict(h) for h in results.highlights],
    }))
    out.write(page, env.get_template("home.md.j2").render(
        **common,
        page=page,
        title=results.title,
        cite_key=_cite_key(page),
        model_rows=model_rows,
        protocol=_protocol(results),
        highlights=[_highlight(h, page, results) for h in results.highlights],
        comparisons=[{"title": c.title, "href": _comparison_page(c), "description": c.description}
                     for c in results.comparisons]
        + ([{"title": LEADERBOARD_TITLE, "href": leaderboard, "description": LEADERBOARD_BLURB}]
           if leaderboard else []),
        guide=_guide_pages(docs_dir),
        data={"csv": "index.csv", "json": "index.json"},
    ))

    # ---- methods
    page = "methods.md"
    out.write("methods.json", _dumps({"atlas_version": results.atlas_version,
                                      "config_hash": results.config_hash, "methods": results.methods}))
    out.write("methods.csv", _csv(["section", "key", "value"], _flatten_methods(results.methods)))
    out.write(page, env.get_template("methods.md.j2").render(
        **common,
        page=page,
        title="Methods",
        cite_key=_cite_key(page),
        methods=[_method_section(k, v) for k, v in results.methods.items()],
        fence=_fence(results.config_text),
        data={"csv": "methods.csv", "json": "methods.json"},
    ))

    # ---- images
    page = "images.md"
    out.write("images.csv", _csv(
        ["name", "source", "licence", "credit", "content_hash", "width", "height", "thumbnail"],
        ([i.name, i.source, i.licence, i.credit, i.content_hash, i.width, i.height, i.thumbnail]
         for i in results.images)))
    out.write("images.json", _dumps({"atlas_version": results.atlas_version, "images": results.images}))
    out.write(page, env.get_template("images.md.j2").render(
        **common,
        page=page,
        title="Images",
        cite_key=_cite_key(page),
        images=[{"info": i, "thumb": _rel(i.thumbnail, page) if i.thumbnail else ""} for i in results.images],
        data={"csv": "images.csv", "json": "images.json"},
    ))

    # ---- build report
    page = "build-report.md"
    timing_rows = [["atlas", k, _num(v)] for k, v in results.timings.items()]
    timing_rows += [[m.card.slug, k, _num(v)] for m in results.models for k, v in m.timings.items()]
    out.write("build-report.csv", _csv(["scope", "step", "seconds"], timing_rows))
    out.write("build-report.json", _dumps({
        "atlas_version": results.atlas_version, "config_name": results.config_name,
        "config_hash": results.config_hash, "build_date": results.build_date, "seed": results.seed,
        "device": results.device, "environment": results.environment,
        "models": [{"slug": m.card.slug, "label": labels[m.card.slug], "timm_name": m.card.timm_name,
                    "weights_source": m.card.weights_source, "provenance": m.card.provenance}
                   for m in results.models],
        "images": results.images, "skipped": results.skipped,
        "timings": {"atlas": results.timings, "models": {m.card.slug: m.timings for m in results.models}},
    }))
    out.write(page, env.get_template("build.md.j2").render(
        **common,
        page=page,
        title="Build report",
        cite_key=_cite_key(page),
        labels=labels,
        timing_rows=timing_rows,
        fence=_fence(results.config_text),
        data={"csv": "build-report.csv", "json": "build-report.json"},
    ))

    # ---- atlas.json and nav
    out.write("atlas.json", _dumps(_atlas_index(results, labels, leaderboard)))
    out.write(NAV_FILE, _dumps(_nav(results, docs_dir, labels, leaderboard)))
    _remove_stale(docs_dir, set(out.paths))
    return out.paths


def _full_mkdocs_config(config_file: Path, docs_dir, site_dir) -> tuple[dict[str, Any], Path, Path]:
    """The base mkdocs.yml completed with the generated nav, site_url and citation facts."""
    base = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    root = config_file.parent
    docs = Path(docs_dir).resolve() if docs_dir else (root / base.get("docs_dir", "docs")).resolve()
    site = Path(site_dir).resolve() if site_dir else (root / base.get("site_dir", "site")).resolve()
    cfg = dict(base)
    cfg["docs_dir"] = str(docs)
    cfg["site_dir"] = str(site)
    theme = dict(cfg.get("theme") or {})
    if theme.get("custom_dir"):
        theme["custom_dir"] = str((root / theme["custom_dir"]).resolve())
    cfg["theme"] = theme
    nav_file = docs / NAV_FILE
    if nav_file.exists():
        cfg["nav"] = json.loads(nav_file.read_text(encoding="utf-8"))
    index = docs / "atlas.json"
    if index.exists():
        info = json.loads(index.read_text(encoding="utf-8"))
        extra = dict(cfg.get("extra") or {})
        extra["atlas"] = {k: info.get(k, "") for k in ("atlas_version", "config_hash", "build_date", "title")}
        cfg["extra"] = extra
        if info.get("site_url"):
            cfg["site_url"] = info["site_url"]
        if info.get("title"):
            cfg["site_name"] = info["title"]
    return cfg, root, site


def build_site(config_file: str | Path = "mkdocs.yml", strict: bool = True, *,
               docs_dir: str | Path | None = None, site_dir: str | Path | None = None) -> Path:
    """Run ``mkdocs build`` on the rendered docs dir; returns the site dir.

    The base config is completed in a temporary file: the generated ``nav``, ``site_url`` and
    the citation facts (``extra.atlas``) come from ``render_site``'s output; ``docs_dir`` and
    ``site_dir`` may be overridden (tests build into temporary folders).
    """
    cfg, root, site = _full_mkdocs_config(Path(config_file).resolve(), docs_dir, site_dir)
    with tempfile.TemporaryDirectory(prefix="atlas-mkdocs-") as tmp:
        gen = Path(tmp) / "mkdocs.yml"
        gen.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
        cmd = [sys.executable, "-m", "mkdocs", "build", "-f", str(gen)]
        if strict:
            cmd.append("--strict")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
        if proc.returncode != 0:
            raise RuntimeError(f"mkdocs build failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return site


def serve_site(config_file: str | Path = "mkdocs.yml", *, docs_dir: str | Path | None = None,
               address: str = "127.0.0.1:8000") -> None:
    """Live preview: ``mkdocs serve`` on the rendered docs dir (reloads when pages change); Ctrl-C stops it."""
    cfg, root, _ = _full_mkdocs_config(Path(config_file).resolve(), docs_dir, None)
    with tempfile.TemporaryDirectory(prefix="atlas-mkdocs-") as tmp:
        gen = Path(tmp) / "mkdocs.yml"
        gen.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
        print(f"serving the atlas on http://{address}/ (Ctrl-C to stop)")
        try:
            subprocess.run([sys.executable, "-m", "mkdocs", "serve", "-f", str(gen), "-a", address], cwd=root)
        except KeyboardInterrupt:
            pass


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("img", "script") and a.get("src"):
            self.refs.append(a["src"] or "")
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.refs.append(a["href"] or "")


def page_weight(site_dir: Path, page_path: str, exclude: Iterable[str] = ("plotly.min.js",)) -> int:
    """Bytes a browser loads for one page: its HTML plus every local image, script and
    stylesheet it references (lazy images included), except ``exclude`` (plotly.js by default).
    """
    site_dir = Path(site_dir)
    page = site_dir / page_path
    text = page.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    total = len(text.encode("utf-8"))
    seen: set[Path] = set()
    for ref in parser.refs:
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc or any(ref.endswith(x) or posixpath.basename(parts.path) == x for x in exclude):
            continue
        path = (page.parent / unquote(parts.path)).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        total += path.stat().st_size
    return total


# --------------------------------------------------------------------------- internals


def _num(v: Any) -> Any:
    v = _clean(v)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _model_csv(m: ModelResult) -> str:
    rows = []
    for r in m.measures:
        rows.append([m.card.slug, measure_section(r), r.measure, r.block, r.rel_depth, r.representation,
                     r.k, None, _num(r.value)])
    for run in m.runs:
        rows.append([m.card.slug, "clusters", "inertia", run.block, run.rel_depth, run.representation,
                     run.k, None, _num(run.inertia)])
        for cid, size in enumerate(run.sizes):
            rows.append([m.card.slug, "clusters", "cluster_size", run.block, run.rel_depth,
                         run.representation, run.k, cid, int(size)])
    return _csv(["model", "section", "measure", "block", "rel_depth", "representation", "k", "cluster",
                 "value"], rows)


def _model_json(results: AtlasResults, m: ModelResult) -> dict[str, Any]:
    return {
        "atlas_version": results.atlas_version,
        "config_hash": results.config_hash,
        "model": dict(dataclasses.asdict(m.card), label=model_label(m.card)),
        "blocks": m.blocks,
        "representations": m.representations,
        "ks": m.ks,
        "runs": m.runs,
        "measures": [dict(dataclasses.asdict(r), section=measure_section(r)) for r in m.measures],
        "figures": m.figures,
        # timings stay on the build report: page data must be identical across identical builds
        "highlights": m.highlights,
    }


def _panel_json(p: dict[str, Any]) -> dict[str, Any]:
    p = dict(p)
    p["columns"] = [dict(col, entries=[_entry(e) for e in col.get("entries", [])]) for col in p.get("columns", [])]
    return p


def _protocol(results: AtlasResults) -> list[tuple[str, str]]:
    reps = list(dict.fromkeys(r for m in results.models for r in m.representations))
    ks = sorted({k for m in results.models for k in m.ks})
    nblocks = sorted({len(m.blocks) for m in results.models})
    measured = sorted({len({r.block for r in m.measures if r.section == "positional"}) for m in results.models})
    return [
        ("images", f"{len(results.images)} (see Images)"),
        ("models", str(len(results.models))),
        ("blocks per model in the gallery", ", ".join(map(str, nblocks)) or "—"),
        ("blocks per model with measures (layer sweep)", ", ".join(map(str, measured)) or "—"),
        ("representations", ", ".join(reps) or "—"),
        ("K (clusters)", ", ".join(map(str, ks)) or "—"),
        ("clustering", "joint k-means over the patch tokens of all images (one cluster = one meaning in every image)"),
        ("resolution policy", results.resolution_policy),
        ("seed", str(results.seed)),
        ("config", f"{results.config_name} · sha256 {results.config_hash[:12]}"),
        ("device", results.device),
    ]


def _method_section(name: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "text": "", "items": [], "table": []}
    if isinstance(value, str):
        out["text"] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and len(v) > 40:
                out["items"].append((str(k), v))
            else:
                out["table"].append((str(k), v if isinstance(v, str) else json.dumps(_clean(v), sort_keys=True)))
    elif isinstance(value, (list, tuple)):
        out["items"] = [("", v if isinstance(v, str) else json.dumps(_clean(v), sort_keys=True)) for v in value]
    else:
        out["text"] = json.dumps(_clean(value), sort_keys=True)
    return out


def _flatten_methods(methods: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for section, value in methods.items():
        if isinstance(value, dict):
            for k, v in value.items():
                rows.append([section, k, v if isinstance(v, str) else json.dumps(_clean(v), sort_keys=True)])
        else:
            rows.append([section, "", value if isinstance(value, str) else json.dumps(_clean(value), sort_keys=True)])
    return rows


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside ``text``."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def _guide_pages(docs_dir: Path) -> list[dict[str, str]]:
    guide = docs_dir / "guide"
    pages = []
    for p in sorted(guide.glob("*.md")) if guide.is_dir() else []:
        title = p.stem.replace("-", " ").capitalize()
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
                break
        pages.append({"title": title, "path": f"guide/{p.name}"})
    return pages


def _nav(results: AtlasResults, docs_dir: Path, labels: dict[str, str], leaderboard: str = "") -> list[Any]:
    # Nav titles are inserted into HTML unescaped by MkDocs' theme templates.
    e = html.escape
    nav: list[Any] = [{"Home": "index.md"}]
    guide = _guide_pages(docs_dir)
    if guide:
        nav.append({"Guide": [{e(g["title"]): g["path"]} for g in guide]})
    if results.models:
        nav.append({"Models": [{e(labels[m.card.slug]): _model_page(m)} for m in results.models]})
    comparisons = [{e(c.title): _comparison_page(c)} for c in results.comparisons]
    comparisons += [{LEADERBOARD_TITLE: leaderboard}] if leaderboard else []
    if comparisons:
        nav.append({"Comparisons": comparisons})
    nav.append({"Methods": "methods.md"})
    nav.append({"Images": "images.md"})
    nav.append({"Build report": "build-report.md"})
    return nav


def _atlas_index(results: AtlasResults, labels: dict[str, str], leaderboard: str = "") -> dict[str, Any]:
    def data(md: str) -> dict[str, str]:
        stem = md[:-3]
        return {"csv": stem + ".csv", "json": stem + ".json"}

    pages = [{"title": results.title, "page": "index.html", "data": data("index.md")}]
    pages += [{"title": "Methods", "page": "methods.html", "data": data("methods.md")},
              {"title": "Images", "page": "images.html", "data": data("images.md")},
              {"title": "Build report", "page": "build-report.html", "data": data("build-report.md")}]
    if leaderboard:
        pages.append({"title": LEADERBOARD_TITLE, "page": _html_url(leaderboard), "data": data(leaderboard)})
    return {
        "schema": 1,
        "generator": f"ssl-vit-atlas {__version__}",
        "title": results.title,
        "atlas_version": results.atlas_version,
        "config_name": results.config_name,
        "config_hash": results.config_hash,
        "build_date": results.build_date,
        "site_url": results.site_url,
        "seed": results.seed,
        "device": results.device,
        "environment": results.environment,
        "random_init_label": RANDOM_INIT_LABEL,
        "models": [
            {
                "slug": m.card.slug,
                "display_name": m.card.display_name,
                "label": labels[m.card.slug],
                "timm_name": m.card.timm_name,
                "family": m.card.family,
                "training": m.card.training,
                "params": m.card.params,
                "patch_size": m.card.patch_size,
                "weights_source": m.card.weights_source,
                "provenance": m.card.provenance,
                "is_random_init": m.card.is_random_init,
                "blocks": m.blocks,
                "representations": m.representations,
                "ks": m.ks,
                "page": _html_url(_model_page(m)),
                "data": data(_model_page(m)),
            }
            for m in results.models
        ],
        "comparisons": [
            {
                "slug": c.slug,
                "title": c.title,
                "kind": c.kind,
                "models": c.models,
                "representations": c.representations,
                "rel_depths": c.rel_depths,
                "k": c.k,
                "page": _html_url(_comparison_page(c)),
                "data": data(_comparison_page(c)),
            }
            for c in results.comparisons
        ],
        "pages": pages,
        "images": [{"name": i.name, "source": i.source, "licence": i.licence, "credit": i.credit,
                    "content_hash": i.content_hash} for i in results.images],
        "skipped": results.skipped,
    }


def _copy_static(docs_dir: Path, out: _Writer) -> None:
    import plotly

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    same = docs_dir.resolve() == STATIC_SRC.resolve()
    if not same:
        for sub in STATIC_DIRS:
            src = STATIC_SRC / sub
            for f in sorted(src.rglob("*")) if src.is_dir() else []:
                if f.is_file() and f.name != "plotly.min.js":
                    out.write(f.relative_to(STATIC_SRC).as_posix(), f.read_bytes())
    target = docs_dir / "assets" / "js" / "plotly.min.js"
    if not (target.exists() and target.stat().st_size == plotly_js.stat().st_size
            and _sha(target) == _sha(plotly_js)):
        out.write("assets/js/plotly.min.js", plotly_js.read_bytes())
    else:
        out.paths.append(target)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _remove_stale(docs_dir: Path, keep: set[Path]) -> None:
    """Drop generated pages/data of models or comparisons that left the results."""
    for sub in ("models", "compare"):
        d = docs_dir / sub
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.is_file() and f.suffix in (".md", ".csv", ".json") and f not in keep:
                f.unlink()
