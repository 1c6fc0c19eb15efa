"""How the gallery feels at 300 images: a synthetic zoo model page (``bench/zoo_results.py``, no
model run) served locally, opened in headless Chromium; times to first drawn page and to redraw
after each control (block, representation, K, picture, next page, sort, cluster click).

    .venv/bin/python bench/bench_gallery.py                       # DINOv2 ViT-S/14 reg4 at 518 px, 300 images
    .venv/bin/python bench/bench_gallery.py --images 100 --rounds 3

The site is served plainly (no compression) from 127.0.0.1; timings are medians over ``--rounds``
fresh pages; compare them only as ratios within one run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHROMIUM = "/usr/bin/chromium"
GALLERY = ".atlas-gallery[data-anchor=gallery]"
MODEL = "DINOv2 ViT-S/14 reg4"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the browser dropping a connection it no longer needs
        pass


def gallery_site(root: Path, images: int = 300, model: str = MODEL) -> tuple[Path, str]:
    """Render one synthetic zoo model with ``images`` images into ``root``; returns (site folder,
    the model page's path in it)."""
    import zoo_results as zr

    results = zr.synthetic_zoo_results(images, models=[model], evaluation=False)
    zr.render_site(results, root / "site_src", root / "site")
    return root / "site", f"models/{results.models[0].card.slug}.html"


def serve(site: Path):
    """Serve ``site`` on a free port; returns (base URL, stop)."""
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd.shutdown


def drawn(page) -> int:
    return int(page.locator(GALLERY).get_attribute("data-drawn") or 0)


def timed(page, action) -> float:
    """Seconds from ``action`` until the gallery has drawn the result."""
    before = drawn(page)
    t0 = time.perf_counter()
    action()
    page.wait_for_function(f"b => Number(document.querySelector('{GALLERY}').getAttribute('data-drawn')) > b",
                           arg=before)
    return time.perf_counter() - t0


def steps(page) -> list[tuple[str, callable]]:
    g = GALLERY
    return [
        ("block", lambda: page.locator(f"{g} input[type=range]").fill("0")),
        ("representation", lambda: page.locator(f"{g} select[data-axis='1']").select_option("1")),
        ("K", lambda: page.locator(f"{g} select[data-axis='2']").select_option("0")),
        ("picture: PCA", lambda: page.locator(f"{g} select[data-axis='3']").select_option("1")),
        ("picture: attention", lambda: page.locator(f"{g} select[data-axis='3']").select_option("3")),
        ("picture: clusters", lambda: page.locator(f"{g} select[data-axis='3']").select_option("0")),
        ("next page", lambda: page.locator(f"{g} [data-step='1']").click()),
        ("sort: share on the border", lambda: page.locator(f"{g} select[data-sort]").select_option("border")),
        ("click a patch (highlight + sort)", lambda: page.locator(f"{g} canvas[data-map]").first.click(
            position={"x": 3, "y": 3})),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=MODEL, help="a display name of configs/zoo.toml")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="atlas-gallery-") as tmp:
        t0 = time.perf_counter()
        site, path = gallery_site(Path(tmp), args.images, args.model)
        print(f"site of {args.model} with {args.images} images made in {time.perf_counter() - t0:.0f} s")
        base, stop = serve(site)
        times: dict[str, list[float]] = {}
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            for _ in range(args.rounds):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                t0 = time.perf_counter()
                page.goto(f"{base}/{path}#gallery")
                page.wait_for_selector(f"{GALLERY}[data-drawn] canvas[data-map]")
                times.setdefault("open page, first 24 cells drawn", []).append(time.perf_counter() - t0)
                for name, action in steps(page):
                    times.setdefault(name, []).append(timed(page, action))
                page.close()
            browser.close()
        stop()
    print(f"{'step':40s} median ms (min, max) over {args.rounds} fresh pages")
    for name, values in times.items():
        print(f"{name:40s} {1000 * statistics.median(values):7.0f} ({1000 * min(values):.0f}, {1000 * max(values):.0f})")
    print(f"console errors: {errors or 'none'}")


if __name__ == "__main__":
    main()
