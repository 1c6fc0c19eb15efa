"""One table of every number (atlas-results.parquet and .csv.gz): every page's CSV is a filter of it,
the two files hold the same rows, and the README's pandas example reproduces a leaderboard cell."""

from __future__ import annotations

import csv
import io
import math

import pytest

from atlas.site import render_site
from atlas.site.data import MODEL_CSV_COLUMNS, csv_text
from atlas.site.table import COLUMNS, CSV_FILE, PARQUET_FILE, results_table
from conftest import make_synthetic_results

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    docs = tmp_path_factory.mktemp("table") / "site_src"
    results = make_synthetic_results(docs)
    render_site(results, docs)
    return results, docs


def _missing(v) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))  # NaN: a missing cell in pandas


def _same(a, b) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=0)
    except (TypeError, ValueError):
        return str(a) == str(b)


def test_model_csvs_are_the_tables_rows_of_their_model(rendered):
    results, docs = rendered
    rows = results_table(results)
    for m in results.models:
        mine = [[r[c] for c in MODEL_CSV_COLUMNS] for r in rows if r["model"] == m.card.slug]
        assert (docs / "models" / f"{m.card.slug}.csv").read_text() == csv_text(MODEL_CSV_COLUMNS, mine)


def test_parquet_and_csv_hold_the_same_rows(rendered):
    results, docs = rendered
    parquet = pd.read_parquet(docs / PARQUET_FILE)
    text = pd.read_csv(docs / CSV_FILE, keep_default_na=False, na_values=[""])
    assert list(parquet.columns) == list(text.columns) == COLUMNS
    assert len(parquet) == len(text) == len(results_table(results)) > 0
    for col in ("value", "lo", "hi", "block", "k"):
        pd.testing.assert_series_equal(parquet[col].astype(float), text[col].astype(float), check_names=False)
    assert (parquet["model"] == text["model"]).all() and (parquet["measure"] == text["measure"]).all()
    assert set(parquet["version"]) == {results.atlas_version}
    assert (parquet.loc[parquet["seed_spread"].notna(), "seeds"] == results.kmeans_seeds).all()


def test_comparison_and_leaderboard_csvs_are_filters_of_the_table(rendered):
    results, docs = rendered
    table = pd.read_parquet(docs / PARQUET_FILE)
    measured = table[(table["reference"] == "") & (table["baseline"] == "")]
    for c in results.comparisons:
        own = measured["comparison"] == (c.slug if c.measures else "")  # its own numbers, else its models'
        for row in csv.DictReader(io.StringIO((docs / "compare" / f"{c.slug}.csv").read_text())):
            hit = measured[own & (measured["model"] == row["model"]) & (measured["measure"] == row["measure"])
                           & (measured["representation"] == row["representation"])
                           & (measured["rel_depth"] == float(row["rel_depth"]))]
            assert any(_same(v, row["value"]) and _same(lo, row["lo"]) and _same(hi, row["hi"])
                       for v, lo, hi in zip(hit["value"], hit["lo"], hit["hi"])), (c.slug, row)
    board = list(csv.DictReader(io.StringIO((docs / "compare" / "segmentation-quality.csv").read_text())))
    picked = measured[measured["leaderboard"]]
    assert (picked["comparison"] == "").all()
    cells = [row for row in board if not row["baseline"]]
    assert len(cells) == len(picked) > 0
    for row in board:  # the baselines beside the board: a model's baseline rows
        if row["baseline"]:
            hit = table[(table["baseline"] == row["baseline"]) & (table["measure"] == row["measure"])]
            assert any(_same(v, row["value"]) and _same(lo, row["lo"]) for v, lo in zip(hit["value"], hit["lo"])), row
    for row in cells:
        (hit,) = picked[(picked["model"] == row["model"]) & (picked["measure"] == row["measure"])].itertuples()
        assert _same(hit.value, row["value"]) and _same(hit.lo, row["lo"]) and _same(hit.block, row["block"])
        assert hit.representation == row["representation"]


def test_readme_example_reproduces_a_leaderboard_cell(rendered):
    _, docs = rendered
    board = {r["model"]: r for r in csv.DictReader(io.StringIO((docs / "compare" / "segmentation-quality.csv")
                                                                 .read_text())) if r["measure"] == "seg_miou"}
    # the README's lines, on the local file
    t = pd.read_parquet(docs / PARQUET_FILE)
    cell = t[t.leaderboard & (t.measure == "seg_miou") & (t.model == "dino-vit-s16")]
    value, lo, hi = cell[["value", "lo", "hi"]].iloc[0]
    assert (value, lo, hi) == (float(board["dino-vit-s16"]["value"]), float(board["dino-vit-s16"]["lo"]),
                               float(board["dino-vit-s16"]["hi"]))


def test_model_json_numbers_are_rows_of_the_table(rendered):
    """A model page's JSON holds the same numbers (measures, references, baselines) as the table."""
    import json

    results, docs = rendered
    table = pd.read_parquet(docs / PARQUET_FILE)
    for m in results.models:
        data = json.loads((docs / "models" / f"{m.card.slug}.json").read_text())
        mine = table[table["model"] == m.card.slug]
        for kind, rows in (("measures", data["measures"]), ("references", data["references"]),
                           ("baselines", data["baselines"])):
            for r in rows:
                if kind == "baselines":
                    hit = mine[(mine["baseline"] == r["name"]) & (mine["measure"] == r["measure"])]
                else:
                    hit = mine[(mine["measure"] == r["measure"]) & (mine["block"] == r["block"])
                               & (mine["representation"] == r["representation"])
                               & (mine["reference"] == (r.get("reference") or ""))]
                assert any(_same(v, r["value"]) and _same(lo, r.get("lo")) for v, lo in zip(hit["value"], hit["lo"])), (
                    m.card.slug, kind, r)


def test_label_propagation_rows_carry_their_frames_size():
    """A model's propagation numbers are on frames of their own size (their baselines' grid):
    their rows say that size, the model's other rows its own input size."""
    from atlas.records import Baseline, MeasureRow

    results = make_synthetic_results()
    m = results.models[0]
    m.measures.append(MeasureRow(11, 1.0, "tokens", "propagation_jf", 0.5, lo=0.4, hi=0.6))
    m.baselines.append(Baseline("propagation_jf", "zero motion", 0.6, 0.5, 0.7, grid=[14, 19, 16]))
    rows = [r for r in results_table(results) if r["model"] == m.card.slug]
    sizes = {(r["measure"], r["baseline"]): r["input_size"] for r in rows}
    assert sizes[("propagation_jf", "")] == sizes[("propagation_jf", "zero motion")] == "224x304"
    assert {s for (name, _), s in sizes.items() if name != "propagation_jf"} == {"x".join(map(str, m.card.input_size))}
