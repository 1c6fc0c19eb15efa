"""Stored results: what makes a model's numbers (its key) and where they are kept.

Layout under ``<output_dir>/state``::

    atlas.json, photos.npz, atlas.sha256   the last build as a whole (for ``--render-only``)
    models/<slug>/result.json, labels.npz, pictures.npz, key.txt
    comparisons/<slug>/result.json, labels.npz, key.txt
    baselines/<protocol>-<H>x<W>-p<patch>/baselines.json, key.txt   shared by the models of a geometry

A model's *key* hashes its weights, images, preprocessing, every config section that changes
its numbers and the code that computes them; a model whose key is unchanged is neither
re-extracted nor re-clustered. Stored results depend only on inputs and code: nothing here looks
at the rendered site.

Every folder's files are listed, with their SHA-256, in a manifest: ``key.txt`` (the key on its
first line) in a model's or comparison's folder, ``atlas.sha256`` beside ``atlas.json``. Its
lines are ``sha256sum``'s: ``tail -n +2 key.txt | sha256sum -c``, run in the folder, checks it by
hand. The manifest is removed before a folder is rewritten and written last, each file
atomically, so an interrupted save (a kill, a full disk) reads as "not stored" -- never as a mix
of two saves -- and touches no other folder. Every read checks the checksums: a model or
comparison whose files are missing, truncated, edited or unparsable is *damaged*; it is moved
aside to ``<slug>.corrupt`` (replacing an earlier damaged copy) and a build computes it again,
with one warning, as the feature cache does with its entries. ``--render-only`` computes nothing:
there a damaged model, comparison or ``atlas.json`` is one error line that says to run a build.
A folder of an earlier format (a manifest without checksums) is simply not current.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..config import AtlasConfig
from ..fingerprint import source_fingerprint
from ..files import TEMP_PREFIX, atomic_write, remove_orphaned_temporaries
from ..records import (AtlasResults, Baseline, ClusterRun, ComparisonResult, DatasetCredit, ImageInfo,
                       MeasureRow, ModelCard, ModelResult, SkippedItem, run_id, to_json)

if TYPE_CHECKING:  # torch and timm stay unimported when only stored results are read (--render-only)
    from ..config import Backbone
    from ..inputs.images import AtlasImage
    from .resolutions import ResolutionRun

log = logging.getLogger(__name__)

MODEL_STATE_VERSION = "8"  # 5: checksums in key.txt; 6: figure payloads as ids and numbers, no stored highlights;
# 7: label propagation (its baselines carry their frame grid); 8: the resolution axis (random weights
# born at the pretrained size, the card records the resampling)
_PACKAGE = Path(__file__).resolve().parents[1]
DAMAGED_SUFFIX = ".corrupt"  # as the feature cache's damaged entries
_ATLAS_MANIFEST = "atlas.sha256"
_SUM_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")
# what reading damaged bytes raises (np.load of a broken zip, json of edited text, records of wrong fields)
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError, EOFError, OSError, zipfile.BadZipFile, zlib.error)


# [features] settings that change how features are computed or kept, never the numbers (streaming
# keeps float16, the cache's values, in chunks whose results are the same to the bit)
_NOT_IN_RESULTS = {"batch_size", "device", "memory_gb", "cache", "cache_gb"}


def digest(obj: Any) -> str:
    """Short stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


#: Modules that write words or per-build records, or run jobs, never a model's stored numbers:
#: changing them must not invalidate stored results. (The site layer and the command line are left
#: out whole.)
NOT_COMPUTATION = ("cli.py", "pipeline/methods.py", "pipeline/executors.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the code that computes numbers: a change to it invalidates stored results.

    The site layer (``atlas/site``), the command line and the modules that only write words of a
    build (:data:`NOT_COMPUTATION`) are left out: pages and sentences are made afresh from stored
    results on every build. The rest is hashed as what runs (:func:`atlas.fingerprint.runnable`),
    so a reworded docstring or comment keeps every stored result.
    """
    return package_fingerprint(_PACKAGE)


def package_fingerprint(package: Path) -> str:
    """:func:`code_fingerprint` of the package folder ``package``."""
    computing = [path.relative_to(package) for path in package.rglob("*.py")]
    return source_fingerprint(package, [rel for rel in computing
                                        if rel.parts[0] != "site" and rel.as_posix() not in NOT_COMPUTATION])


def model_key(cfg: AtlasConfig, spec: "Backbone", weights_hash: str, images: "list[AtlasImage]", eval_key: str,
              run: "ResolutionRun") -> str:
    """Everything the stored numbers of a model at one resolution depend on (``weights_hash``:
    :func:`atlas.features.backbones.weights_identity`)."""
    return digest({
        "v": MODEL_STATE_VERSION, "atlas": __version__, "code": code_fingerprint(), "weights": weights_hash,
        "spec": spec.model_dump(exclude={"opt_in"}), "timm": _timm_version(), "images": [i.content_hash for i in images],
        "resolution": [run.label, list(run.requested), list(run.size), run.main], "features": cfg.features.model_dump(exclude=_NOT_IN_RESULTS),
        "clustering": cfg.clustering.model_dump(), "analyses": cfg.analyses.model_dump(), "seed": cfg.atlas.seed,
        "uncertainty": cfg.uncertainty.model_dump(),
        "evaluation": eval_key,
    })


def _timm_version() -> str:
    """timm builds the models and defines their forward pass: another timm may compute other numbers."""
    import timm

    return timm.__version__


class DamagedResults(ValueError):
    """Stored files that cannot be trusted: missing, truncated, edited (checksum mismatch) or unparsable."""


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _parse(name: str, raw: bytes) -> Any:
    """The content of stored file ``name`` (``.json`` or ``.npz``); DamagedResults when unparsable."""
    try:
        if name.endswith(".json"):
            return json.loads(raw)
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except _UNREADABLE as exc:
        raise DamagedResults(f"{name}: unreadable ({type(exc).__name__})") from None


def _write_set(folder: Path, manifest: str, files: dict[str, bytes], head: str | None = None) -> None:
    """Write ``files`` into ``folder``, then the manifest (``head``, then one checksum line per file)."""
    # removed first: a folder being rewritten (or whose rewrite failed) reads as not stored, never as a mix
    (folder / manifest).unlink(missing_ok=True)
    for name, raw in files.items():
        atomic_write(folder / name, raw)
    sums = [f"{hashlib.sha256(raw).hexdigest()}  {name}" for name, raw in files.items()]
    atomic_write(folder / manifest, "\n".join(([head] if head is not None else []) + sums) + "\n")  # last


def _read_set(folder: Path, manifest: str, names: tuple[str, ...], key: str | None = None,
              keyed: bool = True) -> dict[str, bytes] | None:
    """The bytes of ``names`` as the manifest lists them, each checked against its checksum.

    None when nothing complete is stored, it was stored under another key (with ``key``) or in an
    earlier format; DamagedResults when a listed file is missing, truncated or edited.
    """
    try:
        text = (folder / manifest).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.splitlines()
    if keyed and (not lines or (key is not None and lines[0] != key)):
        return None
    sums = {m.group(2): m.group(1) for m in map(_SUM_LINE.fullmatch, lines[1 if keyed else 0:]) if m}
    if not sums:  # an earlier format: no checksums
        return None
    out, problem = {}, None
    for name in names:
        if name not in sums:
            problem = f"{name}: not listed in {manifest}"
            break
        try:
            raw = (folder / name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            problem = f"{name}: {exc.strerror or type(exc).__name__}"
            break
        # any other OSError (permissions, I/O, too many open files) is not damage: it propagates
        # as one line and the folder stays where it is
        if hashlib.sha256(raw).hexdigest() != sums[name]:
            problem = f"{name}: checksum mismatch"
            break
        out[name] = raw
    if problem is None:
        return out
    try:  # a manifest that changed meanwhile: another build rewrote the folder as it was read
        if (folder / manifest).read_text(encoding="utf-8", errors="replace") != text:
            return None
    except OSError:
        return None
    raise DamagedResults(problem)


def _move_aside(folder: Path) -> Path:
    """Move a damaged folder to ``<name>.corrupt`` (replacing an earlier damaged copy); its new path."""
    aside = folder.with_name(folder.name + DAMAGED_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)  # only the latest damaged copy is kept
    try:
        os.replace(folder, aside)
    except FileNotFoundError:
        pass  # another reader moved it already
    return aside


def _model_from_dict(d: dict, label_maps: dict[str, np.ndarray], pictures: dict[str, np.ndarray]) -> ModelResult:
    return ModelResult(
        card=ModelCard(**d["card"]), blocks=d["blocks"], representations=d["representations"], ks=d["ks"],
        runs=[ClusterRun(**r) for r in d["runs"]], measures=[MeasureRow(**m) for m in d["measures"]],
        figures=d["figures"], timings=d["timings"],
        references=[MeasureRow(**m) for m in d["references"]], baselines=[Baseline(**b) for b in d["baselines"]],
        selected=d["selected"], uncertainties=d.get("uncertainties", {}), passes=d.get("passes", {}),
        label_maps=label_maps, pictures=pictures,
    )


def _comparison_from_dict(d: dict, label_maps: dict[str, np.ndarray], _pictures: dict) -> ComparisonResult:
    return ComparisonResult(**d, label_maps=label_maps)


def state_store(cfg: AtlasConfig) -> "StateStore":
    """Where the config's results are stored (``<output_dir>/state``)."""
    return StateStore(cfg.resolve_path(cfg.atlas.output_dir) / "state")


def load_stored_atlas(cfg: AtlasConfig) -> AtlasResults:
    """The records of the config's last build, as it handed them to the site (``--render-only``)."""
    from . import BuildError

    build = f"python scripts/build_atlas.py --config {cfg.source_path}"
    try:
        return state_store(cfg).load_atlas()
    except FileNotFoundError as exc:
        raise BuildError(f"{exc} ({build})") from None
    except DamagedResults as exc:  # computing nothing here: a normal build computes it again
        raise BuildError(f"{exc}; a normal build ({build}) computes it again") from None


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
        files = {"labels.npz": _npz_bytes({k: v.astype(np.int16) for k, v in record.label_maps.items()})}
        if isinstance(record, ModelResult):  # PCA pictures (uint8) and attention maps (float16) as they are
            files["pictures.npz"] = _npz_bytes(record.pictures)
        files["result.json"] = json.dumps(to_json(record)).encode()  # key order is meaningful (Methods)
        _write_set(self._dir(kind, slug), "key.txt", files, head=key)

    def _load(self, kind: str, slug: str, key: str | None):
        """The stored record; None when not stored (under ``key``). A damaged folder is moved aside
        and raises DamagedResults, whose message names it."""
        d = self._dir(kind, slug)
        names = ("result.json", "labels.npz", "pictures.npz") if kind == "models" else ("result.json", "labels.npz")
        try:
            raw = _read_set(d, "key.txt", names, key)
            if raw is None:
                return None
            data, maps = _parse("result.json", raw["result.json"]), _parse("labels.npz", raw["labels.npz"])
            pictures = _parse("pictures.npz", raw["pictures.npz"]) if kind == "models" else {}
            try:
                return (_model_from_dict if kind == "models" else _comparison_from_dict)(data, maps, pictures)
            except _UNREADABLE:  # intact (the checksums hold) but of another version's records: not damage
                what = "model" if kind == "models" else "comparison"
                raise FileNotFoundError(f"stored results of {what} {slug!r} are of another version of the atlas; "
                                        "run a build") from None
        except DamagedResults as exc:
            aside = _move_aside(d)
            what = "model" if kind == "models" else "comparison"
            raise DamagedResults(f"stored results of {what} {slug!r} damaged ({exc}); moved aside to {aside}") from None

    def _load_reporting(self, kind: str, slug: str, key: str | None):
        """:meth:`_load` for a build: a damaged folder is one warning and counts as not stored, as
        does one of another version's records."""
        try:
            return self._load(kind, slug, key)
        except DamagedResults as exc:
            log.warning("%s; computing it again", exc)
            return None
        except FileNotFoundError:
            return None

    def model_bytes(self, slug: str) -> int:
        """Bytes a model's stored results take on disk."""
        d = self._dir("models", slug)
        return sum(p.stat().st_size for p in d.iterdir() if p.is_file()) if d.is_dir() else 0

    def save_model(self, key: str, result: ModelResult, run_id: str | None = None) -> None:
        """Store a model's result under ``run_id`` (default: its slug, the main resolution)."""
        self._save("models", run_id or result.card.slug, key, result)

    def load_model(self, slug: str, key: str | None = None) -> ModelResult | None:
        """The stored result of a model (``slug``: a run id, :func:`atlas.records.run_id`); with
        ``key``, only when it was stored under that key.

        None also when it is damaged: then it is moved aside (one warning) and counts as not stored.
        """
        return self._load_reporting("models", slug, key)

    def save_baselines(self, geometry: str, key: str, data: dict) -> None:
        """Store the baselines of one protocol at one geometry (:mod:`.shared_baselines`)."""
        _write_set(self._dir("baselines", geometry), "key.txt", {"baselines.json": json.dumps(data).encode()}, head=key)

    def load_baselines(self, geometry: str, key: str) -> dict | None:
        """The baselines stored for ``geometry`` under ``key``; None when not stored under it. A
        damaged folder is moved aside with one warning and counts as not stored."""
        d = self._dir("baselines", geometry)
        try:
            raw = _read_set(d, "key.txt", ("baselines.json",), key)
            return None if raw is None else _parse("baselines.json", raw["baselines.json"])
        except DamagedResults as exc:
            log.warning("stored baselines %r damaged (%s); moved aside to %s, computing them again",
                        geometry, exc, _move_aside(d))
            return None

    def save_comparison(self, key: str, result: ComparisonResult) -> None:
        self._save("comparisons", result.slug, key, result)

    def load_comparison(self, slug: str, key: str | None = None) -> ComparisonResult | None:
        return self._load_reporting("comparisons", slug, key)

    # ------------------------------------------------------------------ the last build as a whole

    def save_atlas(self, results: AtlasResults) -> None:
        """The atlas-level record (models and comparisons by slug) and its photos."""
        data = to_json(results)
        data["models"] = [m.card.slug for m in results.models]
        data["resolution_runs"] = [run_id(m.card.slug, tuple(m.card.input_size), False) for m in results.resolution_runs]
        data["comparisons"] = [c.slug for c in results.comparisons]
        keys = sorted(results.photos)
        data["photo_keys"] = keys
        _write_set(self.root, _ATLAS_MANIFEST, {  # key order of atlas.json kept
            "photos.npz": _npz_bytes({f"p{i}": results.photos[k] for i, k in enumerate(keys)}),
            "atlas.json": json.dumps(data).encode()})

    def load_atlas(self) -> AtlasResults:
        """The last build's records, exactly as it handed them to the site.

        Raises FileNotFoundError when nothing (complete) is stored, DamagedResults when something
        stored is damaged (a damaged model or comparison is moved aside).
        """
        try:
            raw = _read_set(self.root, _ATLAS_MANIFEST, ("atlas.json", "photos.npz"), keyed=False)
            if raw is None:
                raise FileNotFoundError(f"no stored build in {self.root}; run a build first")
            data, arrays = _parse("atlas.json", raw["atlas.json"]), _parse("photos.npz", raw["photos.npz"])
        except DamagedResults as exc:
            raise DamagedResults(f"stored build in {self.root} damaged ({exc})") from None
        try:
            return self._records(data, arrays)
        except (DamagedResults, FileNotFoundError):  # a model's or comparison's, already phrased
            raise
        except _UNREADABLE:  # intact (the checksums hold) but of another version's records
            raise FileNotFoundError(f"the stored build in {self.root} is of another version of the atlas; "
                                    "run a build") from None

    def _records(self, data: dict, arrays: dict) -> AtlasResults:
        models, comparisons, other_sizes = [], [], []
        for slug in data.pop("models"):
            m = self._load("models", slug, None)
            if m is None:
                raise FileNotFoundError(f"stored build in {self.root} lacks model {slug!r}; run a build first")
            models.append(m)
        for rid in data.pop("resolution_runs", []):
            m = self._load("models", rid, None)
            if m is None:
                raise FileNotFoundError(f"stored build in {self.root} lacks model run {rid!r}; run a build first")
            other_sizes.append(m)
        for slug in data.pop("comparisons"):
            c = self._load("comparisons", slug, None)
            if c is None:
                raise FileNotFoundError(f"stored build in {self.root} lacks comparison {slug!r}; run a build first")
            comparisons.append(c)
        photos = {k: arrays[f"p{i}"] for i, k in enumerate(data.pop("photo_keys"))}
        return AtlasResults(
            **{**data, "images": [ImageInfo(**i) for i in data["images"]],
               "skipped": [SkippedItem(**s) for s in data["skipped"]],
               "datasets": [DatasetCredit(**d) for d in data.get("datasets", [])]},
            models=models, comparisons=comparisons, photos=photos, resolution_runs=other_sizes,
        )
