"""Where everything lives on the site: page paths (docs-dir relative ``.md``), their ``.html`` URLs,
relative links between pages, citation keys, and the files of the gallery maps and thumbnails.

URLs are stable and portable: ``use_directory_urls: false`` gives ``models/<slug>.html`` that also
works from ``file://``; slugs come from the records (themselves slugs of display names).
"""

from __future__ import annotations

import hashlib
import posixpath
from urllib.parse import quote, urlencode

from ..config import SLUG_MAX, slugify
from ..records import ComparisonResult, ModelResult

LEADERBOARD_PAGE = "compare/segmentation-quality.md"
CHANGES_PAGE = "changes.md"  # a published version's changes since the previous one


def rel(target: str, page: str) -> str:
    """URL of docs-dir path ``target`` as seen from the page at docs-dir path ``page``.

    >>> rel("generated/a b.webp", "models/m.md")
    '../generated/a%20b.webp'
    """
    target, _, frag = target.partition("#")
    url = posixpath.relpath(target, posixpath.dirname(page) or ".") if target else ""
    return quote(url, safe="/") + (f"#{frag}" if frag else "")


def html_url(md_path: str) -> str:
    """``models/x.md`` -> ``models/x.html``."""
    return md_path[:-3] + ".html" if md_path.endswith(".md") else md_path


def figures_script(page: str) -> str:
    """Docs-dir path of the script holding a page's plot specs.

    >>> figures_script("models/m.md")
    'models/m.figures.js'
    """
    return (page[:-3] if page.endswith(".md") else page) + ".figures.js"


def model_page(m: ModelResult) -> str:
    return f"models/{slugify(m.card.slug)}.md"


def comparison_page(c: ComparisonResult) -> str:
    return f"compare/{slugify(c.slug)}.md"


def cite_key(page: str) -> str:
    """BibTeX key of a page.

    >>> cite_key("models/dino-vit-s-16.md")
    'ssl-vit-atlas-models-dino-vit-s-16'
    """
    return "ssl-vit-atlas-" + slugify(page[:-3] if page.endswith(".md") else page)


#: Longest file name the site derives from a slug or an image name, in bytes (ASCII), before the
#: temporary twin that :func:`atlas.files.atomic_path` writes first. Model and comparison slugs
#: (<= SLUG_MAX) name folders, ``<slug>.figures.js``, ``<slug>.csv`` and ``<slug>.png``; an image
#: stem (<= SLUG_MAX + 9) names its gallery photo ``<stem>-a<aspect>.webp`` and its thumbnail.
LONGEST_NAME = max(SLUG_MAX + len(".figures.js"), SLUG_MAX + 9 + len("-a10000.webp"))
#: What the temporary twin adds: ``.tmp-<pid>@<host>~`` (pid <= 7 digits, host <= 64 characters),
#: ``.`` and mkstemp's 8 random characters. LONGEST_NAME + TEMP_OVERHEAD (188) stays well below
#: the 255 bytes of a file name.
TEMP_OVERHEAD = len(".tmp-") + 7 + 1 + 64 + 1 + 1 + 8


def _image_stem(image: str, content_hash: str) -> str:
    """Readable, bounded file stem of an image: its slug (cut to SLUG_MAX characters, see
    :func:`atlas.config.slugify`) and a hash of its name and pixels.

    >>> _image_stem("a b.jpg", "0" * 64)
    'a-b-jpg-68f61363'
    >>> len(_image_stem("x" * 250 + ".png", "0" * 64)) == SLUG_MAX + 9
    True
    """
    # the hash keeps apart two images whose names give one slug ("a b.jpg", "a-b.jpg") and a
    # photo replaced under the same name
    digest = hashlib.sha256(f"{image}|{content_hash}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slugify(image, SLUG_MAX)}-{digest}"


def model_view(slug: str, key: str) -> str:
    """Docs-dir path of one view file of a model (:func:`atlas.site.maps.encode_view`); ``key``: its
    label-map or picture key."""
    return f"generated/views/models/{slug}/{key}.png"


def comparison_view(slug: str, column_key: str) -> str:
    """Docs-dir path of one comparison column's view file."""
    return f"generated/views/comparisons/{slug}/{column_key}.png"


def photo(image: str, content_hash: str) -> str:
    """Docs-dir stem of an image's shared gallery photos (an aspect-ratio suffix and ``.webp`` follow)."""
    return f"generated/photos/{_image_stem(image, content_hash)}"


def overview_view(slug: str) -> str:
    """Docs-dir path of a model's Home overview view file."""
    return f"generated/views/overview/{slug}.png"


def thumbnail(image: str, content_hash: str) -> str:
    """Docs-dir path of an Images page thumbnail."""
    return f"generated/images/{_image_stem(image, content_hash)}.webp"


def view_query(block: int, representation: str, k: int) -> str:
    """Query string of a model page's gallery view (what ``atlas.js`` reads and writes).

    >>> view_query(5, "keys", 8)
    '?block=5&representation=keys&k=8'
    """
    return "?" + urlencode({"block": block, "representation": representation, "k": k})
