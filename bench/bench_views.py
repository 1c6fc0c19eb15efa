"""Which file format holds a gallery view: bytes on disk and decode + draw time in Chromium.

A *view* is every image's map of one (model, block, representation, K, picture) at patch
resolution (:mod:`atlas.site.maps`). Candidates, all lossless:

- ``png``: indexed PNG (cluster ids on the site palette; PCA true colour), zlib level 9 — the
  browser decodes it natively and draws it with ``drawImage``, also from ``file://``;
- ``webp``: lossless WebP of the same sheet (method 4) — native too;
- ``raw.gz``: the uint8 array, gzip level 9 — needs a script to inflate it (``DecompressionStream``)
  and ``fetch``, which ``file://`` pages cannot use; its bytes over the wire equal the file's.

Maps come from a stored atlas (default: the demo's ``build/demo``), as stored; ``--images`` repeats
them (for decode timing at 300 images; the bytes then flatter every format alike). Decode time: Chromium loads each file of one
kind ``--rounds`` times (fresh URL each time) and draws every map onto a canvas; the median per
view is printed. Ratios within one run are what to compare.

``--encoders`` compares zlib settings of the PNG instead (bytes and encode time per kind): the
stored atlas's views as stored, synthetic zoo-sized views (300 images, 37 x 37, K = 16;
``bench/zoo_results.py``, calibrated against the demo), and CamVid's human masks and photos in
frame order (``../shared/data/camvid``, when present): how ``atlas.site.maps.PNG_ENCODINGS`` was
chosen.

    .venv/bin/python bench/bench_views.py                       # the demo's maps as stored (10 images)
    .venv/bin/python bench/bench_views.py --images 300          # decode times at 300 images
    .venv/bin/python bench/bench_views.py --encoders            # zlib level and strategy of the PNGs
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import io
import statistics
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas.config import load_config  # noqa: E402
from atlas.pipeline.state import load_stored_atlas  # noqa: E402
from atlas.records import attention_key  # noqa: E402
from atlas.site.maps import encode_view, pack_sprite, png_bytes, smallest_png  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def views_of(results, images: int) -> list[tuple[str, np.ndarray, str]]:
    """(name, stack, kind) of every cluster and PCA view of the stored atlas, at ``images`` images."""
    out = []
    for m in results.models:
        for key, stack in sorted(m.label_maps.items()):
            out.append((f"{m.card.slug}/{key}", _repeat(stack, images), "labels"))
        for key, stack in sorted(m.pictures.items()):
            if key.endswith("-pca") or key.endswith("-pca-fg"):
                out.append((f"{m.card.slug}/{key}", _repeat(stack, images), "rgb"))
    return out


def _repeat(stack: np.ndarray, n: int) -> np.ndarray:
    if n <= 0:  # as stored
        return stack
    reps = [np.roll(stack, -i, axis=0) for i in range(-(-n // len(stack)))]
    return np.concatenate(reps)[:n]


def encode(stack: np.ndarray, kind: str, fmt: str) -> bytes:
    if fmt == "png":
        return encode_view(stack, kind)
    sheet = pack_sprite(stack.astype(np.uint8))
    if fmt == "raw.gz":
        return gzip.compress(sheet.tobytes(), compresslevel=9, mtime=0)
    img = Image.open(io.BytesIO(encode_view(stack, kind))) if kind == "labels" else Image.fromarray(sheet)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="WEBP", lossless=True, quality=100, method=4)
    return buf.getvalue()


PAGE = """<!doctype html><meta charset=utf-8><canvas id=c width=64 height=64></canvas><script>
async function run(urls, kind, rounds, n, h, w) {
  const cols = Math.min(n, 16), ctx = document.getElementById('c').getContext('2d');
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (const u of urls) {
      const src = u + '?r=' + r;
      if (kind === 'raw.gz') {
        const resp = await fetch(src);
        const data = new Uint8Array(await new Response(resp.body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());
        const img = ctx.createImageData(w, h);
        for (let i = 0; i < n; i++) {  // colour one map's pixels the way a page would
          for (let p = 0; p < h * w; p++) { img.data[4 * p] = data[i * h * w + p] * 40; img.data[4 * p + 3] = 255; }
          ctx.putImageData(img, 0, 0);
        }
      } else {
        const im = new Image(); im.src = src; await im.decode();
        for (let i = 0; i < n; i++) ctx.drawImage(im, (i % cols) * w, Math.floor(i / cols) * h, w, h, 0, 0, w, h);
      }
    }
    times.push((performance.now() - t0) / urls.length);
  }
  return times;
}
</script>"""


#: PNG settings compared by ``--encoders``: (zlib level, zlib strategy; None: Pillow's choice, which
#: was the filtered strategy on every sheet measured), then the site's ``smallest_png`` (the smaller
#: of run-length and level 6).
ENCODERS = {"level 9, Pillow's (site before 2026-12-07)": (9, None),
            "level 6, default": (6, zlib.Z_DEFAULT_STRATEGY), "level 9, default": (9, zlib.Z_DEFAULT_STRATEGY),
            "level 9, filtered": (9, zlib.Z_FILTERED), "level 9, run-length": (9, zlib.Z_RLE)}
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def encoder_views(results) -> list[tuple[str, np.ndarray, str]]:
    """(name, stack, kind) of every view kind of the site: cluster maps, PCA pictures and the
    first prefix token's head-mean attention of every block."""
    out = views_of(results, 0)
    for m in results.models:
        for b in m.blocks:
            mean = m.pictures.get(attention_key(b, "mean"))
            if mean is not None:
                out.append((f"{m.card.slug}/{attention_key(b)}-t0", mean[:, 0], "attention"))
    return out


def synthetic_views(n_views: int = 4) -> list[tuple[str, np.ndarray, str]]:
    """Zoo-sized views: 300 images of a 37 x 37 grid (ViT-L/14 at 518 px), K = 16."""
    import zoo_results as zr

    rng, grid = np.random.default_rng(0), (37, 37)
    out = []
    for i in range(n_views):
        out.append((f"synthetic/labels-{i}", zr.synthetic_labels(rng, 300, 16, grid).astype(np.uint8), "labels"))
        out.append((f"synthetic/pca-{i}", zr.synthetic_pca(rng, 300, grid, "pca" if i % 2 else "pca-fg"), "rgb"))
        out.append((f"synthetic/attention-{i}", zr.synthetic_attention(rng, (300,), grid), "attention"))
    return out


def camvid_views(grid: int = 37) -> list[tuple[str, np.ndarray, str]]:
    """Clean, near-duplicate views: CamVid's human masks (as cluster ids) and its photos (as PCA
    colours), every frame in sequence order, resized to ``grid`` x ``grid`` patches; [] when absent."""
    masks = sorted((CAMVID / "masks").glob("*.png"))
    photos = sorted((CAMVID / "images").glob("*.png"))
    if not masks or not photos:
        return []
    labels = np.stack([np.asarray(Image.open(p).convert("L").resize((grid, grid), Image.NEAREST)) for p in masks])
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape).astype(np.uint8)
    rgb = np.stack([np.asarray(Image.open(p).convert("RGB").resize((grid, grid), Image.BOX)) for p in photos])
    return [("camvid/masks", labels, "labels"), ("camvid/photos", rgb, "rgb")]


def compare_encoders(views: list[tuple[str, np.ndarray, str]], title: str) -> None:
    """Print total bytes and encode time of every :data:`ENCODERS` setting and of the site's
    ``smallest_png``, per view kind."""
    print(f"\n{title}")
    for kind in ("labels", "attention", "rgb"):
        sheets = []  # the site's sprite sheets and palettes, decoded: only the encoding is timed
        for _, stack, k in views:
            if k == kind:
                sheets.append(Image.open(io.BytesIO(encode_view(stack, kind))))
                sheets[-1].load()
        if not sheets:
            continue
        print(f"  {kind}: {len(sheets)} views")
        encoders = {name: functools.partial(png_bytes, level=level, strategy=strategy)
                    for name, (level, strategy) in ENCODERS.items()}
        encoders["site: smaller of run-length and level 6"] = smallest_png
        for name, encode_png in encoders.items():
            total, t0 = 0, time.perf_counter()
            for sheet in sheets:
                total += len(encode_png(sheet))
            ms = 1e3 * (time.perf_counter() - t0) / len(sheets)
            print(f"    {name:42s} {total / 1e3:10.1f} kB  {ms:8.1f} ms per view")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs/demo.toml"), help="atlas whose stored maps to use")
    ap.add_argument("--images", type=int, default=0,
                    help="images per view: 0 (default) = as stored; more repeats the maps (which flatters every "
                         "compressor: repeats inside 32 kB cost little), for decode timing only")
    ap.add_argument("--rounds", type=int, default=5, help="decode rounds in Chromium")
    ap.add_argument("--views", type=int, default=40, help="label views to time in Chromium (all are sized)")
    ap.add_argument("--encoders", action="store_true",
                    help="compare zlib levels and strategies of the PNGs (bytes, encode time) and stop")
    args = ap.parse_args()
    results = load_stored_atlas(load_config(args.config))
    if args.encoders:
        compare_encoders(encoder_views(results), f"views of {args.config} as stored")
        compare_encoders(synthetic_views(), "synthetic zoo-sized views (300 images, 37 x 37, K = 16)")
        camvid = camvid_views()
        if camvid:
            compare_encoders(camvid, f"CamVid's {len(camvid[0][1])} masks and photos at 37 x 37, frames in "
                                     "sequence (clean maps, near duplicates)")
        else:
            print(f"\nCamVid skipped: no masks and images under {CAMVID}")
        return
    views = views_of(results, args.images)
    fmts = ("png", "webp", "raw.gz")
    print(f"{len(views)} views of {views[0][1].shape[0]} images from {args.config}")
    for kind in ("labels", "rgb"):
        chosen = [v for v in views if v[2] == kind]
        if not chosen:
            continue
        sizes = {f: [len(encode(s, kind, f)) for _, s, _ in chosen] for f in fmts}
        raw = statistics.median(s.size for _, s, _ in chosen)
        print(f"\n{kind}: {len(chosen)} views, raw uint8 median {raw / 1e3:.0f} kB")
        for f in fmts:
            print(f"  {f:7s} median {statistics.median(sizes[f]) / 1e3:7.1f} kB  total {sum(sizes[f]) / 1e6:7.2f} MB")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("\nno playwright: decode times skipped")
        return
    tmp = Path(tempfile.mkdtemp(prefix="atlas-views-"))
    (tmp / "index.html").write_text(PAGE)
    label_views = [v for v in views if v[2] == "labels"][: args.views]
    for f in fmts:
        for i, (_, stack, kind) in enumerate(label_views):
            (tmp / f"v{i}.{f}").write_bytes(encode(stack, kind, f))
    handler = functools.partial(_Quiet, directory=str(tmp))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    n, h, w = label_views[0][1].shape
    print(f"\nChromium, {len(label_views)} label views of {n} maps of {h} x {w}: ms per view (load + decode + draw every map)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(base + "/index.html")
        for f in fmts:
            urls = [f"{base}/v{i}.{f}" for i in range(len(label_views))]
            times = page.evaluate("([u, k, r, n, h, w]) => run(u, k, r, n, h, w)", [urls, f, args.rounds, n, h, w])
            print(f"  {f:7s} median {statistics.median(times):6.2f} ms  (min {min(times):.2f}, max {max(times):.2f})")
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main()
