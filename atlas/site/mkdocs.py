"""The static site: the base ``mkdocs.yml`` completed with what ``render_site`` wrote (nav,
``site_url``, citation facts, the weights' provenance), ``mkdocs build`` / ``mkdocs serve`` on it, and the weight of a
built page.

Example::

    site = build_site("mkdocs.yml")
"""

from __future__ import annotations

import html
import json
import posixpath
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from .markup import printable

NAV_FILE = ".atlas-nav.json"  # dot-file: read by build_site, never published
CITE_FILE = ".atlas-cite.json"  # dot-file: each page's citation, read by build_site into extra.atlas.cite


def full_mkdocs_config(config_file: Path, docs_dir, site_dir) -> tuple[dict[str, Any], Path, Path]:
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
        atlas = {k: info.get(k, "") for k in ("atlas_version", "config_hash", "build_date", "title")}
        models = info.get("models") or []
        atlas["model_count"] = len(models)
        atlas["random_models"] = [m["display_name"] for m in models if m.get("is_random_init")]
        atlas["random_label"] = info.get("random_init_label", "")
        cite = docs / CITE_FILE
        atlas["cite"] = json.loads(cite.read_text(encoding="utf-8")) if cite.exists() else {}
        extra["atlas"] = atlas
        cfg["extra"] = extra
        if info.get("site_url"):
            cfg["site_url"] = info["site_url"]
        if info.get("title"):
            # HTML-escaped here: mkdocs-material prints site_name unescaped (header, nav, <title>)
            cfg["site_name"] = html.escape(printable(info["title"]), quote=True)
    return cfg, root, site


def build_site(config_file: str | Path = "mkdocs.yml", strict: bool = True, *,
               docs_dir: str | Path | None = None, site_dir: str | Path | None = None) -> Path:
    """Run ``mkdocs build`` on the rendered docs dir; returns the site dir.

    The base config is completed in a temporary file: the generated ``nav``, ``site_url`` and
    the citation facts (``extra.atlas``) come from ``render_site``'s output; ``docs_dir`` and
    ``site_dir`` may be overridden (tests build into temporary folders).
    """
    cfg, root, site = full_mkdocs_config(Path(config_file).resolve(), docs_dir, site_dir)
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
    cfg, root, _ = full_mkdocs_config(Path(config_file).resolve(), docs_dir, None)
    with tempfile.TemporaryDirectory(prefix="atlas-mkdocs-") as tmp:
        gen = Path(tmp) / "mkdocs.yml"
        gen.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
        print(f"serving the atlas on http://{address}/ (Ctrl-C to stop)")
        try:
            subprocess.run([sys.executable, "-m", "mkdocs", "serve", "-f", str(gen), "-a", address], cwd=root)
        except KeyboardInterrupt:
            pass


class _Refs(HTMLParser):
    """Local images, scripts and stylesheets a page references."""

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
