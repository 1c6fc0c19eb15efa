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

from ..files import TEMP_PREFIX, atomic_write

VERSIONS_FILE = "versions.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
#: Files at the root of the published folder (ours, or what static hosts serve from the root): never
#: a version or alias folder (compared case-insensitively: some hosts and checkouts fold case).
RESERVED_NAMES = frozenset({VERSIONS_FILE, "index.html", "404.html", "sitemap.xml", "sitemap.xml.gz", "robots.txt",
                            "cname"})
# what a publish leaves beside the folders while it swaps them (dot-names: never published):
# ".<name>.publishing" the new folder being staged, ".<name>.replaced" the old one moved aside,
# ".<name>.new" a marker: <name> was put in place and versions.json does not list it yet
_LEFTOVER = re.compile(r"\.(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]*)\.(?P<kind>publishing|replaced|new)")


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
    # a folder that an interrupted publish put in place before listing it: removed by the next publish
    pending = {m["name"] for m in map(_LEFTOVER.fullmatch, _entries(out)) if m and m["kind"] == "new"}
    own = [name for name in _entries(out)  # what an interrupted first publish left does not count
           if not (_LEFTOVER.fullmatch(name) or name.startswith(TEMP_PREFIX) or name in pending)]
    if own and not (out / VERSIONS_FILE).is_file():
        raise PublishError(f"--publish {out}: not a published atlas (no {VERSIONS_FILE}) and not empty; choose a new "
                           "or empty folder, or one an earlier --publish wrote")
    versions = _versions(out)
    for name, what in ((version, "version"), (alias, "alias")):
        if name is None:
            continue
        if name.casefold() in RESERVED_NAMES:
            raise PublishError(f"--{what} {name!r} is the name of a file of the published folder; choose another name")
        there = out / name
        if (there.exists() or there.is_symlink()) and not versions.find(name) and name not in pending:
            raise PublishError(f"--{what} {name!r}: {there} exists and is not a version or alias published there "
                               f"(not in its {VERSIONS_FILE}); choose another name, or move it away")
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


def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.is_dir() else []


def _redirects(version_dir: Path, alias_dir: Path, pages_dir: Path | None = None) -> None:
    """One redirect page per HTML page of the version (found in ``pages_dir``, where it is staged),
    to the same page in ``version_dir``."""
    template = _redirect_template()
    pages_dir = version_dir if pages_dir is None else pages_dir
    for page in sorted(pages_dir.rglob("*.html")):
        rel = page.relative_to(pages_dir)
        target = alias_dir / rel
        href = os.path.relpath(version_dir / rel, target.parent).replace(os.sep, "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, template.render(href=href))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _recover(out: Path, rollback: bool = False) -> None:
    """Undo what an interrupted publish left (its dot-names): a folder put in place but not listed
    in versions.json goes; a folder moved aside whose replacement never arrived goes back (with
    ``rollback``, after a failed publish of this process, also one whose replacement did); the
    staged and the moved-aside copies go. Afterwards every folder is what versions.json says."""
    versions = _versions(out)
    leftovers = [(m["kind"], m["name"]) for m in map(_LEFTOVER.fullmatch, _entries(out))
                 if m and m["name"].casefold() not in RESERVED_NAMES]
    for kind, name in sorted(leftovers, key=lambda item: ("new", "replaced", "publishing").index(item[0])):
        leftover, there = out / f".{name}.{kind}", out / name
        if kind == "new":
            if not versions.find(name):
                _remove(there)
        elif kind == "replaced" and leftover.is_dir() and (rollback or not there.exists()):
            if there.exists():
                there.rename(out / f".{name}.publishing")
            leftover.rename(there)
            _remove(out / f".{name}.publishing")
            continue
        _remove(leftover)


def _swap(staged: Path, final: Path, aside: Path) -> None:
    """``staged`` becomes ``final``; the folder there before (if any) is moved to ``aside`` first
    (deleted once versions.json is written). A new ``final`` is marked until versions.json lists it."""
    if final.exists():
        final.rename(aside)
    else:
        atomic_write(final.parent / f".{final.name}.new", "")
    staged.rename(final)


def publish_site(site_dir: str | Path, out: str | Path, version: str, alias: str | None = None,
                 replace: bool = False) -> Path:
    """Copy the built site ``site_dir`` into ``out/<version>/`` and point ``alias`` and the root at
    it (module docstring: the layout). Returns the version's folder.

    The version's and the alias's folders are staged in full beside their place, then swapped in by
    renames (the old one moved aside first, deleted last), then versions.json is replaced; what an
    interrupted publish leaves is undone at once (an exception) or by the next publish (a kill).
    Other versions are never touched.
    """
    versions = check_target(out, version, alias, replace)
    site_dir, out = Path(site_dir), Path(out)
    if not (site_dir / "index.html").is_file():
        raise PublishError(f"{site_dir} holds no built site (no index.html); build it first")
    out.mkdir(parents=True, exist_ok=True)
    _recover(out)
    final, staged = out / version, out / f".{version}.publishing"
    shutil.copytree(site_dir, staged)
    swaps = [(staged, final, out / f".{version}.replaced")]
    if alias:
        alias_staged = out / f".{alias}.publishing"
        _redirects(final, alias_staged, pages_dir=staged)
        swaps.append((alias_staged, out / alias, out / f".{alias}.replaced"))
    versions.add(version, aliases=[alias] if alias else [], update_aliases=True)
    try:
        for swap in swaps:
            _swap(*swap)
        atomic_write(out / VERSIONS_FILE, versions.dumps() + "\n")
    except BaseException:
        try:
            _recover(out, rollback=True)
        except Exception:  # the next publish tries again; the original error is the one to report
            pass
        raise
    _recover(out)  # the moved-aside folders and the markers
    if alias or not (out / "index.html").exists():
        atomic_write(out / "index.html", _redirect_template().render(href=f"{alias or version}/"))
    if not (out / ".nojekyll").exists():
        atomic_write(out / ".nojekyll", "")
    return final
