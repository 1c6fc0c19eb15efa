#!/usr/bin/env python
"""Page weight and main-thread blocking of the built site, measured in headless Chromium.

The site is served gzip-compressed (as any static host does) under a sub-path
(``http://127.0.0.1:PORT/atlas/``); every page opens in a fresh browser context (empty cache) at
1280 x 900. Printed per page:

* ``load KB``: bytes transferred until the page has loaded and gone quiet (what a reader gets on
  opening it, gallery images near the viewport included);
* ``scrolled KB``: after scrolling to the bottom (every plot drawn, plotly.js loaded where there
  are plots), excluding the gallery images that only scrolling brought in;
* ``longest task ms``: the longest main-thread task (PerformanceObserver ``longtask``, > 50 ms)
  while loading (median and max over ``--repeat`` loads: noisy on 2 cores), and while scrolling
  (plotly.js evaluated once, then plots drawn one at a time).

Targets (issue 14): every page <= 1.5 MB scrolled, Home <= 300 KB, a model page never blocked
> 300 ms at load. The script prints the figures and whether each target holds; it asserts nothing.

    python bench/bench_site.py                 # the site in site/ (make demo first)
    python bench/bench_site.py --site other/site --json bench/results/site.json
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SUB = "atlas"
COMPRESSIBLE = (".html", ".js", ".css", ".json", ".svg", ".xml", ".cff", ".txt", ".csv")
GALLERY = ("/generated/views/", "/generated/photos/")
LONGTASKS = """
window.__atlasLong = [];
new PerformanceObserver(list => list.getEntries().forEach(e => window.__atlasLong.push(
  {start: e.startTime, duration: e.duration}))).observe({type: "longtask", buffered: true});
"""
TRANSFERRED = """() => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
  .map(e => ({name: e.name, bytes: e.transferSize, start: e.startTime}))"""


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, text gzip-compressed when the browser accepts it."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if (path.suffix not in COMPRESSIBLE or not path.is_file()
                or "gzip" not in self.headers.get("Accept-Encoding", "")):
            return super().send_head()
        body = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


def serve(site: Path):
    """Serve ``site`` under /atlas/ (a temporary symlink folder); returns (base URL, stop)."""
    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    (tmp / SUB).symlink_to(site.resolve(), target_is_directory=True)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(GzipHandler, directory=str(tmp)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
        (tmp / SUB).unlink()
        tmp.rmdir()

    return f"http://127.0.0.1:{httpd.server_address[1]}/{SUB}/", stop


def longest_task_at_load(browser, url: str) -> float:
    """The longest main-thread task while a page loads (fresh context)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(LONGTASKS)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    longest = max(page.evaluate("window.__atlasLong.map(e => e.duration)"), default=0.0)
    context.close()
    return longest


def measure(browser, url: str) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(LONGTASKS)
    t0 = time.perf_counter()
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    load_s = time.perf_counter() - t0
    at_load = page.evaluate(TRANSFERRED)
    long_load = page.evaluate("window.__atlasLong.map(e => e.duration)")
    scrolled_at = page.evaluate("performance.now()")
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height + 900, 600):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(120)
    page.wait_for_load_state("networkidle")
    # a plot scrolled past between two frames is drawn when it comes back into view: bring each back
    for i in range(page.locator(".atlas-plot-target").count()):
        target = page.locator(".atlas-plot-target").nth(i)
        target.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.wait_for_function("el => el.classList.contains('atlas-plot--drawn')", arg=target.element_handle(),
                               timeout=60_000)
    everything = page.evaluate(TRANSFERRED)
    long_scroll = page.evaluate(f"window.__atlasLong.filter(e => e.start >= {scrolled_at}).map(e => e.duration)")
    plots = page.evaluate("document.querySelectorAll('.atlas-plot-target').length")
    context.close()
    below_fold = [e for e in everything if e["start"] >= scrolled_at and any(g in e["name"] for g in GALLERY)]
    return {
        "url": url, "plots": plots, "load_s": round(load_s, 2),
        "load_bytes": sum(e["bytes"] for e in at_load),
        "scrolled_bytes": sum(e["bytes"] for e in everything) - sum(e["bytes"] for e in below_fold),
        "plotly_bytes": sum(e["bytes"] for e in everything if "plotly" in e["name"]),
        "longest_task_load_ms": round(max(long_load, default=0.0)),
        "longest_task_scroll_ms": round(max(long_scroll, default=0.0)),
    }


def pages(site: Path) -> list[str]:
    out = ["index.html", "methods.html", "images.html", "build-report.html"]
    out += sorted(p.relative_to(site).as_posix() for p in (site / "guide").glob("*.html"))
    out += sorted(p.relative_to(site).as_posix() for p in (site / "models").glob("*.html"))
    out += sorted(p.relative_to(site).as_posix() for p in (site / "compare").glob("*.html"))
    return [p for p in out + ["404.html"] if (site / p).is_file()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", default=str(ROOT / "site"), help="built site folder (default: site/)")
    p.add_argument("--json", default="", help="also write the figures as JSON to this file")
    p.add_argument("--repeat", type=int, default=3, help="page loads per page for the longest task (median and "
                                                          "max reported; default 3): it is noisy on 2 cores")
    args = p.parse_args(argv)
    site = Path(args.site)
    if not (site / "index.html").is_file():
        print(f"error: no built site in {site}; run `make demo` first", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    base, stop = serve(site)
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for rel in pages(site):
                rows.append(dict(measure(browser, base + rel), page=rel))
                r = rows[-1]
                loads = [r["longest_task_load_ms"]] + [longest_task_at_load(browser, base + rel)
                                                        for _ in range(args.repeat - 1)]
                r["longest_task_load_ms"] = round(statistics.median(loads))
                r["longest_task_load_max_ms"] = round(max(loads))
                print(f"{rel:<62} {r['plots']:>3} plots  load {r['load_bytes'] / 1024:7.0f} KB  scrolled "
                      f"{r['scrolled_bytes'] / 1024:7.0f} KB  longest task {r['longest_task_load_ms']:>4} ms load "
                      f"(max {r['longest_task_load_max_ms']:>4}), "
                      f"{r['longest_task_scroll_ms']:>4} ms scroll", flush=True)
            browser.close()
    finally:
        stop()
    home = next(r for r in rows if r["page"] == "index.html")
    models = [r for r in rows if r["page"].startswith("models/")]
    checks = {
        "every page <= 1.5 MB (scrolled)": max(r["scrolled_bytes"] for r in rows) <= 1.5 * 1024 * 1024,
        "Home <= 300 KB": home["scrolled_bytes"] <= 300 * 1024,
        "model pages never blocked > 300 ms at load (median of the loads)":
            max((r["longest_task_load_ms"] for r in models), default=0) <= 300,
    }
    print(f"\nmachine: {platform.machine()}, {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPU(s); gzip level 6; Chromium headless; {time.strftime('%Y-%m-%d')}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    print(f"heaviest page {max(rows, key=lambda r: r['scrolled_bytes'])['page']}: "
          f"{max(r['scrolled_bytes'] for r in rows) / 1024:.0f} KB; longest model-page task at load "
          f"{max((r['longest_task_load_ms'] for r in models), default=0)} ms, while scrolling "
          f"{max((r['longest_task_scroll_ms'] for r in models), default=0)} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"pages": rows, "checks": checks}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
