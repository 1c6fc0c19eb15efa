#!/usr/bin/env python
"""Benchmark: how a build grows with the number of images, and what the zoo would need.

Part 1, measured. For each N in ``--sizes`` the real command line (``scripts/build_atlas.py
--config <tiny config> -q``, a subprocess) builds a fresh project folder: N distinct synthetic
photos (seeded gradients and shapes) and one tiny random-init model (``--model`` with
``--overrides``, default ViT-S/16 with depth 4, embed dim 64, 2 heads, at ``--px`` px). The config
takes the zoo's analysis settings (every block, gallery at 0.25/0.5/0.75/1.0, all five
representations, K = 2/4/8/16, measures at K = 8) and leaves the feature settings at the checkout's
defaults; uncertainty is cut to ``--resamples`` / ``--seeds`` so a 2-core machine gets through 300
images. Per N it records:

* wall time of the build process;
* peak RSS: ``ru_maxrss`` of the build process from ``os.wait4`` (the largest single process of
  its tree: the build or its ``mkdocs`` child), and the largest sum over the tree seen by a
  sampler that polls ``/proc`` every ``--poll`` s (less often when one sample of a large site takes
  over a tenth of that, so it never takes more than a tenth of a core);
* disk (apparent bytes, ``st_size``) and file counts of the stored results
  (``<output_dir>/state``), the site (``--site-dir``), the rendered pages (``--docs-dir``) and the
  feature cache (``cache_dir``): the peak over the same sampling, and the final figure.

``--cache`` runs every N a second time with ``[features] cache = true``; a checkout whose config
schema does not know the key says "not supported by this checkout" and the sweep goes on. Each
figure's growth with N is fitted twice: a power law (slope of log y on log N) and a line
``a + b N`` (``b``: the marginal cost of one more image).

Part 2, projected (no model runs). Every backbone of ``--zoo`` (opt-in entries too, flagged) is
built on the meta device at 224 px and at its native size (timm ``pretrained_cfg`` input size),
and with ``--images`` images (default 300) the script gives per model: pairs extracted, float16
bytes of one pair and of all pairs (the old design's feature cache), device memory per pair for the
analyses (``ModelRun.pair_bytes``: 3 float32 copies + 1 GiB), forward passes under
``--budget-gb``, stored results scaled from the tiny model's measured stored bytes, and GPU
seconds extrapolated from the README's H200 figures. The formulas are printed with the tables and
stored in the JSON. The goal of issue 25 is checked: the whole zoo at 300 images and native size
stores at most ``--goal-gb`` (10) GB of results, without a feature cache.

Usage::

    .venv/bin/python bench/bench_scale.py                          # N = 10, 30, 100, 300 (long on 2 cores)
    .venv/bin/python bench/bench_scale.py --sizes 10,30 --cache    # quick look, with the cache mode too
    .venv/bin/python bench/bench_scale.py --zoo-only               # the projection alone (needs a stored run:
                                                                   # reads --json for the measured bytes)
    .venv/bin/python bench/bench_scale.py --propagation-only --time-propagation   # label propagation alone,
                                                                   # timed per frame grid and width (on a GPU)

Prints two Markdown tables (paste them into the README) and writes ``bench/results/bench_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DEFAULT_JSON = REPO / "bench" / "results" / "bench_scale.json"
BUILD_DATE = "2026-01-01"
DIRS = ("results", "site", "docs", "cache")  # measured folders, in table order

# README.md, "GPU figures" table (bench/bench_gpu.py, one NVIDIA H200, 2026-12-04, random init, fp32):
#   row "ViT-S/16 224 px, 64":  analyses 10.5 s for 49 pairs (all 12 blocks x 4 representations + tokens_normed)
#   row "ViT-L/14 518 px, 32":  analyses 63.1 s for 97 pairs; raw forward_features fp32 36.3 img/s
README_SMALL = dict(model="ViT-S/16", px=224, images=64, pairs=49, analyses_s=10.5, cells=14 * 14, dim=384)
README_LARGE = dict(model="ViT-L/14", px=518, images=32, pairs=97, analyses_s=63.1, cells=37 * 37, dim=1024,
                    forward_img_s=36.3, params=304_368_640, tokens=1370)


# --------------------------------------------------------------------------------------------- inputs

def synthetic_photo(seed: int, size: int):
    """A distinct 'photo': a smooth two-colour gradient at a random angle, 3-7 filled shapes, a soft
    blur and a little noise, all from ``seed``."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * x + np.sin(angle) * y)
    t = (t - t.min()) / max(1e-9, t.max() - t.min())
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = (c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]).astype(np.uint8)
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
        w, h = rng.uniform(0.1, 0.6, 2) * size
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        box = [x0, y0, x0 + w, y0 + h]
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            pts = [(float(a), float(b)) for a, b in rng.uniform(0, 1, (3, 2)) * [w, h] + [x0, y0]]
            draw.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(radius=size / 128))
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_photos(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        synthetic_photo(1000 + i, size).save(folder / f"photo{i:04d}.png", format="PNG")


def tiny_config(args, cache: bool) -> str:
    overrides = ", ".join(f"{k} = {v}" for k, v in _overrides(args.overrides).items())
    return f"""
[atlas]
title = "bench_scale"
seed = 0
output_dir = "out"
cache_dir = "cache"

[images]
sets = [{{ folder = "photos" }}]
resolution = [{args.px}, {args.px}]

[features]
layers = "all"
gallery_layers = [0.25, 0.5, 0.75, 1.0]
representations = ["tokens", "keys", "queries", "values", "tokens_normed"]
batch_size = 8
{"cache = true" if cache else ""}

[clustering]
ks = [2, 4, 8, 16]

[analyses]
k = 8

[uncertainty]
resamples = {args.resamples}
seeds = {args.seeds}

[[backbones]]
display_name = "Tiny"
timm_name = "{args.model}"
weights = "random"
training = "random"
overrides = {{ {overrides} }}
"""


def _overrides(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, v = part.split("=")
        out[k.strip()] = int(v)
    return out


# ------------------------------------------------------------------------------------------ sampling

def tree_bytes(path: Path) -> tuple[int, int]:
    """Apparent bytes and file count under ``path`` (0, 0 when absent); tolerant of files that
    vanish while it walks (temporaries renamed into place)."""
    total = files = 0
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            with os.scandir(p) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                            files += 1
                    except OSError:
                        pass
        except OSError:
            pass
    return total, files


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_rss(pid: int) -> int:
    """Sum of the resident set sizes of ``pid`` and its descendants (bytes; 0 without /proc)."""
    if not os.path.isdir("/proc"):
        return 0
    kids, page, total, todo = _children(), os.sysconf("SC_PAGE_SIZE"), 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        todo += kids.get(p, [])
    return total


class Sampler(threading.Thread):
    """Polls folder sizes and the process tree's RSS every ``period`` s (longer when a sample takes
    more than a tenth of that); keeps the peaks."""

    def __init__(self, pid: int, folders: dict[str, Path], period: float):
        super().__init__(daemon=True)
        self.pid, self.folders, self.period = pid, folders, period
        self.peak = {name: [0, 0] for name in folders}  # bytes, files
        self.peak_tree_rss = 0
        self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        for name, path in self.folders.items():
            b, n = tree_bytes(path)
            self.peak[name][0] = max(self.peak[name][0], b)
            self.peak[name][1] = max(self.peak[name][1], n)
        self.peak_tree_rss = max(self.peak_tree_rss, tree_rss(self.pid))
        self.samples += 1

    def run(self) -> None:
        wait = self.period
        while not self._halt.wait(wait):
            t0 = time.perf_counter()
            self.sample()
            # walking a large site costs CPU the build would use: at most a tenth of one core
            wait = max(self.period, 9 * (time.perf_counter() - t0))

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---------------------------------------------------------------------------------------- one build

CACHE_REJECTED = re.compile(r"features\.cache\b.*(extra|not permitted|unknown|unexpected)", re.I | re.S)


def run_build(args, n: int, cache: bool, photos: Path, workdir: Path) -> dict:
    """One build of ``n`` images in a fresh project folder under ``workdir``; its figures."""
    proj = workdir / f"n{n}-{'cache' if cache else 'default'}"
    shutil.rmtree(proj, ignore_errors=True)
    (proj / "configs").mkdir(parents=True)
    (proj / "photos").mkdir()
    for i in range(n):  # the first n of the shared photos
        os.link(photos / f"photo{i:04d}.png", proj / "photos" / f"photo{i:04d}.png")
    cfg = proj / "configs" / "tiny.toml"
    cfg.write_text(tiny_config(args, cache), encoding="utf-8")
    folders = {"results": proj / "out" / "state", "site": proj / "site", "docs": proj / "site_src",
               "cache": proj / "cache"}
    cmd = [sys.executable, str(REPO / "scripts" / "build_atlas.py"), "--config", str(cfg),
           "--docs-dir", str(folders["docs"]), "--site-dir", str(folders["site"]), "--build-date", BUILD_DATE, "-q"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out_f, err_f = open(proj / "stdout.txt", "wb"), open(proj / "stderr.txt", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=proj, stdout=out_f, stderr=err_f, env=env, start_new_session=True)
    sampler = Sampler(proc.pid, folders, args.poll)
    sampler.start()
    timed_out = False
    deadline = t0 + args.timeout
    while True:  # os.wait4: this child's own rusage (ru_maxrss), not the running max of all children
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline and not timed_out:
            timed_out = True
            os.killpg(proc.pid, 9)  # the build's own process group (start_new_session)
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop()
    sampler.sample()  # the final state
    out_f.close()
    err_f.close()
    final = {name: tree_bytes(path) for name, path in folders.items()}
    row = {"images": n, "cache_mode": cache, "rc": proc.returncode, "timed_out": timed_out, "wall_s": wall,
           "maxrss_bytes": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
           "peak_tree_rss_bytes": sampler.peak_tree_rss, "samples": sampler.samples, "project": str(proj)}
    for name in DIRS:
        row[f"{name}_bytes"], row[f"{name}_files"] = final[name]
        row[f"{name}_peak_bytes"] = max(sampler.peak[name][0], final[name][0])
        row[f"{name}_peak_files"] = max(sampler.peak[name][1], final[name][1])
    if proc.returncode != 0:
        err = (proj / "stderr.txt").read_text(errors="replace")
        row["stderr_tail"] = "\n".join(err.strip().splitlines()[-15:])
        row["cache_rejected"] = bool(cache and CACHE_REJECTED.search(err))
    else:
        row["stored"] = stored_breakdown(folders["results"], n)
    return row


# ------------------------------------------------------------------------------ what is stored, how

def _npz_members(path: Path) -> list[dict]:
    """Per array of an ``.npz``: key, shape, dtype and its compressed bytes in the archive."""
    import numpy as np

    with zipfile.ZipFile(path) as zf:
        packed = {info.filename.removesuffix(".npy"): info.compress_size for info in zf.infolist()}
    out = []
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            a = z[key]
            out.append({"key": key, "shape": list(a.shape), "dtype": str(a.dtype), "itemsize": a.dtype.itemsize,
                        "compressed": packed.get(key, 0), "elements": int(a.size)})
    return out


def classify(member: dict, n: int) -> str:
    """What a stored array is, from its key and shape (as ``atlas.records`` names them):
    ``labels`` (N, h, w) label maps, ``pca`` (N, h, w, 3) pictures, ``attn_mean`` (N, P, h, w),
    ``attn_heads`` (n, P, heads, h, w), else ``other``."""
    key, shape = member["key"], member["shape"]
    if "attention-heads" in key:
        return "attn_heads"
    if "attention" in key:
        return "attn_mean"
    if re.search(r"-k\d+$", key) and len(shape) == 3 and shape[0] == n:
        return "labels"
    if len(shape) == 4 and shape[0] == n and shape[-1] == 3:
        return "pca"
    return "other"


def stored_breakdown(state: Path, n: int) -> dict:
    """Bytes of the stored results by kind: per model its label maps, pictures (by class) and JSON;
    the atlas-wide files; comparisons. With the arrays' element counts, to scale them."""
    out = {"models": {}, "atlas_bytes": 0, "atlas_json_bytes": 0, "photos": None, "comparisons_bytes": 0,
           "other_bytes": 0}
    if not state.is_dir():
        return out
    for path in state.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(state).parts
        size = path.stat().st_size
        if rel[0] == "models" and len(rel) == 3:
            m = out["models"].setdefault(rel[1], {"files": {}, "classes": {}})
            m["files"][rel[2]] = size
            if rel[2].endswith(".npz"):
                try:
                    members = _npz_members(path)
                except Exception as exc:  # noqa: BLE001 - a format this script does not know
                    m.setdefault("unreadable", []).append(f"{rel[2]}: {exc}")
                    continue
                for mem in members:
                    c = m["classes"].setdefault(classify(mem, n), {"arrays": 0, "elements": 0, "compressed": 0,
                                                                   "raw": 0, "shapes": []})
                    c["arrays"] += 1
                    c["elements"] += mem["elements"]
                    c["compressed"] += mem["compressed"]
                    c["raw"] += mem["elements"] * mem["itemsize"]
                    if len(c["shapes"]) < 3:
                        c["shapes"].append([mem["key"], mem["shape"], mem["dtype"]])
        elif rel[0] == "comparisons":
            out["comparisons_bytes"] += size
        elif len(rel) == 1:
            out["atlas_bytes"] += size
            if rel[0] == "photos.npz":  # every image at every model input size, and its thumbnail
                try:
                    members = _npz_members(path)
                    out["photos"] = {"bytes": size, "arrays": len(members),
                                     "elements": sum(m["elements"] for m in members),
                                     "sizes": sorted({tuple(m["shape"][:2]) for m in members})}
                except Exception as exc:  # noqa: BLE001
                    out["photos"] = {"bytes": size, "unreadable": str(exc)}
            else:
                out["atlas_json_bytes"] += size
        else:
            out["other_bytes"] += size
    for m in out["models"].values():
        m["json_bytes"] = sum(v for k, v in m["files"].items() if not k.endswith(".npz"))
        m["npz_bytes"] = sum(v for k, v in m["files"].items() if k.endswith(".npz"))
    return out


# ------------------------------------------------------------------------------------------ fitting

def fit(xs: list[float], ys: list[float]) -> dict | None:
    """Power law (log-log least squares slope) and line ``a + b x`` of ``ys`` over ``xs``."""
    pts = [(x, y) for x, y in zip(xs, ys) if x > 0 and y is not None and math.isfinite(y)]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    r2 = 1 - sum((y - a - b * x) ** 2 for x, y in pts) / ss_tot if ss_tot > 0 else 1.0
    out = {"a": a, "b": b, "r2_linear": r2, "slope": None}
    logs = [(math.log(x), math.log(y)) for x, y in pts if y > 0]
    if len(logs) >= 2 and len({lx for lx, _ in logs}) >= 2:
        lmx = sum(lx for lx, _ in logs) / len(logs)
        lmy = sum(ly for _, ly in logs) / len(logs)
        out["slope"] = (sum((lx - lmx) * (ly - lmy) for lx, ly in logs)
                        / sum((lx - lmx) ** 2 for lx, _ in logs))
    return out


def at(f: dict | None, x: float) -> float | None:
    return None if f is None else f["a"] + f["b"] * x


METRICS = [  # (key in a row, label, unit scale, unit)
    ("wall_s", "wall", 1, "s"),
    ("maxrss_bytes", "peak RSS (one process)", 2**20, "MiB"),
    ("peak_tree_rss_bytes", "peak RSS (tree, sampled)", 2**20, "MiB"),
    ("results_peak_bytes", "results disk", 2**20, "MiB"),
    ("results_peak_files", "results files", 1, ""),
    ("site_peak_bytes", "site disk", 2**20, "MiB"),
    ("site_peak_files", "site files", 1, ""),
    ("docs_peak_bytes", "docs (site_src) disk", 2**20, "MiB"),
    ("docs_peak_files", "docs files", 1, ""),
    ("cache_peak_bytes", "cache disk", 2**20, "MiB"),
    ("cache_peak_files", "cache files", 1, ""),
]


def growth(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["rc"] == 0]
    xs = [r["images"] for r in ok]
    return {key: fit(xs, [float(r[key]) for r in ok]) for key, *_ in METRICS}


# ------------------------------------------------------------------------------------- projection

def tiny_coefficients(rows: list[dict], tiny_shape) -> dict | None:
    """How the tiny model's stored bytes grow, from the successful default-mode runs: per kind of
    array, compressed bytes = arrays x overhead + e x elements (a line through the runs' totals:
    the arrays are the same at every N, the elements grow with N; one run: e = bytes / elements,
    no overhead), and the model JSON and the atlas-wide files as lines in N."""
    ok = sorted((r for r in rows if r.get("rc") == 0 and not r["cache_mode"] and r.get("stored", {}).get("models")),
                key=lambda r: r["images"])
    if not ok:
        return None
    models = [next(iter(r["stored"]["models"].values())) for r in ok]
    big = models[-1]
    per_element, per_array, raw_per_element = {}, {}, {}
    for c, v in big["classes"].items():
        if not v["elements"]:
            continue
        raw_per_element[c] = v["raw"] / v["elements"]
        pts = [(m["classes"][c]["elements"], m["classes"][c]["compressed"]) for m in models if c in m["classes"]]
        f = fit([x for x, _ in pts], [float(y) for _, y in pts])
        if f is not None and f["b"] > 0 and f["a"] >= 0:
            per_element[c], per_array[c] = f["b"], f["a"] / v["arrays"]
        else:
            per_element[c], per_array[c] = v["compressed"] / v["elements"], 0.0
    xs = [r["images"] for r in ok]
    json_bytes = [m["json_bytes"] for m in models]
    atlas_bytes = [r["stored"].get("atlas_json_bytes", r["stored"]["atlas_bytes"]) for r in ok]
    photos = ok[-1]["stored"].get("photos") or {}
    return {"from_images": xs, "largest": ok[-1]["images"], "per_element": per_element, "per_array": per_array,
            "raw_per_element": raw_per_element, "classes": big["classes"], "json_bytes": json_bytes,
            "json_fit": fit(xs, [float(y) for y in json_bytes]), "atlas_bytes": atlas_bytes,
            "atlas_fit": fit(xs, [float(y) for y in atlas_bytes]), "photos": photos,
            "photos_per_element": photos["bytes"] / photos["elements"] if photos.get("elements") else None,
            "tiny": tiny_shape.as_dict() if tiny_shape is not None else None}


def elements(shape, images: int, attention_images: int = 4) -> dict[str, tuple[int, int]]:
    """(arrays, elements) one model stores, by kind (the layout ``atlas.pipeline.model_run``
    stores): labels (N, h, w) per gallery pair and K; pca (N, h, w, 3) per gallery pair and
    recipe (2); attn_mean (N, prefix, h, w) and attn_heads (min(N, 4), prefix, heads, h, w) per
    gallery block (none without prefix tokens). |Ks| comes in as ``shape.ks``."""
    cells, p, gp, gb = shape.cells, shape.prefix_tokens, shape.gallery_pairs, shape.gallery_blocks
    return {"labels": (gp * shape.ks, images * cells * gp * shape.ks),
            "pca": (gp * 2, images * cells * 3 * gp * 2),
            "attn_mean": (gb if p else 0, images * p * cells * gb),
            "attn_heads": (gb if p else 0, min(images, attention_images) * p * shape.num_heads * cells * gb)}


def comparison_elements(cfg, shapes: dict[str, object], images: int) -> int:
    """Label-map elements the config's comparisons store (int16, each model's own grid): per
    comparison of models / scaling, its models x the gallery depths; of representations, the
    model's gallery pairs at one K."""
    total = 0
    for comp in cfg.comparisons:
        names = comp.models or [b.display_name for b in cfg.backbones]
        chosen = [s for n, s in shapes.items() if n in names or getattr(s, "slug", None) in names]
        if comp.kind == "representations":
            if chosen:
                total += images * chosen[0].cells * chosen[0].gallery_pairs
        else:
            depths = len(cfg.features.gallery_layers) if isinstance(cfg.features.gallery_layers, list) else 4
            total += sum(images * s.cells * depths for s in chosen)
    return total


def pair_seconds(cells: int, dim: int, images: int, small: dict, large: dict) -> float:
    """GPU seconds of all analyses of one pair: per image linear in cells x dim through the two
    README points (s per pair per image = alpha + beta x cells x dim), times the images."""
    u_s, u_l = small["cells"] * small["dim"], large["cells"] * large["dim"]
    t_s = small["analyses_s"] / small["pairs"] / small["images"]
    t_l = large["analyses_s"] / large["pairs"] / large["images"]
    beta = (t_l - t_s) / (u_l - u_s)
    alpha = t_s - beta * u_s
    return images * (alpha + beta * cells * dim)


def default_extra_images() -> int:
    """Images that stream beside the atlas images through every sweep pair: the blank probes and the
    shift-test windows (``SHIFT_IMAGES`` x (1 + ``len(SHIFTS)``)), read from the atlas (89 today)."""
    try:
        from atlas.inputs.probes import probe_images
        from atlas.pipeline.inputs import SHIFT_IMAGES, SHIFTS

        return len(probe_images((16, 16))) + SHIFT_IMAGES * (1 + len(SHIFTS))
    except Exception:  # noqa: BLE001 - moved while the feature flow is rewritten: today's figure
        return 9 + 16 * 5


def chunk_passes(blocks: list[int], pair_sizes: dict, budget: float) -> int | None:
    """Forward passes as ``atlas.features.stream.plan_chunks`` packs them: consecutive whole blocks
    while they fit, a block larger than the budget split into pairs in chunks of its own; None when
    one pair alone exceeds the budget."""
    if any(v > budget for v in pair_sizes.values()):
        return None
    chunks, used = 0, 0.0
    for b in blocks:
        group = [v for (bb, _), v in pair_sizes.items() if bb == b]
        parts = [group] if sum(group) <= budget else [[v] for v in group]
        for i, part in enumerate(parts):
            size = sum(part)
            if not chunks or used + size > budget or (len(parts) > 1 and i == 0):
                chunks, used = chunks + 1, 0.0
            used += size
    return chunks


def project(args, cfg, coeff: dict | None, resolution) -> dict:
    """Per zoo model at ``resolution`` (None: native): shapes and projected figures."""
    from zoo_shapes import model_shape

    budget = args.budget_gb * 1e9
    small = {**README_SMALL, "analyses_s": args.small_analyses_s}
    large = {**README_LARGE, "analyses_s": args.large_analyses_s, "forward_img_s": args.large_forward_img_s}
    n = args.images
    rows, shapes = [], {}
    for spec in cfg.backbones:
        try:
            s = model_shape(spec, cfg.features, resolution)
        except Exception as exc:  # noqa: BLE001 - one model timm cannot build: say so, go on
            rows.append({"display_name": spec.display_name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        s.ks = len(cfg.clustering.ks)
        s.slug = spec.slug
        shapes[spec.display_name] = s
        one_pair = n * s.tokens * s.embed_dim * 2  # float16, every token (prefix too), as the cache held them
        all_pairs = s.pairs * one_pair
        pair_dev = 3 * 4 * n * s.cells * s.embed_dim + 2**30  # ModelRun.pair_bytes
        passes = max(1, math.ceil(all_pairs / budget))
        # as the stream plans them: whole blocks per chunk, the probes and shift windows beside the images
        from atlas.config import block_representations, resolve_layers

        sweep = set(resolve_layers(cfg.features.layers, s.depth))
        blocks = sorted(sweep | set(resolve_layers(cfg.features.gallery_layers, s.depth)))
        sizes = {(b, r): 2 * s.tokens * s.embed_dim * (n + (args.extra_images if b in sweep else 0))
                 for b, r in block_representations(blocks, cfg.features.representations, s.depth)}
        row = {**s.as_dict(), "ks": s.ks, "one_pair_f16_bytes": one_pair, "all_pairs_f16_bytes": all_pairs,
               "pair_device_bytes": pair_dev, "passes": passes,
               "streamed_f16_bytes": sum(sizes.values()), "passes_streamed": chunk_passes(blocks, sizes, budget),
               "budget_fits_one_pair": max(sizes.values()) <= budget, "pair_device_fits_budget": pair_dev <= budget}
        if coeff is not None:
            el = elements(s, n, args.attention_images)
            e, o = coeff["per_element"], coeff["per_array"]
            by_class = {c: arrays * o.get(c, 0.0) + count * e.get(c, e.get("labels", 2.0))
                        for c, (arrays, count) in el.items()}
            json_per_pair = (at(coeff["json_fit"], n) if coeff["json_fit"] else coeff["json_bytes"][-1]) \
                / coeff["tiny"]["pairs"]
            by_class["json"] = json_per_pair * s.pairs
            row["stored_by_class"] = by_class
            row["stored_bytes"] = sum(by_class.values())
            row["stored_raw_bytes"] = sum(count * coeff["raw_per_element"].get(c, 2) for c, (_, count) in el.items()) \
                + by_class["json"]
        sec = s.pairs * pair_seconds(s.cells, s.embed_dim, n, small, large)
        fwd = passes * n * (s.params * s.tokens) / (large["params"] * large["tokens"]) / large["forward_img_s"]
        row.update(analyses_gpu_s=sec, forward_gpu_s=fwd, gpu_s=sec + fwd)
        rows.append(row)
    out = {"resolution": "native" if resolution is None else f"{resolution[0]} px", "models": rows}
    if coeff is not None:
        comp_el = comparison_elements(cfg, shapes, n)
        # comparisons store int16 maps: the tiny model's label maps' bytes per element, scaled to 2-byte items
        lab = coeff["per_element"].get("labels", 2.0) * 2 / coeff["raw_per_element"].get("labels", 2.0)
        out["comparisons_bytes"] = comp_el * lab
        out["comparisons_raw_bytes"] = comp_el * 2
        # atlas-wide: atlas.json (a line in N) and photos.npz: every image at every distinct model input
        # size, and a thumbnail (at most 256 px a side: 256 x 256 assumed), uint8 RGB
        sizes = sorted({tuple(sh.input_size) for sh in shapes.values()})
        photo_el = n * (sum(h * w * 3 for h, w in sizes) + 256 * 256 * 3)
        out["photo_sizes"] = sizes
        out["photos_bytes"] = photo_el * args.photo_bytes_per_element
        out["atlas_json_bytes"] = at(coeff["atlas_fit"], n) if coeff["atlas_fit"] else coeff["atlas_bytes"][-1]
        out["atlas_bytes"] = out["atlas_json_bytes"] + out["photos_bytes"]
    return out


# DAVIS 2017 val at 480p, what [evaluation.propagation] dataset = "davis" reads in the zoo:
# ImageSets/2017/val.txt lists 30 sequences, 1,999 frames, 854 x 480 px.
DAVIS_VAL = dict(sequences=30, frames=1999, size=(480, 854))
# H200 listed peak for fp32 without tensor cores (the build runs fp32, TF32 off): the affinity
# matrix products at this rate are a lower bound on their time, not a measurement.
H200_FP32_FLOPS = 67e12


def scoring_seconds(size: tuple[int, int], objects: int, frames: int = 20, seed: int = 0) -> float:
    """Seconds to score one frame (J and F of ``objects`` objects, ``atlas.measures.propagation``)
    at ``size`` on this machine: blobs and a prediction shifted a few pixels, as propagation leaves."""
    import numpy as np

    from atlas.inputs.videos import IGNORE
    from atlas.measures.propagation import object_scores

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((frames, h, w), np.int64)
    for t in range(frames):
        for o in range(1, objects + 1):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            ry, rx = rng.uniform(0.08, 0.2) * h, rng.uniform(0.08, 0.2) * w
            truth[t][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = o
    pred = np.roll(truth, (3, -5), axis=(1, 2))
    ids = list(range(1, objects + 1))  # as PropagationRun scores them: the first mask's objects, given
    object_scores(pred[:1], truth[:1], ids, ignore=IGNORE)  # imports and first-call costs out of the timing
    t0 = time.perf_counter()
    object_scores(pred, truth, ids, ignore=IGNORE)
    return (time.perf_counter() - t0) / frames


def propagation_seconds(grid: tuple[int, int], channels: int, size: tuple[int, int], sec, device: str,
                        frames: int, seed: int = 0) -> float:
    """Seconds of ``propagate_labels`` per frame once its context is full, for one pair's features
    (random float32, ``grid`` x ``channels``) of frames of ``size`` on ``device``: affinities, top-k,
    the upsampled labels' argmax and their copy to the host. The difference of a sequence of
    ``n_context + 2 + frames`` frames and one of ``n_context + 2``, over ``frames``."""
    import torch

    from atlas.measures.propagation import propagate_labels

    short = sec.n_context + 2
    x = torch.randn(short + frames, *grid, channels, generator=torch.Generator().manual_seed(seed)).to(device)
    first, kw = _blobs(size, seed), _protocol(sec, size, device)

    def run(t):
        propagate_labels(x[:t], first, **kw)

    run(2)  # first-call costs (kernels, allocator) out of the timing
    t0 = time.perf_counter()
    run(short)
    t1 = time.perf_counter()
    run(short + frames)
    t2 = time.perf_counter()
    return max(0.0, (t2 - t1) - (t1 - t0)) / frames


def shared_map_seconds(grid: tuple[int, int], size: tuple[int, int], sec, device: str, frames: int) -> float:
    """Seconds of the position baseline for one sequence of ``frames`` frames on ``device``: the
    bumps' one map shared by every frame (``propagate_labels(..., n_frames=frames)``)."""
    from atlas.measures.baselines import position_features
    from atlas.measures.propagation import propagate_labels

    bumps, first, kw = position_features(1, grid), _blobs(size, 0), _protocol(sec, size, device)
    propagate_labels(bumps, first, n_frames=2, **kw)
    t0 = time.perf_counter()
    propagate_labels(bumps, first, n_frames=frames, **kw)
    return time.perf_counter() - t0


def _protocol(sec, size: tuple[int, int], device: str) -> dict:
    """``propagate_labels``'s keywords for the config's ``[evaluation.propagation]`` ``sec``."""
    return dict(mask_size=size, temperature=sec.temperature, top_k=sec.top_k, radius=sec.radius,
                n_context=sec.n_context, device=device)


def _blobs(size: tuple[int, int], seed: int):
    """A first mask of two elliptic objects at ``size``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros(size, np.int64)
    for o in (1, 2):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        mask[((yy - cy) / (0.15 * h)) ** 2 + ((xx - cx) / (0.15 * w)) ** 2 <= 1] = o
    return mask


def project_propagation(args, cfg) -> dict | None:
    """Label propagation of the zoo on DAVIS 2017 val (``[evaluation.propagation]``): per model, the
    frames' grid, the features of a pair, the forward passes and their GPU time (the atlas's forward
    model), the affinity FLOPs with a lower bound on their GPU time, and the CPU time of scoring J
    and F (measured here per frame). None when the config has no propagation."""
    from zoo_shapes import model_shape

    from atlas.config import block_representations, resolve_layers
    from atlas.pipeline.propagation_run import BASELINES, MAX_SCORING_THREADS

    sec = cfg.evaluation.propagation
    if sec is None:
        return None
    frames, sequences = args.davis_frames, args.davis_sequences
    h, w = DAVIS_VAL["size"]
    size = (sec.short_side, round(sec.short_side * w / h))  # PropagationRun's _frame_size: short side, aspect kept
    budget = args.budget_gb * 1e9
    large = {**README_LARGE, "forward_img_s": args.large_forward_img_s}
    score_s = scoring_seconds(size, args.davis_objects)
    predicted = frames - sequences  # every frame but each sequence's first is propagated
    scored = frames - 2 * sequences  # DAVIS 2017 scores neither a sequence's first nor its last frame
    rows, geometries = [], set()
    for spec in cfg.backbones:
        try:
            s = model_shape(spec, cfg.features, size)
        except Exception as exc:  # noqa: BLE001 - one model timm cannot build: say so, go on
            rows.append({"display_name": spec.display_name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        gallery = resolve_layers(cfg.features.gallery_layers, s.depth)
        pairs = block_representations(gallery, cfg.features.representations, s.depth)
        pair_bytes = frames * s.tokens * s.embed_dim * 2  # float16, every frame of the dataset
        # PropagationRun passes a sequence at a time, all pairs together or in chunks that fit the
        # budget (a sequence of the mean length here): each frame goes through the model once per chunk
        seq_pair_bytes = pair_bytes / sequences
        passes = chunk_passes(gallery, {p: seq_pair_bytes for p in pairs}, budget)
        context = 1 + sec.n_context
        # the baselines need no model: the first model of a frame geometry (input size, patch) in the
        # config's order computes them, the others read them (atlas.pipeline.shared_baselines)
        baselines = (tuple(s.input_size), s.patch_size) not in geometries
        geometries.add((tuple(s.input_size), s.patch_size))
        # every frame's affinities to its context: the pairs' features and the colour baseline (3
        # channels); the position baseline (one bump per cell) shares one cells x cells matrix per sequence
        channels = len(pairs) * s.embed_dim + 3 * baselines
        flops = predicted * s.cells * context * s.cells * channels * 2 + baselines * sequences * s.cells ** 3 * 2
        forward = (passes or 0) * frames * (s.params * s.tokens) / (large["params"] * large["tokens"]) \
            / large["forward_img_s"]
        rows.append({"display_name": s.display_name, "opt_in": s.opt_in, "input_size": s.input_size, "grid": s.grid,
                     "tokens": s.tokens, "embed_dim": s.embed_dim, "pairs": len(pairs), "pair_f16_bytes": pair_bytes,
                     "sequence_f16_bytes": seq_pair_bytes * len(pairs), "passes": passes,
                     # the position baseline's bumps (float32, one per cell, at every cell), shared by all frames
                     "position_bytes": s.cells * s.cells * 4, "forward_gpu_s": forward, "affinity_flops": flops,
                     "affinity_gpu_s_lower": flops / H200_FP32_FLOPS,
                     "computes_baselines": baselines,
                     "scoring_cpu_s": (len(pairs) + len(BASELINES) * baselines) * scored * score_s})
    out = {"frames": frames, "sequences": sequences, "size": size, "objects": args.davis_objects,
           "scoring_s_per_frame": score_s, "baselines": list(BASELINES), "threads": MAX_SCORING_THREADS,
           "models": rows}
    if args.time_propagation:
        out["timed"] = time_propagation(args, sec, size, [r for r in rows if "error" not in r], predicted)
    return out


def time_propagation(args, sec, size: tuple[int, int], rows: list[dict], predicted: int) -> dict:
    """Measure label propagation on ``--time-propagation``'s device for every frame grid and width
    of the zoo, and add each model's ``propagation_s``: every predicted frame once per pair and, for
    the first model of a frame geometry, once for the colour baseline (3 channels) and the position
    baseline's shared map once per sequence (of the mean length)."""
    import torch

    device = args.time_propagation
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    length = round(args.davis_frames / args.davis_sequences)
    per_frame, shared = {}, {}
    for r in rows:
        grid = tuple(r["grid"])
        for c in (r["embed_dim"], 3):
            if (grid, c) not in per_frame:
                per_frame[grid, c] = propagation_seconds(grid, c, size, sec, device, args.propagation_frames)
                print(f"  propagation, {grid[0]}x{grid[1]} patches x {c} channels on {device}: "
                      f"{per_frame[grid, c] * 1000:.1f} ms a frame", flush=True)
        if grid not in shared:
            shared[grid] = shared_map_seconds(grid, size, sec, device, length)
            print(f"  position baseline, {grid[0]}x{grid[1]} patches, a {length}-frame sequence on {device}: "
                  f"{shared[grid]:.2f} s", flush=True)
        cb = r["computes_baselines"]  # the colour and position baselines: the first model of its geometry
        r["propagation_s"] = predicted * (r["pairs"] * per_frame[grid, r["embed_dim"]] + cb * per_frame[grid, 3]) \
            + cb * args.davis_sequences * shared[grid]
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU, {os.cpu_count()} cores"
    return {"device": device, "device_name": name, "frames_timed": args.propagation_frames,
            "per_frame_s": {f"{g[0]}x{g[1]}x{c}": v for (g, c), v in per_frame.items()},
            "position_sequence_s": {f"{g[0]}x{g[1]}": v for g, v in shared.items()}}


def print_propagation(args, prop: dict) -> dict:
    rows = [r for r in prop["models"] if "error" not in r]
    timed = prop.get("timed")
    print(f"\n### Label propagation: DAVIS 2017 val, {prop['frames']} frames in {prop['sequences']} sequences at "
          f"{prop['size'][0]} x {prop['size'][1]} px (extrapolated, no model run)\n")
    print_model_table(
        ["frame grid", "tokens", "pairs", "1 pair f16 (all frames)", "1 sequence f16 (all pairs)",
         "passes per sequence", "forward GPU h", "affinity PFLOP", "affinity GPU h (lower bound)", "scoring CPU h"]
        + ([f"propagation h, measured ({timed['device']})"] if timed else []),
        prop["models"], lambda r: [
            f"{r['grid'][0]}x{r['grid'][1]}", str(r["tokens"]), str(r["pairs"]), _size(r["pair_f16_bytes"]),
            _size(r["sequence_f16_bytes"]), "(!)" if r["passes"] is None else str(r["passes"]),
            f"{r['forward_gpu_s'] / 3600:.2f}", f"{r['affinity_flops'] / 1e15:.1f}",
            f"{r['affinity_gpu_s_lower'] / 3600:.2f}", f"{r['scoring_cpu_s'] / 3600:.2f}"]
        + ([f"{r['propagation_s'] / 3600:.2f}"] if timed else []))
    sel = [r for r in rows if not r["opt_in"]]
    t = {"models": len(sel), "forward_gpu_h": sum(r["forward_gpu_s"] for r in sel) / 3600,
         "affinity_gpu_h_lower": sum(r["affinity_gpu_s_lower"] for r in sel) / 3600,
         "scoring_cpu_h": sum(r["scoring_cpu_s"] for r in sel) / 3600,
         "unfit": [r["display_name"] for r in sel if r["passes"] is None]}
    if timed:
        t["propagation_h_measured"] = sum(r["propagation_s"] for r in sel) / 3600
    print(f"| **total, without opt-in** ({t['models']} models) | | | {sum(r['pairs'] for r in sel)} | | | "
          f"| **{t['forward_gpu_h']:.2f}** | | **{t['affinity_gpu_h_lower']:.2f}** | **{t['scoring_cpu_h']:.2f}** |"
          + (f" **{t['propagation_h_measured']:.2f}** |" if timed else ""))
    print(f"\nScoring J and F of {prop['objects']} objects in one {prop['size'][0]} x {prop['size'][1]} frame: "
          f"{prop['scoring_s_per_frame'] * 1000:.0f} ms on this machine (one core; measured now), for every pair and "
          f"the {len(prop['baselines'])} baselines ({', '.join(prop['baselines'])}; computed by the first model of "
          f"each frame geometry, {sum(r['computes_baselines'] for r in sel)} of the {len(sel)} models, and shared), "
          f"on up to {prop['threads']} host "
          "threads while the GPU predicts the next sequence. Forward GPU h as "
          "the atlas images' (params x tokens, linear: attention's quadratic share grows with the frames' tokens, so "
          f"it is low), each frame once per chunk of a sequence's pairs (a sequence of the mean length, "
          f"{prop['frames'] / prop['sequences']:.0f} frames); affinity GPU h at the H200's listed fp32 peak ({H200_FP32_FLOPS / 1e12:.0f} TFLOPS): a lower "
          "bound, never measured; scoring runs on the host, beside the GPU.")
    if timed:
        print(f"Propagation measured on {timed['device_name']}: propagate_labels per frame once the context is full "
              f"({timed['frames_timed']} frames a timing, random features), for every pair and (the first model of "
              "each frame geometry) the colour baseline, "
              "and the position baseline's shared map once per sequence; the forward passes and J and F not included.")
    big = max(sel, key=lambda r: r["position_bytes"])
    print(f"The position baseline propagates one Gaussian bump per cell at every cell, the same for every frame: one "
          f"cells x cells affinity matrix per sequence, {_size(big['position_bytes'])} of float32 for "
          f"{big['display_name']} (its largest).")
    prop["totals"] = t
    return t


# ------------------------------------------------------------------------------------------ printing

def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.2f}"


def _size(x: float | None) -> str:
    if x is None:
        return "-"
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g} {unit}" if abs(x) / div < 100 else f"{x / div:.0f} {unit}"
    return f"{x:.0f} B"


def print_model_table(columns: list[str], models: list[dict], cells) -> None:
    """A markdown table of one row per zoo model: its name (marked opt-in), then ``cells(row)``;
    a model timm could not build gets one row saying so."""
    print("| " + " | ".join(["model", *columns]) + " |")
    print("| --- |" + " --: |" * len(columns))
    for r in models:
        if "error" in r:
            print(f"| {r['display_name']} | failed: {r['error']} |" + " |" * (len(columns) - 1))
            continue
        name = r["display_name"] + (" (opt-in)" if r["opt_in"] else "")
        print("| " + " | ".join([name, *cells(r)]) + " |")


def print_measured(rows: list[dict], fits: dict, mode: str) -> None:
    ok = [r for r in rows if r["rc"] == 0]
    print(f"\n### Measured ({mode}): tiny model, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| images | wall s | peak RSS MiB (process / tree) | results MiB (files) | site MiB (files) "
          "| docs MiB (files) | cache MiB (files) |")
    print("| --: | --: | --: | --: | --: | --: | --: |")
    for r in rows:
        if r["rc"] != 0:
            print(f"| {r['images']} | failed (rc {r['rc']}{', timed out' if r['timed_out'] else ''}) "
                  f"| | | | | |")
            continue
        print(f"| {r['images']} | {r['wall_s']:.1f} | {_mb(r['maxrss_bytes'])} / {_mb(r['peak_tree_rss_bytes'])} "
              + " ".join(f"| {_mb(r[f'{d}_peak_bytes'])} ({r[f'{d}_peak_files']})" for d in ("results", "site", "docs",
                                                                                             "cache")) + " |")
    if len(ok) < 2:
        print("\n(fewer than two successful sizes: no fit)")
        return
    print(f"\nGrowth with N ({mode}; N = {', '.join(str(r['images']) for r in ok)}): power-law exponent "
          f"(log-log slope) and line a + b N (b: one more image)\n")
    print("| figure | exponent | a | b per image | R² of the line |")
    print("| --- | --: | --: | --: | --: |")
    for key, label, scale, unit in METRICS:
        f = fits.get(key)
        if f is None:
            continue
        slope = "-" if f["slope"] is None else f"{f['slope']:.2f}"
        u = f" {unit}" if unit else ""
        print(f"| {label} | {slope} | {f['a'] / scale:.3g}{u} | {f['b'] / scale:.3g}{u} | {f['r2_linear']:.3f} |")


def print_projection(args, proj: dict, coeff: dict | None) -> dict:
    rows = [r for r in proj["models"] if "error" not in r]
    n = args.images
    print(f"\n### Zoo projection: {n} images, {proj['resolution']}, budget {args.budget_gb:g} GB "
          f"(extrapolated, no model run)\n")

    def passes(r):
        streamed = "(!)" if r["passes_streamed"] is None else str(r["passes_streamed"])
        return f"{r['passes']}" + (f" ({streamed})" if streamed != str(r["passes"]) else "")

    print_model_table(
        ["px", "depth", "C", "grid", "tokens", "pairs", "1 pair f16", "all pairs f16 (old cache)", "device / pair",
         "passes", "stored results", "GPU h"],
        proj["models"], lambda r: [
            str(r["input_size"][0]), str(r["depth"]), str(r["embed_dim"]), f"{r['grid'][0]}x{r['grid'][1]}",
            str(r["tokens"]), str(r["pairs"]), _size(r["one_pair_f16_bytes"]), _size(r["all_pairs_f16_bytes"]),
            _size(r["pair_device_bytes"]), passes(r), _size(r.get("stored_bytes")), f"{r['gpu_s'] / 3600:.2f}"])
    totals = {}
    for label, sel in (("without opt-in", [r for r in rows if not r["opt_in"]]), ("with opt-in", rows)):
        t = {"models": len(sel),
             "stored_bytes": sum(r.get("stored_bytes", 0) for r in sel) + proj.get("comparisons_bytes", 0)
             + proj.get("atlas_bytes", 0),
             "stored_raw_bytes": sum(r.get("stored_raw_bytes", 0) for r in sel),
             "old_cache_bytes": sum(r["all_pairs_f16_bytes"] for r in sel),
             "passes": sum(r["passes"] for r in sel),
             "passes_streamed": sum(r["passes_streamed"] or 0 for r in sel),
             "pair_device_max_bytes": max((r["pair_device_bytes"] for r in sel), default=0),
             "gpu_h": sum(r["gpu_s"] for r in sel) / 3600,
             "analyses_gpu_h": sum(r["analyses_gpu_s"] for r in sel) / 3600}
        totals[label] = t
        print(f"| **total, {label}** ({t['models']} models) | | | | | | {sum(r['pairs'] for r in sel)} | "
              f"| **{_size(t['old_cache_bytes'])}** | max {_size(t['pair_device_max_bytes'])} | {t['passes']}"
              + (f" ({t['passes_streamed']})" if t["passes_streamed"] != t["passes"] else "") + " "
              f"| **{_size(t['stored_bytes'] if coeff else None)}** | {t['gpu_h']:.1f} |")
    if coeff:
        print(f"\nStored results include {_size(proj.get('comparisons_bytes'))} of comparison label maps and "
              f"{_size(proj.get('atlas_bytes'))} of atlas-wide files in the totals (photos.npz "
              f"{_size(proj.get('photos_bytes'))}: {args.images} images at "
              f"{', '.join(f'{h}x{w}' for h, w in proj.get('photo_sizes', []))} and a 256 px thumbnail, "
              f"{args.photo_bytes_per_element:g} byte per pixel channel; atlas.json {_size(proj.get('atlas_json_bytes'))}).")
    proj["totals"] = totals
    return totals


FORMULAS = """\
Formulas (N images, T tokens = prefix + grid cells, C embed dim, pairs = (block, representation) pairs
the config extracts (sweep and gallery blocks), gallery pairs / blocks = those at the gallery depths,
|Ks| = the config's cluster counts; sizes in decimal units, GB = 1e9 bytes):
* 1 pair f16 = N x T x C x 2 bytes; all pairs f16 = pairs x that (what the old design wrote to the
  feature cache).
* device / pair = 3 x 4 x N x cells x C + 1 GiB (ModelRun.pair_bytes: features, a reference token
  set, the centred unit tokens, float32).
* passes = ceil(all pairs f16 / budget). In brackets, where it differs: the passes as
  atlas.features.stream.plan_chunks packs them (consecutive whole blocks per chunk), counting beside
  the N images the --extra-images (blank probes + shift-test windows, 89) that stream through every
  sweep pair; (!) = one pair alone exceeds the budget. The evaluation set is not counted.
* stored results of a model = sum over kinds of arrays x o + e x elements, with
    labels      arrays gallery pairs x |Ks|,  elements N x cells x gallery pairs x |Ks|      (int16)
    pca         arrays gallery pairs x 2,     elements N x cells x 3 x gallery pairs x 2    (uint8)
    attn_mean   arrays gallery blocks,        elements N x prefix x cells x gallery blocks  (float16)
    attn_heads  arrays gallery blocks,        elements min(N, 4) x prefix x heads x cells x gallery blocks
  + model JSON = (tiny model's JSON bytes, line in N, at N) / its pairs x pairs.
  e (compressed bytes per element) and o (bytes per array) come from the tiny model's stored .npz
  members: the slope and intercept / arrays of compressed bytes vs elements over the sweep's sizes
  (one size: e = bytes / elements, o = 0).
* plus comparisons: int16 label maps at each model's own grid (models / scaling: its models x gallery
  depths x N x cells; representations: gallery pairs x N x cells) at the labels' e; and atlas-wide
  files: atlas.json (line in N) + photos.npz (N x (sum over distinct input sizes of h x w x 3 +
  256 x 256 x 3) x --photo-bytes-per-element).
* GPU h = analyses + forward passes. Analyses: pairs x N x (alpha + beta x cells x C) s, the line
  through the README's two H200 points in s per pair per image (ViT-S/16 224 px: 10.5 s / 49 pairs /
  64 images; ViT-L/14 518 px: 63.1 s / 97 pairs / 32 images); forward: passes x N x (params x T) /
  (params x T of ViT-L/14 at 518) / 36.3 img/s (its raw fp32 forward_features). Extrapolations from
  two measurements of today's code, not measurements. Not counted: both points were measured with
  one K (8), the last block's gallery and no evaluation (bench_gpu.py --settings readme), while the
  zoo clusters K = 2/4/8/16 at 4 gallery depths and scores its [evaluation] (CamVid, 101 images,
  never timed on a GPU); bench_gpu.py measures those by default now (--settings zoo)."""


# ------------------------------------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("measured sweep (tiny model, real command line)")
    g.add_argument("--sizes", default="10,30,100,300", help="image counts, comma-separated (default: 10,30,100,300)")
    g.add_argument("--cache", action="store_true", help="also run every size with [features] cache = true")
    g.add_argument("--model", default="vit_small_patch16_224", help="timm name of the tiny model (random init)")
    g.add_argument("--overrides", default="depth=4,embed_dim=64,num_heads=2", help="its timm overrides")
    g.add_argument("--px", type=int, default=96, help="image resolution of the tiny build (default 96: 6x6 patches)")
    g.add_argument("--photo-px", type=int, default=160, help="size of the synthetic photos written (default 160)")
    g.add_argument("--resamples", type=int, default=20, help="[uncertainty] resamples (default 20; the zoo's is 200)")
    g.add_argument("--seeds", type=int, default=1, help="[uncertainty] seeds (default 1; the zoo's is 3)")
    g.add_argument("--poll", type=float, default=0.5, help="seconds between disk / RSS samples (default 0.5)")
    g.add_argument("--timeout", type=float, default=7200, help="seconds before one build is killed (default 7200)")
    g.add_argument("--workdir", default=None, help="where the project folders go (default: a temporary folder)")
    g.add_argument("--keep", action="store_true", help="keep the project folders (printed)")
    g.add_argument("--zoo-only", action="store_true", help="run no build: project from the measured run stored in --json")
    g = p.add_argument_group("zoo projection (meta device, no model runs)")
    g.add_argument("--zoo", default=str(REPO / "configs" / "zoo.toml"))
    g.add_argument("--images", type=int, default=300, help="images of the projection (default 300)")
    g.add_argument("--budget-gb", type=float, default=70.0,
                   help="device memory budget of one pass, GB (default 70: half an H200's free memory)")
    g.add_argument("--goal-gb", type=float, default=10.0, help="issue 25's goal for stored results, GB (default 10)")
    g.add_argument("--extra-images", type=int, default=None,
                   help="images streamed beside the atlas images through every sweep pair, for the planned "
                        "passes (default: the atlas's blank probes + shift-test windows, 89; add the evaluation "
                        "set's images, e.g. +101 for CamVid, to count it too)")
    g.add_argument("--photo-bytes-per-element", type=float, default=1.0,
                   help="stored bytes per uint8 pixel channel of photos.npz (default 1.0: uncompressed; real "
                        "photographs deflate little; the synthetic ones much more, printed for reference)")
    g.add_argument("--attention-images", type=int, default=4,
                   help="images whose every attention head is stored (atlas.pipeline.pictures.ATTENTION_IMAGES)")
    g.add_argument("--small-analyses-s", type=float, default=README_SMALL["analyses_s"],
                   help="README GPU figures, row 'ViT-S/16 224 px, 64': analyses seconds for its 49 pairs "
                        "(default 10.5)")
    g.add_argument("--large-analyses-s", type=float, default=README_LARGE["analyses_s"],
                   help="README GPU figures, row 'ViT-L/14 518 px, 32': analyses seconds for its 97 pairs "
                        "(default 63.1)")
    g.add_argument("--large-forward-img-s", type=float, default=README_LARGE["forward_img_s"],
                   help="same row: raw forward_features fp32 img/s (default 36.3)")
    g.add_argument("--davis-frames", type=int, default=DAVIS_VAL["frames"],
                   help=f"frames of the propagation dataset (default {DAVIS_VAL['frames']}: DAVIS 2017 val)")
    g.add_argument("--davis-sequences", type=int, default=DAVIS_VAL["sequences"],
                   help=f"its sequences (default {DAVIS_VAL['sequences']}); their first frames are given; first and "
                        "last frames are not scored")
    g.add_argument("--davis-objects", type=int, default=2,
                   help="objects scored per frame when timing J and F (default 2, an assumption)")
    g.add_argument("--time-propagation", metavar="DEVICE", nargs="?", const="auto", default=None,
                   help="also measure label propagation per frame at every frame grid and width of the zoo on DEVICE "
                        "(default: cuda when visible, else cpu; slow on a CPU: the /8 grids take seconds a frame)")
    g.add_argument("--propagation-frames", type=int, default=8,
                   help="frames of each propagation timing beyond a full context (default 8)")
    g.add_argument("--propagation-only", action="store_true",
                   help="run no build and no storage projection: the label-propagation projection alone")
    g.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the figures (default {DEFAULT_JSON})")
    args = p.parse_args()
    sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    if args.extra_images is None:
        args.extra_images = default_extra_images()

    report: dict = {"machine": {"platform": platform.platform(), "machine": platform.machine(),
                                "cores": os.cpu_count(), "python": sys.version.split()[0]},
                    "args": vars(args), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    rows: list[dict] = []
    if args.propagation_only:
        from atlas.config import load_config

        prop = project_propagation(args, load_config(args.zoo))
        if prop is None:
            sys.exit(f"error: {args.zoo} has no [evaluation.propagation]; nothing to project")
        print_propagation(args, prop)
        report["propagation"] = prop
        write_report(report, args.json)
        return
    if args.zoo_only:
        prev = json.loads(Path(args.json).read_text())
        rows = prev.get("measured", [])
        report["measured_from"] = prev.get("when")
    else:
        workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="atlas-bench-scale-"))
        workdir.mkdir(parents=True, exist_ok=True)
        photos = workdir / "photos"
        print(f"writing {max(sizes)} synthetic {args.photo_px} px photos into {photos} ...", flush=True)
        write_photos(photos, max(sizes), args.photo_px)
        modes = [False] + ([True] if args.cache else [])
        cache_supported: bool | None = None
        try:
            for cache in modes:
                for n in sizes:
                    if cache and cache_supported is False:
                        rows.append({"images": n, "cache_mode": True, "rc": None, "skipped": "not supported by this checkout"})
                        continue
                    label = "cache = true" if cache else "default"
                    print(f"build: {n} images, {label} ...", flush=True)
                    row = run_build(args, n, cache, photos, workdir)
                    if cache and row.get("cache_rejected"):
                        cache_supported = False
                        row["skipped"] = "not supported by this checkout"
                        print(f"  [features] cache = true: not supported by this checkout "
                              f"({row['stderr_tail'].splitlines()[-1][:200]})", flush=True)
                    elif cache and row["rc"] == 0:
                        cache_supported = True
                    if row["rc"] == 0:
                        print(f"  {row['wall_s']:.1f} s, RSS {_mb(row['maxrss_bytes'])} MiB, results "
                              f"{_mb(row['results_bytes'])} MiB, site {_mb(row['site_bytes'])} MiB, cache "
                              f"{_mb(row['cache_peak_bytes'])} MiB", flush=True)
                    elif not row.get("skipped"):
                        print(f"  FAILED (rc {row['rc']}{', timed out' if row['timed_out'] else ''}); stderr tail:\n"
                              + "\n".join("    " + ln for ln in row.get("stderr_tail", "").splitlines()), flush=True)
                    rows.append(row)
                    if not args.keep:
                        shutil.rmtree(row["project"], ignore_errors=True)
            report["cache_mode"] = ("not requested" if not args.cache else "supported" if cache_supported
                                    else "not supported by this checkout" if cache_supported is False else "failed")
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"project folders kept in {workdir}")
    report["measured"] = rows

    for mode, cache in (("default feature settings", False), ("[features] cache = true", True)):
        sel = [r for r in rows if r.get("cache_mode") == cache and not r.get("skipped")]
        if not sel:
            if cache and args.cache:
                print(f"\n### Measured ({mode}): not supported by this checkout")
            continue
        fits = growth(sel)
        report[f"growth_{'cache' if cache else 'default'}"] = fits
        print_measured(sel, fits, mode)

    # ---- projection
    from atlas.config import load_config, parse_config, resolution_label, resolution_size
    from zoo_shapes import model_shape

    coeff = None
    if any(r.get("rc") == 0 and not r.get("cache_mode") for r in rows):
        tiny = parse_config(tiny_config(args, False), "<bench_scale tiny>")
        tiny_shape = model_shape(tiny.backbones[0], tiny.features, (args.px, args.px))
        tiny_shape.ks = len(tiny.clustering.ks)
        coeff = tiny_coefficients(rows, tiny_shape)
    if coeff is not None:  # does the layout formula reproduce what the tiny model stored?
        expected = {c: v[1] for c, v in elements(tiny_shape, coeff["largest"], args.attention_images).items() if v[1]}
        got = {c: v["elements"] for c, v in coeff["classes"].items()}
        coeff["structure_check"] = {"expected": expected, "stored": got, "match": expected == got}
    report["coefficients"] = coeff
    zoo = load_config(args.zoo)
    report["projection"] = {}
    verdict = None
    axis = {resolution_label(e): resolution_size(e) for e in zoo.images.requested_resolutions()}
    for res_label, res in {"224": (224, 224), "native": None, **axis}.items():
        proj = project(args, zoo, coeff, res)
        print_projection(args, proj, coeff)
        report["projection"][res_label] = proj
    if len(axis) > 1:  # the zoo's resolution axis: every model at each size, the sizes add up
        per = {k: report["projection"][k]["totals"]["without opt-in"] for k in axis}
        projs = [report["projection"][k] for k in axis]
        # models and their photos at every size; comparisons (main size only) and atlas.json once
        models_bytes = sum(r.get("stored_bytes", 0) for p in projs for r in p["models"]
                           if "error" not in r and not r["opt_in"])
        once = projs[0].get("comparisons_bytes", 0) + projs[0].get("atlas_json_bytes", 0)
        report["resolution_axis"] = {"sizes": list(axis), "per_size": per,
                                     "gpu_h": sum(t["gpu_h"] for t in per.values()),
                                     "stored_bytes": models_bytes + once + sum(p.get("photos_bytes", 0) for p in projs)}
        print(f"\n### The zoo's resolution axis ({', '.join(axis)}), {args.images} images, opt-in excluded\n")
        print("| size | GPU h | stored results |\n| --- | --: | --: |")
        for k, t in per.items():
            print(f"| {k} | {t['gpu_h']:.2f} | {_size(t['stored_bytes']) if coeff else 'n/a'} |")
        ra = report["resolution_axis"]
        print(f"| **all sizes** | **{ra['gpu_h']:.2f}** | **{_size(ra['stored_bytes']) if coeff else 'n/a'}** |")
        # the evaluation's baselines need no model: computed once per (input size, patch) of the axis's runs
        runs = [(tuple(r["input_size"]), r["patch_size"]) for p in projs for r in p["models"]
                if "error" not in r and not r["opt_in"]]
        ra["evaluation_baseline_geometries"] = {"model_runs": len(runs), "geometries": len(set(runs))}
        print(f"\nThe evaluation's baselines (chance, colour, position, ceiling) are computed once per geometry "
              f"(input size, patch), shared by its models (atlas.pipeline.shared_baselines): {len(set(runs))} "
              f"geometries for the axis's {len(runs)} model runs.")
    prop = project_propagation(args, zoo)
    if prop is not None:
        print_propagation(args, prop)
        report["propagation"] = prop
    print()
    print(FORMULAS)
    if coeff:
        print(f"\nMeasured on the tiny model ({coeff['tiny']['grid'][0]}x{coeff['tiny']['grid'][1]} grid, N = "
              f"{', '.join(map(str, coeff['from_images']))}): compressed bytes per stored element (raw) + per array: "
              + ", ".join(f"{c} {v:.3f} ({coeff['raw_per_element'][c]:.0f}) + {coeff['per_array'][c]:.0f}"
                          for c, v in coeff["per_element"].items())
              + f"; model JSON {coeff['json_bytes'][-1] / coeff['tiny']['pairs']:.0f} B per pair at "
                f"{coeff['largest']} images, line-fitted to {args.images}.")
        sc = coeff["structure_check"]
        print("Layout formula vs the tiny model's stored arrays: "
              + ("elements match exactly" if sc["match"] else f"MISMATCH expected {sc['expected']} stored {sc['stored']}"
                 " (the stored layout changed: check elements() before trusting the projection)"))
        nat = report["projection"]["native"]
        t = nat["totals"]["without opt-in"]
        stored = t["stored_bytes"]
        raw = t["stored_raw_bytes"] + nat.get("comparisons_raw_bytes", 0) + nat.get("atlas_bytes", 0)
        verdict = stored <= args.goal_gb * 1e9
        print(f"\nGoal (issue 25): the whole zoo at {args.images} images and native resolution stores at most "
              f"{args.goal_gb:g} GB of results, no feature cache: {'PASS' if verdict else 'FAIL'} -- projected "
              f"{stored / 1e9:.2f} GB ({t['models']} models, opt-in excluded; with the opt-in 7B "
              f"{nat['totals']['with opt-in']['stored_bytes'] / 1e9:.2f} GB; arrays uncompressed "
              f"{raw / 1e9:.2f} GB)")
        gp = sum(r["gallery_pairs"] for r in nat["models"] if "error" not in r and not r["opt_in"])
        site = {}
        for d in ("site", "docs"):
            ff, fb = (report.get("growth_default") or {}).get(f"{d}_peak_files"), \
                (report.get("growth_default") or {}).get(f"{d}_peak_bytes")
            if ff and fb:
                scale = args.images * gp / coeff["tiny"]["gallery_pairs"]
                site[d] = {"files": ff["a"] + ff["b"] * scale, "bytes": fb["a"] + fb["b"] * scale}
        if site:
            report["site_projection"] = site
            print(f"Rough, not a goal: the site's measured growth per image, scaled by the zoo's gallery pairs ({gp} "
                  f"vs the tiny model's {coeff['tiny']['gallery_pairs']}), puts the zoo's site at "
                  + "; ".join(f"{'site' if d == 'site' else 'docs (site_src)'} ~{v['files'] / 1e6:.2g} M files, "
                              f"~{_size(v['bytes'])}" for d, v in site.items())
                  + " (per-image pictures are counted per gallery pair; their pixel size is taken as the tiny "
                    "model's)")
        gh = nat["totals"]["without opt-in"]["gpu_h"]
        print(f"GPU time (extrapolated from the README's H200 figures of today's code, not measured): the zoo at "
              f"{args.images} images and native resolution {gh:.1f} h (issue 25's goal: under 1 h on one H200), "
              "without its evaluation against human masks and its other Ks and gallery depths (not in the H200 "
              "figures: see the formulas)")
    else:
        print("\nGoal (issue 25): not checked: no successful default-mode build to scale stored bytes from")
    report["goal"] = {"gb": args.goal_gb, "pass": verdict,
                      "projected_bytes": report["projection"]["native"]["totals"]["without opt-in"]["stored_bytes"]
                      if coeff else None}
    report["formulas"] = FORMULAS
    report["readme_sources"] = {"small": README_SMALL, "large": README_LARGE,
                                "where": "README.md, section Benchmarks, 'GPU figures' table (bench/bench_gpu.py, "
                                         "one NVIDIA H200, 2026-12-04)"}
    write_report(report, args.json)


def write_report(report: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
