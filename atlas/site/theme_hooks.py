"""MkDocs hooks of the atlas site (``hooks:`` in mkdocs.yml): names escaped once, at the theme layer.

The site name and page titles come from configs and file names. mkdocs-material prints them raw in
some places (header, navigation, tabs) and through ``| e`` in others (the logo's tooltip, the
footer's aria-labels), and MkDocs theme templates do not autoescape. Stored escaped, a title shows
double-escaped where ``| e`` runs; stored raw, it runs as HTML where it does not. As
:class:`markupsafe.Markup` holding the escaped text it is escaped exactly once everywhere: printed
raw it is the escaped text, and ``| e`` leaves Markup as it is.

>>> from types import SimpleNamespace
>>> page = SimpleNamespace(title="a <b> & c", meta={"title": "a <b> & c"})
>>> _ = on_page_content("", page)
>>> page.title, page.meta["title"] == page.title, escaped_once(page.title) == page.title
(Markup('a &lt;b&gt; &amp; c'), True, True)
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape


def escaped_once(text: Any) -> Any:
    """``text`` HTML-escaped as :class:`Markup` (Markup and None are returned as they are)."""
    return text if text is None or isinstance(text, Markup) else escape(str(text))


def on_config(config: Any) -> Any:
    config.site_name = escaped_once(config.site_name)
    return config


def on_page_content(html: str, page: Any, **_: Any) -> str:
    # After rendering (a title taken from the first heading is final) and before any page's
    # template runs, which is where the previous / next page's title is printed in the footer.
    page.title = escaped_once(page.title)
    if isinstance(page.meta, dict) and "title" in page.meta:  # the header prints it raw
        page.meta["title"] = escaped_once(page.meta["title"])
    return html
