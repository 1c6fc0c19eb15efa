"""Stored results: what makes a model's numbers (its key) and where they are kept.

Layout under ``<output_dir>/state``::

    atlas.json, photos.npz                 the last build as a whole (for ``--render-only``)
    models/<slug>/result.json, labels.npz, key.txt
    comparisons/<slug>/result.json, labels.npz, key.txt

A model's *key* hashes its weights, images, preprocessing, every config section that changes
its numbers and the code that computes them; a model whose key is unchanged is neither
re-extracted nor re-clustered. ``key.txt`` is written last, after the result and the label maps,
so an interrupted save never reads as current. Stored results depend only on inputs and code:
nothing here looks at the rendered site.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..config import AtlasConfig
from ..files import TEMP_PREFIX, atomic_write, remove_orphaned_temporaries
from ..records import (AtlasResults, Baseline, ClusterRun, ComparisonResult, DatasetCredit, Highlight, ImageInfo,
                       MeasureRow, ModelCard, ModelResult, SkippedItem, to_json)

if TYPE_CHECKING:  # torch and timm stay unimported when only stored results are read (--render-only)
    from ..features.backbones import LoadedBackbone
    from ..inputs.images import AtlasImage

MODEL_STATE_VERSION = "4"
_PACKAGE = Path(__file__).resolve().parents[1]


def digest(obj: Any) -> str:
    """Short stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the code that computes numbers: a change to it invalidates stored results.

    The site layer (``atlas/site``) and the command line are left out: pages are rendered afresh
    from stored results on every build.
    """
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE)
        if rel.parts[0] == "site" or rel.name == "cli.py":
            continue
        h.update(str(rel).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def model_key(cfg: AtlasConfig, loaded: "LoadedBackbone", images: "list[AtlasImage]", eval_key: str) -> str:
    """Everything a model's stored numbers depend on."""
    return digest({
        "v": MODEL_STATE_VERSION, "atlas": __version__, "code": code_fingerprint(), "weights": loaded.weights_hash,
        "spec": loaded.spec.model_dump(), "images": [i.content_hash for i in images],
        "resolution": cfg.images.resolution, "features": cfg.features.model_dump(exclude={"batch_size", "device"}),
        "clustering": cfg.clustering.model_dump(), "analyses": cfg.analyses.model_dump(), "seed": cfg.atlas.seed,
        "uncertainty": cfg.uncertainty.model_dump(),
        "evaluation": eval_key,
    })


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _model_from_dict(d: dict, label_maps: dict[str, np.ndarray], pictures: dict[str, np.ndarray]) -> ModelResult:
    return ModelResult(
        card=ModelCard(**d["card"]), blocks=d["blocks"], representations=d["representations"], ks=d["ks"],
        runs=[ClusterRun(**r) for r in d["runs"]], measures=[MeasureRow(**m) for m in d["measures"]],
        figures=d["figures"], timings=d["timings"], highlights=[Highlight(**h) for h in d.get("highlights", [])],
        references=[MeasureRow(**m) for m in d["references"]], baselines=[Baseline(**b) for b in d["baselines"]],
        selected=d["selected"], label_maps=label_maps, pictures=pictures,
    )


def _comparison_from_dict(d: dict, label_maps: dict[str, np.ndarray], _pictures: dict) -> ComparisonResult:
    return ComparisonResult(**d, label_maps=label_maps)


def state_store(cfg: AtlasConfig) -> "StateStore":
    """Where the config's results are stored (``<output_dir>/state``)."""
    return StateStore(cfg.resolve_path(cfg.atlas.output_dir) / "state")


def load_stored_atlas(cfg: AtlasConfig) -> AtlasResults:
    """The records of the config's last build, as it handed them to the site (``--render-only``)."""
    from . import BuildError

    try:
        return state_store(cfg).load_atlas()
    except FileNotFoundError as exc:
        raise BuildError(f"{exc} (python scripts/build_atlas.py --config {cfg.source_path})") from None


class StateStore:
    """The stored results of one config (``<output_dir>/state``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.is_dir():  # temp files of a killed build (never those of a running one)
            remove_orphaned_temporaries(self.root.rglob(f"{TEMP_PREFIX}*"))

    # ------------------------------------------------------------------ models and comparisons

    def _dir(self, kind: str, slug: str) -> Path:
        return self.root / kind / slug

    def _save(self, kind: str, slug: str, key: str, record: ModelResult | ComparisonResult) -> None:
        d = self._dir(kind, slug)
        atomic_write(d / "labels.npz", _npz_bytes({k: v.astype(np.int16) for k, v in record.label_maps.items()}))
        if isinstance(record, ModelResult):  # PCA pictures (uint8) and attention maps (float16) as they are
            atomic_write(d / "pictures.npz", _npz_bytes(record.pictures))
        atomic_write(d / "result.json", json.dumps(to_json(record)))  # key order is meaningful (Methods)
        atomic_write(d / "key.txt", key)  # written last: marks the state complete

    def _load(self, kind: str, slug: str, key: str | None):
        d = self._dir(kind, slug)
        try:
            if key is not None and (d / "key.txt").read_text() != key:
                return None
            data = json.loads((d / "result.json").read_text())
            maps = _load_npz(d / "labels.npz")
            pictures = _load_npz(d / "pictures.npz") if kind == "models" else {}
        except (OSError, ValueError, KeyError):
            return None
        return (_model_from_dict if kind == "models" else _comparison_from_dict)(data, maps, pictures)

    def save_model(self, key: str, result: ModelResult) -> None:
        self._save("models", result.card.slug, key, result)

    def load_model(self, slug: str, key: str | None = None) -> ModelResult | None:
        """The stored result of a model; with ``key``, only when it was stored under that key."""
        return self._load("models", slug, key)

    def save_comparison(self, key: str, result: ComparisonResult) -> None:
        self._save("comparisons", result.slug, key, result)

    def load_comparison(self, slug: str, key: str | None = None) -> ComparisonResult | None:
        return self._load("comparisons", slug, key)

    # ------------------------------------------------------------------ the last build as a whole

    def save_atlas(self, results: AtlasResults) -> None:
        """The atlas-level record (models and comparisons by slug) and its photos."""
        data = to_json(results)
        data["models"] = [m.card.slug for m in results.models]
        # highlights compare models with each other: they belong to this build, not to a model
        data["model_highlights"] = {m.card.slug: to_json(m.highlights) for m in results.models}
        data["comparisons"] = [c.slug for c in results.comparisons]
        keys = sorted(results.photos)
        atomic_write(self.root / "photos.npz", _npz_bytes({f"p{i}": results.photos[k] for i, k in enumerate(keys)}))
        data["photo_keys"] = keys
        atomic_write(self.root / "atlas.json", json.dumps(data))  # written last; key order kept

    def load_atlas(self) -> AtlasResults:
        """The last build's records, exactly as it handed them to the site.

        Raises FileNotFoundError when nothing (complete) is stored.
        """
        try:
            data = json.loads((self.root / "atlas.json").read_text())
            arrays = _load_npz(self.root / "photos.npz")
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"no stored build in {self.root} ({exc.__class__.__name__}); run a build first") from None
        models, comparisons = [], []
        highlights = data.pop("model_highlights")
        for slug in data.pop("models"):
            m = self.load_model(slug)
            if m is None:
                raise FileNotFoundError(f"stored build in {self.root} lacks model {slug!r}; run a build first")
            m.highlights = [Highlight(**h) for h in highlights.get(slug, [])]
            models.append(m)
        for slug in data.pop("comparisons"):
            c = self.load_comparison(slug)
            if c is None:
                raise FileNotFoundError(f"stored build in {self.root} lacks comparison {slug!r}; run a build first")
            comparisons.append(c)
        photos = {k: arrays[f"p{i}"] for i, k in enumerate(data.pop("photo_keys"))}
        return AtlasResults(
            **{**data, "images": [ImageInfo(**i) for i in data["images"]],
               "skipped": [SkippedItem(**s) for s in data["skipped"]],
               "highlights": [Highlight(**h) for h in data["highlights"]],
               "datasets": [DatasetCredit(**d) for d in data.get("datasets", [])]},
            models=models, comparisons=comparisons, photos=photos,
        )
