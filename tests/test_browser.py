"""The synthetic site in a real (headless) Chromium: plots draw, images load, galleries swap.

Screenshots land in /tmp/atlas-shots/ for a human look. Needs Debian's /usr/bin/chromium
(never a playwright-downloaded browser); skipped when it is missing.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from atlas.site import build_site, render_site
from atlas.site.measure_words import WORDS
from conftest import make_synthetic_results

SEG = WORDS["seg_miou"].title

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


SUB = "atlas"  # the site is served under a sub-path, as on a project page: http://127.0.0.1:PORT/atlas/


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files; a missing path gets the site's 404.html with status 404 (as GitHub Pages does)."""

    def log_message(self, *args):  # keep test output clean
        pass

    def send_error(self, code, message=None, explain=None):
        page = Path(self.directory) / SUB / "404.html"
        if code != 404 or not page.is_file():
            return super().send_error(code, message, explain)
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server_root(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def server(server_root):
    """The synthetic site, built for its own URL (site_url = the served sub-path) and served there."""
    root = server_root
    served = root / "served"
    handler = functools.partial(_Handler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # bound first: the port is in the URLs
    base = f"http://127.0.0.1:{httpd.server_address[1]}/{SUB}"
    docs = root / "site_src"
    results = make_synthetic_results(docs)
    results.site_url = base + "/"
    render_site(results, docs)
    build_site(REPO / "mkdocs.yml", docs_dir=docs, site_dir=served / SUB)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield base
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


def _open(browser, url: str, dark: bool = False, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900},
                            color_scheme="dark" if dark else "light")
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a gallery image whose src changes before it arrives is aborted by the browser: not an error
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}")
            if r.failure != "net::ERR_ABORTED" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.atlas_requests = requests
    page.goto(url, wait_until="load")
    return page, errors


def _draw_all_plots(page) -> int:
    """Bring every plot into view (they are drawn lazily) and wait until each is drawn."""
    n = page.locator(".atlas-plot-target").count()
    for i in range(n):
        target = page.locator(".atlas-plot-target").nth(i)
        target.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.wait_for_function(
            "el => el.classList.contains('atlas-plot--drawn')", arg=target.element_handle(), timeout=20000)
    return n


# Every image of the page, made eager and awaited until it has loaded or failed. A gallery draws its
# photos only once its sprites have arrived, so on a loaded machine they can appear after a first
# look; and Chromium reports a deferred lazy image as `complete` before it has loaded. So the images
# are awaited through `decode()` (it settles only on load or failure), again while the set changes.
_BROKEN_IMAGES = """async () => {
    const settle = i => Promise.race([i.decode().catch(() => null), new Promise(r => setTimeout(r, 15000))]);
    let seen = null;
    for (let round = 0; round < 5; round++) {
        const images = [...document.images];
        const now = images.map(i => i.src).join('\\n');
        if (now === seen) break;
        seen = now;
        images.forEach(i => { i.loading = 'eager'; });
        await Promise.all(images.map(settle));
    }
    return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src);
}"""


def _check_page(page, errors: list[str], name: str) -> None:
    # Scroll through the page so lazy images load; wait for every gallery's first drawing.
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height + 900, 700):
        page.evaluate(f"window.scrollTo(0, {y})")
    page.wait_for_function("[...document.querySelectorAll('.atlas-gallery[data-manifest]')]"
                           ".every(g => g.hasAttribute('data-drawn'))", timeout=20000)
    broken = page.evaluate(_BROKEN_IMAGES)
    assert broken == [], f"{name}: images that did not load: {broken}"
    specs = page.evaluate("document.querySelectorAll('.atlas-plot-target').length")
    assert _draw_all_plots(page) == specs
    empty = page.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot')].filter(el => !(el.data && el.data.length > 0))"
        ".map(el => el.id)")
    assert empty == [], f"{name}: plots without data: {empty}"
    # every legend whole (not scrolled, not cut off by the figure) and clear of the x axis's title
    legends = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].map(el => {
        const bg = el.querySelector('.legend rect.bg'), full = el._fullLayout.legend;
        if (!bg || !full) return null;
        const box = bg.getBoundingClientRect(), svg = el.querySelector('svg.main-svg').getBoundingClientRect();
        const title = el.querySelector('.g-xtitle text'), t = title ? title.getBoundingClientRect() : null;
        const entries = [...el.querySelectorAll('.legend .traces text')].map(e => e.getBoundingClientRect().top);
        return {id: el.id, scrolled: full._height > full._effHeight + 1, cut: box.bottom > svg.bottom + 1,
                on_axis_title: !!(t && t.height > 0 && entries.length && Math.min(...entries) < t.bottom)};
    }).filter(r => r && (r.scrolled || r.cut || r.on_axis_title))""")
    assert legends == [], f"{name}: legends scrolled, cut or over the axis title: {legends}"
    plotly = [u for u in page.atlas_requests if "plotly" in u]
    assert len(plotly) == (1 if specs else 0), f"{name}: plotly.js requests {plotly} on a page with {specs} plots"
    scripts = [u for u in page.atlas_requests if u.endswith(".figures.js")]
    assert len(scripts) == (1 if specs else 0), f"{name}: plot specs loaded {scripts}"
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


GALLERY = ".atlas-gallery[data-anchor=gallery]"


def _first_map(page, root: str = GALLERY) -> str:
    """``<view file>#<map index>`` of a gallery's first drawn cell, once it is drawn."""
    page.wait_for_selector(f"{root} canvas[data-map]")
    return page.locator(f"{root} canvas[data-map]").first.get_attribute("data-map")


def _wait_map(page, fragment: str, root: str = GALLERY) -> str:
    page.wait_for_function("([sel, frag]) => { const c = document.querySelector(sel + ' canvas[data-map]');"
                           " return c && c.getAttribute('data-map').includes(frag); }", arg=[root, fragment])
    return _first_map(page, root)


def test_model_page_gallery_swaps(server, browser):
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    # plots draw when they scroll near the viewport, not at load
    assert page.locator(".js-plotly-plot").count() < page.locator(".atlas-plot-target").count() // 2
    _check_page(page, errors, "model")
    n_specs = page.locator(".atlas-plot-target").count()
    assert n_specs >= 5 and page.locator(".js-plotly-plot").count() == n_specs

    before = _first_map(page)
    assert before.endswith("/b8-tokens-k8.png#0")
    page.locator(f"{GALLERY} input[type=range]").fill("0")
    _wait_map(page, "/b2-tokens-k8.png#0")
    page.locator(f"{GALLERY} select[data-axis='1']").select_option("1")
    _wait_map(page, "/b2-keys-k8.png")
    page.locator(f"{GALLERY} select[data-axis='2']").select_option("0")
    _wait_map(page, "/b2-keys-k4.png")
    assert page.locator(f"{GALLERY} canvas[data-map]").count() == 4  # one per image
    page.locator(f"{GALLERY} input[data-mode]").uncheck()
    assert "atlas-gallery--bare" in page.locator(GALLERY).get_attribute("class")
    assert "?block=2&representation=keys&k=4&picture=clusters&overlay=0#gallery" in page.url  # linkable, overlay too
    assert page.locator(f"{GALLERY} output").first.inner_text().startswith("block 2")
    label = page.locator(f"{GALLERY} canvas[data-map]").first.get_attribute("aria-label")
    assert label == "sky-and-disc: block 2 · rel. depth 0.25, keys, K = 4, cluster map (joint k-means)"
    # what the canvas shows is the site's colouring of the stored label map, patch for patch
    from atlas.site.palette import palette
    drawn = page.evaluate("""() => { const c = document.querySelector('.atlas-gallery[data-anchor=gallery] canvas');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    drawn = np.array(drawn, np.uint8).reshape(14, 14, 4)
    labels = make_synthetic_results().models[0].label_maps["b2-keys-k4"][0]
    np.testing.assert_array_equal(drawn[..., :3], palette(4)[labels])
    page.locator(GALLERY).screenshot(path=str(SHOTS / "model-gallery-swapped.png"))
    assert errors == []
    page.close()


def test_picture_switch_and_attention_grid(server, browser):
    """The gallery's picture axis swaps cluster maps for PCA-RGB (both recipes) and the CLS
    attention, in the URL, with a colour bar beside attention; the attention grid's block and token
    swap every head's map, and its view is citable on its own anchor."""
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    picture = page.locator(f"{GALLERY} select[data-axis='3']")
    page.locator(f"{GALLERY} select[data-axis='1']").select_option("1")  # keys
    for index, name in ((1, "-keys-pca.png"), (2, "-keys-pca-fg.png"), (3, "-attention-mean-t0.png")):
        picture.select_option(str(index))
        _wait_map(page, name)
    assert "&picture=attention&overlay=1#gallery" in page.url
    assert page.locator(f"{GALLERY} .atlas-colourbar").count() == 1
    picture.select_option("0")
    _wait_map(page, "-keys-k8.png")
    assert page.locator(f"{GALLERY} .atlas-colourbar").count() == 0
    assert page.locator(f"{GALLERY} .atlas-legend-item").count() >= 2  # the cluster legend is back
    grid = ".atlas-gallery[data-anchor=attention]"
    page.locator(grid).scroll_into_view_if_needed()
    _first_map(page, grid)
    assert page.locator(f"{grid} canvas[data-map]").count() == 4 * 7  # 4 images x (head mean + 6 heads)
    page.locator(f"{grid} input[type=range]").fill("0")
    _wait_map(page, "/b2-attention-heads-t0.png#0", grid)
    assert page.locator(f"{grid} canvas[data-map]").nth(6).get_attribute("data-map").endswith(
        "/b2-attention-heads-t0.png#6")
    width = page.locator(f"{grid} canvas[data-map]").first.evaluate("c => c.getBoundingClientRect().width")
    assert width >= 110  # head maps large enough to read (were 72 px)
    page.locator(f"{grid} .atlas-cite-link").click()
    assert page.url.endswith("attention_block=2&token=CLS&attention_overlay=1#attention")
    assert "attention" in page.locator(".atlas-cite-view").inner_text()
    page.locator(grid).screenshot(path=str(SHOTS / "model-attention-grid.png"))
    assert errors == []
    page.close()


def test_drill_down_highlights_a_cluster_in_every_image(server, browser):
    """Click a patch: its cluster is the only one drawn opaque in every image, the legend marks it,
    the panel gives its share and the images it covers most, and the URL keeps it."""
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html?block=2&representation=tokens&k=4#gallery")
    _wait_map(page, "/b2-tokens-k4.png#0")
    labels = make_synthetic_results().models[0].label_maps["b2-tokens-k4"]
    target = int(labels[0][0, 0])
    page.locator(f"{GALLERY} canvas[data-map]").first.click(position={"x": 2, "y": 2})  # patch (0, 0)
    page.wait_for_selector(f"{GALLERY} .atlas-cluster-panel")
    assert f"cluster={target}" in page.url and "sort=cluster" in page.url
    assert page.locator(f"{GALLERY} .atlas-legend-item[aria-pressed=true]").count() == 1
    alphas = page.evaluate("""() => [...document.querySelectorAll('.atlas-gallery[data-anchor=gallery] canvas')].map(
        c => [c.getAttribute('data-map'), Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)
              .filter((_, i) => i % 4 === 3)])""")
    for ref, alpha in alphas:
        index = int(ref.rsplit("#", 1)[1])
        want = np.where(labels[index].ravel() == target, 255, 28)
        np.testing.assert_array_equal(np.array(alpha), want)
    cover = [(labels[i] == target).mean() for i in range(len(labels))]
    shown = [int(r.rsplit("#", 1)[1]) for r, _ in alphas]
    assert [cover[i] for i in shown] == sorted(cover, reverse=True)  # sorted by the selected cluster's share
    page.locator(GALLERY).screenshot(path=str(SHOTS / "model-gallery-drill-down.png"))
    again, errors2 = _open(browser, page.url)  # the permalink restores the selection
    again.wait_for_selector(f"{GALLERY} .atlas-cluster-panel")
    assert errors == [] and errors2 == []
    page.close()
    again.close()


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
    before = _first_map(page)
    page.locator(f"{GALLERY} input[type=range]").fill("2")
    page.wait_for_function("b => document.querySelector('.atlas-gallery[data-anchor=gallery] canvas[data-map]')"
                           ".getAttribute('data-map') !== b", arg=before)
    assert "random init — architecture baseline" in page.inner_text(".atlas-grid")
    page.close()


def test_other_pages(server, browser):
    for path, name in (("methods.html", "methods"), ("build-report.html", "build-report"),
                       ("images.html", "images"), ("guide/how-to-read.html", "guide"),
                       ("compare/vit-scaling.html", "scaling")):
        page, errors = _open(browser, f"{server}/{path}")
        _check_page(page, errors, name)
        assert page.locator("#cite-this-page > pre code.language-bibtex").count() == 1  # and the hidden view block
        if name == "scaling":  # every size tick names its models: Plotly hides a label that sticks out
            ticks = page.evaluate("[...document.querySelectorAll('.js-plotly-plot .xtick text')]"
                                  ".map(t => getComputedStyle(t).display !== 'none')")
            assert ticks and all(ticks), ticks
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
    first = page.locator("#leaderboard-table th").nth(2)  # after Model and Rank
    first.click()  # a measure: best first, the model without it stays last
    assert models() == ["DINO ViT-S/16", random_label, "MAE ViT-B/16"]
    first.click()
    assert models() == [random_label, "DINO ViT-S/16", "MAE ViT-B/16"]
    assert params.get_attribute("aria-sort") is None
    page.locator("#leaderboard-table").screenshot(path=str(SHOTS / "leaderboard-sorted.png"))
    assert errors == []
    page.close()


def test_model_evaluation_table_is_not_sortable(server, browser):
    """Its rows are unlike measures: a click on a column head leaves their order as it is."""
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    rows = page.locator("#evaluation-table tbody tr td:first-child")
    before = rows.all_inner_texts()
    assert len(before) >= 2
    page.locator("#evaluation-table th", has_text="This model").click()
    assert rows.all_inner_texts() == before
    assert page.locator("#evaluation-table th[aria-sort]").count() == 0
    assert errors == []
    page.close()


def _bibtex_entries(page) -> list:
    """Every BibTeX entry the page shows (page and view), parsed by a real BibTeX parser."""
    database = pytest.importorskip("pybtex.database")
    texts = page.locator("code.language-bibtex").all_inner_texts()
    return [next(iter(database.parse_string(t, "bibtex").entries.values())) for t in texts if t.strip()]


def _urls(entry) -> list[str]:
    urls = [entry.fields["url"]]
    for u in re.findall(r"\\url\{(.*)\}", entry.fields["howpublished"]):
        urls.append(u.replace("\\#", "#").replace("\\%", "%"))
    return urls


def test_citations_resolve_under_a_sub_path(server, browser):
    """Every page's cite box: absolute URLs under the sub-path, a canonical link, BibTeX that parses,
    and every URL in it opens that very page; CITATION.cff is linked and served; 404 keeps its style."""
    pages = ["index.html", "methods.html", "images.html", "build-report.html", "guide/how-to-read.html",
             "models/dino-vit-s16.html", "models/vit-s16-random.html", "compare/ssl-vs-random.html",
             "compare/segmentation-quality.html", "compare/vit-scaling.html"]
    check = browser.new_page()
    for path in pages:
        page, errors = _open(browser, f"{server}/{path}")
        assert page.locator("link[rel=canonical]").get_attribute("href") == f"{server}/{path}"
        (entry,) = _bibtex_entries(page)
        assert entry.type == "misc" and entry.fields["version"] and entry.fields["urldate"]
        for url in _urls(entry):
            assert url == f"{server}/{path}", (path, url)
            response = check.goto(url)
            assert response.status == 200 and check.url == url
        cff = page.locator("#cite-this-page a", has_text="CITATION.cff")
        cff_file = check.request.get(cff.evaluate("a => a.href"))  # a download, not a page
        assert cff_file.status == 200 and cff_file.text().startswith("# CITATION.cff")
        assert errors == [], (path, errors)
        page.close()
    page, errors = _open(browser, f"{server}/models/no-such-model.html")
    assert page.evaluate("getComputedStyle(document.querySelector('.md-header')).position") == "sticky"
    assert page.locator("h1").inner_text() == "404 - Not found"
    home = page.locator(".md-header__button.md-logo").evaluate("a => a.href")
    assert check.goto(home).status == 200 and home.startswith(f"{server}/")
    assert [e for e in errors if "404" not in e] == []  # the page's own 404 aside, everything loads
    page.close()
    check.close()


def test_view_permalink_restores_the_view_and_is_citable(server, browser):
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    page.locator(".atlas-gallery[data-anchor=gallery] input[type=range]").fill("1")
    page.locator(".atlas-gallery[data-anchor=gallery] select").first.select_option("1")
    page.locator(".atlas-gallery[data-anchor=gallery] select").nth(1).select_option("0")
    page.locator(".atlas-gallery[data-anchor=gallery] .atlas-cite-link").click()
    assert page.url == (f"{server}/models/dino-vit-s16.html?block=5&representation=keys&k=4&picture=clusters"
                        "&overlay=1#gallery")
    view = page.locator(".atlas-cite-view")
    assert view.is_visible() and "block 5" in view.inner_text() and "K = 4" in view.inner_text()
    page_entry, view_entry = _bibtex_entries(page)
    assert view_entry.key != page_entry.key and view_entry.key.startswith(page_entry.key)
    assert "block 5" in view_entry.fields["title"] and "keys" in view_entry.fields["title"]
    src = _wait_map(page, "/b5-keys-k4.png")
    urls = _urls(view_entry)
    assert urls == [page.url, page.url]
    assert errors == []
    page.close()

    again, errors = _open(browser, urls[0])  # a reader opens the cited URL
    assert again.locator(".atlas-gallery[data-anchor=gallery] output").first.inner_text().startswith("block 5")
    assert again.locator(".atlas-gallery[data-anchor=gallery] select").first.input_value() == "1"
    assert again.locator(".atlas-gallery[data-anchor=gallery] select").nth(1).input_value() == "0"
    assert _first_map(again) == src
    assert again.evaluate("document.getElementById('gallery').getBoundingClientRect().top") < 200  # scrolled there
    assert again.locator(".atlas-cite-view").is_visible()  # and offers the same view's citation
    assert _bibtex_entries(again)[1].key == view_entry.key
    assert errors == []
    again.close()


def test_figure_permalink_is_citable(server, browser):
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html")
    fig = page.locator("#fig-measure-seg-miou")
    fig.evaluate("el => el.scrollIntoView({block: 'center'})")
    fig.locator(".atlas-cite-link").click()
    assert page.url.endswith("/models/dino-vit-s16.html#fig-measure-seg-miou")
    _, view_entry = _bibtex_entries(page)
    assert SEG in view_entry.fields["title"]
    assert _urls(view_entry) == [page.url, page.url]
    assert view_entry.fields["howpublished"].endswith("\\#fig-measure-seg-miou}")  # '#' escaped for LaTeX
    assert errors == []
    page.close()
    again, errors = _open(browser, f"{server}/models/dino-vit-s16.html#fig-measure-seg-miou")
    top = again.evaluate("document.getElementById('fig-measure-seg-miou').getBoundingClientRect().top")
    assert 0 <= top < 300
    again.wait_for_function("document.querySelector('#fig-measure-seg-miou .atlas-plot--drawn') !== null",
                            timeout=20000)  # in view on arrival: drawn without scrolling
    assert errors == []
    again.close()


def test_plotly_absent_from_pages_without_plots(server, browser):
    for path in ("index.html", "methods.html", "images.html", "guide/how-to-read.html"):
        page, errors = _open(browser, f"{server}/{path}")
        page.wait_for_timeout(300)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(300)
        assert page.locator(".atlas-plot-target").count() == 0
        assert not any("plotly" in u for u in page.atlas_requests), path
        assert page.evaluate("typeof Plotly") == "undefined"
        assert errors == []
        page.close()


def test_overview_links_land_on_model_and_block(server, browser):
    page, errors = _open(browser, f"{server}/index.html")
    cells = page.locator(".atlas-overview__cell")
    assert cells.count() == 12
    page.wait_for_function("document.querySelectorAll('.atlas-overview canvas[data-map]').length === 12")
    page.locator("[data-overview-image]").select_option("2")  # the third offered image, keys
    page.locator("[data-overview-rep]").select_option("1")
    # dino's file: (keys = 1, depth 0) of 4 images, image 2 -> map (1 * 4 + 0) * 4 + 2
    page.wait_for_function("document.querySelector('.atlas-overview canvas[data-map]').getAttribute('data-map')"
                           ".endsWith('/dino-vit-s16.png#18')")
    assert "overview_image=blue_field&overview_rep=keys&overview_overlay=1#overview" in page.url
    cells.nth(6).click()  # second model (MAE), third depth: rel. depth 0.75 -> block 8
    page.wait_for_load_state("load")
    assert page.url == f"{server}/models/mae-vit-b16.html?block=8&representation=keys&k=8#gallery"
    assert page.locator("h1").inner_text().startswith("MAE ViT-B/16")
    assert page.locator(".atlas-gallery[data-anchor=gallery] output").first.inner_text().startswith("block 8")
    _wait_map(page, "/b8-keys-k8.png")
    assert errors == []
    page.close()


def test_mobile_home_and_leaderboard(server, browser):
    """390 px: the overview and the leaderboard scroll inside their boxes, never the page."""
    for path, name in (("index.html", "home-mobile"), ("compare/segmentation-quality.html", "leaderboard-mobile"),
                       ("models/dino-vit-s16.html", "gallery-mobile")):
        page, errors = _open(browser, f"{server}/{path}", width=390)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
        heads = page.locator("#leaderboard-table th")
        for i in range(heads.count()):  # headers wrap between words, never letter by letter
            assert heads.nth(i).evaluate("th => th.getBoundingClientRect().width") >= 60
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        assert errors == []
        page.close()


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_damaged_or_missing_view_file_says_so_in_place(server, browser, damage, request):
    """A view whose file is damaged or missing shows a message in each cell and above the grid,
    never a broken picture; the page's script raises nothing (a missing file leaves only the
    browser's own line about the failed request)."""
    served = Path(request.getfixturevalue("server_root"))
    path = next((served / "served").rglob("views/models/dino-vit-s16/b8-tokens-k8.png"))
    original = path.read_bytes()
    try:
        if damage == "truncated":
            path.write_bytes(original[: len(original) // 2])
        else:
            path.unlink()
        page, errors = _open(browser, f"{server}/models/dino-vit-s16.html?block=8&representation=tokens&k=8#gallery")
        page.wait_for_selector(f"{GALLERY} .atlas-cell-msg")
        assert page.locator(f"{GALLERY} .atlas-cell-msg").all_inner_texts() == [
            "damaged: this view's file could not be read"] * 4
        assert "missing or damaged" in page.locator(f"{GALLERY} .atlas-gallery-notice").inner_text()
        assert page.locator(f"{GALLERY} canvas").count() == 0
        page.locator(f"{GALLERY} select[data-axis='2']").select_option("0")  # another view draws as usual
        _wait_map(page, "/b8-tokens-k4.png")
        assert page.locator(f"{GALLERY} .atlas-gallery-notice").is_hidden()
        page.locator(GALLERY).screenshot(path=str(SHOTS / f"gallery-{damage}-view.png"))
        assert [e for e in errors if not e.startswith("Failed to load resource")] == []
        page.close()
    finally:
        path.write_bytes(original)


def test_head_grid_sorts_by_its_head_mean_maps(server, browser):
    """In the attention grid a file holds, per image, the head mean then every head: sorting by the
    border share orders the images by their head-mean map's number, not by the map at the image's
    index."""
    page, errors = _open(browser, f"{server}/models/dino-vit-s16.html#attention")
    grid = ".atlas-gallery[data-anchor=attention]"
    _first_map(page, grid)
    manifest = page.evaluate("JSON.parse(document.getElementById('attention-grid-data').textContent)")
    view = manifest["views"]["3|0"]
    sprite = manifest["sprites"][view["cells"][0][0]]
    border = sprite["numbers"]["border"]
    page.locator(f"{grid} select[data-sort]").select_option("border")
    want = [r[1] for r in sorted(manifest["images"], key=lambda r: (-border[r[0] * 7], r[0]))]
    page.wait_for_function("([sel, first]) => document.querySelector(sel + ' .atlas-rowhead').textContent === first",
                           arg=[grid, want[0]])
    assert page.locator(f"{grid} .atlas-rowhead").all_inner_texts() == want
    assert errors == []
    page.close()


@pytest.mark.parametrize("fragment, kind", [("#fig-measure-seg-miou", "figure"),
                                            ("?block=0&representation=keys&k=4#gallery", "gallery")])
def test_embed_shows_one_view_in_an_iframe_on_another_site(server, browser, tmp_path, fragment, kind):
    """?embed=1 in an <iframe> on a page of another origin: the named figure or gallery view alone,
    no navigation, a line citing the full page; the cite box offers the <iframe> snippet."""
    page_url = f"{server}/models/dino-vit-s16.html"
    query, _, anchor = fragment.partition("#")
    src = page_url + (query + "&" if query else "?") + "embed=1#" + anchor
    (tmp_path / "host.html").write_text(f'<!doctype html><title>a paper</title><link rel="icon" href="data:,">'
                                        f'<p>Figure 3:</p>'
                                        f'<iframe id="atlas" src="{src}" width="900" height="640"></iframe>')
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    try:
        page, errors = _open(browser, f"http://127.0.0.1:{host.server_address[1]}/host.html")
        frame = page.frame_locator("#atlas")
        keep = frame.locator(".atlas-embed-keep")
        keep.wait_for(timeout=15_000)
        assert frame.locator(".md-header").is_hidden() and frame.locator(".md-sidebar--primary").is_hidden()
        assert frame.locator("#cite-this-page").is_hidden()
        if kind == "figure":
            assert keep.locator("#fig-measure-seg-miou").is_visible()
            assert frame.locator(".atlas-figure:visible").count() == 1  # the one figure
        else:
            gallery = keep.locator(".atlas-gallery")
            assert gallery.is_visible() and frame.locator(".atlas-figure:visible").count() == 0
            assert gallery.locator("select[data-axis]").first.input_value() == "1"  # keys: the permalink's view
        cite = keep.locator(".atlas-embed-cite a")
        assert cite.get_attribute("target") == "_top"
        assert cite.get_attribute("href") == page_url + (query if query else "") + "#" + anchor  # no embed=1
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"embed-{kind}.png"))
        assert not errors, errors
        page.close()
        # the full page's cite box gives the snippet for the view the URL names
        full, errors = _open(browser, page_url + (query if query else "") + "#" + anchor)
        snippet = full.locator(".atlas-cite-view-embed").inner_text()
        assert snippet.startswith("<iframe src=\"") and "embed=1" in snippet and anchor in snippet
        full.close()
    finally:
        host.shutdown()
        host.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- crowded legends and long labels

LEGEND_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(el => {
    const full = el._fullLayout.legend, bg = el.querySelector('.legend rect.bg');
    const svg = el.querySelector('svg.main-svg').getBoundingClientRect();
    const title = el.querySelector('.g-xtitle text'), t = title.getBoundingClientRect();
    const entries = [...el.querySelectorAll('.legend .traces text')].map(e => e.getBoundingClientRect().top);
    const ticks = [...el.querySelectorAll('.ytick text')].map(e => e.getBoundingClientRect())
        .filter(b => b.height > 0).sort((a, b) => a.top - b.top);
    return {id: el.id, scrolled: full._height > full._effHeight + 1,
            cut: bg.getBoundingClientRect().bottom > svg.bottom + 1,
            on_axis_title: Math.min(...entries) < t.bottom,
            ticks_touch: ticks.some((b, i) => i > 0 && b.top < ticks[i - 1].bottom - 1),
            plot_height: el._fullLayout._size.h};
})"""


def _crowded_figures():
    """Figures as a zoo's comparison draws them: four models with long random-init names, two patch
    grids with six baselines each (16 legend entries), the same at one block (bars), and a model
    page's channel-removal curves with their bands and baselines."""
    from atlas.pipeline import payloads
    from atlas.records import RANDOM_INIT_LABEL, Baseline
    from atlas.site.figure_words import dressed
    from atlas.site.figures import comparison_measure_figure, curve_figure

    names = {f"m{i}": f"ViT-S/{14 + 2 * (i % 2)} learned-abs + CLS + 4 registers (DINOv{i} arch) ({RANDOM_INIT_LABEL})"
             for i in range(4)}
    kinds = ("chance", "constant", "colour", "position", "colour + position", "ceiling")
    groups = [{"grid": f"{g} × {g} patches of {p} px", "models": [m for i, m in enumerate(names) if i % 2 == j],
               "baselines": [Baseline("seg_miou", k, 0.1 + 0.1 * n, 0.08 + 0.1 * n, 0.12 + 0.1 * n, variant="lab+plain"
                                      if k == "colour + position" else "") for n, k in enumerate(kinds)]}
              for j, (g, p) in enumerate(((14, 16), (16, 14)))]
    sweep = [{"model": m, "representation": "tokens", "rel_depth": d / 4, "block": d, "value": 0.3, "lo": 0.25,
              "hi": 0.35} for m in names for d in (1, 2, 3, 4)]
    removal = payloads.removal_curve({c: {m: {10: 0.4} for m in (0, 5, 50)} for c in ("none", "zscore", "pca_whiten")},
                                     10, 11, {c: {m: (0.3, 0.5) for m in (0, 5, 50)} for c in ("none", "zscore",
                                                                                           "pca_whiten")})
    return {"sweep": comparison_measure_figure(sweep, "Cluster mIoU", names, "zoo", bounds=[0, 1], baselines=groups),
            "bars": comparison_measure_figure([r for r in sweep if r["block"] == 4], "Cluster mIoU", names, "zoo",
                                              bounds=[0, 1], baselines=groups),
            "removal": curve_figure(dressed(removal), names["m0"], baselines=groups[0]["baselines"],
                                    baseline_suffix=" baseline, k-NN (k = 10)")}


@pytest.mark.parametrize("width", [688, 1000])  # the content column of a laptop's and of a wide screen
def test_crowded_legends_show_whole_below_the_axis_title(browser, tmp_path, width):
    import plotly.io as pio

    figures = _crowded_figures()
    plots = "".join(f'<div id="{name}" style="width:{width}px;height:{fig.layout.height}px"></div>'
                    f'<script>Plotly.newPlot("{name}", ...(s => [s.data, s.layout])({pio.to_json(fig)}))</script>'
                    for name, fig in figures.items())
    vendor = REPO / "site_src/assets/js/vendor/plotly-cartesian.min.js"
    page_file = tmp_path / "legends.html"
    page_file.write_text(f'<!doctype html><meta charset="utf-8"><script src="{vendor.as_uri()}"></script>{plots}',
                         encoding="utf-8")
    page, errors = _open(browser, page_file.as_uri(), width=width + 40)
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {len(figures)}")
    found = {r.pop("id"): r for r in page.evaluate(LEGEND_JS)}
    page.screenshot(path=str(SHOTS / f"crowded-legends-{width}.png"), full_page=True) if SHOTS.mkdir(
        parents=True, exist_ok=True) is None else None
    page.close()
    assert errors == []
    for name, r in found.items():
        assert not (r["scrolled"] or r["cut"] or r["on_axis_title"] or r["ticks_touch"]), (name, r)
        assert r["plot_height"] >= 200, (name, r["plot_height"])  # the legend did not squeeze the plot
