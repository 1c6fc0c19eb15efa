"""The site layer: records -> gallery maps, pages and data files -> MkDocs-material site.

Two steps, so the (slow) pipeline and the (fast) site build stay decoupled::

    paths = render_site(results, Path("site_src"))   # maps, pages, CSV/JSON downloads, atlas.json
    site = build_site("mkdocs.yml")                   # mkdocs build --strict -> site/

:mod:`.paths` (where things live), :mod:`.wording` and :mod:`.markup` (names, escaping),
:mod:`.data` (downloads, ``atlas.json``), :mod:`.maps` and :mod:`.palette` (gallery images),
:mod:`.figures` (Plotly), :mod:`.gallery`, :mod:`.scaling`, :mod:`.leaderboard`, :mod:`.pages`
(one function per page kind) and :mod:`.mkdocs`.
"""

from .mkdocs import build_site, page_weight, serve_site
from .pages import render_site

__all__ = ["build_site", "page_weight", "render_site", "serve_site"]
