"""The real pipeline end to end on a reduced demo config: build, incremental rebuild, determinism,
and the built site in headless Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import atlas.pipeline.model_run as run_mod
from atlas.features.stream import FeatureStream
from atlas.config import parse_config
from atlas.measures.registry import REGISTRY
from atlas.pipeline.build import build_atlas
from atlas.pipeline.state import load_stored_atlas
from atlas.records import PCA_VIEWS, RANDOM_INIT_LABEL, attention_key, map_key, picture_key
from atlas.site import build_site, render_site

REPO = Path(__file__).resolve().parents[1]
DEMO = (REPO / "configs" / "demo.toml").read_text()

pytestmark = pytest.mark.slow

TINY_MAE = """
[[backbones]]
display_name = "Tiny ViT/16 (added later)"
timm_name = "vit_base_patch16_224.mae"
weights = "random"
family = "MAE"
training = "random"
overrides = { depth = 2, embed_dim = 64, num_heads = 2 }
"""


def small_demo(tmp: Path, extra: str = "") -> str:
    """The demo config, reduced so the suite stays fast: 4 images, 2 gallery depths, 2 representations."""
    text = DEMO
    # paths stay relative (to the project root, here tmp): the config text, and so its hash, is
    # then the same for two builds in different folders
    text = text.replace('output_dir = "build/demo"', 'output_dir = "out"')
    text = text.replace('cache_dir = ".cache/features"', 'cache_dir = "cache"')
    # one size here: the resolution axis has its own tests (test_resolution.py)
    text = text.replace("resolutions = [224, 320]", "resolution = [112, 112]\nmax_images = 4")
    assert "max_images = 4" in text
    text = text.replace("gallery_layers = [0.25, 0.5, 0.75, 1.0]", "gallery_layers = [0.5, 1.0]")
    text = text.replace('layers = "all"', "layers = [0.5, 1.0]")
    text = text.replace('representations = ["tokens", "keys", "queries", "values", "tokens_normed"]',
                        'representations = ["tokens", "keys", "queries", "tokens_normed"]')
    assert 'representations = ["tokens", "keys", "queries", "tokens_normed"]' in text
    text = text.replace("ks = [2, 4, 8, 16]", "ks = [2, 4]")
    text = text.replace("[analyses]\nk = 8", "[analyses]\nk = 4\n\n[uncertainty]\nresamples = 100\nseeds = 2")
    text = text.replace("max_images = 40", "max_images = 8")
    # label propagation: 3 clips of 4 frames at the images' size (the demo's 8 x 8 at 224 px took
    # two thirds of this build; test_propagation_build.py has the protocol's own tests)
    text = text.replace("clip_length = 8\nmax_sequences = 8\nshort_side = 224",
                        "clip_length = 4\nmax_sequences = 3\nshort_side = 112")
    assert "clip_length = 4\nmax_sequences = 3\nshort_side = 112" in text
    # shared data sits beside the repo: make the relative root absolute for the tmp config location
    text = text.replace('root = "../shared/data/camvid"', f'root = "{REPO.parent / "shared" / "data" / "camvid"}"')
    return text + extra


def _config(tmp: Path, text: str):
    return parse_config(text, str(tmp / "configs" / "demo-small.toml"))


def _build(tmp: Path, text: str, docs: Path, date="2026-01-01"):
    results = build_atlas(_config(tmp, text), progress=False, build_date=date)
    render_site(results, docs)
    return results


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    docs = tmp / "site_src"
    results = _build(tmp, small_demo(tmp), docs)
    # the pages as first rendered, before the tests below add a model or render again: the
    # determinism test compares a second build with them
    shutil.copytree(docs, tmp / "site_src_first")
    site = build_site(REPO / "mkdocs.yml", docs_dir=docs, site_dir=tmp / "site")
    return tmp, docs, site, results


def test_demo_build_is_complete_and_labelled(demo):
    tmp, docs, site, results = demo
    assert [m.card.training for m in results.models] == ["random"] * 4
    for m in results.models:
        page = (site / "models" / f"{m.card.slug}.html").read_text()
        assert RANDOM_INIT_LABEL in page
        assert m.runs and all(m.label_maps[f"b{r.block}-{r.representation}-k{r.k}"].shape[0] == 4 for r in m.runs)
        measures = {r.measure for r in m.measures}
        assert {"positional_nce", "position_r2", "border_ami", "blank_position_score", "shift_content_fraction"} <= measures
        assert measures <= set(REGISTRY)  # every stored number is described in the registry
        views = {p.name for p in (docs / "generated" / "views" / "models" / m.card.slug).glob("*.png")}
        assert {f"{map_key(r.block, r.representation, r.k)}.png" for r in m.runs} <= views  # one file per run
        # tokens_normed: the last block only, clustered, measured and shown
        last = m.card.depth - 1
        assert {r.block for r in m.runs if r.representation == "tokens_normed"} == {last}
        assert {r.block for r in m.measures if r.representation == "tokens_normed"} == {last}
        # PCA pictures of every gallery (block, representation) in both recipes; CLS attention of every
        # gallery block and its measures on the sweep, from queries and keys
        h, w = m.label_maps[map_key(m.runs[0].block, m.runs[0].representation, m.runs[0].k)].shape[1:]
        for r in m.runs:
            for view in PCA_VIEWS:
                pic = m.pictures[picture_key(r.block, r.representation, view)]
                assert pic.shape == (4, h, w, 3) and pic.dtype == np.uint8
        for b in m.blocks:
            mean = m.pictures[attention_key(b, "mean")]
            assert mean.shape == (4, m.card.num_prefix_tokens, h, w)
            assert np.all(mean.astype(np.float64).sum(axis=(-2, -1)) <= 1.0 + 1e-2)  # the rest is on prefix tokens
            assert m.pictures[attention_key(b, "heads")].shape == (4, m.card.num_prefix_tokens, m.card.num_heads, h, w)
        attention_rows = [r for r in m.measures if r.representation == "attention"]
        assert {r.measure for r in attention_rows} == {"attention_entropy", "cls_ring_enrichment",
                                                       "cls_high_norm_enrichment"}
        assert all(0 <= r.value <= 1 for r in attention_rows if r.measure == "attention_entropy")
        assert "pca_top3_variance" in measures
        # one file per picture view: 2 PCA recipes per (block, representation); per block and prefix
        # token the head mean over every image and the head grid
        assert len(views) == len(m.runs) + 2 * len({(r.block, r.representation) for r in m.runs}) + (
            len(m.blocks) * m.card.num_prefix_tokens * 2)
    assert {c.kind for c in results.comparisons} == {"models", "representations", "scaling"}
    assert (site / "atlas.json").is_file()
    report = (site / "build-report.html").read_text()
    assert "beyond max_images" in report  # skipped images are reported with their reason


def test_demo_evaluation_on_camvid(demo):
    if not (REPO.parent / "shared" / "data" / "camvid").is_dir():
        pytest.skip("../shared/data/camvid absent: evaluation stage not exercised")
    _, _, site, results = demo
    measures = {r.measure for m in results.models for r in m.measures if REGISTRY[r.measure].section == "evaluation"}
    assert {"seg_miou", "knn_miou_k10", "cka_full_vs_foreground", "pseudomask_miou"} <= measures
    for m in results.models:
        for r in m.measures:
            if r.measure in ("seg_miou", "knn_miou_k10", "pseudomask_miou"):
                assert 0.0 <= r.value <= 1.0


def test_adding_a_model_recomputes_only_that_model(demo, monkeypatch):
    tmp, docs, _, first = demo
    extracted, clustered = spy_on_work(monkeypatch)
    comp_dir = tmp / "out" / "state" / "comparisons"
    before = {p.parent.name: p.stat().st_mtime_ns for p in comp_dir.glob("*/key.txt")}
    text = small_demo(tmp, TINY_MAE)
    # the new model joins the scaling comparison only
    text = text.replace('models = ["ViT-S/16 learned-abs + CLS (DINO arch)", "ViT-B/16 (MAE arch)"]',
                        'models = ["ViT-S/16 learned-abs + CLS (DINO arch)", "ViT-B/16 (MAE arch)", '
                        '"Tiny ViT/16 (added later)"]')
    second = _build(tmp, text, docs)
    new = "tiny-vit-16-added-later"
    assert set(extracted) == {new}
    assert set(clustered) == {new}
    after = {p.parent.name: p.stat().st_mtime_ns for p in comp_dir.glob("*/key.txt")}
    changed = {name for name in after if after[name] != before.get(name)}
    # "architectures side by side" lists no models (= all) and the scaling page names the new one
    assert changed == {"architectures-side-by-side-random-init", "scaling-vit-learned-abs-s-to-b-random-init"}
    assert [m.card.slug for m in second.models][-1] == new
    assert (docs / "models" / f"{new}.md").is_file()


def spy_on_work(monkeypatch) -> tuple[list[str], list[str]]:
    """Record which models go through a forward pass (or the cache) and are clustered."""
    extracted, clustered = [], []
    real_compute, real_cluster = FeatureStream._compute, run_mod.cluster_features

    def spy_compute(self, images, *a, **k):
        extracted.append(self.loaded.spec.slug)
        return real_compute(self, images, *a, **k)

    current = [""]

    def spy_cluster(features, k, **kw):
        clustered.append(current[0])
        return real_cluster(features, k, **kw)

    real_run = run_mod.ModelRun.run

    def spy_run(self):
        current[0] = self.loaded.spec.slug
        return real_run(self)

    monkeypatch.setattr(FeatureStream, "_compute", spy_compute)
    monkeypatch.setattr(run_mod, "cluster_features", spy_cluster)
    monkeypatch.setattr(run_mod.ModelRun, "run", spy_run)
    return extracted, clustered


def test_stored_results_do_not_depend_on_the_site(demo, monkeypatch, tmp_path):
    """Deleting the rendered docs dir recomputes nothing; --render-only rebuilds the same pages
    from the stored records alone."""
    tmp, _, _, results = demo
    fresh = tmp_path / "site_src"
    extracted, clustered = spy_on_work(monkeypatch)
    _build(tmp, small_demo(tmp), fresh)
    assert extracted == [] and clustered == []
    again = tmp_path / "again"
    render_site(load_stored_atlas(_config(tmp, small_demo(tmp))), again)
    after = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert set(after) == {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    different = [str(f) for f in after if _normalised(again / f) != _normalised(fresh / f)]
    assert different == []
    for m in results.models:  # the gallery and its pictures were drawn again from the stored records
        views = {p.stem for p in (again / "generated" / "views" / "models" / m.card.slug).glob("*.png")}
        assert {map_key(r.block, r.representation, r.k) for r in m.runs} <= views
        assert {picture_key(r.block, r.representation, "pca") for r in m.runs} <= views


def _normalised(path: Path) -> bytes:
    """File bytes, minus what the build report says of this run on this machine (the parts that
    may differ): wall-clock timings, the feature budget taken from the free memory, and the exact
    stored bytes (the stored results keep their timings, whose digits vary)."""
    data = path.read_bytes()
    if path.name == "build-report.json":
        obj = json.loads(data)
        obj.pop("timings", None)
        for features in obj.get("features", {}).values():
            features.pop("budget_bytes", None)
            features.pop("stored_bytes", None)
        return json.dumps(obj, sort_keys=True).encode()
    if path.name == "build-report.csv":  # the CSV of the build report is the timings table
        return b""
    if path.name == "build-report.md":
        data = re.sub(rb"## Timings.*?\n## ", b"## ", data, flags=re.S)
        return re.sub(rb"fit the [0-9.e+-]+ GB budget", b"fit the budget", data)
    return data


def test_two_builds_are_identical(demo, tmp_path):
    """A second build from scratch, in another folder and later in the process (other tests ran
    in between), renders the same pages byte for byte as the module's first build."""
    docs_a, docs_b = demo[0] / "site_src_first", tmp_path / "b" / "site_src"
    _build(tmp_path / "b", small_demo(tmp_path / "b"), docs_b)
    files_a = sorted(p.relative_to(docs_a) for p in docs_a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(docs_b) for p in docs_b.rglob("*") if p.is_file())
    assert files_a == files_b
    different = [str(f) for f in files_a if _normalised(docs_a / f) != _normalised(docs_b / f)]
    assert different == []


# ---------------------------------------------------------------- real browser on the built demo

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_built_demo_in_chromium(demo):
    from test_browser import ARGS, _check_page, _Handler, _open

    sync_api = pytest.importorskip("playwright.sync_api")
    _, _, site, results = demo
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    model = results.models[0].card.slug
    comp = next(c.slug for c in results.comparisons if c.kind == "models")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            for path in ("index.html", f"models/{model}.html", f"compare/{comp}.html"):
                page, errors = _open(browser, f"{base}/{path}")
                _check_page(page, errors, f"demo-{path.replace('/', '-')}")
                if path.startswith("models/"):
                    page.wait_for_selector(".atlas-gallery canvas[data-map]")
                    src = page.locator(".atlas-gallery canvas[data-map]").first.get_attribute("data-map")
                    page.locator(".atlas-gallery select").first.select_option(index=1)
                    page.wait_for_function("s => document.querySelector('.atlas-gallery canvas[data-map]')"
                                           ".getAttribute('data-map') !== s", arg=src)  # the other view is drawn
                page.close()
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
