"""What changed since the previous published version (the *Changes* page of a version after the
first), from the two versions' tables of every number (:mod:`.table`) and their ``atlas.json``:

* models, images and measures added or removed;
* every number that moved beyond its interval: the new value outside the previous interval, or
  the previous value outside the new one (numbers with no interval on either side are counted,
  not listed: a cluster size or an inertia has no interval to move beyond);
* the config, code and atlas versions (hashes) of both.

A number is the same number in both versions when its model, comparison, measure, block,
representation, K, cluster, reference and baseline agree.

>>> old = [{"model": "m", "measure": "nce", "block": 3, "value": 0.2, "lo": 0.1, "hi": 0.3}]
>>> new = [{"model": "m", "measure": "nce", "block": 3, "value": 0.5, "lo": 0.45, "hi": 0.55}]
>>> [(r["previous"], r["value"]) for r in moved_numbers(old, new)]
[(0.2, 0.5)]
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import AtlasResults
from .publish import VERSIONS_FILE
from .table import CSV_FILE

KEY = ("model", "resolution", "comparison", "section", "measure", "block", "representation", "k", "cluster", "reference",
       "baseline")
_NUMBERS = ("block", "k", "cluster", "value", "lo", "hi", "rel_depth")


@dataclass
class PreviousVersion:
    """The published version a new one is compared with: its name, table rows and atlas.json."""

    version: str
    rows: list[dict[str, Any]]
    index: dict[str, Any]
    digest: str  # of its table: part of the render fingerprint of the version that compares with it


def _parse(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    def value(name, text):
        if text == "":
            return None
        return (int(float(text)) if name in ("block", "k", "cluster") else float(text)) if name in _NUMBERS else text

    return [{k: value(k, v) for k, v in r.items()} for r in rows]


def read_previous(publish_dir: str | Path, version: str) -> PreviousVersion | None:
    """The newest published version in ``publish_dir`` other than ``version`` (mike's order), or
    None when there is none (or it predates the table of every number)."""
    import hashlib

    from mike.versions import Versions

    root = Path(publish_dir)
    if not (root / VERSIONS_FILE).is_file():
        return None
    for info in Versions.loads((root / VERSIONS_FILE).read_text(encoding="utf-8")):
        name = str(info.version)
        table, index = root / name / CSV_FILE, root / name / "atlas.json"
        if name == version or not table.is_file() or not index.is_file():
            continue
        raw = table.read_bytes()
        rows = _parse(list(csv.DictReader(io.StringIO(gzip.decompress(raw).decode("utf-8")))))
        return PreviousVersion(name, rows, json.loads(index.read_text(encoding="utf-8")),
                               hashlib.sha256(raw).hexdigest())
    return None


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) if row.get(k) is not None else "" for k in KEY)


def _outside(value: float | None, lo: float | None, hi: float | None) -> bool:
    return (value is not None and lo is not None and hi is not None and math.isfinite(value)
            and not (lo <= value <= hi))


def moved_numbers(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The numbers of both versions whose value left the other version's interval, with both."""
    before = {_key(r): r for r in previous}
    out = []
    for r in current:
        old = before.get(_key(r))
        if old is None:
            continue
        if _outside(r.get("value"), old.get("lo"), old.get("hi")) or _outside(old.get("value"), r.get("lo"), r.get("hi")):
            out.append({**{k: r.get(k) for k in KEY}, "previous": old.get("value"), "previous_lo": old.get("lo"),
                        "previous_hi": old.get("hi"), "value": r.get("value"), "lo": r.get("lo"), "hi": r.get("hi")})
    return out


def changes(previous: PreviousVersion, current: list[dict[str, Any]], results: AtlasResults) -> dict[str, Any]:
    """The Changes record of ``results`` (rows ``current``) against ``previous``."""
    index = previous.index

    def diff(old: set, new: set) -> dict[str, list]:
        return {"added": sorted(new - old), "removed": sorted(old - new)}

    old_values = {_key(r): r.get("value") for r in previous.rows}
    before, after = set(old_values), {_key(r) for r in current}
    common = before & after
    without_interval = sum(1 for r in current if _key(r) in common and r.get("lo") is None
                           and r.get("value") != old_values[_key(r)])
    return {
        "previous": previous.version,
        "version": results.published_version,
        "models": diff({m["slug"] for m in index.get("models", [])}, {m.card.slug for m in results.models}),
        "images": diff({i["name"] for i in index.get("images", [])}, {i.name for i in results.images}),
        "measures": diff({r["measure"] for r in previous.rows}, {r["measure"] for r in current}),
        "moved": moved_numbers(previous.rows, current),
        "compared": len(common),
        "numbers_added": len(after - before),
        "numbers_removed": len(before - after),
        "changed_without_interval": without_interval,
        "hashes": [{"what": what, "previous": index.get(key, ""), "now": now}
                   for what, key, now in (("config sha256", "config_hash", results.config_hash),
                                          ("code sha256 (computation)", "code_hash", results.code_hash),
                                          ("atlas version", "atlas_version", results.atlas_version))],
    }
