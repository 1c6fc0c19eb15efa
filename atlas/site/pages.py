"""The pages: ``AtlasResults`` -> Markdown pages, their CSV/JSON downloads and ``atlas.json`` in
the MkDocs docs dir. One function per page kind; :func:`render_site` writes them all.

Example::

    paths = render_site(results, Path("site_src"))
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import posixpath
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment

from ..config import slugify
from ..files import TEMP_PREFIX, atomic_write, remove_orphaned_temporaries
from ..formatting import level_percent, with_interval
from ..records import (ATTENTION_ROWS, RANDOM_INIT_LABEL, AtlasResults, ComparisonResult, ModelCard, ModelResult,
                       chosen_row, precision_label)
from .changes import PreviousVersion, changes
from .citation import (ATLAS_ABSTRACT, ATLAS_DOWNLOADS, citation_cff, citation_note, dataset_jsonld,
                       page_citation, versioned_cite_key, zenodo_json)
from .data import (LEADERBOARD_TITLE, atlas_index, clean, csv_text, dumps, flatten_methods, model_csv, model_json,
                   num)
from .figure_words import dressed
from .figures import (REFERENCE_DASH, baseline_groups, cluster_size_figure, comparison_measure_figure, curve_figure,
                      figure, has_values, heatmap_figure, layer_sweep_figure, measure_figure, undefined_measure)
from .gallery import attention_gallery, comparison_gallery, model_gallery
from .highlights import Highlight, make_highlights
from .honesty import (CURVE_BAND_NOTE, CURVE_BASELINE_MEASURE, CURVE_BASELINE_NOTE, CURVE_FIXED, FLAG_RULE,
                      SPLIT_CURVES, baseline_flag, comparison_baseline_note, definition_with_split,
                      simple_baselines, split_note, split_sentence, uses_split)
from .honesty import legend as flag_legend
from .leaderboard import LEADERBOARD_BLURB, leaderboard_files, leaderboard_page
from .maps import write_maps
from .markup import fence, jinja_env, printable, random_note
from .measure_words import with_words
from .mkdocs import CITE_FILE, NAV_FILE
from .methods import methods_sections, policy_sentence
from .overview import overview_matrix
from .paths import CHANGES_PAGE, comparison_page, figures_script, html_url, model_page, rel
from .propagation import PROPAGATION_BLURB, PROPAGATION_TITLE, propagation_files, propagation_page
from .resolution import (RESOLUTION_BLURB, RESOLUTION_TITLE, resolution_files, resolution_page, resolution_rows,
                         size_label)
from .scaling import SCALING_DEPTHS, scaling, scaling_view
from .table import results_table, table_files
from .wording import SECTIONS, measure_section, measure_title, model_label, model_notes, near_identity_blocks

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_SRC = REPO_ROOT / "site_src"  # committed static assets and hand-written guide pages
STATIC_DIRS = ("assets", "guide")
#: plotly.js, cartesian bundle: loaded by atlas.js only on pages with plots (see its SOURCE.txt)
PLOTLY_BUNDLE = STATIC_SRC / "assets" / "js" / "vendor" / "plotly-cartesian.min.js"
STALE_FILES = ("assets/js/plotly.min.js",)  # the full bundle earlier versions copied in

DIRECTIONS = {
    "bias": "higher = more positional or artifact bias",
    "locality": "higher = neighbouring tokens more alike than their positions explain (locality bias)",
    "content": "higher = more content-following (less positional bias)",
    "quality": "higher = closer to the human masks",
    "none": "no better or worse direction",
}


#: What a comparison of each kind shows, where its config gives no description (the Home list).
COMPARISON_BLURBS = {
    "models": "the same images at matched relative depth, colours aligned across models.",
    "representations": "one model's tokens, keys, queries and values side by side, block by block.",
    "scaling": "one family at growing size: the same measures against parameters, at matched relative depth.",
}


# --------------------------------------------------------------------------- model pages


def card_rows(card: ModelCard, seed: int | None = None) -> list[tuple[str, str]]:
    """The model card's rows; a random-init model's also says how its weights were made (``seed``:
    the build's, ``AtlasResults.seed``), so that they can be made again."""
    recipe = ([("random-init recipe", f"torch.manual_seed({seed}), then timm's own initialisation of "
                f"{card.timm_name} (no pretrained weights are loaded: the name picks the architecture, its tag the "
                "input size and normalisation) at "
                "the pretraining input size, resampled to each input size as pretrained weights are; torch "
                "and timm versions in the Build report")]
              if card.is_random_init and seed is not None else [])
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
        ("LayerScale", f"median |γ| = {card.layer_scale:.2g}" if card.layer_scale is not None else "none"),
        ("input size in this atlas (H × W)", " × ".join(map(str, card.input_size))),
        ("pretraining input size (H × W)", " × ".join(map(str, card.pretrained_input_size))),
        ("normalisation mean", ", ".join(f"{v:.4g}" for v in card.mean)),
        ("normalisation std", ", ".join(f"{v:.4g}" for v in card.std)),
        ("extraction precision", precision_label(card.precision) + (
            "" if card.precision == "fp32" else ": approximate, see Methods")),
        ("weights source", card.weights_source),
        ("weights provenance", card.provenance),
        *recipe,
    ]


def model_sections(m: ModelResult, label: str, info: dict[str, dict[str, Any]],
                   level: float = 0.95, methods: dict[str, Any] | None = None,
                   other_sizes: list[tuple[str, ModelResult]] = (), main_size: str = "") -> dict[str, list[dict[str, Any]]]:
    """The figures of a model page by section: cluster sizes, one layer sweep per measure (with its
    interval band, references and baselines, and a trace per resolution of ``other_sizes``:
    ``(label, the model at that size)``), payloads. ``methods`` (``AtlasResults.methods``)
    says how the k-NN support and query images were split, for the captions that depend on it."""
    slug = slugify(m.card.slug)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in SECTIONS}
    if any(r.sizes for r in m.runs):
        out["clusters"].append(figure(cluster_size_figure([r for r in m.runs if r.sizes], label), slug,
                                      "fig-sizes", "Cluster sizes per block"))
    by_measure: dict[str, list[Any]] = defaultdict(list)
    for row in m.measures:
        by_measure[row.measure].append(row)
    used: set[str] = set()

    def anchor_for(text: str) -> str:
        anchor = text
        while anchor in used:  # two names with one slug
            anchor += "-x"
        used.add(anchor)
        return anchor

    for name in sorted(by_measure):
        anchor = anchor_for(f"fig-measure-{slugify(name)}")
        if not has_values([r.value for r in by_measure[name]]
                          + [r.value for _, other in other_sizes for r in other.measures if r.measure == name]):
            out[measure_section(info, name)].append(undefined_measure(anchor, name, info, "at every block of this model"))
            continue
        fig = layer_sweep_figure(by_measure[name], measure_title(info, name), label,
                                 references=[r for r in m.references if r.measure == name],
                                 baselines=[b for b in m.baselines if b.measure == name], level=level,
                                 bounds=(info.get(name) or {}).get("bounds"),
                                 other_sizes=[(size, [r for r in other.measures if r.measure == name])
                                              for size, other in other_sizes], main_size=main_size)
        out[measure_section(info, name)].append(measure_figure(fig, slug, anchor, name, info,
                                                               split_note(methods, info, name)))
    knn_baselines = simple_baselines(m.baselines, CURVE_BASELINE_MEASURE)
    for kind, builder in (("heatmaps", heatmap_figure), ("curves", curve_figure)):
        for payload in map(dressed, m.figures.get(kind, []) or []):
            anchor = anchor_for(f"fig-{slugify(payload.get('id', ''))}")
            section = payload.get("section", "positional")
            section = section if section in SECTIONS else "positional"
            caption = ""
            if kind == "curves" and payload.get("id") in SPLIT_CURVES:
                fig = curve_figure(payload, label, baselines=knn_baselines,
                                   baseline_suffix=" baseline, k-NN (k = 10)", level=level)
                bands = (CURVE_BAND_NOTE.format(level=level_percent(level), fixed=CURVE_FIXED[payload["id"]])
                         if payload.get("lo") else "")
                caption = " ".join(t for t in (bands, CURVE_BASELINE_NOTE if knn_baselines else "",
                                               split_sentence(methods)) if t)
            else:
                fig = builder(payload, label)
            out[section].append(figure(fig, slug, anchor, str(payload.get("title") or payload.get("id", "")),
                                       caption))
    return out


def evaluation_table(results: AtlasResults, m: ModelResult) -> dict[str, Any] | None:
    """The model's leaderboard numbers beside the baselines of its grid (None without evaluation),
    as the leaderboard's cells (:func:`.leaderboard.cell`): the value, its interval on a line of its
    own, and where it was taken (a baseline: its variant, when its column head cannot name it)."""
    from .leaderboard import BASELINE_ORDER, baseline_cell, cell, leaderboard_measures, shared_variant_label, taken_at

    info = results.measure_info
    names = [n for n in leaderboard_measures(results) if chosen_row(m, n) is not None]
    if not names:
        return None
    by = {(b.measure, b.name): b for b in m.baselines}
    cols = [b for b in BASELINE_ORDER if any((n, b) in by for n in names)]
    # a baseline's variant (colour + position: which colour space and coordinates) in its column
    # head when one variant serves every measure, else beside each of its values
    labels = {b: shared_variant_label([by[(n, b)] for n in names if (n, b) in by]) or b for b in cols}
    rows = []
    for n in names:
        row = chosen_row(m, n)
        rows.append({"title": measure_title(info, n),
                     "value": cell(row, taken_at(row), baseline_flag(row, m.baselines, info, results.interval_level)),
                     "baselines": [baseline_cell(by.get((n, b)), labels[b] == b) for b in cols]})
    split = split_sentence(results.methods) if any(uses_split(info, n) for n in names) else ""
    return {"columns": [labels[b] for b in cols], "rows": rows, "legend": flag_legend(), "rule": FLAG_RULE,
            "split": split}


def positional_table(results: AtlasResults, m: ModelResult) -> dict[str, Any] | None:
    """The positional measures at the last block, tokens (else the first representation), beside
    the content-only and position-only references."""
    from .leaderboard import interval_text

    info = results.measure_info
    pos = [r for r in m.measures if measure_section(info, r.measure) == "positional"]
    if not pos:
        return None
    block = max(r.block for r in pos)
    rep = "tokens" if any(r.representation == "tokens" for r in pos) else pos[0].representation
    refs = {(r.measure, r.reference): r for r in m.references if r.block == block and r.representation == rep}
    rows = []
    for r in pos:
        if r.block == block and r.representation == rep:
            rows.append({"title": measure_title(info, r.measure), "value": interval_text(r),
                         "content": interval_text(refs[(r.measure, "content-only")])
                         if (r.measure, "content-only") in refs else "—",
                         "position": interval_text(refs[(r.measure, "position-only")])
                         if (r.measure, "position-only") in refs else "—"})
    return {"block": block, "representation": rep, "rows": rows}


def model_files(results: AtlasResults, m: ModelResult, env: Environment, common: dict, labels: dict[str, str],
                maps: dict, highlights: list[Highlight]) -> dict[str, str]:
    page = model_page(m)
    slug = slugify(m.card.slug)
    label = labels[m.card.slug]
    text = env.get_template("model.md.j2").render(
        **common,
        page=page,
        m=m,
        card=m.card,
        label=label,
        title=label,
        cite_key=versioned_cite_key(results, page),
        # the page's <meta name="description">, which otherwise is the site's, without the label
        description=random_note([label] if m.card.is_random_init else []),
        card_rows=card_rows(m.card, results.seed) + resolution_rows(results, m.card.slug),
        highlights=[highlight(h, page, results) for h in highlights],
        gallery=model_gallery(results, m, page, maps),
        attention=attention_gallery(results, m, page, maps),
        prefix_tokens=m.card.num_prefix_tokens,
        recipes_href=rel("methods.md", page) + "#pictures" if "pictures" in results.methods else "",
        figs=model_sections(m, label, results.measure_info, results.interval_level, results.methods,
                            other_sizes=[(size_label(r.card), r) for _, r in results.runs_of(m.card.slug)[1:]],
                            main_size=size_label(m.card)),
        evaluation=evaluation_table(results, m),
        leaderboard_href=rel(leaderboard_page(results), page) if leaderboard_page(results) else "",
        positional=positional_table(results, m),
        notes=model_notes(m.card),
        comparisons=[{"title": c.title, "href": rel(comparison_page(c), page)}
                     for c in results.comparisons if m.card.slug in c.models],
        data={"csv": f"{slug}.csv", "json": f"{slug}.json"},
        jsonld=dataset_jsonld(
            results, page, f"{label} — {results.title}",
            f"Joint k-means clusters, positional, locality and boundary measures and evaluations of the patch "
            f"tokens, keys, queries and values of {label}, block by block, with intervals and baselines. "
            + citation_note(results) + ".",
            ((f"models/{slug}.csv", "text/csv"), (f"models/{slug}.json", "application/json")), part_of=True),
    )
    return {page: text, f"models/{slug}.csv": model_csv(m, results.measure_info),
            f"models/{slug}.json": dumps(model_json(results, m, label))}


# --------------------------------------------------------------------------- comparison pages


def comparison_rows(results: AtlasResults, c: ComparisonResult, references: bool = False) -> list[dict[str, Any]]:
    """Long rows of the measures a comparison overlays (its own, else its models'); with
    ``references``, the models' positional references of those rows instead (``reference``:
    content-only or position-only; none for a comparison with measures of its own)."""
    if c.measures:
        return [] if references else [dict(r) for r in c.measures]
    by_slug = {m.card.slug: m for m in results.models}
    rows = []
    for slug in c.models:
        m = by_slug.get(slug)
        if m is None:
            continue
        # a measure taken at the comparison's K shows that K; one taken at its own K only (the
        # evaluation's K = classes) shows that one
        at_k = {x.measure for x in m.measures if x.k == c.k}
        for r in m.references if references else m.measures:
            # the attention measures (one per block, no representation) belong beside the models,
            # not in a comparison of representations
            if (c.representations and r.representation not in c.representations
                    and not (r.representation == ATTENTION_ROWS and c.kind != "representations")):
                continue
            if r.k is not None and c.k and r.k != c.k and r.measure in at_k:
                continue
            rows.append({"model": slug, "representation": r.representation, "measure": r.measure,
                         "rel_depth": r.rel_depth, "block": r.block, "k": r.k, "value": r.value, "lo": r.lo, "hi": r.hi,
                         **({"reference": r.reference} if references else {})})
    return rows


def comparison_baselines(results: AtlasResults, c: ComparisonResult, name: str) -> list[dict[str, Any]]:
    """The baselines of measure ``name`` that the comparison's models carry, one group per patch
    grid (:func:`.figures.baseline_groups`); none for a model whose records hold none."""
    by_slug = {m.card.slug: m for m in results.models}
    return baseline_groups([by_slug[s] for s in c.models if s in by_slug], name)


def comparison_files(results: AtlasResults, c: ComparisonResult, env: Environment, common: dict,
                     labels: dict[str, str], maps: dict) -> dict[str, str]:
    info = results.measure_info
    page = comparison_page(c)
    slug = slugify(c.slug)
    rows = comparison_rows(results, c)
    positional = comparison_rows(results, c, references=True)
    figs, references = [], []
    for name in sorted({r["measure"] for r in rows}):
        mine = [r for r in rows if r["measure"] == name]
        refs = [r for r in positional if r["measure"] == name]
        if not has_values([r["value"] for r in mine]):
            figs.append(undefined_measure(f"fig-measure-{slugify(name)}", name, info,
                                          "at every block of every model of this comparison"))
            continue
        groups = comparison_baselines(results, c, name)
        fig = comparison_measure_figure(mine, measure_title(info, name), labels, c.title,
                                        bounds=(info.get(name) or {}).get("bounds"), baselines=groups, references=refs)
        note = comparison_baseline_note(groups, list(dict.fromkeys(r["model"] for r in mine)))
        shown = {t.legendgroup for t in fig.data if t.legendgroup in REFERENCE_DASH}
        ref_note = (f"Thin lines, shown by clicking {' and '.join(sorted(shown))} references in the legend: each "
                    "model's positional references (the same measure on its tokens shuffled over positions, and on "
                    "its per-position mean token), as on its own page." if shown else "")
        figs.append(measure_figure(fig, f"compare-{slug}", f"fig-measure-{slugify(name)}", name, info,
                                   " ".join(t for t in (split_note(results.methods, info, name), note, ref_note) if t)))
        references += [{"measure": name, "grid": g["grid"], "models": g["models"],
                        "baselines": [{"name": b.name, "variant": getattr(b, "variant", "") or "",
                                       "value": num(b.value), "lo": num(b.lo), "hi": num(b.hi)}
                                      for b in g["baselines"]]}
                       for g in groups]
    data = scaling(results, c, labels) if c.kind == "scaling" else None
    panels = [dict(p, columns=[dict(col, view=maps["views"].get((f"compare/{c.slug}", col["maps"]), {}).get("src"))
                               for col in p.get("columns", [])]) for p in c.panels]
    files = {
        f"compare/{slug}.csv": csv_text(
            ["model", "representation", "measure", "block", "rel_depth", "k", "value", "lo", "hi"],
            ([r["model"], r["representation"], r["measure"], r.get("block"), float(r["rel_depth"]), r.get("k"),
              num(r["value"]), num(r.get("lo")), num(r.get("hi"))] for r in rows)),
        f"compare/{slug}.json": dumps({
            "atlas_version": results.atlas_version, "config_hash": results.config_hash,
            "comparison": {k: v for k, v in clean(c).items() if k not in ("panels", "measures")},
            "models": [{"slug": s, "label": labels.get(s, s)} for s in c.models],
            "panels": panels,
            "measures": rows,
            "references": positional,
            "baselines": references,
            **({"scaling": data} if data else {}),
        }),
    }
    models = [{"label": labels.get(s, s), "href": rel(model_page(m), page), "random": m.card.is_random_init}
              for s in c.models for m in results.models if m.card.slug == s]
    files[page] = env.get_template("comparison.md.j2").render(
        **common,
        page=page,
        c=c,
        title=c.title,
        cite_key=versioned_cite_key(results, page),
        models=models,
        random_models=[labels[m.card.slug] for m in results.models if m.card.is_random_init and m.card.slug in c.models],
        near_identity=[{"label": labels[m.card.slug], "gamma": m.card.layer_scale, "random": m.card.is_random_init}
                       for m in results.models if m.card.slug in c.models and near_identity_blocks(m.card)],
        other_k=sorted({r["k"] for r in rows if r.get("k") is not None and r["k"] != c.k}),
        gallery=comparison_gallery(results, c, page, labels, maps),
        figs=figs,
        scaling=data and scaling_view(data, results, page, f"compare-{slug}", c),
        scaling_depths=SCALING_DEPTHS,
        data={"csv": f"{slug}.csv", "json": f"{slug}.json"},
    )
    return files


# --------------------------------------------------------------------------- atlas-wide pages


def highlight(h: Highlight, page: str, results: AtlasResults) -> dict[str, Any]:
    """A highlight sentence with the link to its figure, as seen from ``page``."""
    if h.model:
        m = next((m for m in results.models if m.card.slug == h.model), None)
        target = model_page(m) if m else ""
    elif h.comparison:
        c = next((c for c in results.comparisons if c.slug == h.comparison), None)
        target = comparison_page(c) if c else ""
    else:
        target = "index.md"
    href = ""
    if target:
        href = rel(target, page) if target != page else ""
        href = href + (f"#{h.anchor}" if h.anchor else "")
    return {"text": h.text, "href": href, "notable": h.notable}


def protocol(results: AtlasResults) -> list[tuple[str, str]]:
    info = results.measure_info
    reps = list(dict.fromkeys(r for m in results.models for r in m.representations))
    ks = sorted({k for m in results.models for k in m.ks})
    nblocks = sorted({len(m.blocks) for m in results.models})
    measured = sorted({len({r.block for r in m.measures if measure_section(info, r.measure) == "positional"})
                       for m in results.models})
    return [
        ("images", f"{len(results.images)} (see Images)"),
        ("models", str(len(results.models))),
        ("blocks per model in the gallery", ", ".join(map(str, nblocks)) or "—"),
        ("blocks per model with measures (layer sweep)", ", ".join(map(str, measured)) or "—"),
        ("representations", ", ".join(reps) or "—"),
        ("K (clusters)", ", ".join(map(str, ks)) or "—"),
        ("clustering", "joint k-means over the patch tokens of all images (one cluster = one meaning in every image)"),
        ("intervals", f"{level_percent(results.interval_level)}: random halves of the images (delete-d jackknife; "
                      "leave-one-out for the measures that are means over pairs of images, such as locality; for "
                      "the evaluation's dataset, of whole groups or contiguous frame blocks) and the "
                      "k-means seeds; positional measures beside content-only and position-only references, "
                      "evaluations beside chance, colour, position and ceiling baselines (see Methods)"),
        ("resolution policy", policy_sentence(results.methods.get("images") or {})),
        ("seed", str(results.seed)),
        ("config", f"{results.config_name} · sha256 {results.config_hash[:12]}"),
        ("device", results.device),
    ]


def guide_pages(docs_dir: Path) -> list[dict[str, str]]:
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


def home_files(results: AtlasResults, env: Environment, common: dict, labels: dict[str, str], evaluation: list[dict],
               guide: list[dict[str, str]], maps: dict, highlights: list[Highlight]) -> dict[str, str]:
    page = "index.md"
    random = [labels[m.card.slug] for m in results.models if m.card.is_random_init]
    return {
        "index.csv": csv_text(
            ["slug", "display_name", "label", "family", "training", "params", "patch_size",
             "weights_source", "provenance", "is_random_init", "page"],
            ([m.card.slug, m.card.display_name, labels[m.card.slug], m.card.family, m.card.training,
              m.card.params, m.card.patch_size, m.card.weights_source, m.card.provenance,
              m.card.is_random_init, html_url(model_page(m))] for m in results.models)),
        "index.json": dumps({
            "atlas_version": results.atlas_version, "config_hash": results.config_hash,
            "models": [dict(dataclasses.asdict(m.card), label=labels[m.card.slug], page=html_url(model_page(m)))
                       for m in results.models],
        }),
        page: env.get_template("home.md.j2").render(
            **common,
            page=page,
            title=results.title,
            cite_key=versioned_cite_key(results, page),
            description=(f"{results.description or ATLAS_ABSTRACT} {random_note(random)}" if random else ""),
            model_rows=[{"label": labels[m.card.slug], "href": model_page(m), "card": m.card} for m in results.models],
            random_models=random,
            protocol=protocol(results),
            overview=overview_matrix(results, page, labels, maps),
            highlights=[highlight(h, page, results) for h in highlights],
            jsonld=dataset_jsonld(results, page, results.title, (results.description or ATLAS_ABSTRACT) + " "
                                  + citation_note(results) + ".", ATLAS_DOWNLOADS),
            comparisons=[{"title": c.title, "href": comparison_page(c),
                          "description": c.description or COMPARISON_BLURBS.get(c.kind, "")}
                         for c in results.comparisons]
            + [{"title": e["title"], "href": e["page"], "description": e["blurb"]} for e in evaluation],
            guide=guide,
            data={"csv": "index.csv", "json": "index.json"},
        ),
    }


def method_section(name: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "text": "", "items": [], "table": []}
    if isinstance(value, str):
        out["text"] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and len(v) > 40:
                out["items"].append((str(k), v))
            else:
                out["table"].append((str(k), v if isinstance(v, str) else json.dumps(clean(v), sort_keys=True)))
    elif isinstance(value, (list, tuple)):
        out["items"] = [("", v if isinstance(v, str) else json.dumps(clean(v), sort_keys=True)) for v in value]
    else:
        out["text"] = json.dumps(clean(value), sort_keys=True)
    return out


def methods_files(results: AtlasResults, env: Environment, common: dict) -> dict[str, str]:
    """Methods: the build's method records, then every measure of this build, defined."""
    page = "methods.md"
    info = results.measure_info
    sections = methods_sections(results.methods)
    present = list(dict.fromkeys(r.measure for m in results.models for r in m.measures))
    order = {name: i for i, name in enumerate(info)}
    fields = ("section", "range", "definition", "formula", "inputs", "function", "interval")
    measures = [{"name": n, "anchor": f"measure-{slugify(n)}", "title": measure_title(info, n),
                 **{f: str((info.get(n) or {}).get(f, "")) for f in fields},
                 "definition": definition_with_split(info, n, results.methods),
                 "depends_on_k": bool((info.get(n) or {}).get("depends_on_k")),
                 "position_free": bool((info.get(n) or {}).get("position_free")),
                 "direction_text": DIRECTIONS.get((info.get(n) or {}).get("direction", ""), "")}
                for n in sorted(present, key=lambda n: (order.get(n, len(order)), n))]
    return {
        # the page's words by section, the build's settings as recorded (ids and numbers), the measures
        "methods.json": dumps({"atlas_version": results.atlas_version, "config_hash": results.config_hash,
                               "methods": sections, "settings": results.methods,
                               "measures": {m["name"]: info.get(m["name"], {}) for m in measures}}),
        "methods.csv": csv_text(["section", "key", "value"], flatten_methods(sections)),
        page: env.get_template("methods.md.j2").render(
            **common,
            page=page,
            title="Methods",
            cite_key=versioned_cite_key(results, page),
            methods=[method_section(k, v) for k, v in sections.items()],
            measures=measures,
            fence=fence(results.config_text),
            data={"csv": "methods.csv", "json": "methods.json"},
        ),
    }


def images_files(results: AtlasResults, env: Environment, common: dict, maps: dict) -> dict[str, str]:
    page = "images.md"
    thumbs = maps["thumbnails"]
    return {
        "images.csv": csv_text(
            ["name", "source", "licence", "credit", "content_hash", "width", "height", "thumbnail"],
            ([i.name, i.source, i.licence, i.credit, i.content_hash, i.width, i.height, thumbs.get(i.name, "")]
             for i in results.images)),
        "images.json": dumps({"atlas_version": results.atlas_version, "images": results.images,
                              "evaluation_datasets": results.datasets}),
        page: env.get_template("images.md.j2").render(
            **common,
            page=page,
            title="Images",
            cite_key=versioned_cite_key(results, page),
            images=[{"info": i, "thumb": rel(thumbs[i.name], page) if i.name in thumbs else ""}
                    for i in results.images],
            datasets=results.datasets,
            data={"csv": "images.csv", "json": "images.json"},
        ),
    }


def build_report_files(results: AtlasResults, env: Environment, common: dict, labels: dict[str, str]) -> dict[str, str]:
    page = "build-report.md"
    # every run of the resolution axis, by its run id (the slug at the main size, slug--HxW at the
    # others): the atlas's model totals count them all
    runs = [(rid, m) for main in results.models for rid, m in results.runs_of(main.card.slug)]
    timing_rows = [["atlas", k, num(v)] for k, v in results.timings.items()]
    timing_rows += [[rid, k, num(v)] for rid, m in runs for k, v in m.timings.items()]
    return {
        "build-report.csv": csv_text(["scope", "step", "seconds"], timing_rows),
        "build-report.json": dumps({
            "atlas_version": results.atlas_version, "config_name": results.config_name,
            "config_hash": results.config_hash, "build_date": results.build_date, "seed": results.seed,
            "device": results.device, "environment": results.environment,
            "models": [{"slug": m.card.slug, "label": labels[m.card.slug], "timm_name": m.card.timm_name,
                        "weights_source": m.card.weights_source, "provenance": m.card.provenance}
                       for m in results.models],
            "images": results.images, "skipped": results.skipped,
            "timings": {"atlas": results.timings, "models": {rid: m.timings for rid, m in runs}},
            "features": {rid: {**m.passes, "stored_bytes": results.stored_bytes.get(rid)} for rid, m in runs},
        }),
        page: env.get_template("build.md.j2").render(
            **common,
            page=page,
            title="Build report",
            cite_key=versioned_cite_key(results, page),
            labels=labels,
            timing_rows=timing_rows,
            feature_rows=[(m, m.passes, results.stored_bytes.get(rid), rid in results.reused_models,
                           "" if rid == m.card.slug else " × ".join(map(str, m.card.input_size)) + " px")
                          for rid, m in runs],
            fence=fence(results.config_text),
            data={"csv": "build-report.csv", "json": "build-report.json"},
        ),
    }


def changes_files(results: AtlasResults, env: Environment, common: dict, previous: PreviousVersion,
                  rows: list[dict[str, Any]]) -> dict[str, str]:
    """The Changes page of a published version against the previous one (:mod:`.changes`), from this
    version's table of every number (``rows``, :func:`.table.results_table`)."""
    page = CHANGES_PAGE
    c = changes(previous, rows, results)
    for r in c["moved"]:
        for digits in (3, 4, 5, 6, 8):  # enough digits to show the move (intervals can be very narrow)
            r["previous_text"] = with_interval(r["previous"], r["previous_lo"], r["previous_hi"], digits)
            r["value_text"] = with_interval(r["value"], r["lo"], r["hi"], digits)
            if r["previous_text"] != r["value_text"]:
                break
        r["title"] = measure_title(results.measure_info, r["measure"])
        where = [f"block {r['block']}" if r["block"] is not None else "", r["representation"] or "",
                 f"K = {r['k']}" if r["k"] is not None else "", f"cluster {r['cluster']}" if r["cluster"] is not None
                 else "", r["reference"] or "", f"{r['baseline']} baseline" if r["baseline"] else ""]
        r["where"] = ", ".join(w for w in where if w) or "—"
    columns = ["model", "comparison", "section", "measure", "block", "representation", "k", "cluster", "reference",
               "baseline", "previous", "previous_lo", "previous_hi", "value", "lo", "hi"]
    return {
        "changes.csv": csv_text(columns, ([num(r[k]) if k in ("previous", "previous_lo", "previous_hi", "value",
                                                                "lo", "hi") else r[k] for k in columns]
                                          for r in c["moved"])),
        "changes.json": dumps(c),
        page: env.get_template("changes.md.j2").render(**common, page=page, title=f"Changes in version "
                                                       f"{results.published_version}",
                                                       cite_key=versioned_cite_key(results, page), c=c,
                                                       random_slugs={r.card.slug for r in results.models
                                                                     + results.resolution_runs if r.card.is_random_init},
                                                       data={"csv": "changes.csv", "json": "changes.json"}),
    }


def nav(results: AtlasResults, guide: list[dict[str, str]], labels: dict[str, str], evaluation: list[dict] = (),
        changed: bool = False) -> list[Any]:
    """The MkDocs ``nav``; titles as plain text (atlas/site/theme_hooks.py escapes them once)."""
    e = printable
    entries: list[Any] = [{"Home": "index.md"}]
    if guide:
        entries.append({"Guide": [{e(g["title"]): g["path"]} for g in guide]})
    if results.models:
        entries.append({"Models": [{e(labels[m.card.slug]): model_page(m)} for m in results.models]})
    comparisons = [{e(c.title): comparison_page(c)} for c in results.comparisons]
    comparisons += [{ev["title"]: ev["page"]} for ev in evaluation]
    if comparisons:
        entries.append({"Comparisons": comparisons})
    entries += [{"Methods": "methods.md"}, {"Images": "images.md"}, {"Build report": "build-report.md"}]
    entries += [{"Changes": CHANGES_PAGE}] if changed else []
    return entries


def page_titles(results: AtlasResults, guide: list[dict[str, str]], labels: dict[str, str],
                evaluation: list[dict] = (), changed: bool = False) -> dict[str, str]:
    """Docs-dir path -> plain-text title of every page the site cites."""
    titles = {"index.md": results.title}
    titles.update({model_page(m): labels[m.card.slug] for m in results.models})
    titles.update({comparison_page(c): c.title for c in results.comparisons})
    titles.update({e["page"]: e["title"] for e in evaluation})
    titles.update({"methods.md": "Methods", "images.md": "Images", "build-report.md": "Build report"})
    titles.update({g["path"]: g["title"] for g in guide})
    if changed:
        titles[CHANGES_PAGE] = f"Changes in version {results.published_version}"
    return titles


def citations(results: AtlasResults, guide: list[dict[str, str]], labels: dict[str, str],
              evaluation: list[dict] = (), changed: bool = False) -> dict[str, dict[str, Any]]:
    """Each page's citation (:func:`atlas.site.citation.page_citation`), by docs-dir path."""
    return {page: page_citation(results, page, title)
            for page, title in page_titles(results, guide, labels, evaluation, changed).items()}


# --------------------------------------------------------------------------- writing

_PLOT_SPEC = re.compile(r'<script type="application/json" class="atlas-plot-spec" data-target="([^"]+)">(.*?)</script>',
                        re.S)


def split_figures(page: str, text: str) -> tuple[str, str | None]:
    """Move the plot specs of a page out of its HTML into a script of their own.

    ``figure_html`` writes each spec beside its plot; the page would then carry every plot's data
    (hundreds of KB) in the HTML the browser parses before anything shows. Here they move into
    ``<page>.figures.js`` (``atlasFigures({div id: spec, ...})``), which ``atlas.js`` loads when a
    plot first nears the viewport. A script, not JSON: it also loads from ``file://``.
    """
    specs = _PLOT_SPEC.findall(text)
    if not specs:
        return text, None
    src = posixpath.basename(figures_script(page))
    text = _PLOT_SPEC.sub("", text).replace('class="atlas-plot-target"', f'class="atlas-plot-target" data-src="{src}"')
    body = ",\n".join(f"{json.dumps(html.unescape(div))}:{spec}" for div, spec in specs)
    return text, f"atlasFigures({{\n{body}\n}});\n"



def _static_files(docs_dir: Path) -> dict[str, bytes]:
    """Committed assets (plotly.js's cartesian bundle among them) and guide pages, when the docs
    dir is elsewhere."""
    files: dict[str, bytes] = {}
    if docs_dir.resolve() != STATIC_SRC.resolve():
        for sub in STATIC_DIRS:
            src = STATIC_SRC / sub
            for f in sorted(src.rglob("*")) if src.is_dir() else []:
                if f.is_file() and f.relative_to(STATIC_SRC).as_posix() not in STALE_FILES:
                    files[f.relative_to(STATIC_SRC).as_posix()] = f.read_bytes()
    return files


def check_plotly_bundle() -> str:
    """The vendored plotly.js version; warns when the plotly package writes figures for another major."""
    import plotly.offline

    head = PLOTLY_BUNDLE.read_bytes()[:200].decode("ascii", "replace")
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", head)
    vendored = ".".join(match.groups()) if match else "?"
    wanted = plotly.offline.get_plotlyjs_version()
    if vendored.split(".")[0] != wanted.split(".")[0]:
        log.warning("the plotly package writes figures for plotly.js %s but the site ships plotly.js %s (%s); "
                    "update the vendored bundle (see its SOURCE.txt)", wanted, vendored, PLOTLY_BUNDLE)
    return vendored


def _remove_stale(docs_dir: Path, keep: set[Path]) -> None:
    """Drop generated pages/data of models or comparisons that left the results, and files that
    earlier versions wrote."""
    for name in STALE_FILES:
        (docs_dir / name).unlink(missing_ok=True)
    for sub in ("models", "compare"):
        d = docs_dir / sub
        if not d.is_dir():
            continue
        for f in d.iterdir():
            if f.is_file() and f.suffix in (".md", ".csv", ".json", ".js") and f not in keep:
                f.unlink()


RENDER_STAMP = ".atlas-render"  # in the docs dir (a dot-file: not published)


def render_fingerprint(results: AtlasResults, *settings: str) -> str:
    """Everything the rendered pages and site depend on: the records (this build's date, timings and
    reuse aside), their arrays, the site code, templates and static files, and ``settings`` (site URL,
    folders). Equal fingerprints give the same site but for its date, so a rebuild with nothing
    changed renders nothing (the caller compares a date the user asked for on its own)."""
    import hashlib

    h = hashlib.sha256()
    # this build's own facts (the day it ran, how long it took, which models it found current) are
    # left out: a rebuild with nothing changed renders nothing, on the same day or a later one, and
    # the pages stay those of the build that last rendered them (its date, timings and reuse together)
    record = {k: v for k, v in results.to_dict().items() if k not in ("build_date", "timings", "reused_models")}
    h.update(json.dumps(record, sort_keys=True, default=str).encode())
    arrays = [("photos", results.photos)] + [(m.card.slug, {**m.label_maps, **m.pictures}) for m in results.models] + [
        (f"compare/{c.slug}", c.label_maps) for c in results.comparisons]
    for owner, stacks in arrays:
        for key in sorted(stacks):
            a = np.ascontiguousarray(stacks[key])
            h.update(f"{owner}|{key}|{a.shape}|{a.dtype}|".encode())
            h.update(a.tobytes())
    for folder in (Path(__file__).parent, REPO_ROOT / "templates", STATIC_SRC / "assets", STATIC_SRC / "guide"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(REPO_ROOT)).encode())
            h.update(path.read_bytes())
    h.update("|".join(settings).encode())
    return h.hexdigest()


def render_site(results: AtlasResults, docs_dir: Path, previous: PreviousVersion | None = None) -> list[Path]:
    """Write every generated page, its CSV/JSON downloads, the gallery maps and ``atlas.json`` into
    ``docs_dir``, from the records alone; returns the written paths (gallery maps aside).

    Committed static files (``site_src/assets``, ``site_src/guide``) are copied in when
    ``docs_dir`` is elsewhere.
    Pages of models or comparisons that are no longer in ``results`` are removed. With
    ``previous`` (a published version, :func:`.changes.read_previous`) a Changes page compares
    this version with it.
    """
    results = dataclasses.replace(results, measure_info=with_words(results.measure_info))  # the site's words
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    remove_orphaned_temporaries(docs_dir.rglob(f"{TEMP_PREFIX}*"))  # left by a killed render
    check_plotly_bundle()
    env = jinja_env()
    maps = write_maps(results, docs_dir)
    labels = {m.card.slug: model_label(m.card) for m in results.models}
    leaderboard = leaderboard_page(results)
    propagation = propagation_page(results, {comparison_page(c) for c in results.comparisons})
    resolution = resolution_page(results, {comparison_page(c) for c in results.comparisons})
    # the pages of the evaluations and the resolution axis, under Comparisons after the config's own
    evaluation = [e for e in ({"page": leaderboard, "title": LEADERBOARD_TITLE, "blurb": LEADERBOARD_BLURB},
                              {"page": propagation, "title": PROPAGATION_TITLE, "blurb": PROPAGATION_BLURB,
                               "data": {"csv": propagation[:-3] + ".csv"}},
                              {"page": resolution, "title": RESOLUTION_TITLE, "blurb": RESOLUTION_BLURB,
                               "data": {"csv": resolution[:-3] + ".csv"}}) if e["page"]]
    files: dict[str, str | bytes] = dict(_static_files(docs_dir))
    guide = guide_pages(docs_dir if (docs_dir / "guide").is_dir() else STATIC_SRC)
    common = {"atlas": results, "version": results.atlas_version, "random_label": RANDOM_INIT_LABEL,
              "sections": SECTIONS}
    atlas_wide, per_model = make_highlights(results.models, results.measure_info, results.interval_level)
    for m in results.models:
        files.update(model_files(results, m, env, common, labels, maps, per_model.get(m.card.slug, [])))
    for c in results.comparisons:
        files.update(comparison_files(results, c, env, common, labels, maps))
    if leaderboard:
        files.update(leaderboard_files(results, leaderboard, labels, env, common, propagation))
    if propagation:
        files.update(propagation_files(results, propagation, labels, env, common))
    if resolution:
        files.update(resolution_files(results, resolution, labels, env, common))
    files.update(home_files(results, env, common, labels, evaluation, guide, maps, atlas_wide))
    files.update(methods_files(results, env, common))
    files.update(images_files(results, env, common, maps))
    files.update(build_report_files(results, env, common, labels))
    files["atlas.json"] = dumps(atlas_index(results, labels, evaluation))
    table = results_table(results)  # once: the downloads and the Changes page read the same rows
    files.update(table_files(table))
    changed = previous is not None
    if changed:
        files.update(changes_files(results, env, common, previous, table))
    files[NAV_FILE] = dumps(nav(results, guide, labels, evaluation, changed))
    for page in [p for p in files if p.endswith(".md") and isinstance(files[p], str)]:  # generated pages
        text, script = split_figures(page, files[page])
        if script is not None:
            files[page], files[figures_script(page)] = text, script
    files[CITE_FILE] = dumps(citations(results, guide, labels, evaluation, changed))
    files["CITATION.cff"] = citation_cff(results)
    files[".zenodo.json"] = zenodo_json(results)
    written = [atomic_write(docs_dir / rel_path, data, skip_unchanged=True) for rel_path, data in files.items()]
    _remove_stale(docs_dir, set(written))
    return written
