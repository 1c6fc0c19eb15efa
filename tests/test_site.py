"""Site layer: render the synthetic results, build with ``mkdocs build --strict``, check output."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from atlas.records import RANDOM_INIT_LABEL
from atlas.site import build_site, page_weight, render_site
from atlas.site.measure_words import WORDS
from conftest import make_synthetic_results

SEG = WORDS["seg_miou"].title

REPO = Path(__file__).resolve().parents[1]
MAX_MODEL_PAGE = 2 * 1024 * 1024
EVIL = "<script>alert(1)</script>"


def _build(root: Path, results=None, **kw) -> tuple[Path, Path]:
    docs = root / "site_src"
    results = results or make_synthetic_results(docs, **kw)
    render_site(results, docs)
    site = build_site(REPO / "mkdocs.yml", docs_dir=docs, site_dir=root / "site")
    return docs, site


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    docs, site = _build(root)
    return docs, site


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_page_exists(built):
    _, site = built
    expected = ["index.html", "methods.html", "images.html", "build-report.html", "guide/how-to-read.html",
                "models/dino-vit-s16.html", "models/mae-vit-b16.html", "models/vit-s16-random.html",
                "compare/ssl-vs-random.html", "atlas.json", "assets/js/vendor/plotly-cartesian.min.js",
                "assets/js/atlas.js", "CITATION.cff"]
    for rel in expected:
        assert (site / rel).is_file(), rel
    assert not (site / "assets/js/plotly.min.js").exists()  # the 4.8 MB full bundle is not shipped
    tabs = re.search(r'<nav class="md-tabs".*?</nav>', _text(site / "index.html"), re.S).group(0)
    labels = [t.strip() for t in re.findall(r'class="md-tabs__link[^"]*">\s*([^<]+?)\s*</a>', tabs)]
    assert labels == ["Home", "Guide", "Models", "Comparisons", "Methods", "Images", "Build report"]


def test_random_init_label_everywhere(built):
    _, site = built
    page = _text(site / "models/vit-s16-random.html")
    assert re.search(r"<h1[^>]*>ViT-S/16 \(random init — architecture baseline\)", page)
    assert 'class="admonition danger"' in page
    assert f"<title>ViT-S/16 ({RANDOM_INIT_LABEL})" in page
    # every figure title on that page carries the label
    specs = _specs(site, "models/vit-s16-random.html")
    assert len(specs) >= 5
    for spec in specs.values():
        assert RANDOM_INIT_LABEL in spec["layout"]["title"]["text"]
    home = _text(site / "index.html")
    row = re.search(r"<tr>\s*<td><a href=\"models/vit-s16-random.html\">.*?</tr>", home, re.S)
    assert row and RANDOM_INIT_LABEL in row.group(0)
    comp = _text(site / "compare/ssl-vs-random.html")
    assert comp.count(RANDOM_INIT_LABEL) >= 3  # admonition, models list, gallery column, curves
    heads = re.findall(r'class="atlas-colhead">([^<]*)<', comp)
    assert f"ViT-S/16 ({RANDOM_INIT_LABEL})" in heads
    # a pretrained model's page does not carry it in its title
    assert RANDOM_INIT_LABEL not in re.search(r"<h1.*?</h1>", _text(site / "models/dino-vit-s16.html")).group(0)
    # the random model's card says how its weights were made; a pretrained model's has no such row
    assert "random-init recipe" in page and "torch.manual_seed(0), then timm" in page
    assert "random-init recipe" not in _text(site / "models/dino-vit-s16.html")
    # a build with some pretrained models speaks of self-supervised ones
    assert "what self-supervised Vision Transformers represent" in " ".join(home.split())


def test_untrusted_strings_are_escaped(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, display_names={"dino": EVIL})
    results.images[1].credit = '<img src=x onerror="alert(2)">'
    results.comparisons[0].title = "Cmp <b>bold</b> & co"
    # a measure the site has no words for shows what its record holds (an older build's words)
    results.measure_info["mIoU vs human masks"] = {"title": EVIL, "definition": '<img src=x onerror="alert(3)">',
                                                   "section": "evaluation", "leaderboard": 1}
    _, site = _build(tmp_path, results)
    for html_file in site.rglob("*.html"):
        text = _text(html_file)
        assert EVIL not in text, html_file
        assert "<img src=x onerror" not in text and '<img src="x"' not in text, html_file
        assert "<b>bold</b>" not in text, html_file
    page = _text(site / "models/dino-vit-s16.html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    board = _text(site / "compare/segmentation-quality.html")  # the record's title, as a column head
    assert re.search(r"<th[^>]*>[^<]*&lt;script&gt;alert\(1\)&lt;/script&gt;", board)


def test_config_text_shown_verbatim(built):
    _, site = built
    for page in ("methods.html", "build-report.html"):
        text = _text(site / page)
        block = re.search(r'<div class="[^"]*highlight[^"]*"><pre>.*?</pre></div>', text, re.S)
        assert block, page
        plain = re.sub(r"<[^>]+>", "", block.group(0))
        assert "models: [dino, mae, random]" in plain and "&lt;b&gt; &amp; ``` fence" in plain


def test_atlas_json(built):
    docs, site = built
    index = json.loads(_text(site / "atlas.json"))
    assert index["atlas_version"] == "0.1.0-test"
    assert index["config_hash"] == "f" * 64
    assert [m["slug"] for m in index["models"]] == ["dino-vit-s16", "mae-vit-b16", "vit-s16-random"]
    rnd = index["models"][2]
    assert rnd["is_random_init"] and rnd["provenance"] == RANDOM_INIT_LABEL and RANDOM_INIT_LABEL in rnd["label"]
    assert index["comparisons"][0]["page"] == "compare/ssl-vs-random.html"
    for entry in index["models"] + index["comparisons"] + index["pages"]:
        assert (site / entry["page"]).is_file(), entry["page"]
        for f in entry["data"].values():
            assert (site / f).is_file(), f
    assert not (site / ".atlas-nav.json").exists()  # build plumbing is not published


def test_downloads_parse(built):
    _, site = built
    index = json.loads(_text(site / "atlas.json"))
    for entry in index["models"] + index["comparisons"] + index["pages"]:
        rows = list(csv.DictReader(io.StringIO(_text(site / entry["data"]["csv"]))))
        data = json.loads(_text(site / entry["data"]["json"]))
        assert isinstance(data, dict) and data
        html = _text(site / entry["page"])
        name = Path(entry["data"]["csv"]).name
        assert f'href="{name}"' in html, f"{entry['page']} does not link {name}"
    rows = list(csv.DictReader(io.StringIO(_text(site / "models/dino-vit-s16.csv"))))
    measures = {r["measure"] for r in rows}
    assert {"cluster_size", "inertia", "position decodability (R²)", "mIoU vs human masks"} <= measures
    assert all(float(r["value"]) == float(r["value"]) for r in rows)
    model = json.loads(_text(site / "models/dino-vit-s16.json"))
    assert model["model"]["timm_name"] == "vit_small_patch16_224.dino"
    assert len(model["runs"]) == 16


def _bibtex(text: str) -> list[str]:
    return [html.unescape(b) for b in re.findall(r'<code class="language-bibtex">(.*?)</code>', text, re.S)]


def test_cite_box_on_every_page_local_build(built):
    """Without a site URL: every page (404 aside) has a cite box that says the URL is not set, and
    BibTeX that a real parser reads, with no URL fields and no relative "stable URL"."""
    pybtex = pytest.importorskip("pybtex.database")
    _, site = built
    keys = set()
    for html_file in site.rglob("*.html"):
        if html_file.name == "404.html":
            continue
        text = _text(html_file)
        assert 'id="cite-this-page"' in text, html_file
        assert "Site URL not set" in text and "Stable URL" not in text, html_file
        (bib,) = _bibtex(text)
        entry = pybtex.parse_string(bib, "bibtex").entries
        (key,) = entry.keys()
        keys.add(key)
        fields = entry[key].fields
        assert "url" not in fields and "howpublished" not in fields
        assert fields["version"] == "0.1.0-test" and "f" * 64 in fields["note"] and fields["year"] == "2025"
    assert len(keys) == len([p for p in site.rglob("*.html") if p.name != "404.html"])  # one key a page
    assert not (site / "sitemap.xml").exists() or "<loc>" not in _text(site / "sitemap.xml")
    assert 'rel="canonical"' not in _text(site / "index.html")


def test_site_url_citations(tmp_path):
    """With a site URL: absolute stable URLs, BibTeX with url / urldate / version / note, corporate
    author as one name, LaTeX-safe title, canonical links, a filled sitemap and CITATION.cff."""
    pybtex = pytest.importorskip("pybtex.database")
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, display_names={"mae": "MAE_ViT & B/16 — 100%"})
    results.site_url = "https://atlas.example.org/v1/"
    _, site = _build(tmp_path, results)
    pages = [p for p in site.rglob("*.html") if p.name != "404.html"]
    for page in pages:
        text = _text(page)
        url = results.site_url + page.relative_to(site).as_posix()
        assert f'<link rel="canonical" href="{url}">' in text, page
        assert f'Stable URL: <a href="{url}">' in text, page
        entry = pybtex.parse_string(_bibtex(text)[0], "bibtex").entries
        fields = next(iter(entry.values())).fields
        assert fields["url"] == url and fields["urldate"] == "2025-01-02"
        assert fields["howpublished"] == f"\\url{{{url}}}"
        (author,) = next(iter(entry.values())).persons["author"]
        assert str(author) == "{SSL ViT Atlas contributors}"  # one corporate name, not "contributors, SSL ViT Atlas"
    mae = next(iter(pybtex.parse_string(_bibtex(_text(site / "models/mae-vit-b16.html"))[0], "bibtex")
                    .entries.values()))
    assert mae.fields["title"] == ("{MAE\\_ViT \\& B/16 --- 100\\% --- SSL ViT Atlas (synthetic test build)}")
    sitemap = _text(site / "sitemap.xml")
    # every page, and the site root first (mkdocs-material's version selector needs it listed)
    assert sorted(re.findall(r"<loc>(.*?)</loc>", sitemap)) == sorted([results.site_url] + [
        results.site_url + p.relative_to(site).as_posix() for p in pages])
    assert re.findall(r"<loc>(.*?)</loc>", sitemap)[0] == results.site_url
    # 404 under a sub-path: its assets are absolute paths under the site's path
    assert 'href="/v1/assets/stylesheets/' in _text(site / "404.html")
    cff = yaml.safe_load(_text(site / "CITATION.cff"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "dataset" and cff["url"] == results.site_url
    assert cff["version"] == "0.1.0-test" and str(cff["date-released"]) == "2025-01-02"
    assert cff["authors"] == [{"name": "SSL ViT Atlas contributors"}]
    assert "f" * 64 in cff["abstract"]


def test_repository_citation_cff():
    import atlas

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["title"] == "SSL ViT Atlas"
    assert cff["version"] == atlas.__version__ and cff["authors"][0]["name"]


def test_plotly_only_where_plots(built):
    """No page loads plotly.js by itself: atlas.js loads the cartesian bundle on pages with plots,
    when one scrolls into view (checked in the browser tests)."""
    _, site = built
    for html_file in site.rglob("*.html"):
        text = _text(html_file)
        assert "plotly" not in " ".join(re.findall(r"<script[^>]+src=\"([^\"]*)\"", text)), html_file
        assert "plotly.js v" not in text and "Plotly.newPlot(" not in text, html_file
    assert "vendor/plotly-cartesian.min.js" in _text(site / "assets/js/atlas.js")
    page = _text(site / "models/dino-vit-s16.html")
    # deterministic div ids, PNG/SVG export configured, no "Share chart" upload button
    assert 'id="plot-dino-vit-s16-fig-sizes"' in page
    assert 'data-src="dino-vit-s16.figures.js"' in page  # the specs are not in the HTML
    spec = _specs(site, "models/dino-vit-s16.html")["fig-sizes"]
    assert spec["config"]["toImageButtonOptions"]["format"] == "png" and spec["config"]["displaylogo"] is False
    assert spec["config"]["showSendToCloud"] is False and "sendChartToCloud" in spec["config"]["modeBarButtonsToRemove"]
    assert 'data-format="svg"' in page


def test_vendored_plotly_matches_the_plotly_package():
    """The figures are written by the plotly package for its plotly.js; the shipped bundle must be
    that major version, and must hold every trace type the site draws."""
    import plotly.offline

    from atlas.site.pages import PLOTLY_BUNDLE, check_plotly_bundle

    assert check_plotly_bundle().split(".")[0] == plotly.offline.get_plotlyjs_version().split(".")[0]
    bundle = PLOTLY_BUNDLE.read_text(encoding="utf-8")
    for trace in ("scatter", "bar", "box", "heatmap"):
        assert f'moduleType:"trace",name:"{trace}"' in bundle, trace


def test_no_external_resources(built):
    _, site = built
    for html_file in site.rglob("*.html"):
        text = _text(html_file)
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text
        # resources the page loads (links to a credited dataset's home page are not loaded)
        for url in re.findall(r'(?:src="|<link[^>]+href=")(https?://[^"]+)"', text):
            assert url.startswith("https://github.com/squidfunk") or "mkdocs" in url, (html_file, url)


def test_page_weight_under_budget(built):
    _, site = built
    for slug in ("dino-vit-s16", "mae-vit-b16", "vit-s16-random"):
        weight = page_weight(site, f"models/{slug}.html")
        assert 0 < weight <= MAX_MODEL_PAGE, (slug, weight)


def _manifest(page: str, gallery_id: str = "gallery") -> dict:
    raw = re.search(rf'<script type="application/json" id="{gallery_id}-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(raw)


def _view_files(manifest: dict, view: dict) -> list[str]:
    """Page-relative view files of a view's columns."""
    return [manifest["sprites"][c[0]]["src"] for c in view["cells"] if c]


def test_gallery_manifest(built):
    _, site = built
    # a model without pictures: block, representation, K
    page = _text(site / "models/mae-vit-b16.html")
    manifest = _manifest(page)
    assert [a["name"] for a in manifest["axes"]] == ["block", "representation", "k"]
    assert len(manifest["views"]) == 4 * 2 * 2
    for key, view in manifest["views"].items():
        block, rep, k = (int(i) for i in key.split("|"))
        (src,) = _view_files(manifest, view)
        assert src.endswith(f"/b{[2, 5, 8, 11][block]}-{['tokens', 'keys'][rep]}-k{[4, 8][k]}.png")
        assert (site / "models" / src).resolve().is_file()
        assert view["cells"] == [[manifest["sprites"].index(next(s for s in manifest["sprites"] if s["src"] == src)), 1, 0]]
    assert [r[1] for r in manifest["images"]] == ["sky-and-disc", "red waves", "blue_field", "dusk"]
    for row in manifest["images"]:  # every row has its shared photo
        (photo,) = row[3].values()
        assert "/generated/photos/" in photo and (site / "models" / photo).resolve().is_file()
    sprite = manifest["sprites"][0]
    assert sprite["kind"] == "labels" and len(sprite["legend"]) == max(4, 1) and set(sprite["numbers"]) == {
        "largest", "border", "count"}
    assert "<img" not in page.split('id="gallery-data"')[0].split('data-anchor="gallery"')[1]  # cells are drawn by script
    assert 'id="attention-grid-data"' not in page and "Not computed in this build" in page


def test_gallery_picture_axis_and_attention_grid(built):
    """With pictures, the gallery's fourth axis switches cluster maps, PCA-RGB (both recipes) and the
    CLS attention (head mean; the same for every representation and K); the attention grid has
    one row per image and one column per head plus the head mean."""
    _, site = built
    page = _text(site / "models/dino-vit-s16.html")
    manifest = _manifest(page)
    axes = manifest["axes"]
    assert [a["name"] for a in axes] == ["block", "representation", "k", "picture"]
    assert axes[3]["values"] == ["clusters", "pca", "pca-fg", "attention"]
    assert "CLS" in axes[3]["labels"][3]
    assert len(manifest["views"]) == 4 * 2 * 2 * 4
    for key, view in manifest["views"].items():
        block, rep, k, kind = (int(i) for i in key.split("|"))
        b, r = [2, 5, 8, 11][block], ["tokens", "keys"][rep]
        expected = [f"/b{b}-{r}-k{[4, 8][k]}.png", f"/b{b}-{r}-pca.png",
                    f"/b{b}-{r}-pca-fg.png", f"/b{b}-attention-mean-t0.png"][kind]
        (src,) = _view_files(manifest, view)
        assert src.endswith(expected), (key, src)
        assert (site / "models" / src).resolve().is_file()
        assert manifest["sprites"][view["cells"][0][0]]["kind"] == ["labels", "rgb", "rgb", "attention"][kind]
    grid = _manifest(page, "attention-grid")
    assert [a["name"] for a in grid["axes"]] == ["attention_block", "token"]
    assert grid["axes"][1]["labels"] == ["CLS"]
    view = grid["views"]["3|0"]  # block 11, CLS
    assert view["cells"] == [[0 if len(grid["sprites"]) == 1 else view["cells"][0][0], 7, j] for j in range(7)]
    assert _view_files(grid, view)[0].endswith("/b11-attention-heads-t0.png")
    assert grid["columns"] == ["head mean"] + [f"head {j}" for j in range(1, 7)]
    assert len(grid["images"]) == 4


def test_attention_pictures_are_scaled_to_their_own_peak(built):
    """Each attention map of a head grid spans the colour scale from its own most attended patch:
    every map's brightest patch is level 255, and the first column is the head mean."""
    from atlas.site.maps import decode_view

    _, site = built
    page = _text(site / "models/dino-vit-s16.html")
    grid = _manifest(page, "attention-grid")
    sprite = grid["sprites"][grid["views"]["3|0"]["cells"][0][0]]
    levels = decode_view((site / "models" / sprite["src"]).resolve().read_bytes(), sprite["n"], sprite["h"], sprite["w"])
    assert (levels.reshape(len(levels), -1).max(axis=1) == 255).all()


def test_render_is_deterministic(tmp_path):
    outputs = []
    for name, date in (("a", "2025-01-02"), ("b", "2031-12-24")):
        docs = tmp_path / name / "site_src"
        results = make_synthetic_results(docs, build_date=date)
        paths = render_site(results, docs)
        again = render_site(results, docs)  # idempotent in place
        assert paths == again
        year = rb"\b" + date[:4].encode() + rb"\b"  # BibTeX's year field (static assets aside)
        outputs.append({p.relative_to(docs).as_posix(): p.read_bytes() if "assets/" in p.as_posix() else
                        re.sub(year, b"YEAR", p.read_bytes().replace(date.encode(), b"DATE")) for p in paths})
    assert outputs[0].keys() == outputs[1].keys()
    for rel in outputs[0]:
        assert outputs[0][rel] == outputs[1][rel], rel


def test_empty_results_build(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    for m in results.models:
        m.measures, m.figures = [], {}
    results.models[1].runs = []
    results.skipped, results.methods, results.timings = [], {}, {}
    _, site = _build(tmp_path, results)
    assert not (site / "compare").exists()
    page = _text(site / "models/mae-vit-b16.html")
    assert page.count("Not computed in this build") >= 3
    assert "Nothing was skipped" in _text(site / "build-report.html")
    assert "Comparisons" not in re.search(r'<nav class="md-tabs".*?</nav>', _text(site / "index.html"), re.S).group(0)


def test_stale_pages_are_removed(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs)
    render_site(results, docs)
    assert (docs / "models/mae-vit-b16.md").exists()
    results.models = results.models[:1]
    results.comparisons = []
    render_site(results, docs)
    assert not (docs / "models/mae-vit-b16.md").exists() and not (docs / "compare/ssl-vs-random.md").exists()


def _specs(site: Path, page: str) -> dict[str, dict]:
    """Plotly specs of a built page by figure anchor (div id ``plot-<page slug>-<anchor>``), from
    the page's ``.figures.js``."""
    text = _text(site / page)
    anchors = dict((div, anchor) for anchor, div in re.findall(
        r'<figure class="atlas-figure" id="([^"]+)"[^>]*>\s*<div class="atlas-plot"[^>]*>\s*<div id="([^"]+)"', text))
    script = _text(site / page.replace(".html", ".figures.js"))
    assert script.startswith("atlasFigures({") and script.endswith("});\n")
    specs = json.loads(script[len("atlasFigures("):-len(");\n")])
    assert set(specs) == set(anchors)  # one spec per plot on the page, no more
    return {anchors[div]: spec for div, spec in specs.items()}


def test_measure_titles_replace_raw_names(built):
    docs, site = built
    page = _text(site / "models/dino-vit-s16.html")
    specs = _specs(site, "models/dino-vit-s16.html")
    spec = specs["fig-measure-positional-nce"]  # anchor keeps the raw name's slug
    title = "Positional clustering (chance-corrected NCE)"
    assert spec["layout"]["title"]["text"].startswith(title)
    assert spec["layout"]["yaxis"]["title"]["text"] == "Positional clustering<br>(chance-corrected NCE)"
    hovered = [t for t in spec["data"] if "hovertemplate" in t]
    assert hovered and all(title in t["hovertemplate"] and "positional_nce" not in t["hovertemplate"] for t in hovered)
    # the interval as a band, the references as thin lines of the representation's colour
    bands = [t for t in spec["data"] if t.get("fill") == "toself"]
    assert len(bands) == 2 and all(t.get("hoverinfo") == "skip" for t in bands)
    assert all(t.get("mode") == "lines" for t in bands)  # an outline only: no marker at the band's corners
    refs = [t for t in spec["data"] if "reference" in t.get("name", "")]
    assert len(refs) == 4 and {t["name"] for t in refs} == {"content-only reference", "position-only reference"}
    assert sum(t.get("showlegend", True) for t in refs) == 2  # one legend entry per kind of reference
    assert {t["line"]["color"] for t in refs} == {"#0072B2", "#E69F00"}
    lines = {t["name"]: t["line"]["color"] for t in spec["data"] if t.get("mode") == "lines+markers"}
    assert lines == {"tokens": "#0072B2", "keys": "#E69F00"}  # one colour per representation, everywhere
    seg = specs["fig-measure-seg-miou"]
    assert {t["name"] for t in seg["data"] if t["name"].endswith("baseline")} == {
        "chance baseline", "position baseline", "ceiling baseline"}
    fig = re.search(r'<figure class="atlas-figure" id="fig-measure-positional-nce"[^>]*>.*?</figure>', page,
                    re.S).group(0)
    caption = re.search(r"<figcaption>(.*?)</figcaption>", fig, re.S).group(1)
    assert title in caption and "<code>positional_nce</code>" in caption
    assert 'class="atlas-figdesc">' + WORDS["positional_nce"].definition in html.unescape(caption)
    # without measure_info: the raw name, no description
    raw = specs["fig-measure-cluster-size-entropy"]
    assert raw["layout"]["yaxis"]["title"]["text"] == "cluster size entropy"
    comp = _specs(site, "compare/ssl-vs-random.html")
    axis = comp["fig-measure-seg-miou"]["layout"]["yaxis"]["title"]["text"]
    assert axis.replace("<br>", " ") == SEG  # long titles wrap
    # downloads keep raw names
    measures = {r["measure"] for r in csv.DictReader(io.StringIO(_text(site / "models/dino-vit-s16.csv")))}
    assert {"positional_nce", "seg_miou", "knn_miou_k10"} <= measures


def test_heatmap_axis_labels(built):
    _, site = built
    specs = _specs(site, "models/dino-vit-s16.html")
    variants = ["full", "foreground_only", "background_only"]
    cka = specs["fig-masking-linear-cka"]
    assert cka["data"][0]["x"] == variants and cka["data"][0]["y"] == variants
    assert cka["layout"]["xaxis"]["type"] == "category" and cka["layout"]["yaxis"]["type"] == "category"
    assert "patch row" not in cka["data"][0]["hovertemplate"]
    assert "patch" not in json.dumps(cka["layout"].get("xaxis", {}).get("title", ""))
    norm = specs["fig-token-norm"]  # no labels: patch grid as before
    assert "x" not in norm["data"][0] and "patch row %{y}, col %{x}" in norm["data"][0]["hovertemplate"]
    assert norm["layout"]["xaxis"]["title"]["text"] == "patch column"


def test_heatmap_title_names_block_and_representation_once():
    from atlas.site.figures import heatmap_figure

    def title(text, block=11, rep="keys"):
        payload = {"id": "x", "title": text, "z": [[0.0, 1.0]], "block": block, "representation": rep}
        return heatmap_figure(payload, "M").layout.title.text.replace("<br>", " ")

    assert title("Block 11 keys: how often each position's dominant cluster wins").count("lock 11") == 1
    assert title("Blank-input probe (grey), block 11 keys: cluster map").count("lock 11") == 1
    added = title("Token norm averaged over images")
    assert "block 11" in added and "keys" in added


def test_scaling_page(built):
    _, site = built
    page = _text(site / "compare/vit-scaling.html")
    specs = _specs(site, "compare/vit-scaling.html")
    nce = specs["fig-scaling-positional-nce"]
    assert nce["layout"]["xaxis"]["type"] == "log"
    assert nce["layout"]["title"]["text"].startswith("Positional clustering (chance-corrected NCE) vs model size")
    depths = [t for t in nce["data"] if t["name"].startswith("rel. depth")]
    assert [t["name"] for t in depths] == [f"rel. depth {d:.2f}" for d in (0.25, 0.5, 0.75, 1.0)]
    # the positional references beside them (one legend entry per kind)
    refs = [t for t in nce["data"] if t["name"].endswith(" reference")]
    assert {t["name"] for t in refs} == {"content-only reference", "position-only reference"} and len(refs) == 8
    for trace in depths:  # mae has no measures: only dino (22 M) and the random model (150 M)
        assert trace["x"] == [22_000_000, 150_000_000]
        assert trace["customdata"][0][0] == "DINO ViT-S/16" and trace["customdata"][0][1] == "22.0 M"
        assert "block %{customdata[2]}" in trace["hovertemplate"]
    last = depths[-1]
    assert last["y"] == pytest.approx([0.2, 0.4]) and [c[2] for c in last["customdata"]] == [11, 11]
    assert last["error_y"]["array"] == pytest.approx([0.04, 0.04])  # the records' intervals
    assert "fig-measure-positional-nce" in specs  # the depth overlays are still there
    # family summary: one row per model by size, key measures at relative depth 1.0
    table = re.search(r'id="family-summary".*?<table>(.*?)</table>', page, re.S).group(1)
    head = re.findall(r"<th[^>]*>(.*?)</th>", table)
    assert head == ["Model", "Params", "Depth", "Patch", "Positional clustering (chance-corrected NCE)",
                    SEG, "k-NN patch probe mIoU (k = 10)"]
    rows = [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
    # each number with its interval and where it was taken (the last block: not the leaderboard's)
    assert rows == [
        ["DINO ViT-S/16", "22.0 M", "12", "16 px", "0.200 [0.160, 0.240] block 11 tokens",
         "0.500 [0.470, 0.530] block 11 tokens", "0.500 block 11 tokens"],
        ["MAE ViT-B/16", "86.0 M", "12", "16 px", "—", "—", "—"],
        # marked as on the model pages: the seg_miou interval overlaps the position baseline's (≈), the
        # k-NN value lies under it (▼)
        [f"ViT-S/16 ({RANDOM_INIT_LABEL})", "150.0 M", "12", "16 px", "0.400 [0.360, 0.440] block 11 tokens",
         "0.233 ≈ [0.203, 0.263] block 11 tokens", "0.300 ▼ block 11 tokens"],
    ]
    assert "not at the block the leaderboard chooses" in " ".join(page.split())
    data = json.loads(_text(site / "compare/vit-scaling.json"))
    assert data["scaling"]["depths"] == [0.25, 0.5, 0.75, 1.0]
    assert {p["measure"] for p in data["scaling"]["points"]} >= {"positional_nce", "seg_miou"}
    # other comparison kinds have no scaling section
    assert 'id="scaling"' not in _text(site / "compare/ssl-vs-random.html")


def test_leaderboard_page(built):
    _, site = built
    page = _text(site / "compare/segmentation-quality.html")
    table = re.search(r'<div class="atlas-sortable" id="leaderboard-table">\s*<table>(.*?)</table>', page, re.S).group(1)
    head = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    # the numbers first, beside the model; what the model is after them
    assert head[:2] == ["Model", "Rank"] and head[-3:] == ["Family", "Training", "Params"]
    assert head[2:4] == [SEG, "k-NN patch probe mIoU (k = 10)"]  # preferred first
    body = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    links = [re.search(r'<a href="([^"]+)">([^<]+)</a>', tr).groups() for tr in body]
    # ranked by the first measure, models without it last; every model linked, labels kept
    assert links == [("../models/dino-vit-s16.html", "DINO ViT-S/16"),
                     ("../models/vit-s16-random.html", f"ViT-S/16 ({RANDOM_INIT_LABEL})"),
                     ("../models/mae-vit-b16.html", "MAE ViT-B/16")]
    for href, _ in links:
        assert (site / "compare" / href).resolve().is_file()
    # the value at the block chosen on held-out images (not the best), with its interval
    assert ('<td data-value="0.55">0.550<span class="atlas-ci">[0.520, 0.580]</span>'
            '<span class="atlas-where">block 11 keys</span></td>') in body[0]
    assert '<td data-value="22000000">22.0 M</td>' in body[0]
    # ranks in tiers: 0.550 [0.520, 0.580] and 0.283 [0.253, 0.313] do not overlap; no rank without the number
    assert [re.findall(r"<td[^>]*>(.*?)</td>", tr)[1] for tr in body] == ["1", "2", "—"]
    assert body[2].count("<td>—</td>") == len(head) - 4  # the rank and every measure
    assert f"best {SEG} on the 2 selection images" in page  # worded by the site
    baselines = re.search(r'<div class="atlas-sortable atlas-baselines">\s*<table>(.*?)</table>', page, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<tr><td>(.*?)</td>", baselines)] == [
        "chance", "colour", "position", "ceiling"]  # colour: the pseudo-mask column's
    assert '0.210<span class="atlas-ci">[0.180, 0.240]</span>' in baselines and ">0.330<" in baselines
    # one overlaid layer sweep per evaluation measure, tokens where available
    specs = _specs(site, "compare/segmentation-quality.html")
    assert {"fig-measure-seg-miou", "fig-measure-knn-miou-k10", "fig-measure-miou-vs-human-masks"} <= set(specs)
    names = [t["name"] for t in specs["fig-measure-seg-miou"]["data"] if t.get("fill") != "toself"]
    # the models, then the baselines of their (shared) patch grid, as on the model pages
    assert names == ["DINO ViT-S/16", f"ViT-S/16 ({RANDOM_INIT_LABEL})", "chance baseline", "position baseline",
                     "ceiling baseline"]
    data = specs["fig-measure-seg-miou"]["data"]
    bands = [t for t in data if t.get("fill") == "toself"]
    assert all(t.get("mode") == "lines" for t in bands)  # interval bands, no corner markers
    # the models' bands, and each baseline's with an interval, behind every line
    of_baselines = [t["legendgroup"] for t in bands if t["legendgroup"].endswith(" baseline")]
    assert [t["legendgroup"] for t in bands if not t["legendgroup"].endswith(" baseline")] == names[:2]
    assert sorted(of_baselines) == ["ceiling baseline", "chance baseline", "position baseline"]
    assert all(t.get("fill") == "toself" for t in data[:len(of_baselines)])
    # downloads, cite box, nav and atlas.json
    rows = list(csv.DictReader(io.StringIO(_text(site / "compare/segmentation-quality.csv"))))
    best = {(r["model"], r["measure"]): r for r in rows}
    assert float(best["dino-vit-s16", "seg_miou"]["value"]) == pytest.approx(0.55)
    assert float(best["dino-vit-s16", "seg_miou"]["lo"]) == pytest.approx(0.52)
    assert best["dino-vit-s16", "seg_miou"]["block"] == "11"
    assert best["dino-vit-s16", "seg_miou"]["representation"] == "keys"
    assert not any(r["model"] == "mae-vit-b16" for r in rows)
    assert {r["baseline"] for r in rows if not r["model"]} == {"chance", "colour", "position", "ceiling"}
    data = json.loads(_text(site / "compare/segmentation-quality.json"))
    assert data["models"][1]["chosen"]["seg_miou"] is None
    assert 'id="cite-this-page"' in page
    index = json.loads(_text(site / "atlas.json"))
    assert any(p["page"] == "compare/segmentation-quality.html" for p in index["pages"])
    home = _text(site / "index.html")
    assert 'href="compare/segmentation-quality.html"' in home


def test_leaderboard_only_with_evaluation_measures(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    for m in results.models:
        m.measures = [r for r in m.measures if results.measure_info.get(r.measure, {}).get("section") != "evaluation"]
    render_site(results, docs)
    assert not (docs / "compare").exists()
    assert "segmentation-quality" not in _text(docs / "atlas.json")


def test_home_opens_with_the_overview_matrix(built):
    """Home: models x relative depth cluster maps, grouped by family, before the highlights; each
    links to that model page's gallery at that block (checked in the browser test that it lands
    there); one view file per model holds every representation, depth and offered image."""
    _, site = built
    page = _text(site / "index.html")
    order = [page.index(x) for x in ('class="atlas-overview"', 'id="highlights"', 'id="protocol-in-one-screen"')]
    assert order == sorted(order)
    assert re.findall(r'<div class="atlas-overview__family">([^<]*)</div>', page) == ["dino", "mae", "vit"]
    links = re.findall(r'<a class="atlas-overview__cell" href="([^"]+)"', page)
    assert len(links) == 3 * 4  # 3 models x 4 relative depths
    # synthetic gallery blocks 2, 5, 8, 11 of 12: rel. depths 0.25, 0.5, 0.75, 1.0 -> blocks 2, 5, 8, 11
    hrefs = [h.replace("&amp;", "&") for h in links]
    assert hrefs[:4] == [f"models/dino-vit-s16.html?block={b}&representation=tokens&k=8#gallery" for b in (2, 5, 8, 11)]
    manifest = json.loads(re.search(r'<script type="application/json" id="overview-data">(.*?)</script>', page,
                                    re.S).group(1))
    assert manifest["reps"] == ["tokens", "keys"] and [i[0] for i in manifest["images"]][0] == "sky-and-disc"
    for row in manifest["rows"]:
        sprite = row["sprite"]
        assert (site / sprite["src"]).is_file() and sprite["n"] == 2 * 4 * 4  # reps x depths x images
        assert row["cells"]["tokens"] == [[b, 8] for b in (2, 5, 8, 11)]
    assert "sky-and-disc" in page  # the image is named


def test_overview_order_and_depth_tolerance():
    """Families keep their first appearance, models go smallest first within one; a representation
    stored at the last block only gets no cell at the shallow depths (not the last block's map)."""
    from atlas.records import ClusterRun
    from atlas.site.overview import family_order, overview_cells, overview_stack

    results = make_synthetic_results()
    dino, mae, rand = results.models
    mae.card.family = "dino"
    mae.card.params = 1_000  # the smallest of the family now
    assert [m.card.slug for m in family_order(results)] == ["mae-vit-b16", "dino-vit-s16", "vit-s16-random"]
    dino.representations = [*dino.representations, "tokens_normed"]
    dino.runs.append(ClusterRun(block=11, rel_depth=1.0, representation="tokens_normed", k=8, sizes=[], inertia=0.0))
    dino.label_maps["b11-tokens_normed-k8"] = dino.label_maps["b11-tokens-k8"]
    cells = overview_cells(results)["dino-vit-s16"]
    assert [c and c["block"] for c in cells["tokens_normed"]] == [None, None, None, 11]
    assert [c["block"] for c in cells["tokens"]] == [2, 5, 8, 11]
    stack = overview_stack(results, dino)
    assert stack.shape[0] == 3 * 4 * 4  # tokens, keys, tokens_normed x depths x images
    np.testing.assert_array_equal(stack[(2 * 4 + 3) * 4 + 1], dino.label_maps["b11-tokens-k8"][1])
    assert not stack[2 * 4 * 4:(2 * 4 + 3) * 4].any()  # no map where no block is near


def test_model_page_opens_with_the_gallery(built):
    _, site = built
    page = _text(site / "models/dino-vit-s16.html")
    assert page.index('id="gallery"') < page.index('id="highlights"')
    card = re.search(r"<details class=\"info\">\s*<summary>Model card</summary>(.*?)</details>", page, re.S)
    assert card and "vit_small_patch16_224.dino" in card.group(1)
    assert page.index('id="gallery"') < page.index("<details")  # the card, collapsed, below the gallery


def test_model_notes_from_architecture_facts(built):
    """LayerScale (with its size) and RoPE notes only where the build recorded them; the final-norm
    note on every model page."""
    _, site = built
    rand = _text(site / "models/vit-s16-random.html")
    dino = _text(site / "models/dino-vit-s16.html")
    assert "LayerScale" in rand and "1e-05" in rand and "flat lines across depth" in rand
    assert "Rotary position embedding" in rand
    assert "flat lines across depth" not in dino and "Rotary position embedding" not in dino
    assert "before the model&#x27;s final norm" in dino


def test_provenance_on_every_page(built):
    _, site = built
    for html_file in site.rglob("*.html"):
        banner = re.search(r'<aside class="md-banner">(.*?)</aside>', _text(html_file), re.S)
        assert banner and RANDOM_INIT_LABEL in banner.group(1) and "1 of 3 models" in banner.group(1), html_file
        assert "(ViT-S/16)" in banner.group(1)


def test_comparison_names_models_whose_blocks_barely_change_the_tokens(built, tmp_path):
    """Random-init LayerScale (median |γ| 1e-5) makes a model's comparison curves flat: the
    comparison page says so and names it (its model page did; the comparison did not)."""
    _, site = built
    page = " ".join(_text(site / "compare/ssl-vs-random.html").split())
    note = re.search(r"Blocks that barely change the tokens.*?</div>", page).group(0)
    assert f"ViT-S/16 ({RANDOM_INIT_LABEL})" in note and "1e-05" in note and "DINO ViT-S/16" not in note
    assert "random init starts γ this small" in note
    # control: the same build with learned γ has no such note
    results = make_synthetic_results(tmp_path / "site_src")
    for m in results.models:
        m.card.layer_scale = None if m.card.layer_scale is None else 0.3
    _, plain = _build(tmp_path, results)
    assert "Blocks that barely change the tokens" not in _text(plain / "compare/ssl-vs-random.html")


def test_home_of_an_all_random_build_says_what_it_shows(tmp_path):
    """Every model random: the home page does not claim to show what self-supervised ViTs represent."""
    results = make_synthetic_results(tmp_path / "site_src")
    results.models = [m for m in results.models if m.card.is_random_init]
    results.comparisons = []
    _, site = _build(tmp_path, results)
    home = " ".join(_text(site / "index.html").split())
    assert "what randomly initialised Vision Transformer architectures represent" in home
    assert "what self-supervised Vision Transformers represent" not in home


def test_no_provenance_banner_without_random_models(tmp_path):
    results = make_synthetic_results(tmp_path / "site_src")
    results.models = [m for m in results.models if not m.card.is_random_init]
    results.comparisons = []
    _, site = _build(tmp_path, results)
    assert 'class="md-banner"' not in _text(site / "methods.html")


def test_images_page_credits_evaluation_images(built):
    _, site = built
    page = _text(site / "images.html")
    row = re.search(r'<tr>\s*<td><a href="https://example.org/camvid">CamVid</a>.*?</tr>', page, re.S).group(0)
    assert ">40<" in row and "CC BY-NC 4.0" in row and "Brostow" in row
    assert json.loads(_text(site / "images.json"))["evaluation_datasets"][0]["images"] == 40


def test_cluster_map_heatmaps_use_the_gallery_palette(built):
    from atlas.site.palette import palette_hex

    _, site = built
    spec = _specs(site, "models/dino-vit-s16.html")["fig-blank-grey-tokens"]["data"][0]
    assert spec["showscale"] is False and (spec["zmin"], spec["zmax"]) == (-0.5, 2.5)
    assert [c for _, c in spec["colorscale"][::2]] == palette_hex(3)  # cluster i -> gallery colour i
    assert "cluster %{customdata[1]}" in spec["hovertemplate"] and "%{z:.4g}" not in spec["hovertemplate"]


def test_single_block_measures_are_bars_on_an_honest_axis(built):
    _, site = built
    specs = _specs(site, "models/dino-vit-s16.html")
    pm = specs["fig-measure-pseudomask-miou"]
    assert [t["type"] for t in pm["data"]] == ["bar", "bar"]  # the model's value, then its baselines
    assert pm["data"][0]["x"] == ["keys"] and pm["data"][1]["x"] == ["colour baseline"]
    assert pm["data"][0]["error_y"]["array"] == [pytest.approx(0.02)]
    assert pm["layout"]["yaxis"]["range"] == [0.0, 1.0]
    sweep = specs["fig-measure-seg-miou"]
    assert sweep["layout"]["yaxis"]["range"] == [0.0, 1.0]  # bounded measure: its whole scale
    assert sweep["layout"]["xaxis"]["title"]["text"] == "relative depth ((block + 1) / depth)"


def test_cli_rejects_a_bad_site_url(capsys):
    from atlas.cli import main

    assert main(["--site-url", "example.org/atlas", "--render-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --site-url:") and "https://example.org/atlas/" in err and "\n" not in err


def test_comparison_column_without_maps_is_marked_not_computed(tmp_path):
    """A comparison column whose label maps are absent gets no view (the page says "not computed" in
    those cells) while the other columns keep theirs."""
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs)
    comp = next(c for c in results.comparisons if c.panels and c.panels[0].get("columns"))
    gone = comp.panels[0]["columns"][1]["maps"]
    del comp.label_maps[gone]
    render_site(results, docs)
    page = (docs / f"compare/{comp.slug}.md").read_text()
    manifest = json.loads(re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', page,
                                    re.S).group(1))
    cells = manifest["views"]["0"]["cells"]
    assert cells[1] is None and cells[0] is not None and len(manifest["images"]) == len(results.images)


def test_home_describes_a_comparison_its_config_leaves_undescribed(tmp_path):
    """Home lists every comparison with a line: the config's description, else what its kind shows."""
    from atlas.site import render_site
    from atlas.site.pages import COMPARISON_BLURBS

    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs)
    models, scaling = results.comparisons
    scaling.description = ""
    render_site(results, docs)
    home = (docs / "index.md").read_text(encoding="utf-8")
    assert f"): {models.description}" in home  # the config's own words kept
    assert "): " + COMPARISON_BLURBS["scaling"] in home
