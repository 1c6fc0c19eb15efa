"""Versioned publishing (--publish DIR --version V [--alias latest] [--replace]): mike's layout, a
published version never touched again, citations that name the version's URL, and one-line
refusals that touch nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from test_hostile_inputs import error_line, project, run_cli

from atlas.site.publish import PublishError, check_target, publish_site


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256: a published version must not change."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _site(folder: Path, text: str) -> Path:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(f"<h1>{text}</h1>")
    (folder / "models" / "m.html").write_text(f"<p>{text}</p>")
    (folder / "models" / "m.csv").write_text(f"value\n{text}\n")
    return folder


def _redirect_target(page: Path) -> str:
    return re.search(r'window.location.replace\(\s*"([^"]+)"', page.read_text()).group(1)


def test_versions_layout_alias_and_untouched_versions(tmp_path):
    from mike.versions import Versions

    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    v1 = _tree(out / "1")
    publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    assert _tree(out / "1") == v1  # version 1 serves what it served
    versions = Versions.loads((out / "versions.json").read_text())  # mike reads what we wrote
    assert [str(v.version) for v in versions] == ["2", "1"]
    assert versions.find("latest") == ("2", "latest")
    # the alias redirects every page to the same page of the version holding it; data files stay out
    assert _redirect_target(out / "latest" / "models" / "m.html") == "../../2/models/m.html"
    assert not (out / "latest" / "models" / "m.csv").exists()
    assert _redirect_target(out / "index.html") == "latest/"
    assert (out / ".nojekyll").is_file()


def test_replace_swaps_one_version_and_keeps_the_alias_where_it_is(tmp_path):
    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    v2 = _tree(out / "2")
    publish_site(_site(tmp_path / "s3", "one, corrected"), out, "1", replace=True)
    assert "corrected" in (out / "1" / "index.html").read_text() and _tree(out / "2") == v2
    assert _redirect_target(out / "latest" / "index.html") == "../2/index.html"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".nojekyll"]


@pytest.mark.parametrize("version, words", [("a/b", "path characters"), ("two words", "no spaces"),
                                            ("..", "letters, digits"), ("", "letters, digits")])
def test_bad_version_names_are_refused(tmp_path, version, words):
    with pytest.raises(PublishError, match=words):
        check_target(tmp_path / "pub", version)


def test_refusals_touch_nothing(tmp_path):
    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    before = _tree(out)
    with pytest.raises(PublishError, match="already published .* --replace"):
        publish_site(_site(tmp_path / "s2", "two"), out, "1")
    with pytest.raises(PublishError, match="alias of version"):
        publish_site(_site(tmp_path / "s2", "two"), out, "latest")
    assert _tree(out) == before
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(PublishError, match="not a published atlas"):
        check_target(stranger, "1")


def test_publish_through_the_command_line(tmp_path, capsys):
    """Version 1, then version 2 from the stored results: each page's BibTeX names its version URL
    (the site URL normalised to end in '/'), the cite box offers the latest URL beside it, and the
    version selector is configured."""
    config = project(tmp_path)
    out = tmp_path / "published"
    url = "https://example.org/atlas"  # no trailing slash: normalised
    assert run_cli(config, "--publish", str(out), "--version", "1", "--alias", "latest", "--site-url", url) == 0
    page = (out / "1" / "models" / "tiny-a.html").read_text()
    assert "url          = {https://example.org/atlas/1/models/tiny-a.html}" in page
    assert 'href="https://example.org/atlas/latest/models/tiny-a.html"' in page
    v1 = _tree(out / "1")
    assert run_cli(config, "--render-only", "--publish", str(out), "--version", "2", "--alias", "latest",
                   "--site-url", url) == 0
    assert _tree(out / "1") == v1
    assert "https://example.org/atlas/2/models/tiny-a.html" in (out / "2" / "models" / "tiny-a.html").read_text()
    assert _redirect_target(out / "latest" / "models" / "tiny-a.html") == "../../2/models/tiny-a.html"
    assert json.loads((out / "2" / "atlas.json").read_text())["published_version"] == "2"
    capsys.readouterr()

    # bad input: one line each, nothing computed or written
    assert run_cli(config, "--publish", str(out), "--version", "2", "--site-url", url) == 2
    assert "already published" in error_line(capsys)
    assert run_cli(config, "--publish", str(out), "--version", "x y", "--site-url", url) == 2
    assert "no spaces" in error_line(capsys)
    assert run_cli(config, "--publish", str(tmp_path / "photos"), "--version", "3", "--site-url", url) == 2
    assert "not a published atlas" in error_line(capsys)
    assert run_cli(config, "--publish", str(out), "--version", "3") == 2
    assert "needs the site URL" in error_line(capsys)
    assert _tree(out / "1") == v1 and not (out / "3").exists()


@pytest.mark.browser
def test_browser_version_selector_keeps_the_page_and_versions_keep_their_numbers(tmp_path):
    """Publish version 1, change the seed (numbers move), publish version 2 with the latest alias;
    in Chromium: latest serves version 2, the version-1 URL a BibTeX cites still serves version 1's
    numbers, and the version selector moves to the same page of the other version."""
    import functools
    import http.server
    import threading

    from test_browser import ARGS, CHROMIUM, SUB, _Handler

    if not CHROMIUM.exists():
        pytest.skip("needs Debian chromium at /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    served = tmp_path / "served"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    base = f"http://127.0.0.1:{httpd.server_address[1]}/{SUB}/"
    out = served / SUB
    config = project(tmp_path / "project")
    assert run_cli(config, "--publish", str(out), "--version", "1", "--alias", "latest", "--site-url", base) == 0
    config.write_text(config.read_text().replace("seed = 0", "seed = 7"))
    assert run_cli(config, "--publish", str(out), "--version", "2", "--alias", "latest", "--site-url", base) == 0
    csv1, csv2 = ((out / v / "models" / "tiny-a.csv").read_text() for v in ("1", "2"))
    assert csv1 != csv2  # a number moved between the versions
    # version 2's Changes page lists the numbers that left their interval, with both values
    moved = list(csv.DictReader(io.StringIO((out / "2" / "changes.csv").read_text())))
    assert moved and all(r["previous"] != r["value"] for r in moved)
    one = moved[0]
    changes_page = (out / "2" / "changes.html").read_text()
    assert "Changes in version 2" in changes_page and "since version 1" in changes_page
    assert f"{float(one['previous']):.3f}" in changes_page and f"{float(one['value']):.3f}" in changes_page
    assert not (out / "1" / "changes.html").exists()  # the first version has nothing to compare with
    cited = re.search(r"url +?= \{([^}]+)\}", (out / "1" / "models" / "tiny-a.html").read_text()).group(1)
    assert cited == base + "1/models/tiny-a.html"

    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(base + "latest/models/tiny-a.html", wait_until="networkidle")
            assert page.url == base + "2/models/tiny-a.html"  # latest: version 2, same page
            assert page.request.get(cited.replace(".html", ".csv")).text() == csv1  # the cited version's numbers
            page.wait_for_selector(".md-version__current", timeout=10_000)
            assert page.inner_text(".md-version__current").strip() == "2"
            page.hover(".md-version")
            page.click(".md-version__list a:has-text('1')")
            page.wait_for_url(base + "1/models/tiny-a.html", timeout=10_000)  # the same page, version 1
            SHOTS = Path("/tmp/atlas-shots")
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "published-version-1.png"))
            page.goto(base + "2/changes.html", wait_until="load")
            assert page.locator("h2:has-text(\"Numbers that moved beyond their interval\")").count() == 1
            page.screenshot(path=str(SHOTS / "published-changes.png"), full_page=True)
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- names of the layout, interrupted publishes

def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def _listed(out: Path) -> dict[str, list[str]]:
    from mike.versions import Versions

    return {str(v.version): sorted(v.aliases) for v in Versions.loads((out / "versions.json").read_text())}


@pytest.mark.parametrize("name", ["versions.json", "index.html", "404.html", "sitemap.xml", "Versions.JSON",
                                  "notes.txt"])
@pytest.mark.parametrize("what", ["version", "alias"])
def test_names_of_files_in_the_folder_are_refused_and_touch_nothing(tmp_path, name, what):
    """A version or alias named like a file of the layout (or a file of the user's, there) would
    turn that file into a folder: refused in one line; the folder stays as it was, publishable."""
    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1.0", alias="latest")
    (out / "notes.txt").write_text("mine")
    before, names = _tree(out), _entries(out)
    version, alias = (name, None) if what == "version" else ("2.0", name)
    with pytest.raises(PublishError) as refused:
        publish_site(_site(tmp_path / "s2", "two"), out, version, alias=alias)
    assert f"--{what} {name!r}" in str(refused.value) and "\n" not in str(refused.value)
    assert _tree(out) == before and _entries(out) == names
    publish_site(_site(tmp_path / "s2", "two"), out, "2.0", alias="latest")  # still publishable
    assert _listed(out) == {"2.0": ["latest"], "1.0": []} and (out / "notes.txt").read_text() == "mine"


def _rename_fails(monkeypatch, source: str) -> None:
    """Path.rename of ``source`` (a dot-name of the publish) raises, as a full disk or ^C would."""
    rename = Path.rename

    def failing(self, target):
        if self.name == source:
            raise OSError(f"interrupted renaming {source}")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)


def test_interrupted_replace_keeps_the_version(tmp_path, monkeypatch):
    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    before = _tree(out)
    with monkeypatch.context() as m:
        _rename_fails(m, ".1.publishing")  # the old version moved aside, the new one not yet in place
        with pytest.raises(OSError, match="interrupted"):
            publish_site(_site(tmp_path / "s3", "one, corrected"), out, "1", replace=True)
    assert (out / "1" / "index.html").read_text() == "<h1>one</h1>" and _tree(out) == before
    assert _listed(out) == {"2": ["latest"], "1": []}
    assert not [n for n in _entries(out) if n.startswith(".") and n != ".nojekyll"]
    publish_site(_site(tmp_path / "s3", "one, corrected"), out, "1", replace=True)
    assert "corrected" in (out / "1" / "index.html").read_text()


def test_interrupted_alias_move_keeps_the_alias(tmp_path, monkeypatch):
    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    before = _tree(out)
    with monkeypatch.context() as m:
        _rename_fails(m, ".latest.publishing")  # the old alias moved aside, the new one not yet in place
        with pytest.raises(OSError, match="interrupted"):
            publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    assert _redirect_target(out / "latest" / "index.html") == "../1/index.html"  # the root's redirect lands
    assert _redirect_target(out / "index.html") == "latest/"
    assert _listed(out) == {"1": ["latest"]} and _tree(out) == before and not (out / "2").exists()
    publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    assert _redirect_target(out / "latest" / "models" / "m.html") == "../../2/models/m.html"


def test_a_killed_publish_is_undone_by_the_next(tmp_path, monkeypatch):
    """kill -9 (nothing undone at once): the next publish puts back the version moved aside, drops
    a folder never listed in versions.json, and accepts a folder whose first publish was killed."""
    from atlas.site import publish

    out = tmp_path / "pub"
    publish_site(_site(tmp_path / "s1", "one"), out, "1", alias="latest")
    v1 = _tree(out / "1")
    with monkeypatch.context() as m:
        m.setattr(publish, "_recover", lambda *a, **k: None)
        _rename_fails(m, ".1.publishing")
        with pytest.raises(OSError):
            publish_site(_site(tmp_path / "s2", "two"), out, "1", alias="latest", replace=True)
    assert not (out / "1").exists()  # the moment of the kill
    check_target(out, "2", "latest")  # not refused
    publish_site(_site(tmp_path / "s2", "two"), out, "2", alias="latest")
    assert _tree(out / "1") == v1 and _listed(out) == {"2": ["latest"], "1": []}
    assert not [n for n in _entries(out) if n.startswith(".") and n != ".nojekyll"]

    first = tmp_path / "first"  # the very first publish killed before versions.json was written
    with monkeypatch.context() as m:
        m.setattr(publish, "_recover", lambda *a, **k: None)
        write = publish.atomic_write
        m.setattr(publish, "atomic_write", lambda path, *a, **k: (_ for _ in ()).throw(OSError("killed"))
                  if Path(path).name == "versions.json" else write(path, *a, **k))
        with pytest.raises(OSError):
            publish_site(_site(tmp_path / "s1", "one"), first, "1", alias="latest")
    assert (first / "1").is_dir() and not (first / "versions.json").exists()
    publish_site(_site(tmp_path / "s1", "one"), first, "1", alias="latest")  # neither foreign nor "not an atlas"
    assert _listed(first) == {"1": ["latest"]} and _tree(first / "1") == v1


def test_publish_refused_after_the_build_is_one_line(tmp_path, capsys, monkeypatch):
    """A publish refused only once the site is built (another publish took the version meanwhile):
    one line, exit 2 as for the same refusal before the build, no traceback."""
    from atlas import cli

    config = project(tmp_path)
    out = tmp_path / "published"
    publish_site(_site(tmp_path / "other", "other"), out, "1")
    monkeypatch.setattr(cli, "_check_publish", lambda args, cfg: None)  # the check before the build passed
    assert run_cli(config, "--publish", str(out), "--version", "1", "--site-url", "https://example.org/") == 2
    assert "already published" in error_line(capsys)
    assert (out / "1" / "index.html").read_text() == "<h1>other</h1>"
