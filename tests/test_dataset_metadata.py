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


def _published_citations(version: str, page: str = "models/dino-vit-s16.md") -> dict:
    """Every citation format of one page of a build published as ``version`` (no site built)."""
    from atlas.site.citation import citation_cff, dataset_jsonld, page_citation, zenodo_json

    results = make_synthetic_results()
    results.site_url, results.published_version = f"https://example.org/atlas/{version}/", version
    results.latest_url = "https://example.org/atlas/latest/"
    cite = page_citation(results, page, "DINO ViT-S/16")
    return {"results": results, "cite": cite, "view": json.loads(cite["view_json"]),
            "cff": yaml.safe_load(citation_cff(results)), "zenodo": json.loads(zenodo_json(results)),
            "jsonld": dataset_jsonld(results, page, "DINO ViT-S/16", "d" * 60, ())}


def test_published_version_is_the_cited_version_in_every_format():
    """On a published build (--publish DIR --version 2026.12) every format names 2026.12 as the
    version: cite box, BibTeX (field and note), the "Cite this view" data, CITATION.cff, .zenodo.json
    and JSON-LD; the software version appears only labelled as such. The BibTeX key carries the
    version, so two versions cited in one paper do not collide."""
    pybtex = pytest.importorskip("pybtex.database")
    c = _published_citations("2026.12")
    software = c["results"].atlas_version
    assert software != "2026.12"
    assert c["cite"]["version"] == "2026.12"  # the cite box: "This is version 2026.12"
    ((key, entry),) = pybtex.parse_string(c["cite"]["bibtex"], "bibtex").entries.items()
    assert key == c["cite"]["key"] == c["view"]["key"] == "ssl-vit-atlas-models-dino-vit-s16-2026.12"
    assert re.fullmatch(r"[A-Za-z0-9_:.-]+", key)
    assert entry.fields["version"] == "2026.12"
    assert entry.fields["note"].startswith(f"Atlas version 2026.12 (SSL ViT Atlas software {software}),")
    assert f"Atlas version {software}" not in entry.fields["note"]
    assert c["view"]["version"] == "2026.12" and c["view"]["note"].startswith("Atlas version 2026.12 ")
    assert c["cff"]["version"] == "2026.12" and "Atlas version 2026.12 " in c["cff"]["abstract"]
    assert c["cff"]["references"][0]["type"] == "software"  # the software's own version stays apart
    assert c["zenodo"]["version"] == "2026.12" and "Atlas version 2026.12 " in c["zenodo"]["description"]
    assert c["jsonld"]["version"] == "2026.12"
    # two versions of one page: two keys, both valid BibTeX (a version's '+' is spelled out)
    other = _published_citations("2027.1+rc1")["cite"]
    assert other["key"] != key and re.fullmatch(r"[A-Za-z0-9_:.-]+", other["key"])
    assert list(pybtex.parse_string(other["bibtex"], "bibtex").entries) == [other["key"]]


def test_local_build_cites_the_software_version_unchanged():
    """Without --publish the citation is as before: the atlas version, the page's plain key."""
    from atlas.site.citation import citation_cff, citation_note, page_citation

    results = make_synthetic_results()
    cite = page_citation(results, "methods.md", "Methods")
    assert cite["key"] == "ssl-vit-atlas-methods" and cite["version"] == ""
    assert f"version      = {{{results.atlas_version}}}" in cite["bibtex"]
    assert citation_note(results).startswith(f"Atlas version {results.atlas_version}, built ")
    results.code_hash = "0123456789abcdef"  # the code that computed the numbers, which the version does not pin
    assert ", code 0123456789abcdef" in citation_note(results)
    assert yaml.safe_load(citation_cff(results))["version"] == results.atlas_version
