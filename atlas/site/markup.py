"""Markup of the pages: the Jinja environment and escaping for HTML, Markdown and inline JSON.

Every string that comes from a config or a file name is HTML-escaped (Jinja autoescape), and
escaped for Markdown where it lands in Markdown text.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .data import clean
from .paths import rel

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "pages"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: Any) -> str:
    """Control characters (newlines, tabs, ...) written as escapes: a file name with a newline
    must not split a table row or a line of Markdown.

    >>> printable("a\\nb\\tc")
    'a\\\\nb\\\\tc'
    """
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def md(text: Any) -> Markup:
    """Escape for Markdown inline text, then for HTML (Markdown passes raw HTML through).

    >>> str(md("a_b <i>"))
    'a\\\\_b &lt;i&gt;'
    """
    s = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", printable(text))
    return Markup(html.escape(s, quote=True))


def md_prose(text: Any) -> Markup:
    """:func:`md` for prose from a config (descriptions): line breaks and tabs become spaces, so a
    multi-line TOML string reads as one paragraph; other control characters are escaped.

    >>> str(md_prose("two\\nlines"))
    'two lines'
    """
    return md(re.sub(r"\s+", " ", str(text)).strip())


def breakable(text: str) -> Markup:
    """HTML-escaped text that may wrap after underscores (raw snake_case measure names)."""
    return Markup(html.escape(printable(text)).replace("_", "_<wbr>"))


def json_script(obj: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">`` (no ``</`` can appear)."""
    s = json.dumps(clean(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(s)


def fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside ``text``.

    >>> fence("a ```` b")
    '`````'
    """
    runs = [len(r) for r in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def jinja_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md
    env.filters["md_prose"] = md_prose
    env.filters["json_script"] = json_script
    env.filters["rel"] = rel
    env.filters["code"] = lambda t: Markup(f"<code>{html.escape(printable(t)).replace('|', '&#124;')}</code>")
    # Front-matter title: MkDocs themes print page titles unescaped, so store them escaped.
    env.filters["yaml_title"] = lambda t: Markup(json.dumps(html.escape(printable(t), quote=False),
                                                            ensure_ascii=False))
    return env
