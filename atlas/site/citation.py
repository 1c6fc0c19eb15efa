"""Citations: the BibTeX of every page, the pieces ``atlas.js`` needs to cite one view of a page,
and the atlas's ``CITATION.cff``.

A page is cited by its absolute URL under ``[atlas] site_url`` (``--site-url``); a published
version (``--publish``) is cited by its version's URL, which keeps serving it after later
versions, with the alias URL (e.g. ``latest``) offered beside it. Without a site URL the build is
local: the cite box says so and the BibTeX carries no URL.

The version a citation names (cite box, BibTeX, CITATION.cff, .zenodo.json, JSON-LD) is the
published version when there is one, else the atlas software version (:func:`cited_version`); a
published build's BibTeX key ends in its version and its note names the software version, labelled.

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

import json
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


def bibtex_entry(key: str, title: str, url: str, *, author: str, date: str, version: str, note: str,
                 doi: str = "") -> str:
    """One ``@misc`` entry; ``url`` may be "" (local build: no URL fields); ``doi`` "" for none."""
    fields = [("title", "{" + latex(title) + "}"), ("author", "{" + latex(author) + "}"),
              ("year", date[:4]), ("version", latex(version))]
    if doi:
        fields.append(("doi", doi))
    if url:
        fields += [("url", url), ("urldate", date), ("howpublished", r"\url{" + url_in_latex(url) + "}")]
    fields.append(("note", latex(note)))
    body = ",\n".join(f"  {name:<12} = {{{value}}}" for name, value in fields)
    return f"@misc{{{key},\n{body}\n}}"


#: The keywords of the atlas as a dataset (CITATION.cff, .zenodo.json, JSON-LD).
KEYWORDS = ("self-supervised learning", "vision transformer", "unsupervised semantic segmentation")

#: The corporate author of every atlas page (one name: double-braced in BibTeX, an entity in CFF).
ATLAS_AUTHOR = "SSL ViT Atlas contributors"


def cited_version(results: AtlasResults) -> str:
    """The version every citation names: the published version (``--publish DIR --version V``)
    when there is one, else the atlas software version the results were computed with."""
    return results.published_version or results.atlas_version


def versioned_cite_key(results: AtlasResults, page: str) -> str:
    """BibTeX key of ``page`` in this build: :func:`~atlas.site.paths.cite_key`, and on a published
    build the version after it, so that two versions cited in one paper do not collide. Kept to
    letters, digits, ``-``, ``_``, ``:`` and ``.`` (a version's ``+`` becomes ``plus``).

    >>> from types import SimpleNamespace as R
    >>> versioned_cite_key(R(published_version="2026.12+rc1"), "models/dino-vit-s-16.md")
    'ssl-vit-atlas-models-dino-vit-s-16-2026.12plusrc1'
    >>> versioned_cite_key(R(published_version=""), "models/dino-vit-s-16.md")
    'ssl-vit-atlas-models-dino-vit-s-16'
    """
    key = cite_key(page)
    if not results.published_version:
        return key
    version = re.sub(r"[^A-Za-z0-9_.:-]", lambda m: "plus" if m.group(0) == "+" else "-",
                     results.published_version)
    return f"{key}-{version}"


def citation_note(results: AtlasResults) -> str:
    """The note of every citation: the cited version, and on a published build the software version
    beside it, labelled as such (the published version names the data, not the software)."""
    version = f"Atlas version {cited_version(results)}"
    if results.published_version:
        version += f" (SSL ViT Atlas software {results.atlas_version})"
    note = f"{version}, built {results.build_date}, config sha256 {results.config_hash}"
    if results.code_hash:  # the software version alone does not pin the code that computed the numbers
        note += f", code {results.code_hash}"
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
    key = versioned_cite_key(results, page)
    full_title = title if page == "index.md" else f"{title} — {results.title}"
    url = page_url(results, page)
    common = {"author": ATLAS_AUTHOR, "date": results.build_date, "version": cited_version(results),
              "note": citation_note(results), "doi": results.doi}
    view = {"key": key, "title": latex(full_title), "url": url, "author": latex(common["author"]),
            "year": results.build_date[:4], "version": latex(common["version"]), "urldate": results.build_date,
            "note": latex(common["note"]), "doi": results.doi}
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
        "version": cited_version(results),
        "date-released": results.build_date,
    }
    if results.doi:
        cff["doi"] = results.doi
    if results.site_url:
        cff["url"] = results.site_url  # a published version's own URL
    if results.licence:
        cff["license" if "://" not in results.licence else "license-url"] = results.licence
    cff["abstract"] = _abstract(results) + " " + citation_note(results) + "."
    cff["keywords"] = list(KEYWORDS)
    cff["references"] = [{"type": "software", "title": "SSL ViT Atlas", "version": __version__,
                          "authors": [{"name": ATLAS_AUTHOR}]}]
    header = f"# CITATION.cff of this atlas build (config sha256 {results.config_hash})\n"
    return header + yaml.safe_dump(cff, sort_keys=False, allow_unicode=True, width=100)


#: What the atlas is, when its config gives no description.
ATLAS_ABSTRACT = ("Unsupervised semantic segmentation of self-supervised ViT tokens: joint k-means clusters of patch "
                  "tokens, keys, queries and values, block by block, with positional, locality, boundary and "
                  "segmentation measures.")


def _abstract(results: AtlasResults) -> str:
    return results.description or ATLAS_ABSTRACT


def zenodo_json(results: AtlasResults) -> str:
    """``.zenodo.json``: the metadata Zenodo reads when this version is deposited (its DOI, once
    Zenodo has minted it, goes back in with ``--doi``)."""
    meta: dict[str, Any] = {
        "upload_type": "dataset",
        "title": f"{results.title} (version {cited_version(results)})",
        "description": _abstract(results) + " " + citation_note(results) + ".",
        "creators": [{"name": ATLAS_AUTHOR}],
        "version": cited_version(results),
        "publication_date": results.build_date,
        "keywords": list(KEYWORDS),
    }
    if results.doi:
        meta["doi"] = results.doi
    if results.licence:
        meta["license"] = results.licence
    if results.site_url:
        meta["related_identifiers"] = [{"identifier": results.site_url, "relation": "isIdenticalTo",
                                        "resource_type": "dataset"}]
    return json.dumps(meta, indent=1, ensure_ascii=False) + "\n"


#: Downloads of the atlas as a whole (schema.org ``distribution``), by file and media type.
ATLAS_DOWNLOADS = (("atlas-results.parquet", "application/vnd.apache.parquet"),
                   ("atlas-results.csv.gz", "text/csv"), ("atlas.json", "application/json"))


def dataset_jsonld(results: AtlasResults, page: str, name: str, description: str,
                   downloads: tuple[tuple[str, str], ...], part_of: bool = False) -> dict[str, Any]:
    """schema.org ``Dataset`` of a page (Home: the atlas; a model page: its numbers, part of the
    atlas), for dataset search engines: name, description, version, url, license, creator,
    dateModified, distribution (``downloads``: docs-dir paths and media types), identifier (DOI)."""
    def where(path: str) -> str:
        return results.site_url + path if results.site_url else path

    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": name,
        "description": description,
        "version": cited_version(results),
        "url": page_url(results, page) or html_url(page),
        "creator": {"@type": "Organization", "name": ATLAS_AUTHOR},
        "dateModified": results.build_date,
        "isAccessibleForFree": True,
        "keywords": list(KEYWORDS),
        "distribution": [{"@type": "DataDownload", "encodingFormat": kind, "contentUrl": where(path)}
                         for path, kind in downloads],
    }
    if results.licence:
        data["license"] = (results.licence if "://" in results.licence
                           else f"https://spdx.org/licenses/{results.licence}.html")
    if results.doi:
        data["identifier"] = f"https://doi.org/{results.doi}"
    if part_of:
        data["isPartOf"] = {"@type": "Dataset", "name": results.title, "url": page_url(results, "index.md") or "index.html"}
    return data
