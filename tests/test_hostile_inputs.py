"""Hostile inputs, damaged files and failing disks: every drill ends in a correct site or one clear
line, and nothing already computed is lost.

The builds here are real (config -> tiny random-init timm models -> feature cache -> site, most of
them through the command line) on a handful of 64 px images. Drills that need a file system of
their own (read-only, full) mount a small tmpfs, which needs root; they are skipped otherwise.
"""

from __future__ import annotations

import functools
import html
import html.parser
import http.server
import json
import logging
import multiprocessing
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from conftest import _photo
from PIL import Image

from atlas import cli
from atlas.features.cache import DAMAGED_SUFFIX, FeatureCache
from atlas.files import _HOST, FOREIGN_TEMP_AGE_S, TEMP_PREFIX, remove_orphaned_temporaries
from atlas.pipeline.state import StateStore
from atlas.site.paths import thumbnail

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}
DATE = "2026-01-01"


def hostile(field: str) -> str:
    """Text that runs a script wherever it is inserted unescaped (HTML, attribute, Markdown link)."""
    return f'{field}<script>alert("{field}")</script><img src=x onerror=alert(1)>"\'>&amp;*_[x](javascript:alert(2))'


HOSTILE_IMAGE = "<img src=x onerror=alert('file')>&.png"  # a legal POSIX file name
BAD_IMAGE = "bad\nname.png"  # not an image; its name holds a newline
HOSTILE_GROUP = "<b onmouseover=alert('group')>g&amp;"  # a sub-folder of the image folder: an image group


def _toml(value) -> str:
    return json.dumps(value)  # a JSON string or list is a valid TOML value


def _write_photos(folder: Path, names: list[str], size: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(_photo(i, size)).save(folder / name, format="PNG")


def project(tmp: Path, *, title: str = "Tiny atlas", models: list[str] = ("Tiny A",), extra: str = "",
            images: list[str] | None = None, evaluation: str = "", backbone_extra: str = "",
            batch_size: int = 4, features: str = "") -> Path:
    """A project folder: configs/tiny.toml and photos/ (64 px, different per file); returns the config.
    ``features``: more lines of its [features] section (e.g. ``cache = true``)."""
    _write_photos(tmp / "photos", images or [f"p{i}.png" for i in range(5)])
    backbones = "".join(f"""
[[backbones]]
display_name = {_toml(name)}
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
overrides = {{ depth = 2, embed_dim = 32, num_heads = 2 }}
{backbone_extra}
""" for name in models)
    text = f"""
[atlas]
title = {_toml(title)}
seed = 0
output_dir = "out"
cache_dir = "cache"
{extra}

[images]
sets = [{{ folder = "photos" }}]
resolution = [64, 64]

[features]
layers = [1.0]
gallery_layers = [0.5, 1.0]
representations = ["tokens", "keys"]
batch_size = {batch_size}
{features}

[clustering]
ks = [2, 3]

[analyses]
k = 2

[uncertainty]
resamples = 20
seeds = 1
{evaluation}
{backbones}
"""
    (tmp / "configs").mkdir(parents=True, exist_ok=True)
    path = tmp / "configs" / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(config: Path, *args: str) -> int:
    docs, site = config.parents[1] / "site_src", config.parents[1] / "site"
    return cli.main(["--config", str(config), "--docs-dir", str(docs), "--site-dir", str(site), "-q",
                     "--build-date", DATE, *args])


def error_line(capsys) -> str:
    """The one line the command printed on stderr (no traceback, nothing else)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err


# ---------------------------------------------------------------- hostile strings, a real site


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A real build whose every config text field and image file name is hostile, served under /atlas/."""
    tmp = tmp_path_factory.mktemp("hostile")
    names = [HOSTILE_IMAGE, "a b.png", "a-b.png", "c.png", "d.png", "e.png"]
    labelled = tmp / "labelled"
    _write_photos(labelled / "images", [f"l{i}.png" for i in range(8)])
    (labelled / "masks").mkdir()
    for i in range(8):  # left half class 0, right half class 1
        mask = np.zeros((64, 64), np.uint8)
        mask[:, 32 + i:] = 1
        Image.fromarray(mask).save(labelled / "masks" / f"l{i}.png")
    evaluation = f"""
[evaluation]
dataset = "folder"
root = "labelled"
class_names = {_toml([hostile("class0"), hostile("class1")])}
foreground = {_toml([hostile("class1")])}
licence = {_toml(hostile("licence"))}
credit = {_toml(hostile("credit"))}
"""
    comparison = f"""
[[comparisons]]
title = {_toml(hostile("comparison"))}
kind = "models"
description = {_toml(hostile("comparison description"))}
"""
    config = project(tmp, title=hostile("title"), models=[hostile("model A"), hostile("model B")],
                     extra=f"description = {_toml(hostile('description'))}\noverview_image = {_toml(HOSTILE_IMAGE)}",
                     images=names, evaluation=evaluation,
                     backbone_extra=f"family = {_toml(hostile('family'))}\ngroup = {_toml(hostile('group'))}")
    config.write_text(config.read_text() + comparison, encoding="utf-8")
    # different photos whose names give one slug, a file that is no image (named with a newline), a 1x1 image
    Image.fromarray(np.full((64, 64, 3), (220, 30, 30), np.uint8)).save(tmp / "photos" / "a b.png")
    Image.fromarray(np.full((64, 64, 3), (30, 30, 220), np.uint8)).save(tmp / "photos" / "a-b.png")
    (tmp / "photos" / BAD_IMAGE).write_bytes(b"not an image")
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp / "photos" / "tiny.png")
    (tmp / "photos" / HOSTILE_GROUP).mkdir()
    Image.fromarray(_photo(7, 64)).save(tmp / "photos" / HOSTILE_GROUP / "g.png")

    served = tmp / "served"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    base = f"http://127.0.0.1:{httpd.server_address[1]}/atlas"
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("atlas").addHandler(handler)
    try:
        rc = cli.main(["--config", str(config), "--docs-dir", str(tmp / "site_src"), "--site-dir",
                       str(served / "atlas"), "--site-url", base + "/", "-q", "--build-date", DATE])
    finally:
        logging.getLogger("atlas").removeHandler(handler)
    assert rc == 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"tmp": tmp, "docs": tmp / "site_src", "site": served / "atlas", "base": base, "logs": records}
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_no_script_runs_and_hostile_text_shows_literally(hostile_site):
    sync_api = pytest.importorskip("playwright.sync_api")
    site, base = hostile_site["site"], hostile_site["base"]
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert len(pages) >= 8
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        for rel in pages:
            page = browser.new_page()
            page.on("dialog", lambda d, rel=rel: (dialogs.append(f"{rel}: {d.message}"), d.dismiss()))
            page.goto(f"{base}/{rel}", wait_until="load")
            for i in range(page.locator(".atlas-plot-target").count()):  # hover texts, legends, axis titles
                target = page.locator(".atlas-plot-target").nth(i)
                target.evaluate("el => el.scrollIntoView({block: 'center'})")
                page.wait_for_function("el => el.classList.contains('atlas-plot--drawn')",
                                       arg=target.element_handle(), timeout=20000)
            page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
            page.wait_for_timeout(200)
            assert page.evaluate("[...document.querySelectorAll('a[href]')]"
                                 ".filter(a => a.href.trim().toLowerCase().startsWith('javascript:')).length") == 0, rel
            assert page.locator("script:not([src])").evaluate_all(  # data blocks (application/json) aside
                "els => els.filter(s => ['', 'text/javascript', 'module'].includes(s.type)"
                " && s.textContent.includes('alert(')).length") == 0, rel
            if rel == "index.html":
                assert page.title() == hostile("title")  # the title shows literally, as text
                assert hostile("title") in page.inner_text(".md-header__topic")
                assert hostile("description") in page.inner_text("article")
            if rel.startswith("models/"):
                h1 = page.inner_text("article h1")
                assert hostile("model A") in h1 or hostile("model B") in h1
                # the gallery's captions, labels and group filter show the names as text
                gallery = ".atlas-gallery[data-anchor=gallery]"
                page.wait_for_selector(f"{gallery} canvas[data-map]")
                captions = page.locator(f"{gallery} figcaption").all_inner_texts()
                assert HOSTILE_IMAGE in captions and f"{HOSTILE_GROUP}/g.png" in captions
                labels = page.locator(f"{gallery} canvas").evaluate_all("cs => cs.map(c => c.getAttribute('aria-label'))")
                assert any(label.startswith(HOSTILE_IMAGE + ": ") for label in labels)
                page.locator(f"{gallery} select[data-group]").select_option(HOSTILE_GROUP)
                page.wait_for_function("sel => document.querySelectorAll(sel + ' canvas[data-map]').length === 1",
                                       arg=gallery)
                assert page.locator(f"{gallery} figcaption").all_inner_texts() == [f"{HOSTILE_GROUP}/g.png"]
                page.locator(f"{gallery} canvas[data-map]").first.click(position={"x": 3, "y": 3})
                page.wait_for_selector(f"{gallery} .atlas-cluster-panel")
                assert "group=" in page.url
            if rel == "images.html":
                text = page.inner_text("article")
                assert HOSTILE_IMAGE in text and hostile("licence") in text and hostile("credit") in text
            if rel == "build-report.html":
                rows = page.locator("tr", has_text="bad\\nname.png")
                assert rows.count() == 1 and "not a recognised image format" in rows.inner_text()
            page.close()
        browser.close()
    assert dialogs == []


class _Attributes(html.parser.HTMLParser):
    """Every attribute value and text of a page, unescaped once (as a browser reads them)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[tuple[str, str, str]] = []  # (tag, attribute or "#text", value)
        self.anchors: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.values += [(tag, k, v or "") for k, v in attrs]
        if tag == "a":
            self.anchors.append({k: v or "" for k, v in attrs})

    def handle_data(self, data):
        self.values.append(("", "#text", data))


def test_names_are_escaped_once_in_the_theme(hostile_site):
    """mkdocs-material prints the site name and page titles raw in the header and through `| e` in
    the logo's tooltip and the footer's aria-labels: everywhere they read as the text itself, never
    as escaped entities (`&lt;script&gt;` shown to the reader)."""
    site = hostile_site["site"]
    footer_labels = []
    for page in sorted(site.rglob("*.html")):
        parser = _Attributes()
        parser.feed(page.read_text(encoding="utf-8"))
        double = [(tag, attr, value[:80]) for tag, attr, value in parser.values if "&lt;" in value or "&gt;" in value]
        assert not double, (page.name, double[:3])
        logo = [a for a in parser.anchors if "md-logo" in a.get("class", "")]
        assert logo and all(a["title"] == a["aria-label"] == hostile("title") for a in logo), page.name
        footer_labels += [a["aria-label"] for a in parser.anchors if "md-footer__link" in a.get("class", "")]
    assert any(hostile("model A") in label or hostile("model B") in label for label in footer_labels)


def test_hostile_titles_give_citations_that_parse(hostile_site):
    """BibTeX of every page parses with a real parser and carries the hostile title as text;
    CITATION.cff is valid YAML with the title verbatim."""
    pybtex = pytest.importorskip("pybtex.database")
    yaml = pytest.importorskip("yaml")
    site = hostile_site["site"]
    for page in site.rglob("*.html"):
        if page.name == "404.html":
            continue
        text = page.read_text(encoding="utf-8")
        (bib,) = [html.unescape(b) for b in re.findall(r'<code class="language-bibtex">(.*?)</code>', text, re.S)]
        (entry,) = pybtex.parse_string(bib, "bibtex").entries.values()
        assert entry.fields["url"].startswith(hostile_site["base"]), page
    cff = yaml.safe_load((site / "CITATION.cff").read_text(encoding="utf-8"))
    assert hostile("title") in cff["title"]


def test_same_slug_images_have_their_own_files(hostile_site):
    """`a b.png` (red) and `a-b.png` (blue) give one slug: each keeps its own thumbnail and photo."""
    docs = hostile_site["docs"]
    red = np.asarray(Image.open(docs / thumbnail("a b.png", _hash(hostile_site, "a b.png"))).convert("RGB"))
    blue = np.asarray(Image.open(docs / thumbnail("a-b.png", _hash(hostile_site, "a-b.png"))).convert("RGB"))
    assert red[..., 0].mean() > 180 > red[..., 2].mean() and blue[..., 2].mean() > 180 > blue[..., 0].mean()
    photos = sorted((docs / "generated" / "photos").glob("a-b-*.webp"))
    assert len(photos) == 2
    a, b = sorted((np.asarray(Image.open(m).convert("RGB")).mean(axis=(0, 1)) for m in photos), key=lambda c: c[0])
    assert a[2] > 180 > a[0] and b[0] > 180 > b[2]  # one blue, one red: the gallery shows each under its maps


def _hash(hostile_site, name: str) -> str:
    info = json.loads((hostile_site["docs"] / "atlas.json").read_text())
    return next(i["content_hash"] for i in info["images"] if i["name"] == name)


def test_skipped_images_are_logged_once_and_reported(hostile_site):
    skipped = [r.getMessage() for r in hostile_site["logs"] if r.getMessage().startswith("skipped image")]
    assert sorted(skipped) == sorted([f"skipped image {BAD_IMAGE}: not a recognised image format",
                                      "skipped image tiny.png: 1x1 px: shorter side below [images] min_side = 32"])
    report = (hostile_site["docs"] / "build-report.md").read_text()
    assert "bad\\\\nname.png" in report  # the newline written as an escape: the table row stays one line
    assert "tiny.png" in report and "min\\_side" in report


# ---------------------------------------------------------------- replaced photos


@pytest.mark.slow
def test_replaced_photo_gets_new_thumbnail_and_maps(tmp_path):
    config = project(tmp_path, images=["p0.png", "p1.png", "p2.png"])
    assert run_cli(config, "--no-site") == 0
    docs = tmp_path / "site_src"
    before = {p.relative_to(docs) for p in (docs / "generated").rglob("*.webp")}
    Image.fromarray(np.full((64, 64, 3), (10, 200, 10), np.uint8)).save(tmp_path / "photos" / "p1.png")
    assert run_cli(config, "--no-site") == 0
    after = {p.relative_to(docs) for p in (docs / "generated").rglob("*.webp")}
    info = json.loads((docs / "atlas.json").read_text())
    new_hash = next(i["content_hash"] for i in info["images"] if i["name"] == "p1.png")
    thumb = np.asarray(Image.open(docs / thumbnail("p1.png", new_hash)).convert("RGB")).mean(axis=(0, 1))
    assert thumb[1] > 180 > thumb[0]  # the new (green) photo
    gone = before - after
    assert gone and all("p1-" in p.name for p in gone)  # every file of the old photo, and only those, left


# ---------------------------------------------------------------- damaged cache entries


def _entry(tmp_path) -> tuple[FeatureCache, str, np.ndarray, Path]:
    cache = FeatureCache(tmp_path / "cache")
    key = cache.key(model="m", weights="w", image="i", preprocessing="p")
    tokens = np.random.default_rng(0).normal(size=(1 + 4, 8)).astype(np.float16)
    cache.put(key, {(0, "keys"): tokens, (1, "keys"): tokens * 2}, n_prefix=1, grid=(2, 2))
    return cache, key, tokens, cache.path(key)


def _data_offset(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _damage(path: Path, kind: str) -> None:
    raw = bytearray(path.read_bytes())
    start = _data_offset(path)
    if kind == "truncated":
        raw = raw[: len(raw) - 7]
    elif kind == "empty":
        raw = bytearray()
    elif kind == "header byte":
        raw[20] ^= 0x55
    elif kind == "data byte, finite":
        raw[start + 2] ^= 0x01  # lowest mantissa bit of one float16: still finite, slightly off
    elif kind == "data byte, NaN":
        raw[start + 2: start + 4] = b"\xff\x7f"
    path.write_bytes(bytes(raw))


DAMAGE = ["truncated", "empty", "header byte", "data byte, finite", "data byte, NaN"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_entry_is_reported_and_moved_aside(tmp_path, kind, caplog):
    cache, key, tokens, path = _entry(tmp_path)
    _damage(path, kind)
    with caplog.at_level(logging.WARNING, logger="atlas"):
        assert cache.get(key, 0, "keys") is None and not cache.has(key, [(0, "keys")])
    assert cache.damaged == [path] and (path.parent / (path.name + DAMAGED_SUFFIX)).is_file()
    assert any("damaged entry" in r.getMessage() and "extracted again" in r.getMessage() for r in caplog.records)
    cache.put(key, {(0, "keys"): tokens}, n_prefix=1, grid=(2, 2))  # extracted again
    np.testing.assert_array_equal(cache.get(key, 0, "keys")[0].reshape(4, 8), tokens[1:])


def test_entry_with_valid_checksum_but_nan_is_refused(tmp_path):
    """A file from another writer whose checksum fits but whose values are not finite."""
    cache, key, tokens, path = _entry(tmp_path)
    from safetensors.numpy import save_file

    from atlas.features import cache as cache_mod
    bad = tokens.copy()
    bad[2, 3] = np.nan
    header = json.loads(path.read_bytes()[8:_data_offset(path)])
    meta = dict(header["__metadata__"], crc32=json.dumps({"0/keys": cache_mod._crc(bad)}))
    save_file({"0/keys": bad}, str(path), metadata=meta)
    assert cache.get(key, 0, "keys") is None and cache.damaged == [path]


def test_merging_never_keeps_damaged_data(tmp_path):
    """Adding a block to a damaged file must not re-checksum (launder) its damaged tensors."""
    cache, key, tokens, path = _entry(tmp_path)
    _damage(path, "data byte, finite")
    cache.put(key, {(2, "keys"): tokens}, n_prefix=1, grid=(2, 2))
    assert cache.entries(key) == {(2, "keys")} and cache.damaged == [path]


def test_nan_features_are_never_stored(tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(ValueError, match="NaN or infinite"):
        cache.put("ab" * 32, {(0, "keys"): np.full((5, 4), np.inf, np.float16)}, n_prefix=1, grid=(2, 2))
    assert not list(tmp_path.rglob("*.safetensors"))


@pytest.mark.slow
def test_damaged_cache_heals_and_the_site_equals_a_clean_build(tmp_path, caplog):
    """Each kind of damage on a different entry, then a rebuild that must read them all: every
    damaged entry is reported, moved aside and extracted again, and the pages equal a clean build's."""
    # batch size 1: an image extracted again alone computes exactly what it computed in its batch
    config = project(tmp_path, batch_size=1, features="cache = true")
    assert run_cli(config, "--no-site") == 0
    clean = _pages(tmp_path / "site_src")
    entries = sorted((tmp_path / "cache").glob("*/*.safetensors"))
    assert len(entries) >= len(DAMAGE)
    for path, kind in zip(entries[:: max(1, len(entries) // len(DAMAGE))], DAMAGE, strict=False):
        _damage(path, kind)
    damaged = entries[:: max(1, len(entries) // len(DAMAGE))][: len(DAMAGE)]
    (tmp_path / "site_src").rename(tmp_path / "clean_docs")
    subprocess.run(["rm", "-rf", str(tmp_path / "out")], check=True)  # stored results gone: the cache is read
    with caplog.at_level(logging.WARNING, logger="atlas"):
        assert run_cli(config, "--no-site") == 0
    moved = sorted(p.with_name(p.name[: -len(DAMAGED_SUFFIX)]) for p in (tmp_path / "cache").glob(f"*/*{DAMAGED_SUFFIX}"))
    assert moved == sorted(damaged)
    assert sum("damaged entry" in r.getMessage() for r in caplog.records) == len(DAMAGE)
    assert all(p.is_file() for p in damaged)  # extracted again
    assert _pages(tmp_path / "site_src") == clean


def _pages(docs: Path) -> dict[str, bytes]:
    """Every generated file of a docs dir except the build report and index (timings differ)."""
    skip = {"build-report.md", "atlas.json", "build-report.json", "build-report.csv"}
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*"))
            if p.is_file() and p.name not in skip and not p.name.startswith(".")}


# ---------------------------------------------------------------- temp files of concurrent builds


def _writer(root: str, seed: int, n: int, queue) -> None:
    try:
        cache = FeatureCache(root)
        rng = np.random.default_rng(seed)
        tokens = rng.normal(size=(1 + 256, 384)).astype(np.float16)  # ~200 KB: a write takes a while
        for i in range(n):
            key = cache.key(model=str(seed), weights="w", image=str(i), preprocessing="p")
            cache.put(key, {(0, "tokens"): tokens}, n_prefix=1, grid=(16, 16))
            cache.clean_temporaries()  # what every build does at start
        queue.put(None)
    except BaseException as exc:  # reported to the test
        queue.put(f"{type(exc).__name__}: {exc}")


def test_cleanup_never_removes_a_running_writers_file(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, 60, queue)) for s in (1, 2)]
    for p in procs:
        p.start()
    errors = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert errors == [None, None]
    cache = FeatureCache(tmp_path)
    assert len(list(tmp_path.glob("*/*.safetensors"))) == 120
    assert all(cache.get(cache.key(model=str(s), weights="w", image=str(i), preprocessing="p"), 0, "tokens")
               is not None for s in (1, 2) for i in range(60))
    assert not list(tmp_path.glob(f"*/{TEMP_PREFIX}*"))


def test_cleanup_removes_only_orphans(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a writer that exited (killed builds leave such files)
    old = time.time() - FOREIGN_TEMP_AGE_S - 60
    files = {
        "mine": f"{TEMP_PREFIX}{os.getpid()}@{_HOST}~a.safetensors",
        "dead writer": f"{TEMP_PREFIX}{gone.pid}@{_HOST}~b.safetensors",
        "other host, recent": f"{TEMP_PREFIX}1@elsewhere~c.safetensors",
        "other host, old": f"{TEMP_PREFIX}1@elsewhere~d.safetensors",
        "earlier naming, old": f"{TEMP_PREFIX}e.x1y2.safetensors",
    }
    for what, name in files.items():
        (tmp_path / name).write_text(what)
        if "old" in what:
            os.utime(tmp_path / name, (old, old))
    assert remove_orphaned_temporaries(tmp_path.iterdir()) == 3
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == ["mine", "other host, recent"]
    # the stored results clean up after a killed build in the same way
    state = tmp_path / "state" / "models" / "m"
    state.mkdir(parents=True)
    (state / files["dead writer"]).write_text("killed mid-write")
    (state / files["mine"]).write_text("being written")
    StateStore(tmp_path / "state")
    assert [p.read_text() for p in state.iterdir()] == ["being written"]


# ---------------------------------------------------------------- one clear line instead of a traceback


def test_unsafe_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):  # what a malicious pickle does: run code when loaded
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "x": Payload()}, evil)
    config = project(tmp_path, backbone_extra="")
    text = config.read_text().replace('weights = "random"', f'weights = "checkpoint"\ncheckpoint = {_toml(str(evil))}')
    config.write_text(text.replace('training = "random"', 'training = "contrastive"'))
    assert run_cli(config) == 2
    line = error_line(capsys)
    assert str(evil) in line and "safetensors" in line and "weights_only" in line
    assert not marker.exists()  # never retried with unsafe loading
    assert not (tmp_path / "out" / "state" / "models").exists()


@pytest.mark.parametrize("pos_embed", [float("nan"), 1e6])
def test_non_finite_features_stop_with_one_line(tmp_path, capsys, pos_embed):
    """A checkpoint whose weights give NaN features (planted: a NaN position embedding), or finite
    float32 features that float16, in which features are kept, cannot hold."""
    state = timm.create_model("vit_small_patch16_224", num_classes=0, img_size=64, **TINY).state_dict()
    state["pos_embed"][:] = pos_embed
    path = tmp_path / "nan.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    config = project(tmp_path)
    text = config.read_text().replace('weights = "random"', f'weights = "checkpoint"\ncheckpoint = {_toml(str(path))}')
    config.write_text(text.replace('training = "random"', 'training = "contrastive"'))
    assert run_cli(config) == 2
    line = error_line(capsys)
    assert "NaN or infinite values as float16" in line and "65504" in line
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


@pytest.mark.parametrize("edit, expected", [
    (("overrides = { depth = 2,", "overrides = { depth = 0,"), "overrides.depth must be a positive number"),
    (("ks = [2, 3]", "ks = []"), "clustering.ks"),
    (('training = "random"', 'training = "random"\nslug = "../../escape"'), "slug must be lower-case"),
    (("seed = 0", "seed = -1"), "atlas.seed"),
    (('overrides = { depth = 2,', 'overrides = { img_size = 32, depth = 2,'), "overrides cannot set img_size"),
    (('overrides = { depth = 2,', 'overrides = { no_such_kwarg = 1, depth = 2,'), "timm cannot build"),
])
def test_bad_config_values_stop_before_any_computing(tmp_path, capsys, edit, expected):
    config = project(tmp_path)
    config.write_text(config.read_text().replace(*edit))
    rc = run_cli(config)
    line = error_line(capsys)
    assert rc == 2
    assert expected.lower() in line.lower()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.safetensors"))


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (read-only / full file system drills) needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        _mount_tmpfs(path, options)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize("where", ["output dir", "feature cache", "docs dir", "site dir"])
def test_read_only_folder_is_named_before_any_computing(tmp_path, tmpfs, capsys, where):
    ro = tmpfs("ro", "ro,size=64k")
    config = project(tmp_path, features="cache = true")
    args: list[str] = []
    if where == "output dir":
        config.write_text(config.read_text().replace('output_dir = "out"', f"output_dir = {_toml(str(ro / 'out'))}"))
    elif where == "feature cache":
        config.write_text(config.read_text().replace('cache_dir = "cache"', f"cache_dir = {_toml(str(ro / 'c'))}"))
    elif where == "docs dir":
        args = ["--docs-dir", str(ro / "docs")]
    else:
        args = ["--site-dir", str(ro / "site")]
    assert run_cli(config, *args) in (1, 2)
    line = error_line(capsys)
    assert where in line and "not writable (Read-only file system)" in line
    assert not (tmp_path / "out" / "state" / "models").exists()  # nothing was computed


def test_folder_in_the_way_is_named(tmp_path, capsys):
    """Without root: a file where the docs folder should be."""
    config = project(tmp_path)
    (tmp_path / "blocker").write_text("a file")
    assert run_cli(config, "--docs-dir", str(tmp_path / "blocker" / "docs")) == 1
    assert "docs dir" in error_line(capsys)


@pytest.mark.slow
def test_full_disk_gives_one_line_and_keeps_what_was_written(tmp_path, tmpfs, capsys):
    small = tmpfs("small", "size=48k")  # about half of what the cache takes
    config = project(tmp_path, features="cache = true")
    config.write_text(config.read_text().replace('cache_dir = "cache"', f"cache_dir = {_toml(str(small))}"))
    assert run_cli(config, "--no-site") == 1
    line = error_line(capsys)
    assert "No space left on device" in line and str(small) in line
    written = {p: p.read_bytes() for p in small.glob("*/*.safetensors")}
    assert written and not list(small.glob(f"*/{TEMP_PREFIX}*"))  # no half-written file left
    cache = FeatureCache(small)
    for p in written:  # every entry there is complete and verifies
        header = json.loads(p.read_bytes()[8:_data_offset(p)])
        for name in header:
            if name != "__metadata__":
                block, rep = name.split("/")
                assert cache.get(p.stem, int(block), rep) is not None
    assert not cache.damaged
    subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
    assert run_cli(config, "--no-site") == 0
    # nothing computed was lost (reads mark entries as used, so their times change, not their bytes)
    assert all(p.read_bytes() == raw for p, raw in written.items())


def test_a_block_beyond_one_models_depth_stops_before_any_model_computes(tmp_path, capsys):
    """layers = [3] fits the first model (4 blocks), not the second (2): one line naming the second,
    before the first has computed anything."""
    config = project(tmp_path, models=["Tiny A", "Tiny B"])
    text = config.read_text().replace("layers = [1.0]", "layers = [3]")
    config.write_text(text.replace("depth = 2,", "depth = 4,", 1))
    assert run_cli(config) == 2
    line = error_line(capsys)
    assert "Tiny B" in line and "block 3 does not exist in a model of depth 2" in line, line
    assert not list((tmp_path / "out").rglob("result.json"))


def test_a_build_date_that_is_no_date_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # refused while reading the arguments: nothing read or computed
        cli.main(["--config", str(tmp_path / "absent.toml"), "--build-date", "tomorrow"])
    assert exc.value.code == 2
    assert "'tomorrow' is not a date: give it as YYYY-MM-DD" in capsys.readouterr().err
    assert cli._iso_date("20260102") == "2026-01-02"  # the citations get one spelling
