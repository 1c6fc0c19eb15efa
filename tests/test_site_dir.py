"""Issue 24's drills on the site folder: ``mkdocs build`` empties its site folder before writing, so
a careless ``--site-dir`` must be refused before anything is deleted; a full disk there, a failing
mkdocs and a build killed while mkdocs runs each end in one line or a clean next build.

The project is built once (tiny random-init models, ``--no-site``); each drill works on its own copy
and re-renders it with ``--render-only``, which computes nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_hostile_inputs import error_line, project, run_cli, tmpfs  # noqa: F401 (tmpfs: a fixture)

from atlas.site.mkdocs import SITE_MARKER, SiteDirError, check_site_dir, is_atlas_site

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A project whose models are computed and pages rendered (no site yet); returns its folder."""
    root = tmp_path_factory.mktemp("built")
    assert run_cli(project(root), "--no-site") == 0
    return root


@pytest.fixture
def proj(built, tmp_path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(built, root)
    return root


def _listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))}


def _render(root: Path, *args: str) -> int:
    return run_cli(root / "configs" / "tiny.toml", "--render-only", *args)


def test_project_folder_as_site_dir_is_refused_and_nothing_is_deleted(proj, tmp_path, capsys):
    """The drill that lost data: --site-dir naming the project folder (configs, photos, cache,
    results), with the docs dir elsewhere (mkdocs itself refuses a docs dir inside the site dir)."""
    before = _listing(proj)
    assert _render(proj, "--docs-dir", str(tmp_path / "docs"), "--site-dir", str(proj)) == 2
    line = error_line(capsys)
    assert str(proj) in line and "contains" in line and "--site-dir" in line
    assert _listing(proj) == before


def test_folder_of_other_files_is_refused_unless_forced(proj, tmp_path, capsys):
    other = tmp_path / "mine"
    (other / "sub").mkdir(parents=True)
    (other / "important.txt").write_text("keep me")
    (other / "sub" / "notes.md").write_text("and me")
    assert _render(proj, "--site-dir", str(other)) == 2
    line = error_line(capsys)
    assert "important.txt" in line and "sub/" in line and "--force" in line
    assert (other / "important.txt").read_text() == "keep me" and (other / "sub" / "notes.md").is_file()
    # --force: the user named it, the folder becomes an atlas site
    assert _render(proj, "--site-dir", str(other), "--force") == 0
    assert (other / "index.html").is_file() and not (other / "important.txt").exists()
    assert is_atlas_site(other)


@pytest.mark.parametrize("where", ["docs dir", "inside output dir", "inside feature cache", "inside image folder",
                                   "config folder", "contains output dir"])
def test_site_dir_overlapping_what_the_build_needs_is_refused(proj, capsys, where):
    target = {"docs dir": proj / "site_src", "inside output dir": proj / "out" / "site",
              "inside feature cache": proj / "cache" / "site", "inside image folder": proj / "photos" / "site",
              "config folder": proj / "configs", "contains output dir": proj / "out" / ".."}[where]
    before = _listing(proj)
    assert _render(proj, "--site-dir", str(target)) == 2  # (--force does not override these: test_check_site_dir_rules)
    line = error_line(capsys)
    assert "site dir" in line and ("inside" in line or "contains" in line or " is the " in line)
    assert _listing(proj) == before


def test_earlier_site_is_replaced_without_force(proj, tmp_path):
    site = tmp_path / "site"
    assert _render(proj, "--site-dir", str(site)) == 0
    assert (site / SITE_MARKER).is_file()
    (site / "stale.html").write_text("from an earlier build")
    # another site URL: pages change, so the site is built again (with nothing changed it is kept)
    assert _render(proj, "--site-dir", str(site), "--site-url", "https://example.org/a/") == 0
    assert (site / "index.html").is_file() and not (site / "stale.html").exists()


def test_check_site_dir_rules(tmp_path):
    """The rules alone: new, empty, dot-files only and earlier sites pass; others need force."""
    keep = {"docs dir": tmp_path / "docs"}
    assert check_site_dir(tmp_path / "new", keep) == (tmp_path / "new").resolve()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".git").mkdir()  # mkdocs's clean keeps dot-files
    check_site_dir(tmp_path / "hidden", keep)
    legacy = tmp_path / "legacy"  # built before the marker: atlas.json names the atlas
    legacy.mkdir()
    (legacy / "index.html").write_text("<html></html>")
    (legacy / "atlas.json").write_text('{"atlas_version": "0.1", "config_hash": "ab"}')
    check_site_dir(legacy, keep)
    (legacy / "atlas.json").write_text('{"name": "someone else\'s"}')
    with pytest.raises(SiteDirError, match="--force"):
        check_site_dir(legacy, keep)
    check_site_dir(legacy, keep, force=True)
    with pytest.raises(SiteDirError, match="is the docs dir"):
        check_site_dir(tmp_path / "docs", keep, force=True)
    with pytest.raises(SiteDirError, match="lies inside the docs dir"):
        check_site_dir(tmp_path / "docs" / "site", keep, outside=["docs dir"], force=True)
    check_site_dir(tmp_path / "docs" / "site", keep)  # inside is refused only where asked
    (tmp_path / "file").write_text("x")
    with pytest.raises(SiteDirError, match="is a file"):
        check_site_dir(tmp_path / "file", keep)


# ---------------------------------------------------------------- failures while mkdocs writes


@pytest.mark.slow
def test_full_site_disk_is_one_line_and_the_rerun_works(proj, tmpfs, capsys):
    small = tmpfs("small", "size=96k")
    assert _render(proj, "--site-dir", str(small / "site")) == 1
    line = error_line(capsys)
    assert "No space left on device" in line and str(small) in line and "free some space" in line
    subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
    assert _render(proj, "--site-dir", str(small / "site")) == 0
    assert (small / "site" / "index.html").is_file()


def test_failing_mkdocs_is_one_line_with_its_log(proj, tmp_path, capsys):
    """mkdocs --strict refuses a page that links to a missing file: one line, the output in a log."""
    (proj / "site_src" / "methods.md").write_text("# Methods\n\n[gone](no-such-page.md)\n", encoding="utf-8")
    from atlas.site import build_site

    with pytest.raises(Exception) as info:
        build_site(REPO / "mkdocs.yml", docs_dir=proj / "site_src", site_dir=tmp_path / "site")
    text = str(info.value)
    assert "\n" not in text and "mkdocs build" in text and ".mkdocs-build.log" in text and "no-such-page.md" in text
    assert "no-such-page.md" in (proj / "site_src" / ".mkdocs-build.log").read_text()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is dead (waiting only to be reaped)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_build_takes_mkdocs_with_it_and_the_next_build_cleans_up(proj, tmp_path, monkeypatch):
    """kill -9 of the build while mkdocs runs: mkdocs dies too, and the next build removes the
    temporary config the killed build left. A stand-in mkdocs (first on PYTHONPATH) sleeps."""
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    for folder, body in ((slow, "import time\ntime.sleep(120)\n"), (fast, "")):
        (folder / "mkdocs").mkdir(parents=True)
        (folder / "mkdocs" / "__init__.py").write_text("")
        (folder / "mkdocs" / "__main__.py").write_text(body)
    temp = tmp_path / "temp"
    temp.mkdir()
    script = textwrap.dedent(f"""
        import os, sys
        from atlas.site import build_site
        os.environ["PYTHONPATH"] = {str(slow)!r}  # only for the mkdocs child
        build_site({str(REPO / "mkdocs.yml")!r}, docs_dir={str(proj / "site_src")!r}, site_dir={str(tmp_path / "site")!r})
    """)
    build = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(temp)})
    try:
        deadline = time.monotonic() + 60
        while not (children := _children(build.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children, "mkdocs never started"
        left = list(temp.iterdir())
        assert left  # the killed build's temporary config
        os.kill(build.pid, signal.SIGKILL)
        build.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(c) for c in children), "mkdocs outlived the build"
    finally:
        for c in _children(build.pid):
            os.kill(c, signal.SIGKILL)
        build.kill()
    assert [p for p in left if p.exists()]  # kill -9 skipped the cleanup
    import tempfile

    from atlas.site import build_site

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("PYTHONPATH", str(fast))
    build_site(REPO / "mkdocs.yml", docs_dir=proj / "site_src", site_dir=tmp_path / "site")
    assert not [p for p in left if p.exists()]
    assert not list(temp.iterdir())


def test_force_never_replaces_a_folder_inside_the_atlas_itself(proj, capsys):
    """--force replaces a stranger's folder, but never one inside the atlas's own (its code,
    templates, .git): a probe folder made there for this test stands in for them."""
    probe = REPO / f".site-probe-{os.getpid()}"
    probe.mkdir()
    try:
        (probe / "keep.txt").write_text("mine")
        assert _render(proj, "--site-dir", str(probe), "--force") == 2
        assert "--force" in error_line(capsys) and (probe / "keep.txt").read_text() == "mine"
    finally:
        shutil.rmtree(probe)
