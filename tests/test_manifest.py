"""Curated image manifests: strict parsing, `--download-only` against a local HTTP server on
127.0.0.1 (verified, refused, trust-on-first-use lock, server down, interrupted downloads), the
build reading the download cache, and the shipped manifest of the embedded photos."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from atlas.cli import main
from atlas.config import ConfigError, load_config, parse_config
from atlas.inputs.manifest import (
    ManifestError,
    config_manifests,
    download_manifest,
    load_manifest_set,
    parse_manifest,
)
from atlas.files import sha256_file
from atlas.pipeline import BuildError
from atlas.pipeline.inputs import load_images

ROOT = Path(__file__).resolve().parents[1]
HEADER = "url,sha256,licence,credit,group,name\n"
BACKBONE = """
[[backbones]]
display_name = "Tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
"""
SHA_A = "a" * 64


def _png(path: Path, seed: int) -> str:
    """A small distinct PNG; returns its sha256."""
    img = Image.new("RGB", (48, 40), (40 * seed % 256, 90, 200 - 30 * seed % 200))
    img.putpixel((seed, seed), (255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; /short/<name> announces the whole file but sends half and hangs up."""

    requests: list[str]

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith("/short/"):
            data = (Path(self.directory) / self.path[len("/short/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, list of requested paths) of a local HTTP server on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})

    def make(*args, **kwargs):
        return handler(*args, directory=str(served), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def _config(tmp_path: Path, rows: list[str], name: str = "set") -> Path:
    """A config in tmp_path (its project root) with one manifest of ``rows``."""
    (tmp_path / f"{name}.csv").write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    config = tmp_path / "atlas.toml"
    config.write_text(f'[atlas]\noutput_dir = "build"\ncache_dir = "cache/features"\n'
                      f'[images]\nsets = [{{manifest = "{name}.csv"}}]\ndownload_dir = "cache/images"\n' + BACKBONE)
    return config


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------ format


def test_parse_comments_optional_columns_and_defaults(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes(("\ufeff# a curated set\n\n"
                   "URL,sha256,licence,credit\n"
                   "  # indented comment\n"
                   f"https://example.org/photos/street%2001.jpg,{SHA_A.upper()},CC BY 4.0,\"Doe, Jane\"\n"
                   "https://example.org/b.png,,CC0,me\n").encode())
    with pytest.raises(ManifestError, match="m.csv:5: cannot take a file name from the url"):
        parse_manifest(p, display="m.csv")  # "street 01.jpg" has a space: not a safe file name
    p.write_text(HEADER + f"https://example.org/a.jpg?x=1,{SHA_A},CC BY 4.0,\"Doe, Jane\",street,\n"
                 "file:///data/b.png,,CC0,me,,b-renamed.png\n")
    m = parse_manifest(p)
    assert [(e.line, e.key, e.sha256, e.credit) for e in m.entries] == [
        (2, "street/a.jpg", SHA_A, "Doe, Jane"), (3, "b-renamed.png", "", "me")]
    assert m.lock_path(tmp_path / "c") == tmp_path / "c" / "m.lock.json"
    assert m.file_path(tmp_path / "c", m.entries[0]) == tmp_path / "c" / "m" / "street" / "a.jpg"


@pytest.mark.parametrize("body, expected", [
    ("ftp://x.org/a.jpg,,CC0,me,,", "m.csv:2: url 'ftp://x.org/a.jpg': the scheme must be http, https or file"),
    ("https:///a.jpg,,CC0,me,,", "m.csv:2: url 'https:///a.jpg' names no host"),
    ("http://[::1/a.jpg,,CC0,me,,", "m.csv:2: url 'http://[::1/a.jpg' is not a valid URL"),
    ("http://x.org:port/a.jpg,,CC0,me,,", "m.csv:2: url 'http://x.org:port/a.jpg' is not a valid URL"),
    ("https://x.org/a b.jpg,,CC0,me,,", "m.csv:2: url 'https://x.org/a b.jpg' contains whitespace"),
    (f"https://x.org/a.jpg,{SHA_A[:63]},CC0,me,,", "m.csv:2: sha256 must be 64 hex digits or empty"),
    (f"https://x.org/a.jpg,{'g' * 64},CC0,me,,", "m.csv:2: sha256 must be 64 hex digits or empty"),
    ("https://x.org/a.jpg,,,me,,", "m.csv:2: licence is empty"),
    ("https://x.org/a.jpg,,CC0, ,,", "m.csv:2: credit is empty"),
    ("https://x.org/a.jpg,,CC0,me", "m.csv:2: 4 fields, the header has 6"),
    ("https://x.org/a.jpg,,CC0,me,../up,", "m.csv:2: group '../up' must be"),
    ("https://x.org/a.jpg,,CC0,me,,.hidden", "m.csv:2: name '.hidden' must be a file name"),
    ("https://x.org/,,CC0,me,,", "m.csv:2: cannot take a file name from the url"),
    ("https://x.org/a.jpg,,CC0,\"me,,", "m.csv:2: not a valid CSV row"),
    ("https://x.org/a.jpg,,CC0,me,,\nhttps://y.org/a.jpg,,CC0,me,,", "m.csv:3: image 'a.jpg' is already named on line 2"),
    ("https://x.org/a.jpg,,CC0,me,,\nhttps://x.org/a.jpg,,CC0,me,,b.jpg", "m.csv:3: url already listed on line 2"),
    ("# only a comment", "m.csv: no images listed"),
])
def test_row_errors_are_one_line_naming_file_and_line(tmp_path, body, expected):
    p = tmp_path / "m.csv"
    p.write_text(HEADER + body + "\n")
    with pytest.raises(ManifestError) as err:
        parse_manifest(p, display="m.csv")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize("header, expected", [
    ("url,sha256,license,credit", "m.csv:1: unknown column 'license' (did you mean 'licence'?)"),
    ("url,sha256,licence", "m.csv:1: the header lacks column 'credit'"),
    ("url,sha256,licence,credit,url", "m.csv:1: column 'url' appears twice"),
])
def test_header_errors(tmp_path, header, expected):
    p = tmp_path / "m.csv"
    p.write_text(f"{header}\nhttps://x.org/a.jpg,,CC0,me\n")
    with pytest.raises(ManifestError, match="^" + re.escape(expected)):
        parse_manifest(p, display="m.csv")
    with pytest.raises(ManifestError, match="nope.csv: image manifest not found"):
        parse_manifest(tmp_path / "nope.csv", display="nope.csv")


def test_config_manifest_sets():
    cfg = parse_config('[images]\nsets = ["embedded", {manifest = "configs/images/x.csv"}, {folder = "f"}]\n'
                       + BACKBONE)
    assert cfg.images.sets[1].manifest == "configs/images/x.csv" and cfg.images.download_dir == ".cache/images"
    for sets, expected in [
        ('[{manifest = "x.txt"}]', "images.sets: manifest must be a .csv file"),
        ('[{manifest = "a/x.csv"}, {manifest = "b/x.csv"}]', "two manifests are named 'x'"),
        ('[{manifest = "x.csv", folder = "f"}]', 'each set is "embedded", {folder = "..."} or {manifest'),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config(f"[images]\nsets = {sets}\n" + BACKBONE, "my.toml")
        assert str(err.value).startswith("my.toml: ") and expected in str(err.value) and "\n" not in str(err.value)


def test_zoo_lists_the_shipped_manifest_whose_urls_and_checksums_are_skimage_s_own():
    """configs/images/embedded.csv copies URL and sha256 from scikit-image's data registry, and
    each sha256 is that of the file the installed scikit-image ships."""
    from skimage.data._registry import registry, registry_urls

    (manifest,) = config_manifests(load_config(ROOT / "configs" / "zoo.toml"))
    assert manifest.display == "configs/images/embedded.csv" and len(manifest.entries) == 8
    skimage_data = Path(__import__("skimage").__file__).parent / "data"
    for e in manifest.entries:
        assert registry_urls[f"data/{e.name}"] == e.url and registry[f"data/{e.name}"] == e.sha256
        assert sha256_file(skimage_data / e.name) == e.sha256
        assert e.licence and e.credit and e.group == "scikit-image"


# ------------------------------------------------------------------------------ downloads


def test_download_verifies_and_the_build_reads_the_cache(tmp_path, server, capsys):
    base, served, requests = server
    shas = {n: _png(served / n, i) for i, n in enumerate(["a.png", "b.png", "c.png"])}
    config = _config(tmp_path, [f"{base}/{n},{sha},CC0 1.0,Photographer {n},street," for n, sha in shas.items()])
    cfg = load_config(config)
    with pytest.raises(BuildError, match="manifest images are fetched by --download-only"):
        load_images(cfg)  # nothing downloaded yet: all three skipped with the hint, no network touched
    assert requests == []

    assert main(["--config", str(config), "--download-only", "-q"]) == 0
    out = capsys.readouterr().out
    assert "manifest images: 3 downloaded, 0 already cached" in out
    assert _files(tmp_path / "cache" / "images") == ["set/street/a.png", "set/street/b.png", "set/street/c.png"]
    images, skipped = load_images(cfg)
    assert [(i.name, i.licence, i.credit, i.source) for i in images] == [
        (f"street/{n}", "CC0 1.0", f"Photographer {n}", f"{base}/{n}") for n in shas]
    assert images[0].load().size == (48, 40) and skipped == []

    n_requests = len(requests)
    assert main(["--config", str(config), "--download-only", "-q"]) == 0  # present and verified: not fetched
    assert "0 downloaded, 3 already cached" in capsys.readouterr().out and len(requests) == n_requests

    (tmp_path / "cache" / "images" / "set" / "street" / "b.png").write_bytes(b"tampered")
    images, skipped = load_images(cfg)  # a build checks the cache against the manifest's sha256
    assert [i.name for i in images] == ["street/a.png", "street/c.png"]
    assert skipped[0].what == "image street/b.png" and "the manifest says " + shas["b.png"] in skipped[0].reason
    assert "--download-only" in skipped[0].reason


def test_wrong_checksum_refuses_that_image_keeps_the_others_and_exits_1(tmp_path, server, capsys, caplog):
    base, served, _ = server
    good = _png(served / "good.png", 1)
    bad_actual = _png(served / "bad.png", 2)
    config = _config(tmp_path, [f"{base}/good.png,{good},CC0,me,,", f"{base}/bad.png,{SHA_A},CC0,me,,",
                                f"{base}/missing.png,,CC0,me,,"])
    with caplog.at_level(logging.WARNING, logger="atlas.inputs.manifest"):
        assert main(["--config", str(config), "--download-only", "-q"]) == 1
    out = capsys.readouterr().out
    assert "manifest images: 1 downloaded, 0 already cached, 2 refused; the other images are kept" in out
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused image")]
    assert len(refusals) == 2
    assert f"set.csv:3: bad.png: sha256 mismatch: expected {SHA_A} (from the manifest), got {bad_actual}" in refusals[0]
    assert "set.csv:4: missing.png: the server answered HTTP 404" in refusals[1]
    assert _files(tmp_path / "cache" / "images") == ["set/good.png"]  # no partial or temp file of the refused

    with pytest.raises(BuildError, match="fewer than 2 usable images"):
        load_images(load_config(config))


def test_no_checksum_records_a_lock_on_first_use_and_checks_later_downloads(tmp_path, server, capsys, caplog):
    base, served, _ = server
    shas = {n: _png(served / n, i) for i, n in enumerate(["a.png", "b.png"])}
    config = _config(tmp_path, [f"{base}/{n},,CC0,me,," for n in shas])
    cache = tmp_path / "cache" / "images"
    with caplog.at_level(logging.WARNING, logger="atlas.inputs.manifest"):
        assert main(["--config", str(config), "--download-only", "-q"]) == 0
    assert "sha256 of 2 recorded on first use in" in capsys.readouterr().out
    assert any("(trust on first use)" in r.getMessage() for r in caplog.records)
    lock = json.loads((cache / "set.lock.json").read_text())
    assert lock["manifest"] == "set.csv" and lock["sha256"] == {f"{base}/{n}": sha for n, sha in shas.items()}
    assert [i.name for i in load_images(load_config(config))[0]] == ["a.png", "b.png"]

    # the file on the server changes; a later download (here: after the cached copy is gone) must match the lock
    changed = _png(served / "b.png", 7)
    (cache / "set" / "b.png").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="atlas.inputs.manifest"):
        assert main(["--config", str(config), "--download-only", "-q"]) == 1
    assert "1 already cached, 1 refused" in capsys.readouterr().out
    (refusal,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused image")]
    assert f"expected {shas['b.png']} (from the lock file), got {changed}" in refusal
    assert _files(cache) == ["set.lock.json", "set/a.png"]
    assert json.loads((cache / "set.lock.json").read_text()) == lock  # the lock is not rewritten by a refusal


def test_interrupted_download_leaves_no_file(tmp_path, server):
    base, served, _ = server
    _png(served / "a.png", 1)
    _png(served / "b.png", 2)
    m = parse_manifest(_config(tmp_path, [f"{base}/short/a.png,,CC0,me,,", f"{base}/b.png,,CC0,me,,"]).parent / "set.csv")
    report = download_manifest(m, tmp_path / "dl", progress=False)
    (refusal,) = report.refused
    assert refusal.key == "a.png" and refusal.reason.startswith("download incomplete: got ")
    assert report.downloaded == ["b.png"] and not report.ok
    assert _files(tmp_path / "dl") == ["set.lock.json", "set/b.png"]  # nothing of a.png, no temp file
    assert list(json.loads((tmp_path / "dl" / "set.lock.json").read_text())["sha256"]) == [f"{base}/b.png"]
    images, skipped = load_manifest_set(m, tmp_path / "dl", hint="run --download-only")
    assert [i.name for i in images] == ["b.png"]
    assert (skipped[0].path, skipped[0].reason) == ("a.png", "not downloaded yet (manifest "
                                                             f"{m.display}); run --download-only")


def test_server_down_is_one_clear_line_without_traceback(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.png"
    config = _config(tmp_path, [f"{url},,CC0,me,,", f"http://127.0.0.1:{port}/b.png,,CC0,me,,"])
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_atlas.py"), "--config", str(config),
                          "--download-only", "-q"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach {url} (connection refused)") and "re-run --download-only" in line
    assert "2 not reached" in run.stdout
    assert not any((tmp_path / "cache" / "images").rglob("*"))  # no file, no empty folder


# ------------------------------------------------------------------------------ the site


def test_images_page_credits_manifest_images_escaped():
    from conftest import make_synthetic_results

    from atlas.records import RANDOM_INIT_LABEL, ImageInfo
    from atlas.site.markup import jinja_env
    from atlas.site.pages import SECTIONS, images_files

    results = make_synthetic_results()
    results.images[0] = ImageInfo(name="street/a.png", source="https://example.org/a.png?x=1&y=<b>",
                                  licence="CC BY 4.0", credit="<script>alert(1)</script> Jane Doe",
                                  content_hash="ab", width=48, height=40)
    common = {"atlas": results, "version": results.atlas_version, "random_label": RANDOM_INIT_LABEL,
              "sections": SECTIONS}
    page = images_files(results, jinja_env(), common, {"thumbnails": {}})["images.md"]
    assert "48 × 40 px · CC BY 4.0" in page and "&lt;script&gt;alert(1)&lt;/script&gt; Jane Doe" in page
    assert '<a href="https://example.org/a.png?x=1&amp;y=&lt;b&gt;">' in page and "<script>" not in page
