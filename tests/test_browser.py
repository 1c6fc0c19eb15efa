"""The synthetic site in a real (headless) Chromium: plots draw, images load, galleries swap.

Screenshots land in /tmp/atlas-shots/ for a human look. Needs Debian's /usr/bin/chromium
(never a playwright-downloaded browser); skipped when it is missing.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from atlas.site import build_site, render_site
from conftest import make_synthetic_results

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/atlas-shots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    docs = root / "site_src"
    render_site(make_synthetic_results(docs), docs)
    site = build_site(REPO / "mkdocs.yml", docs_dir=docs, site_dir=root / "site")
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, url: str, dark: bool = False):
    page = browser.new_page(viewport={"width": 1280, "height": 900},
                            color_scheme="dark" if dark else "light")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url, wait_until="load")
    return page, errors


def _check_page(page, errors: list[str], name: str) -> None:
    # Scroll through the page so lazy images load, then make the rest eager to be sure.
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height + 900, 700):
        page.evaluate(f"window.scrollTo(0, {y})")
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=15000)
    broken = page.evaluate("[...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
    assert broken == [], f"{name}: images that did not load: {broken}"
    specs = page.evaluate("document.querySelectorAll('script.atlas-plot-spec').length")
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot').length >= {specs}", timeout=15000)
    empty = page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].filter(el => !(el.data && el.data.length > 0))"
        ".map(el => el.id)")
    assert empty == [], f"{name}: plots without data: {empty}"
    page.evaluate("window.scrollTo(0, 0)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert errors == [], f"{name}: console errors: {errors}"


def test_home(server, browser):
    page, errors = _open(browser, f"{server}/index.html")
    _check_page(page, errors, "home")
    assert page.locator("table a[href='models/vit-s16-random.html']").count() == 1
    assert "random init — architecture baseline" in page.inner_text("article")
    page.close()


def test_model_page_gallery_swaps(server, browser):
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    assert page.locator(".js-plotly-plot").count() >= 0  # drawn after load; checked below
    _check_page(page, errors, "model")
    n_specs = page.locator("script.atlas-plot-spec").count()
    assert n_specs >= 5 and page.locator(".js-plotly-plot").count() == n_specs

    img = page.locator(".atlas-gallery img[data-cell]").first
    before = img.get_attribute("src")
    page.locator(".atlas-gallery input[type=range]").fill("0")
    after_block = img.get_attribute("src")
    assert after_block != before and "/b02-" in after_block
    page.locator(".atlas-gallery select").first.select_option("1")
    assert "-keys-" in img.get_attribute("src")
    page.locator(".atlas-gallery select").nth(1).select_option("0")
    assert "-k04/" in img.get_attribute("src")
    page.locator(".atlas-gallery input[data-mode]").uncheck()
    assert img.get_attribute("src").endswith("-map.webp")
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert "view=0-1-0" in page.url  # the selected view is linkable
    assert page.locator(".atlas-gallery output").inner_text().startswith("block 2")
    page.locator(".atlas-gallery").screenshot(path=str(SHOTS / "model-gallery-swapped.png"))
    assert errors == []
    page.close()


def test_random_model_page_dark(server, browser):
    page, errors = _open(browser, f"{server}/models/vit-s16-random.html", dark=True)
    _check_page(page, errors, "model-random-dark")
    assert page.locator(".admonition.danger").count() >= 1
    title = page.evaluate("document.querySelector('.js-plotly-plot').layout.title.text")
    assert "random init" in title
    page.close()


def test_comparison_page(server, browser):
    page, errors = _open(browser, f"{server}/compare/ssl-vs-random.html")
    _check_page(page, errors, "comparison")
    img = page.locator(".atlas-gallery img[data-cell]").first
    before = img.get_attribute("src")
    page.locator(".atlas-gallery input[type=range]").fill("2")
    assert img.get_attribute("src") != before
    assert "random init — architecture baseline" in page.inner_text(".atlas-grid")
    page.close()


def test_other_pages(server, browser):
    for path, name in (("methods.html", "methods"), ("build-report.html", "build-report"),
                       ("images.html", "images"), ("guide/how-to-read.html", "guide"),
                       ("compare/vit-scaling.html", "scaling")):
        page, errors = _open(browser, f"{server}/{path}")
        _check_page(page, errors, name)
        assert page.locator("#cite-this-page code.language-bibtex").count() == 1
        page.close()


def test_leaderboard_sorts(server, browser):
    page, errors = _open(browser, f"{server}/compare/segmentation-quality.html")
    _check_page(page, errors, "leaderboard")

    def models():
        return page.locator("#leaderboard-table tbody tr td:first-child").all_inner_texts()

    random_label = "ViT-S/16 (random init — architecture baseline)"
    assert models() == ["DINO ViT-S/16", random_label, "MAE ViT-B/16"]  # ranked by the first measure
    params = page.locator("#leaderboard-table th", has_text="Params")
    params.click()  # numbers sort numerically, largest first (as text "86.0 M" would beat "150.0 M")
    assert models() == [random_label, "MAE ViT-B/16", "DINO ViT-S/16"]
    assert params.get_attribute("aria-sort") == "descending"
    params.click()
    assert models() == ["DINO ViT-S/16", "MAE ViT-B/16", random_label]
    first = page.locator("#leaderboard-table th").nth(4)
    first.click()  # a measure: best first, the model without it stays last
    assert models() == ["DINO ViT-S/16", random_label, "MAE ViT-B/16"]
    first.click()
    assert models() == [random_label, "DINO ViT-S/16", "MAE ViT-B/16"]
    assert params.get_attribute("aria-sort") is None
    page.locator("#leaderboard-table").screenshot(path=str(SHOTS / "leaderboard-sorted.png"))
    assert errors == []
    page.close()
