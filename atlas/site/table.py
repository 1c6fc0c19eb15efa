"""One table of every number of the atlas, in long format: ``atlas-results.parquet`` at the site
root, and ``atlas-results.csv.gz`` (the same rows) for readers without pyarrow.

One row per number: the rows of every model page's CSV (:func:`.data.model_rows`: measures with
their intervals, positional references, evaluation baselines, inertia, cluster sizes), with the
model's facts and the build's beside them, and the numbers comparisons compute themselves. Every
model page's CSV is the table's rows of that model; comparison and leaderboard CSVs are filters of
it as well (``tests/test_table.py``).

Columns (:data:`COLUMNS`): ``model`` (slug), ``family``, ``training``, ``weights`` (pretrained /
checkpoint / random), ``section``, ``measure``, ``block``, ``rel_depth``, ``representation``,
``k``, ``cluster`` (cluster sizes), ``value``, ``lo`` and ``hi`` (the interval), ``se`` and ``df``
(the standard error and degrees of freedom behind it: the interval at another level is ``value ±
t(level, df) * se``, the normal quantile where ``df`` is empty), ``interval_level``,
``seed_spread``, ``reference`` (a positional reference: content-only, position-only), ``baseline``
(an evaluation baseline's name), ``leaderboard`` (the row the leaderboard shows for the model),
``comparison`` (a comparison's slug, for the numbers a comparison computes itself),
``split`` (the support / query split of the evaluation measures that use one), ``seeds``
(k-means seeds), ``config_hash``, ``version`` (the published version, else the atlas version),
``input_size`` (``HxW`` px fed to the model; for label propagation's rows, its frames' size rounded
to whole patches) and ``resolution`` (``""`` at the main resolution; at
the other resolutions of ``[images] resolutions``, the entry as configured, e.g. ``448`` or
``native``: one model's rows at every size, told apart by it).

>>> import pandas as pd                                            # doctest: +SKIP
>>> t = pd.read_parquet("https://example.org/atlas/2026.12/atlas-results.parquet")  # doctest: +SKIP
>>> t[t.leaderboard & (t.measure == "seg_miou")][["model", "value", "lo", "hi"]]    # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import io
from typing import Any

from ..records import AtlasResults, chosen_row
from .data import MODEL_CSV_COLUMNS, csv_text, model_rows, num
from .honesty import split_kind, uses_split
from .leaderboard import leaderboard_measures
from .wording import measure_section

PARQUET_FILE = "atlas-results.parquet"
CSV_FILE = "atlas-results.csv.gz"

COLUMNS = ["model", "family", "training", "weights", *MODEL_CSV_COLUMNS[1:], "interval_level", "leaderboard",
           "comparison", "split", "seeds", "config_hash", "version", "input_size", "resolution"]

_INTEGERS = {"block", "k", "cluster", "seeds"}
_FLOATS = {"rel_depth", "value", "lo", "hi", "se", "df", "interval_level", "seed_spread"}


def results_table(results: AtlasResults) -> list[dict[str, Any]]:
    """Every number of the atlas, one dict per row (:data:`COLUMNS`), models in atlas order."""
    info, methods = results.measure_info, results.methods
    split = split_kind(methods)
    version = results.published_version or results.atlas_version
    ranked = leaderboard_measures(results)
    models = {m.card.slug: m for m in results.models}
    rows = []
    main = {id(m) for m in results.models}
    for m in [*results.models, *results.resolution_runs]:
        picks = {(r.measure, r.block, r.representation, r.k) for name in ranked
                 if (r := chosen_row(m, name)) is not None} if id(m) in main else set()  # the leaderboard: main only
        facts = {"model": m.card.slug, "family": m.card.family, "training": m.card.training,
                 "weights": m.card.weights_source, "input_size": "x".join(map(str, m.card.input_size)),
                 "resolution": "" if id(m) in main else m.card.resolution}
        # numbers on frames of their own size (label propagation): the size those frames were fed at
        own = {b.measure: "x".join(str(g * b.grid[2]) for g in b.grid[:2]) for b in m.baselines if b.grid}
        for r in model_rows(m, info):
            picked = not r["reference"] and not r["baseline"] and (
                (r["measure"], r["block"], r["representation"], r["k"]) in picks)
            rows.append({**facts, **{c: r[c] for c in MODEL_CSV_COLUMNS[1:]}, "leaderboard": picked, "comparison": "",
                         **({"input_size": own[r["measure"]]} if r["measure"] in own else {})})
    for c in results.comparisons:  # numbers a comparison computes itself (e.g. at its common K)
        for r in c.measures:
            m = models.get(r["model"])
            rows.append({"model": r["model"], "family": m.card.family if m else "", "training": m.card.training if m
                         else "", "weights": m.card.weights_source if m else "", "section": measure_section(info, r["measure"]),
                         "measure": r["measure"], "block": r.get("block"), "rel_depth": num(r.get("rel_depth")),
                         "representation": r.get("representation"), "k": r.get("k", c.k or None), "cluster": None,
                         "value": num(r["value"]), "lo": num(r.get("lo")), "hi": num(r.get("hi")),
                         "se": num(r.get("se")), "df": num(r.get("df")),
                         "seed_spread": num(r.get("seed_spread")), "reference": "", "baseline": "",
                         "leaderboard": False, "comparison": c.slug,
                         "input_size": "x".join(map(str, m.card.input_size)) if m else "", "resolution": ""})
    for r in rows:
        r.update(interval_level=results.interval_level if r["lo"] is not None else None,
                 split=split if uses_split(info, r["measure"]) else "",
                 seeds=results.kmeans_seeds if r["seed_spread"] is not None else None,
                 config_hash=results.config_hash, version=version)
    return rows


def table_files(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """The table (:func:`results_table`'s rows) as Parquet and as gzipped CSV (deterministic bytes
    for the same rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = {**{c: pa.int64() for c in _INTEGERS}, **{c: pa.float64() for c in _FLOATS}, "leaderboard": pa.bool_()}
    schema = pa.schema([(c, kind.get(c, pa.string())) for c in COLUMNS])
    table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    text = csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in rows))
    return {PARQUET_FILE: buf.getvalue(), CSV_FILE: gzip.compress(text.encode(), mtime=0)}
