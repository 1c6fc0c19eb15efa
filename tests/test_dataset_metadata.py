"""Dataset metadata: schema.org Dataset JSON-LD on Home and every model page (expanded with a
JSON-LD processor, pyld, offline), the DOI in BibTeX, CITATION.cff and .zenodo.json, and a --doi
that is not a DOI refused in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_hostile_inputs import error_line, project, run_cli

from atlas.site import build_site, render_site
from conftest import make_synthetic_results

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "https://schema.org/"
# Google Dataset Search: required name and description; the list beside them
REQUIRED = ["name", "description", "version", "url", "license", "creator", "dateModified", "distribution"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("metadata")
    results = make_synthetic_results(root / "site_src")
    results.site_url, results.licence, results.doi = "https://example.org/atlas/3/", "CC-BY-4.0", "10.5281/zenodo.42"
    render_site(results, root / "site_src")
    return build_site(REPO / "mkdocs.yml", docs_dir=root / "site_src", site_dir=root / "site"), results


def _expanded(html: str) -> list[dict]:
    """The page's JSON-LD, expanded by pyld with the schema.org context served offline (as
    ``@vocab``: every term is a schema.org IRI)."""
    jsonld = pytest.importorskip("pyld").jsonld
    (block,) = re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, re.S)

    def loader(url, options=None):
        assert url.rstrip("/") == SCHEMA.rstrip("/"), url  # nothing else is fetched
        return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
                "document": {"@context": {"@vocab": SCHEMA}}}

    return jsonld.expand(json.loads(block), {"documentLoader": loader})


@pytest.mark.parametrize("page", ["index.html", "models/dino-vit-s16.html"])
def test_pages_carry_a_valid_schema_org_dataset(site, page):
    folder, results = site
    (node,) = _expanded((folder / page).read_text())
    assert node["@type"] == [SCHEMA + "Dataset"]
    for prop in REQUIRED:
        assert node.get(SCHEMA + prop), (page, prop)
    assert len(node[SCHEMA + "description"][0]["@value"]) >= 50  # Google: 50 to 5000 characters
    assert node[SCHEMA + "url"][0]["@value"] == results.site_url + page
    assert node[SCHEMA + "identifier"][0]["@value"] == "https://doi.org/10.5281/zenodo.42"
    assert node[SCHEMA + "license"][0]["@value"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    downloads = [d[SCHEMA + "contentUrl"][0]["@value"] for d in node[SCHEMA + "distribution"]]
    assert all(d.startswith(results.site_url) for d in downloads)
    for d in downloads:  # every download is in the site
        assert (folder / d[len(results.site_url):]).is_file(), d


def test_doi_in_bibtex_cff_and_zenodo(site):
    folder, results = site
    assert "doi          = {10.5281/zenodo.42}" in (folder / "methods.html").read_text()
    cff = yaml.safe_load((folder / "CITATION.cff").read_text())
    assert cff["doi"] == "10.5281/zenodo.42" and cff["license"] == "CC-BY-4.0"
    zenodo = json.loads((folder / ".zenodo.json").read_text())
    assert zenodo["upload_type"] == "dataset" and zenodo["doi"] == "10.5281/zenodo.42"
    assert zenodo["license"] == "CC-BY-4.0" and zenodo["creators"] == [{"name": "SSL ViT Atlas contributors"}]


def test_a_doi_that_is_not_a_doi_is_one_line(tmp_path, capsys):
    config = project(tmp_path)
    assert run_cli(config, "--doi", "zenodo 42", "--no-site") == 2
    assert "--doi" in error_line(capsys) and not (tmp_path / "out").exists()
