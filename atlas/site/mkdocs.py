"""The static site: the base ``mkdocs.yml`` completed with what ``render_site`` wrote (nav,
``site_url``, citation facts, the weights' provenance), ``mkdocs build`` / ``mkdocs serve`` on it, the
guard that keeps ``mkdocs build`` from emptying a folder the atlas did not write, and the weight of a
built page.

Example::

    site = build_site("mkdocs.yml")
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from ..files import TEMP_PREFIX, atomic_write, remove_orphaned_temporaries, temp_prefix
from .markup import printable

NAV_FILE = ".atlas-nav.json"  # dot-file: read by build_site, never published
CITE_FILE = ".atlas-cite.json"  # dot-file: each page's citation, read by build_site into extra.atlas.cite
#: Written into every site folder the atlas builds, before mkdocs runs: a folder holding it is the
#: atlas's to replace. A dot-file, so mkdocs's clean of the site folder keeps it.
SITE_MARKER = ".atlas-site"
#: The command that builds and serves the site (mkdocs of this interpreter).
MKDOCS = [sys.executable, "-m", "mkdocs"]
_LOG_FILE = ".mkdocs-build.log"  # in the docs dir (a dot-file: never published)


class SiteDirError(ValueError):
    """A site folder the build refuses to write into; the message is one line that says what to do."""


class SiteBuildError(RuntimeError):
    """``mkdocs build`` failed; the message is one line (the full output is in the docs dir's log)."""


def check_site_dir(site_dir: str | os.PathLike, keep: Mapping[str, str | os.PathLike | None], *,
                   outside: Iterable[str] = (), force: bool = False) -> Path:
    """Refuse a site folder where ``mkdocs build`` would delete what the build did not write.

    ``mkdocs build`` empties its site folder (everything but dot-files) before writing into it. So
    the site folder must not be or contain any folder of ``keep`` (``{what: path}``: the docs dir,
    the config's folder, the output dir, the cache, the image folders, ...), nor lie inside the
    ones named in ``outside`` (their contents are read or rewritten by the build); and it must be
    new, empty (dot-files aside) or an earlier atlas site (:data:`SITE_MARKER`), unless ``force``.
    Returns the resolved site folder; raises :class:`SiteDirError`, one line.

    >>> import tempfile, pathlib
    >>> project = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (project / "notes.txt").write_text("mine")
    >>> check_site_dir(project / "site", {"docs dir": project / "docs"}).name
    'site'
    >>> check_site_dir(project, {"docs dir": project / "docs"})
    Traceback (most recent call last):
    ...
    atlas.site.mkdocs.SiteDirError: site dir ... contains the docs dir ...; mkdocs empties the site folder before writing, so this would delete it: choose another --site-dir
    """
    site = Path(site_dir).expanduser().resolve()
    for what, folder in keep.items():
        if folder is None:
            continue
        f = Path(folder).expanduser().resolve()
        if f == site or site in f.parents:
            verb = "is" if f == site else "contains"
            raise SiteDirError(f"site dir {site} {verb} the {what} {f}; mkdocs empties the site folder before "
                               f"writing, so this would delete it: choose another --site-dir")
        if what in outside and f in site.parents:
            raise SiteDirError(f"site dir {site} lies inside the {what} {f}, which the build reads and rewrites: "
                               f"choose a --site-dir outside it")
    if site.exists() and not site.is_dir():
        raise SiteDirError(f"site dir {site} is a file, not a folder: choose another --site-dir")
    if site.is_dir() and not force and not is_atlas_site(site):
        foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in site.iterdir() if not p.name.startswith("."))
        if foreign:
            shown = ", ".join(printable(n) for n in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise SiteDirError(f"site dir {site} holds files an atlas build did not write ({shown}); mkdocs would "
                               f"delete them: choose a new or empty --site-dir, or pass --force to replace its contents")
    return site


def is_atlas_site(folder: str | os.PathLike) -> bool:
    """True for a folder an atlas build wrote: it holds :data:`SITE_MARKER`, or (sites built before
    the marker existed) an ``atlas.json`` index that names the atlas version and config hash."""
    folder = Path(folder)
    if (folder / SITE_MARKER).is_file():
        return True
    try:
        info = json.loads((folder / "atlas.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "atlas_version" in info and "config_hash" in info and (folder / "index.html").is_file()


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
    if cfg.get("hooks"):  # relative to mkdocs.yml, which runs from a temporary copy
        cfg["hooks"] = [str((root / h).resolve()) for h in cfg["hooks"]]
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
        if info.get("published_version"):  # mkdocs-material's version selector reads ../versions.json
            extra["version"] = {"provider": "mike"}
        cfg["extra"] = extra
        if info.get("site_url"):
            cfg["site_url"] = info["site_url"]
        if info.get("title"):
            # plain text: the theme hook (atlas/site/theme_hooks.py) escapes it once for every use
            cfg["site_name"] = printable(info["title"])
    return cfg, root, site


def build_site(config_file: str | Path = "mkdocs.yml", strict: bool = True, *,
               docs_dir: str | Path | None = None, site_dir: str | Path | None = None, force: bool = False) -> Path:
    """Run ``mkdocs build`` on the rendered docs dir; returns the site dir.

    The base config is completed in a temporary file: the generated ``nav``, ``site_url`` and
    the citation facts (``extra.atlas``) come from ``render_site``'s output; ``docs_dir`` and
    ``site_dir`` may be overridden (tests build into temporary folders). The site folder is checked
    first (:func:`check_site_dir`; ``force`` replaces a folder the atlas did not write) and marked as
    an atlas site. A failure is one line: :class:`OSError` for a failed write (a full disk),
    :class:`SiteBuildError` otherwise, with mkdocs's whole output in the docs dir's ``.mkdocs-build.log``.
    """
    cfg, root, site = full_mkdocs_config(Path(config_file).resolve(), docs_dir, site_dir)
    docs = Path(cfg["docs_dir"])
    check_site_dir(site, {"docs dir": docs, "theme folder": cfg["theme"].get("custom_dir")},
                   outside=("docs dir",), force=force)
    atomic_write(site / SITE_MARKER, "written by the SSL ViT Atlas: a later build replaces this folder's contents\n")
    args = ["build", "--strict"] if strict else ["build"]
    with _mkdocs_config_file(cfg) as gen:
        proc = subprocess.run([*MKDOCS, *args, "-f", str(gen)], capture_output=True, text=True, cwd=root,
                              preexec_fn=_kill_with_parent())
    if proc.returncode != 0:
        output = f"$ mkdocs {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
        try:
            atomic_write(docs / _LOG_FILE, output)
            where = f" (mkdocs's output: {docs / _LOG_FILE})"
        except OSError:
            where = ""
        raise _mkdocs_failure(output, site, where)
    return site


def serve_site(config_file: str | Path = "mkdocs.yml", *, docs_dir: str | Path | None = None,
               address: str = "127.0.0.1:8000") -> None:
    """Live preview: ``mkdocs serve`` on the rendered docs dir (reloads when pages change); Ctrl-C stops it."""
    cfg, root, _ = full_mkdocs_config(Path(config_file).resolve(), docs_dir, None)
    with _mkdocs_config_file(cfg) as gen:
        print(f"serving the atlas on http://{address}/ (Ctrl-C to stop)")
        try:
            subprocess.run([*MKDOCS, "serve", "-f", str(gen), "-a", address], cwd=root, preexec_fn=_kill_with_parent())
        except KeyboardInterrupt:
            pass


@contextlib.contextmanager
def _mkdocs_config_file(cfg: dict[str, Any]):
    """The completed config in a temp file named after this process, so that the next build removes
    the file of a build that was killed (``kill -9`` skips every ``finally``)."""
    folder = Path(tempfile.gettempdir())
    remove_orphaned_temporaries(folder.glob(f"{TEMP_PREFIX}*~mkdocs.*"))
    fd, name = tempfile.mkstemp(dir=folder, prefix=temp_prefix("mkdocs"), suffix=".yml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _kill_with_parent():
    """A ``preexec_fn`` (Linux) under which the child gets SIGKILL when the build that started it
    dies, even by ``kill -9``; None elsewhere. ``prctl`` is looked up here, in the parent: the
    child, between fork and exec, only calls it (no import, no Python lock), which keeps the risk
    that Python documents for ``preexec_fn`` in threaded programs to a foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl, parent = ctypes.CDLL(None).prctl, os.getpid()
    PR_SET_PDEATHSIG = 1

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the build died before prctl took effect
            os._exit(1)

    return preexec


# "OSError: [Errno 28] No space left on device: '/path/site/x.html'" at the end of a traceback
# (a copy names its source, then " -> 'destination'")
_OS_ERROR = re.compile(r"^\w*Error: \[Errno (\d+)\] ([^:\n]+)(?:: '([^'\n]*)')?(?: -> '([^'\n]*)')?", re.M)


def _mkdocs_failure(output: str, site: Path, where: str) -> Exception:
    """One line for a failed ``mkdocs build``: an :class:`OSError` when it failed to write (a full
    disk: the CLI's one line for failed writes, with its hint), else the telling line of its output."""
    found = _OS_ERROR.findall(output)
    if found:
        code, reason, source, destination = found[-1]
        return OSError(int(code), f"{reason.strip()} while writing the site{where}", destination or source or str(site))
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]  # a traceback's last line
    logged = [ln for ln in lines if ln.startswith(("ERROR", "WARNING"))]  # --strict stops on the first
    line = (raised[-1:] or logged[:1] or lines[-1:] or ["no output"])[0][:300]
    return SiteBuildError(f"mkdocs build of {site} failed: {printable(line)}{where}")


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
