"""Versioned publishing: a built site copied into ``DIR/<version>/`` in mike's layout, so that a
page a paper cites keeps serving the numbers it cited after later builds.

The layout is mike's (the versioning tool mkdocs-material's version selector reads; its
``versions.json`` is read and written with mike's own :class:`mike.versions.Versions`):

* ``DIR/<version>/``: the site of that version, never touched again (except with ``replace``);
* ``DIR/versions.json``: every version, newest first, with its aliases;
* ``DIR/<alias>/`` (e.g. ``latest``, when one is named): redirect pages (mike's template) to the
  same page of the version that holds the alias: the alias moves, the versions stay;
* ``DIR/index.html``: a redirect to the alias (else to the first version published);
  ``DIR/.nojekyll`` for GitHub Pages.

``DIR`` can then be pushed as it is to any static host (a ``gh-pages`` branch, a bucket).

Example
-------
>>> import tempfile, pathlib
>>> site, out = (pathlib.Path(tempfile.mkdtemp()) for _ in range(2))
>>> _ = (site / "index.html").write_text("<h1>v1</h1>")
>>> publish_site(site, out / "pub", "1.0", alias="latest")
PosixPath('.../pub/1.0')
>>> sorted(p.name for p in (out / "pub").iterdir())
['.nojekyll', '1.0', 'index.html', 'latest', 'versions.json']
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from jinja2 import Template

from ..files import atomic_write

VERSIONS_FILE = "versions.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class PublishError(ValueError):
    """A publishing problem, phrased as one line that says what to do."""


def check_name(name: str, what: str = "version") -> str:
    """``name`` as a version or alias name: letters, digits, ``.``, ``_``, ``+``, ``-``, starting
    with a letter or digit (a folder of the published site, and part of every cited URL)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise PublishError(f"--{what} {name!r}: use letters, digits, '.', '_', '+' and '-' only (no spaces or "
                           "path characters), starting with a letter or digit, e.g. 2026.12 or v1")
    return name


def _versions(out: Path):
    from mike.versions import Versions

    path = out / VERSIONS_FILE
    if not path.is_file():
        return Versions()
    try:
        return Versions.loads(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"{path} is not a versions.json of mike's layout ({exc}); fix or remove it") from None


def check_target(out: str | Path, version: str, alias: str | None = None, replace: bool = False):
    """Refuse, before anything is built or written: a bad version or alias name, a folder that is
    neither new, nor empty, nor a published atlas, and a version that exists (without
    ``replace``). Returns the published versions (:class:`mike.versions.Versions`)."""
    check_name(version)
    if alias is not None:
        check_name(alias, "alias")
    if version == alias:
        raise PublishError(f"--version and --alias are both {version!r}: an alias names another version's pages")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PublishError(f"--publish {out}: not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / VERSIONS_FILE).is_file():
        raise PublishError(f"--publish {out}: not a published atlas (no {VERSIONS_FILE}) and not empty; choose a new "
                           "or empty folder, or one an earlier --publish wrote")
    versions = _versions(out)
    found = versions.find(version)
    if found and len(found) == 2:
        raise PublishError(f"--version {version!r} is an alias of version {found[0]!r} in {out}; choose another name")
    if found and not replace:
        raise PublishError(f"version {version!r} is already published in {out} and is left as it is: choose a new "
                           "--version, or add --replace to overwrite it")
    other = versions.find(alias) if alias is not None else None
    if other and len(other) == 1:
        raise PublishError(f"--alias {alias!r} is a published version in {out}; choose another alias")
    return versions


def _redirect_template() -> Template:
    """mike's own redirect page (a JavaScript redirect keeping query and anchor, and a refresh)."""
    from importlib import resources

    return Template(resources.files("mike").joinpath("templates/redirect.html").read_text(encoding="utf-8"),
                    autoescape=True, keep_trailing_newline=True)


def _redirects(version_dir: Path, alias_dir: Path) -> None:
    """One redirect page per HTML page of the version, to the same page there."""
    template = _redirect_template()
    for page in sorted(version_dir.rglob("*.html")):
        rel = page.relative_to(version_dir)
        target = alias_dir / rel
        href = os.path.relpath(page, target.parent).replace(os.sep, "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, template.render(href=href))


def publish_site(site_dir: str | Path, out: str | Path, version: str, alias: str | None = None,
                 replace: bool = False) -> Path:
    """Copy the built site ``site_dir`` into ``out/<version>/`` and point ``alias`` and the root at
    it (module docstring: the layout). Returns the version's folder.

    The version's folder appears whole or not at all (copied beside it, then renamed); a replaced
    version is swapped the same way. Other versions are never touched.
    """
    versions = check_target(out, version, alias, replace)
    site_dir, out = Path(site_dir), Path(out)
    if not (site_dir / "index.html").is_file():
        raise PublishError(f"{site_dir} holds no built site (no index.html); build it first")
    out.mkdir(parents=True, exist_ok=True)
    staged, old = out / f".{version}.publishing", out / f".{version}.replaced"
    for leftover in (staged, old):  # from an interrupted publish
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(site_dir, staged)
    final = out / version
    if final.exists():  # replace (checked above)
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)

    versions.add(version, aliases=[alias] if alias else [], update_aliases=True)
    if alias:
        alias_dir, alias_staged = out / alias, out / f".{alias}.publishing"
        shutil.rmtree(alias_staged, ignore_errors=True)
        _redirects(final, alias_staged)
        shutil.rmtree(alias_dir, ignore_errors=True)
        alias_staged.rename(alias_dir)
    atomic_write(out / VERSIONS_FILE, versions.dumps() + "\n")
    if alias or not (out / "index.html").exists():
        atomic_write(out / "index.html", _redirect_template().render(href=f"{alias or version}/"))
    if not (out / ".nojekyll").exists():
        atomic_write(out / ".nojekyll", "")
    return final

