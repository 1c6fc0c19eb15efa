"""Hostile names and files (issue 24): names too long for a file system, a config that is not
UTF-8, text that reorders or hides itself, files that are no images, and `slurm_local.sh down`
next to other people's daemons. Each drill ends in a correct build or one clear line.

The builds are real (tiny random-init timm models on 64 px photos, through the command line), as
in test_hostile_inputs.py, whose helpers these drills use.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from test_hostile_inputs import _toml, _write_photos, error_line, project, run_cli

from atlas.config import slugify
from atlas.inputs.images import load_image_folder
from atlas.site import paths
from atlas.site.markup import json_script, printable

# The contract, written out rather than imported, so that each drill fails on its own assertion
# where the code predates it: slugs longer than 80 characters become 71 + "-" + 8 hex digits
# (atlas.config.SLUG_MAX), and an image folder reports 20 other files one by one
# (atlas.inputs.images.MAX_OTHER_FILES_REPORTED).
SLUG_MAX = 80
MAX_OTHER_FILES_REPORTED = 20
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_local.sh"
#: mkstemp's twin of a file (atlas.files.atomic_path): `.tmp-<pid>@<host>~<stem>.<8 random><suffix>`
TEMP_OVERHEAD = len(".tmp-") + 7 + 1 + 64 + 1 + 1 + 8
LONG = "m" * 300


def _names(*roots: Path) -> list[str]:
    return [p.name for root in roots if root.exists() for p in root.rglob("*")]


def _assert_short_names(*roots: Path) -> None:
    longest = max(_names(*roots), key=len)
    assert len(longest.encode()) + TEMP_OVERHEAD < 255, longest


# ---------------------------------------------------------------- long names


@pytest.mark.slow
def test_long_display_name_and_title_build_with_bounded_slugs(tmp_path):
    """A 300-character display name and comparison title used to fail after the model was computed
    (`out/state/models/mmmm...: File name too long`), and again on every run."""
    config = project(tmp_path, models=[LONG, "Tiny B"])
    config.write_text(config.read_text() + f'\n[[comparisons]]\ntitle = {_toml("c" * 300)}\nkind = "models"\n')
    assert run_cli(config, "--no-site") == 0
    models = sorted(p.name for p in (tmp_path / "out" / "state" / "models").iterdir())
    slug = "m" * (SLUG_MAX - 9) + "-" + hashlib.sha256(LONG.encode()).hexdigest()[:8]
    assert models == [slug, "tiny-b"]  # a short slug is unchanged
    assert (tmp_path / "site_src" / "models" / f"{slug}.md").is_file()
    assert [len(p.name) for p in (tmp_path / "out" / "state" / "comparisons").iterdir()] == [SLUG_MAX]
    _assert_short_names(tmp_path / "out", tmp_path / "site_src")
    assert run_cli(config, "--no-site") == 0  # and the next run reads what was stored


def test_too_long_explicit_slug_stops_before_any_computing(tmp_path, capsys):
    config = project(tmp_path)
    config.write_text(config.read_text().replace('training = "random"', f'training = "random"\nslug = "{"s" * 250}"'))
    assert run_cli(config, "--no-site") == 2
    line = error_line(capsys)
    assert "backbones[0].slug: slug is 250 characters long; give at most 80" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out" / "state" / "models").exists()


@pytest.mark.slow
def test_long_image_name_renders(tmp_path):
    """An image named with 250 characters used to fail at render (its maps are named after it)."""
    long_image = "p" * 246 + ".png"
    config = project(tmp_path, images=[long_image, "p1.png", "p2.png", "p3.png"])
    assert run_cli(config, "--no-site") == 0
    info = json.loads((tmp_path / "site_src" / "atlas.json").read_text())
    assert long_image in [i["name"] for i in info["images"]]
    assert any(n.startswith("p" * 60) and n.endswith("-a1000.webp") for n in _names(tmp_path / "site_src"))  # its photo
    _assert_short_names(tmp_path / "out", tmp_path / "site_src")


def test_every_generated_name_has_a_bounded_length():
    """The longest names the site derives from a slug and an image name, with their temporary twins."""
    slug, image, content = "s" * SLUG_MAX, "x" * 250 + ".png", "0" * 64
    stems = [paths.model_view(slug, "b99-attention-heads-t99"), paths.model_view(slug, "b99-tokens_normed-pca-fg"),
             paths.comparison_view(slug, "d099-" + slug), paths.photo(image, content) + "-a10000.webp",
             paths.overview_view(slug), paths.thumbnail(image, content),
             paths.figures_script(f"models/{slug}.md")]
    longest = max((part for s in stems for part in s.split("/")), key=len)
    assert len(longest) + TEMP_OVERHEAD <= 210, longest
    # the names of published pages do not change: a short image name keeps its file name
    assert paths.thumbnail("a b.png", content) == "generated/images/a-b-png-862fead1.webp"


# ---------------------------------------------------------------- a config that is not UTF-8


@pytest.mark.parametrize("bad, offset_of", [
    (b"\xff", b"\xff"),  # one stray byte
    ("Caf\u00e9".encode("latin-1"), b"\xe9"),  # saved by a Latin-1 editor
], ids=["stray byte", "latin-1"])
def test_config_not_utf8_is_one_line(tmp_path, capsys, bad, offset_of):
    config = project(tmp_path)
    raw = config.read_bytes().replace(b'title = "Tiny atlas"', b'title = "' + bad + b'"')
    config.write_bytes(raw)
    assert run_cli(config) == 2
    line = error_line(capsys)
    offset = raw.index(offset_of)
    assert line == (f"error: {config}: not UTF-8 text: byte 0x{raw[offset]:02x} at offset {offset} (line 3); "
                    "save the file as UTF-8")


# ---------------------------------------------------------------- text that reorders or hides itself


def test_format_characters_are_shown_as_escapes():
    format_chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    for ch in format_chars:
        out = printable(f"a{ch}b")
        assert ch not in out and out.startswith("a\\") and out.isascii(), hex(ord(ch))
    assert printable("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    assert json.loads(str(json_script({"x": "a\u202eb\U000e0041"}))) == {"x": "a\u202eb\U000e0041"}


# ---------------------------------------------------------------- Markdown inside inline code

#: A timm name and a config file name that are Markdown: a link, emphasis, a code span, strong
#: emphasis, an attribute list, a table's cell separator, a backslash escape and HTML.
HOSTILE_CODE = "vit_[click](javascript:alert(1)) a*b*c `tick` __init__ {: .x} a|b \\*k <i>&amp;"


def _markdown_html(page: str) -> str:
    """A generated page as MkDocs turns it into HTML: front matter off, the extensions of mkdocs.yml."""
    import markdown
    import yaml
    from mkdocs.utils.meta import get_data

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "mkdocs.yml").read_text(encoding="utf-8"))
    names, settings = [], {}
    for ext in config["markdown_extensions"]:
        name, options = next(iter(ext.items())) if isinstance(ext, dict) else (ext, None)
        names.append(name)
        settings[name] = options or {}
    return markdown.markdown(get_data(page)[0], extensions=names, extension_configs=settings)


def test_code_shows_markdown_in_config_names_literally(tmp_path):
    """`|code` (build report, Methods) escaped for HTML only: Python-Markdown still parses Markdown
    inside inline <code>, so a timm name became a javascript: link, `a*b*c` emphasis, and a backtick
    a second <code> inside the first."""
    from conftest import make_synthetic_results

    from atlas.site import render_site

    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    results.config_name = HOSTILE_CODE
    results.models[0].card.timm_name = HOSTILE_CODE
    render_site(results, docs)
    for name in ("build-report.md", "methods.md"):
        page = _markdown_html((docs / name).read_text(encoding="utf-8"))
        codes = re.findall(r"<code>(.*?)</code>", page, re.S)
        hostile = [c for c in codes if "javascript" in c]
        assert hostile, name
        for c in hostile:
            assert not re.search(r"<(a|em|strong|code|i)\b", c), (name, c)
            assert html.unescape(c) == HOSTILE_CODE, (name, c)
        assert "<a href=\"javascript" not in page and "<em>b</em>" not in page, name
    report = _markdown_html((docs / "build-report.md").read_text(encoding="utf-8"))
    row = next(tr for tr in re.findall(r"<tr>(.*?)</tr>", report, re.S) if "javascript" in tr)
    assert len(re.findall(r"<td", row)) == 4  # the | in the name splits no cell


@pytest.fixture(scope="module")
def odd_site(tmp_path_factory):
    """A full site: a display name with a right-to-left override, one with a zero-width space, and
    an image folder that holds a text file."""
    tmp = tmp_path_factory.mktemp("odd")
    config = project(tmp, title="Atlas \u2066isolated\u2069", models=["Tiny \u202eA", "Tiny\u200bB"])
    (tmp / "photos" / "notes.txt").write_text("not a photo")
    (tmp / "photos" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored without a word
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("atlas").addHandler(handler)
    try:
        assert run_cli(config) == 0
    finally:
        logging.getLogger("atlas").removeHandler(handler)
    return {"tmp": tmp, "docs": tmp / "site_src", "site": tmp / "site", "logs": records}


@pytest.mark.slow
def test_rtl_override_and_zero_width_show_as_escapes(odd_site):
    site = odd_site["site"]
    pages = {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8") for p in site.rglob("*.html")}
    rtl, zero_width = pages[f"models/{slugify('Tiny A')}.html"], pages[f"models/{slugify('Tiny B')}.html"]
    assert "<title>Tiny \\u202eA" in rtl and "<title>Tiny\\u200bB" in zero_width  # page titles
    assert "Tiny \\u202eA" in pages["index.html"] and "Atlas \\u2066isolated\\u2069" in pages["index.html"]
    assert r"title        = {{Tiny \textbackslash{}u202eA" in rtl  # the BibTeX of the page
    for page, text in pages.items():  # in no page, anywhere: nav, titles, tables, citations, the config
        assert not {"\u202e", "\u200b", "\u2066", "\u2069"} & set(text), page


@pytest.mark.slow
def test_non_image_file_is_reported(odd_site):
    report = json.loads((odd_site["docs"] / "build-report.json").read_text())
    text = json.dumps(report)
    assert "image notes.txt" in text and "not an image file extension (.txt)" in text
    assert "DS_Store" not in text
    logged = [r.getMessage() for r in odd_site["logs"] if "notes.txt" in r.getMessage()]
    assert logged == ["skipped image notes.txt: not an image file extension (.txt)"]


def test_many_non_image_files_are_reported_in_bounded_form(tmp_path):
    _write_photos(tmp_path, ["a.png"])
    for i in range(MAX_OTHER_FILES_REPORTED + 15):
        (tmp_path / f"sidecar{i:02d}.{'json' if i % 2 else 'xmp'}").write_text("{}")
    (tmp_path / "README").write_text("no extension")
    images, skipped = load_image_folder(tmp_path)
    assert [i.name for i in images] == ["a.png"]
    assert len(skipped) == MAX_OTHER_FILES_REPORTED + 1
    assert (skipped[0].path, skipped[0].reason) == ("README", "not an image file extension (none)")
    assert (skipped[-1].path, skipped[-1].reason) == ("sidecar19.json and 15 more files",
                                                      "not image file extensions (.json, .xmp)")


# ---------------------------------------------------------------- slurm_local.sh down


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def _real_daemons() -> set[str]:
    """PIDs of the Slurm and MUNGE daemons running on this machine (not zombies)."""
    found = [pid for name in ("slurmd", "slurmctld", "munged")
             for pid in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()]
    return {pid for pid in found if _state(pid) not in ("Z", "gone")}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_slurm_down_stops_only_the_daemons_it_started(tmp_path):
    """`down` used `pkill -x slurmd` etc.: it stopped every user's daemon of that name. Here a
    `pkill` / `killall` in front on PATH refuses, so that the real daemons of this machine (a local
    Slurm the test suite started) are never touched, whatever the script does."""
    real = _real_daemons()
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    (state / "pids").mkdir(parents=True)
    calls = tmp_path / "by-name.log"
    for tool in ("pkill", "killall"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >>{calls}\nexit 1\n')
        (bin_dir / tool).chmod(0o755)
    for name in ("slurmd", "slurmctld"):  # /bin/sleep under a daemon's name: /proc/PID/comm is the name
        shutil.copy("/bin/sleep", bin_dir / name)
    ours = subprocess.Popen([bin_dir / "slurmd", "300"])  # what `up` started
    theirs = subprocess.Popen([bin_dir / "slurmd", "300"])  # another user's slurmd: not recorded
    reused = subprocess.Popen([bin_dir / "slurmctld", "300"])  # recorded PID, but started later (PID reuse)
    other = subprocess.Popen(["sleep", "300"])  # recorded as munged, but is another program now
    procs = [ours, theirs, reused, other]
    try:  # Popen returns once the program runs: /proc/PID/comm is its name
        (state / "pids" / "slurmd.pid").write_text(f"{ours.pid} {_start_time(ours.pid)}\n")
        (state / "pids" / "slurmctld.pid").write_text(f"{reused.pid} {int(_start_time(reused.pid)) - 100}\n")
        (state / "pids" / "munged.pid").write_text(f"{other.pid} {_start_time(other.pid)}\n")
        env = dict(os.environ, ATLAS_SLURM_STATE=str(state), PATH=f"{bin_dir}:{os.environ['PATH']}")
        done = subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        by_name = calls.read_text() if calls.exists() else ""
        assert by_name == "", f"down stopped processes by name: {by_name.strip()}"
        ours.wait(timeout=15)
        assert not _alive(ours)
        assert _alive(theirs) and _alive(reused) and _alive(other)
        assert not list((state / "pids").iterdir())  # every record answered for
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert real <= _real_daemons()  # the machine's own daemons still run
