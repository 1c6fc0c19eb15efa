"""The numbers behind every page as files: strict JSON and CSV downloads, and ``atlas.json``, the
index of the whole atlas (pages, models, comparisons, images, what was skipped)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .. import __version__
from ..records import RANDOM_INIT_LABEL, AtlasResults, ModelResult, to_json
from .paths import comparison_page, html_url, model_page
from .wording import measure_section

#: Title of the segmentation-quality leaderboard page.
LEADERBOARD_TITLE = "Segmentation quality"


def clean(obj: Any) -> Any:
    """Plain JSON types; NaN/inf become null so files stay strict JSON (records lose their arrays).

    >>> clean({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = to_json(obj)
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any) -> str:
    """Strict, sorted, deterministic JSON text of ``obj``."""
    return json.dumps(clean(obj), sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def csv_text(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """CSV text; floats written with ``repr`` (round-trip exact), None as an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buf.getvalue()


def num(v: Any) -> Any:
    """A number as a plain float (None for NaN / inf); anything else as :func:`clean` makes it."""
    v = clean(v)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


#: Columns of a model page's CSV (each row a number of :func:`model_rows`).
MODEL_CSV_COLUMNS = ["model", "section", "measure", "block", "rel_depth", "representation", "k", "cluster",
                     "value", "lo", "hi", "se", "df", "seed_spread", "reference", "baseline"]


def model_rows(m: ModelResult, info: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every number of a model page, one dict each (:data:`MODEL_CSV_COLUMNS`): measures with their
    intervals, the positional references (``reference``), the evaluation baselines (``baseline``),
    inertia, cluster sizes. The atlas-wide table (:mod:`.table`) is made of these rows."""
    rows = []

    def row(section, measure, block, rel_depth, rep, k, cluster, value, number=None, reference="", baseline=""):
        lo, hi, se, df, spread = (num(getattr(number, f, None)) for f in ("lo", "hi", "se", "df", "seed_spread"))
        rows.append(dict(zip(MODEL_CSV_COLUMNS, [m.card.slug, section, measure, block, rel_depth, rep, k, cluster,
                                                 value, lo, hi, se, df, spread, reference, baseline])))

    for r in [*m.measures, *m.references]:
        row(measure_section(info, r.measure), r.measure, r.block, r.rel_depth, r.representation, r.k, None,
            num(r.value), r, r.reference)
    for b in m.baselines:
        row(measure_section(info, b.measure), b.measure, None, None, None, None, None, num(b.value), b,
            baseline=b.name)
    for run in m.runs:
        row("clusters", "inertia", run.block, run.rel_depth, run.representation, run.k, None, num(run.inertia))
        for cid, size in enumerate(run.sizes):
            row("clusters", "cluster_size", run.block, run.rel_depth, run.representation, run.k, cid, int(size))
    return rows


def model_csv(m: ModelResult, info: dict[str, dict[str, Any]]) -> str:
    """A model page's CSV: :func:`model_rows`, one line each."""
    return csv_text(MODEL_CSV_COLUMNS, ([r[c] for c in MODEL_CSV_COLUMNS] for r in model_rows(m, info)))


def model_json(results: AtlasResults, m: ModelResult, label: str) -> dict[str, Any]:
    return {
        "atlas_version": results.atlas_version,
        "config_hash": results.config_hash,
        "model": dict(dataclasses.asdict(m.card), label=label),
        "blocks": m.blocks,
        "representations": m.representations,
        "ks": m.ks,
        "runs": m.runs,
        "measures": [dict(dataclasses.asdict(r), section=measure_section(results.measure_info, r.measure))
                     for r in m.measures],
        "references": m.references,
        "baselines": m.baselines,
        "selected": m.selected,
        "interval_level": results.interval_level,
        "figures": m.figures,
        # timings stay on the build report: page data must be identical across identical builds;
        # highlight sentences are words, made by the site (atlas.site.highlights), not data
    }


def flatten_methods(methods: dict[str, Any]) -> list[list[Any]]:
    """The Methods page's sections (:func:`atlas.site.methods.methods_sections`) as (section, key, value) rows."""
    rows = []
    for section, value in methods.items():
        if isinstance(value, dict):
            for k, v in value.items():
                rows.append([section, k, v if isinstance(v, str) else json.dumps(clean(v), sort_keys=True)])
        else:
            rows.append([section, "", value if isinstance(value, str) else json.dumps(clean(value), sort_keys=True)])
    return rows


def atlas_index(results: AtlasResults, labels: dict[str, str], evaluation: Sequence[dict] = ()) -> dict[str, Any]:
    """``atlas.json``: every page with its data files, every model and comparison, the images;
    ``evaluation``: the evaluations' pages (``{"page", "title"}``: leaderboard, label propagation)."""
    def data(md: str) -> dict[str, str]:
        stem = md[:-3]
        return {"csv": stem + ".csv", "json": stem + ".json"}

    pages = [{"title": results.title, "page": "index.html", "data": data("index.md")}]
    pages += [{"title": "Methods", "page": "methods.html", "data": data("methods.md")},
              {"title": "Images", "page": "images.html", "data": data("images.md")},
              {"title": "Build report", "page": "build-report.html", "data": data("build-report.md")}]
    pages += [{"title": e["title"], "page": html_url(e["page"]), "data": e.get("data") or data(e["page"])}
              for e in evaluation]
    return {
        "schema": 1,
        "generator": f"ssl-vit-atlas {__version__}",
        "title": results.title,
        "atlas_version": results.atlas_version,
        "config_name": results.config_name,
        "config_hash": results.config_hash,
        "code_hash": results.code_hash,
        "build_date": results.build_date,
        "site_url": results.site_url,
        "published_version": results.published_version,
        "tables": {"parquet": "atlas-results.parquet", "csv": "atlas-results.csv.gz"},  # every number, long format
        "latest_url": results.latest_url,
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
                "page": html_url(model_page(m)),
                "data": data(model_page(m)),
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
                "page": html_url(comparison_page(c)),
                "data": data(comparison_page(c)),
            }
            for c in results.comparisons
        ],
        "pages": pages,
        "images": [{"name": i.name, "source": i.source, "licence": i.licence, "credit": i.credit,
                    "content_hash": i.content_hash} for i in results.images],
        "skipped": results.skipped,
        "measures": results.measure_info,
    }
