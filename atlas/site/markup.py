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

from ..formatting import level_percent
from .data import clean
from .paths import rel

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "pages"


# Unicode format characters (category Cf, as of Unicode 14): invisible, yet they reorder text
# (bidi overrides and isolates U+202A-U+202E, U+2066-U+2069: "evil\u202egnp.exe" shows as
# "evilexe.png"), hide it (zero-width U+200B-U+200D, U+2060, U+FEFF; tag characters
# U+E0020-U+E007F, which can carry a whole invisible ASCII text) or change it on a line break
# (soft hyphen U+00AD).
_FORMAT_CHARS = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
                 "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
                 "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
_FORMAT = re.compile(f"[{_FORMAT_CHARS}]")
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_FORMAT_CHARS}]")


def _escape(m: re.Match) -> str:
    return m.group().encode("unicode_escape").decode("ascii")


def printable(text: Any) -> str:
    """Control characters (newlines, tabs, ...) written as escapes: a file name with a newline
    must not split a table row or a line of Markdown. Invisible format characters likewise, so
    that a name shows what it holds: a right-to-left override cannot reverse the text after it,
    and a zero-width space cannot make two names look alike.

    >>> printable("a\\nb\\tc")
    'a\\\\nb\\\\tc'
    >>> print(printable("evil\\u202egnp.exe"), printable("zero\\u200bwidth"), printable("soft\\xadhyphen"))
    evil\\u202egnp.exe zero\\u200bwidth soft\\xadhyphen
    >>> printable("tag\\U000e0041")  # invisible tag letter "A"
    'tag\\\\U000e0041'
    """
    return _CONTROL.sub(_escape, str(text))


def visible(value: Any) -> Any:
    """The Jinja ``finalize`` of every ``{{ ... }}`` on the pages: invisible format characters
    written as escapes (see :func:`printable`), also in text that reaches a page without a filter.
    Control characters stay: a code block may hold newlines. Markup stays Markup (the escapes
    hold no HTML), other values are returned as they are.

    >>> visible("RTL\\u202eover"), visible(Markup("<b>a\\u200bb</b>")), visible(3)
    ('RTL\\\\u202eover', Markup('<b>a\\\\u200bb</b>'), 3)
    """
    if not isinstance(value, str) or not _FORMAT.search(value):
        return value
    text = _FORMAT.sub(_escape, value)
    return Markup(text) if isinstance(value, Markup) else text


def md(text: Any) -> Markup:
    """Escape for Markdown inline text, then for HTML (Markdown passes raw HTML through).

    >>> str(md("a_b <i>"))
    'a\\\\_b &lt;i&gt;'
    """
    s = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", printable(text))
    return Markup(html.escape(s, quote=True))


#: Characters that mean something to Markdown (or HTML) inside an inline ``<code>`` element:
#: Python-Markdown still parses Markdown there (links, emphasis, code spans, attribute lists, a
#: table's cell separator), and a backslash escape would be eaten. Each is written as a numeric
#: character reference, which Markdown passes through and the browser shows as the character.
_CODE_SPECIAL = re.compile(r"""[\\`*_\[\]()<>#+\-!|{}~&"']""")


def code(text: Any) -> Markup:
    """Inline ``<code>`` whose text shows literally through Markdown and HTML: a timm name
    ``vit_[click](javascript:...)`` stays text, ``a*b*c`` no emphasis, a backtick no code span.

    >>> str(code("vit_[x](y) a*b`c|d\\\\e<&"))
    '<code>vit&#95;&#91;x&#93;&#40;y&#41; a&#42;b&#96;c&#124;d&#92;e&#60;&#38;</code>'
    """
    return Markup("<code>" + _CODE_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", printable(text)) + "</code>")


def md_prose(text: Any) -> Markup:
    """:func:`md` for prose from a config (descriptions): line breaks and tabs become spaces, so a
    multi-line TOML string reads as one paragraph; other control characters are escaped.

    >>> str(md_prose("two\\nlines"))
    'two lines'
    """
    return md(re.sub(r"\s+", " ", str(text)).strip())


def yaml_description(text: Any) -> Markup:
    """A page's ``description`` in its front matter: one line, as a JSON string (which is YAML),
    HTML-escaped once. mkdocs-material prints ``page.meta.description`` raw into
    ``<meta name="description" content="...">`` (MkDocs theme templates do not autoescape).

    >>> str(yaml_description('A "b" <i>\\nc'))
    '"A &quot;b&quot; &lt;i&gt; c"'
    """
    line = printable(re.sub(r"\s+", " ", str(text)).strip())
    safe = line if isinstance(text, Markup) else html.escape(line, quote=True)  # Markup: escaped already
    return Markup(json.dumps(safe, ensure_ascii=False))


def random_note(labels: Any) -> str:
    """The description of a page that shows numbers of randomly initialised models (their labels,
    each carrying :data:`~atlas.records.RANDOM_INIT_LABEL`); "" for none."""
    labels = [str(label) for label in labels]
    return (f"Includes randomly initialised weights: {', '.join(labels)}. Their numbers show the architecture "
            f"and the input, not pretraining." if labels else "")


def breakable(text: str) -> Markup:
    """HTML-escaped text that may wrap after underscores (raw snake_case measure names)."""
    return Markup(html.escape(printable(text)).replace("_", "_<wbr>"))


def json_script(obj: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">`` (no ``</`` can appear)."""
    s = json.dumps(clean(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    # format characters as JSON escapes (the same data), so that visible() finds none to rewrite
    s = _FORMAT.sub(lambda m: json.dumps(m.group())[1:-1], s)
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
        finalize=visible,
    )
    env.filters["md"] = md
    env.filters["md_prose"] = md_prose
    env.filters["json_script"] = json_script
    env.filters["rel"] = rel
    env.filters["code"] = code
    # Front-matter title as plain text (a JSON string is YAML): the theme hook escapes it once
    # (atlas/site/theme_hooks.py), where the theme prints it raw and where through `| e`.
    env.filters["yaml_title"] = lambda t: Markup(json.dumps(printable(t), ensure_ascii=False))
    env.filters["yaml_description"] = yaml_description
    env.filters["random_note"] = random_note
    env.filters["level_percent"] = level_percent
    return env
