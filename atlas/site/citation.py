"""Citations: the BibTeX of every page, the pieces ``atlas.js`` needs to cite one view of a page,
and the atlas's ``CITATION.cff``.

A page is cited by its absolute URL under ``[atlas] site_url`` (``--site-url``); a published
version (``--publish``) is cited by its version's URL, which keeps serving it after later
versions, with the alias URL (e.g. ``latest``) offered beside it. Without a site URL the build is
local: the cite box says so and the BibTeX carries no URL.

BibTeX is written for both BibTeX and biblatex: ``url`` / ``urldate`` / ``version`` for biblatex
and natbib styles, ``howpublished = {\\url{...}}`` for classic styles that ignore ``url``; the
corporate author in double braces (one name, not "contributors, SSL ViT Atlas"); titles in double
braces (capitals kept) and LaTeX-safe (``—`` becomes ``---``, ``_`` becomes ``\\_``, ...).

Example:

>>> print(bibtex_entry("ssl-vit-atlas-methods", "Methods — SSL ViT Atlas",
...                    "https://example.org/atlas/methods.html", author="SSL ViT Atlas contributors",
...                    date="2026-11-29", version="0.1.0", note="config sha256 ab12"))
@misc{ssl-vit-atlas-methods,
  title        = {{Methods --- SSL ViT Atlas}},
  author       = {{SSL ViT Atlas contributors}},
  year         = {2026},
  version      = {0.1.0},
  url          = {https://example.org/atlas/methods.html},
  urldate      = {2026-11-29},
  howpublished = {\\url{https://example.org/atlas/methods.html}},
  note         = {config sha256 ab12}
}
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .. import __version__
from ..records import RANDOM_INIT_LABEL, AtlasResults
from .markup import json_script, visible
from .paths import cite_key, html_url

_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\u2014": "---", "\u2013": "--"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def latex(text: str) -> str:
    """Text safe inside a BibTeX field (LaTeX specials escaped, dashes as ``---`` / ``--``;
    invisible format characters shown as escapes, as on the pages).

    >>> latex("ViT-S/16 (random init — architecture baseline) 100% a_b")
    'ViT-S/16 (random init --- architecture baseline) 100\\\\% a\\\\_b'
    >>> print(latex("Tiny \\u202eA"))
    Tiny \\textbackslash{}u202eA
    """
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], " ".join(visible(str(text)).split()))


def url_in_latex(url: str) -> str:
    r"""A URL inside ``\url{}`` in another field: ``%`` and ``#`` escaped (``\url`` in an argument)."""
    return url.replace("%", r"\%").replace("#", r"\#")


def bibtex_entry(key: str, title: str, url: str, *, author: str, date: str, version: str, note: str) -> str:
    """One ``@misc`` entry; ``url`` may be "" (local build: no URL fields)."""
    fields = [("title", "{" + latex(title) + "}"), ("author", "{" + latex(author) + "}"),
              ("year", date[:4]), ("version", latex(version))]
    if url:
        fields += [("url", url), ("urldate", date), ("howpublished", r"\url{" + url_in_latex(url) + "}")]
    fields.append(("note", latex(note)))
    body = ",\n".join(f"  {name:<12} = {{{value}}}" for name, value in fields)
    return f"@misc{{{key},\n{body}\n}}"


#: The corporate author of every atlas page (one name: double-braced in BibTeX, an entity in CFF).
ATLAS_AUTHOR = "SSL ViT Atlas contributors"


def citation_note(results: AtlasResults) -> str:
    note = f"Atlas version {results.atlas_version}, built {results.build_date}, config sha256 {results.config_hash}"
    if any(m.card.is_random_init for m in results.models):
        note += f". Includes randomly initialised models ({RANDOM_INIT_LABEL})"
    return note


def page_url(results: AtlasResults, page: str) -> str:
    """Absolute URL of docs-dir page ``page`` ("" without a site URL): the page's canonical URL."""
    return results.site_url + html_url(page) if results.site_url else ""


def page_citation(results: AtlasResults, page: str, title: str) -> dict[str, Any]:
    """Everything the cite box of ``page`` shows, and what ``atlas.js`` needs for "Cite this view".

    ``fields`` are the entry's lines after title and URL, so a view's entry differs only in key,
    title and URL.
    """
    key = cite_key(page)
    full_title = title if page == "index.md" else f"{title} — {results.title}"
    url = page_url(results, page)
    common = {"author": ATLAS_AUTHOR, "date": results.build_date, "version": results.atlas_version,
              "note": citation_note(results)}
    view = {"key": key, "title": latex(full_title), "url": url, "author": latex(common["author"]),
            "year": results.build_date[:4], "version": latex(results.atlas_version), "urldate": results.build_date,
            "note": latex(common["note"])}
    latest = results.latest_url + html_url(page) if results.latest_url else ""
    return {"key": key, "url": url, "bibtex": bibtex_entry(key, full_title, url, **common),
            "view_json": str(json_script(view)), "version": results.published_version, "latest": latest}


def citation_cff(results: AtlasResults) -> str:
    """``CITATION.cff`` (Citation File Format 1.2.0) of the atlas as a whole, for the site root."""
    cff: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": "If you use this atlas, please cite it as below.",
        "type": "dataset",
        "title": results.title,
        "authors": [{"name": ATLAS_AUTHOR}],
        "version": results.atlas_version,
        "date-released": results.build_date,
    }
    if results.site_url:
        cff["url"] = results.site_url  # a published version's own URL
    cff["abstract"] = (results.description or "Unsupervised semantic segmentation of self-supervised ViT tokens: "
                       "joint k-means clusters of patch tokens, keys, queries and values, block by block, with "
                       "positional, locality, boundary and segmentation measures.") + " " + citation_note(results) + "."
    cff["keywords"] = ["self-supervised learning", "vision transformer", "unsupervised semantic segmentation"]
    cff["references"] = [{"type": "software", "title": "SSL ViT Atlas", "version": __version__,
                          "authors": [{"name": ATLAS_AUTHOR}]}]
    header = f"# CITATION.cff of this atlas build (config sha256 {results.config_hash})\n"
    return header + yaml.safe_dump(cff, sort_keys=False, allow_unicode=True, width=100)
