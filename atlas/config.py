"""Atlas configuration: one human-editable TOML file per atlas, validated on load.

Every problem is reported as one line that names the file, the field and what to write instead::

    configs/my.toml: backbones[2].weights: input should be 'pretrained', 'checkpoint' or 'random' (got 'pretrain')

Example::

    from atlas.config import load_config
    cfg = load_config("configs/demo.toml")
    [b.slug for b in cfg.backbones]
    # -> ['vit-s-16-learned-abs-cls', ...]
"""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPRESENTATIONS = ("tokens", "keys", "queries", "values", "tokens_normed")
Representation = Literal["tokens", "keys", "queries", "values", "tokens_normed"]
#: Representations that exist at the model's last block only: ``tokens_normed`` is the last
#: block's output after the model's final norm (what DINO users call the last-layer patch features).
LAST_BLOCK_ONLY = frozenset({"tokens_normed"})
Training = Literal["contrastive", "masked-image-modelling", "both", "supervised", "random"]


log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration problem, already phrased as one line that says what to fix."""


#: Longest slug of a model, comparison or image kept as it is. Slugs name folders and files
#: (``models/<slug>.figures.js``, ``<image slug>-<hash>-a<aspect>.webp``, and their temporary
#: ``.tmp-<pid>@<host>~...`` twins), which must stay below the 255-byte limit of file systems;
#: atlas.site.paths adds up the longest name.
SLUG_MAX = 80


def slugify(text: str, max_length: int | None = None) -> str:
    """Stable URL slug from a display name (lower-case ASCII, dashes).

    With ``max_length``, a longer slug is cut to a readable prefix and ends in 8 hex digits of the
    SHA-256 of the full ``text`` (so that two long names that differ only at the end stay apart);
    slugs within the bound are unchanged.

    >>> slugify("DINOv3 ViT-S+/16")
    'dinov3-vit-s-plus-16'
    >>> slugify("A very long model name", max_length=16)
    'a-very-2b9ddb27'
    >>> slugify("short name", max_length=16)
    'short-name'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower().replace("+", " plus ")).strip("-") or "item"
    if max_length is not None and len(slug) > max_length:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        slug = f"{slug[: max_length - 9].rstrip('-')}-{digest}"
    return slug


def normalise_site_url(url: str) -> str:
    """An absolute http(s) URL ending in "/" (or "" for a local build).

    >>> normalise_site_url("https://example.org/atlas")
    'https://example.org/atlas/'
    """
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"site_url must be an absolute http(s) URL such as https://example.org/atlas/, got {url!r}")
    return url if url.endswith("/") else url + "/"


_DOI = re.compile(r"10\.\d{4,9}/\S+")


def normalise_doi(doi: str) -> str:
    """A DOI as ``10.<registrant>/<suffix>`` (a ``https://doi.org/`` or ``doi:`` prefix dropped; ""
    for none).

    >>> normalise_doi("https://doi.org/10.5281/zenodo.1234567")
    '10.5281/zenodo.1234567'
    """
    doi = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if doi.lower().startswith(prefix):
            doi = doi[len(prefix):]
    if doi and not _DOI.fullmatch(doi):
        raise ValueError(f"{doi!r} is not a DOI: expected 10.<registrant>/<suffix>, e.g. 10.5281/zenodo.1234567")
    return doi


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AtlasSection(_Strict):
    title: str = Field("SSL ViT Atlas", min_length=1)
    seed: int = Field(0, ge=0, lt=2**32)
    # Where the site is published, e.g. https://example.org/atlas/: required for a publishable
    # build (absolute citation URLs, canonical links, sitemap); --site-url overrides it.
    site_url: str = ""
    output_dir: str = Field("build", min_length=1)  # relative to the config's project root
    cache_dir: str = Field(".cache/features", min_length=1)
    description: str = ""  # one paragraph under the title of the home page
    overview_image: str = ""  # image of the Home overview matrix (file name); default: the first image
    # the licence of the atlas's data (an SPDX id such as "CC-BY-4.0", or a URL): dataset metadata
    # (schema.org JSON-LD, CITATION.cff, .zenodo.json); "" = not stated
    licence: str = ""
    doi: str = ""  # the DOI of this atlas version (e.g. from Zenodo); --doi overrides it

    @field_validator("site_url")
    @classmethod
    def _site_url(cls, v: str) -> str:
        return normalise_site_url(v)

    @field_validator("doi")
    @classmethod
    def _doi(cls, v: str) -> str:
        return normalise_doi(v)


def resolution_size(entry) -> tuple[int, int] | None:
    """The (height, width) in pixels of a resolution entry, None for ``"native"`` (the model's own).

    >>> resolution_size(224), resolution_size([224, 320]), resolution_size("native")
    ((224, 224), (224, 320), None)
    """
    if entry == "native":
        return None
    return (entry, entry) if isinstance(entry, int) else (int(entry[0]), int(entry[1]))


def resolution_label(entry) -> str:
    """How a resolution entry is named on pages and in ids: ``224``, ``224x320`` or ``native``.

    >>> resolution_label(224), resolution_label((224, 224)), resolution_label([224, 320]), resolution_label("native")
    ('224', '224', '224x320', 'native')
    """
    size = resolution_size(entry)
    if size is None:
        return "native"
    h, w = size
    return str(h) if h == w else f"{h}x{w}"


class FolderSet(_Strict):
    folder: str  # relative to the project root; every image file under it (recursive)


class ManifestSet(_Strict):
    # a curated image manifest (CSV: url, sha256, licence, credit, group, name), relative to the
    # project root; `--download-only` fetches it into [images] download_dir, a build reads it there
    manifest: str = Field(min_length=1)  # a .csv path: checked by ImagesSection._set_kinds


_SET_KINDS = 'each set is "embedded", {folder = "..."} or {manifest = "configs/images/x.csv"}'


class ImagesSection(_Strict):
    # "embedded" = photos that ship inside installed packages; or {folder = "..."}; or
    # {manifest = "configs/images/x.csv"} (see README, Curated image sets).
    sets: list[Literal["embedded"] | FolderSet | ManifestSet] = Field(default_factory=lambda: ["embedded"])
    download_dir: str = Field(".cache/images", min_length=1)  # manifest images and their lock files
    resolution: tuple[int, int] = (224, 224)  # (height, width) in pixels, snapped per model to its patch size
    # the resolution axis: every model at each of these input sizes, the first one the atlas's main
    # one (leaderboard, comparisons): a side in pixels (square), [height, width], or "native" (the
    # model's pretrained input size from its timm config); [] = [resolution] alone
    resolutions: list[int | tuple[int, int] | Literal["native"]] = Field(default_factory=list)
    max_images: int = Field(0, ge=0)  # 0 = all
    max_pixels: int = Field(89_478_485, gt=0)  # larger files are skipped as decompression bombs
    # images whose shorter side is below this are skipped (a model would see mostly upscaling blur)
    min_side: int = Field(32, ge=1)

    @field_validator("resolution")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 8 or max(v) > 4096:
            raise ValueError("resolution must be [height, width] between 8 and 4096 pixels")
        return v

    @field_validator("resolutions", mode="before")
    @classmethod
    def _resolution_entries(cls, v):
        for entry in v if isinstance(v, list) else []:
            sides = entry if isinstance(entry, (list, tuple)) else [entry]
            if entry == "native":
                continue
            if (isinstance(entry, (list, tuple)) and len(entry) != 2) or not all(
                    isinstance(s, int) and not isinstance(s, bool) for s in sides):
                raise ValueError(f"each resolution is a whole number of pixels (224), [height, width] "
                                 f"([224, 320]) or \"native\" (got {entry!r})")
            if min(sides) < 8 or max(sides) > 4096:
                raise ValueError(f"resolution {entry!r}: sides must be between 8 and 4096 pixels")
        return v

    @field_validator("resolutions")
    @classmethod
    def _unique_resolutions(cls, v):
        labels = [resolution_label(e) for e in v]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"resolution {dupes[0]} is listed twice")
        return v

    @model_validator(mode="after")
    def _one_resolution_setting(self):
        if self.resolutions and "resolution" in self.model_fields_set:
            raise ValueError("give resolution or resolutions, not both (resolutions = [224] is one size)")
        return self

    def requested_resolutions(self) -> list:
        """The entries of the resolution axis as configured (the first is the atlas's main one)."""
        return list(self.resolutions) or [tuple(self.resolution)]

    @field_validator("sets", mode="before")
    @classmethod
    def _set_kinds(cls, v):
        for item in v if isinstance(v, list) else []:
            if not (item == "embedded" or isinstance(item, dict) and len(item) == 1
                    and next(iter(item)) in ("folder", "manifest")):
                raise ValueError(f"{_SET_KINDS} (got {item!r})")
            value = next(iter(item.values())) if isinstance(item, dict) else ""
            if isinstance(item, dict) and (not isinstance(value, str) or not value):
                raise ValueError(f"{next(iter(item))} must be a non-empty path string (got {value!r})")
            if isinstance(item, dict) and "manifest" in item and not value.lower().endswith(".csv"):
                raise ValueError(f"manifest must be a .csv file, e.g. \"configs/images/my-set.csv\" (got {value!r})")
        return v

    @field_validator("sets")
    @classmethod
    def _unique_manifests(cls, v):
        stems = [Path(s.manifest).stem for s in v if isinstance(s, ManifestSet)]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise ValueError(f"two manifests are named {dupes[0]!r}; their images and lock files would share "
                             f"{dupes[0]}/ in download_dir: rename one")
        return v


LayerSpec = Literal["all"] | list[int] | list[float]


def block_representations(blocks, representations, depth: int) -> list[tuple[int, str]]:
    """The (block, representation) pairs that exist in a model of ``depth`` blocks: every requested
    pair, except that last-block-only representations (``tokens_normed``) pair with block
    ``depth - 1`` alone.

    >>> block_representations([5, 11], ["tokens", "tokens_normed"], 12)
    [(5, 'tokens'), (11, 'tokens'), (11, 'tokens_normed')]
    """
    return [(b, r) for b in blocks for r in representations if r not in LAST_BLOCK_ONLY or b == depth - 1]


def _check_layers(v):
    if isinstance(v, list):
        if not v:
            raise ValueError("give at least one layer, or \"all\"")
        if all(isinstance(x, float) for x in v) and not all(0.0 < x <= 1.0 for x in v):
            raise ValueError("relative depths must lie in (0, 1], e.g. [0.25, 0.5, 0.75, 1.0]")
        if all(isinstance(x, int) for x in v) and min(v) < 0:
            raise ValueError("block indices must be >= 0 (use relative depths like 0.5 for 'half way')")
    return v


class FeaturesSection(_Strict):
    # Blocks whose numbers are computed (layer sweep) and blocks shown in the gallery.
    layers: LayerSpec = "all"
    gallery_layers: LayerSpec = [0.25, 0.5, 0.75, 1.0]
    representations: list[Representation] = list(REPRESENTATIONS)
    batch_size: int = Field(8, ge=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # fp32: exact on every device (TF32 off); fp16 / bf16: autocast, faster on GPUs, labelled on the
    # model card and Methods (bf16 moves features by ~0.5% of their largest value)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    # Features live only while their analyses run. GB of them kept at a time (float16, every image
    # set of a model); when a model's pairs need more, the forward pass runs again per chunk of
    # blocks. Unset: from the device's free memory (GPU) or the machine's (CPU).
    memory_gb: float | None = Field(None, gt=0)
    # The feature cache ([atlas] cache_dir) is an opt-in accelerator for iterating on analyses: a
    # build reads features it holds instead of running the model. No correct build needs it. It
    # keeps at most cache_gb GB, evicting the least recently used entries.
    cache: bool = False
    # 50: every image of a few models at 224 px (ViT-B/16: 15 MB an image) or ~70 images of the
    # largest zoo entry at native resolution (ViT-g/14 at 518 px: 678 MB), while leaving room for
    # the stored results on the 64 GB disk of a small GPU machine. Below one image: one error line.
    cache_gb: float = Field(50.0, ge=1e-6)  # at least a kilobyte: the bound is counted in bytes

    _layers = field_validator("layers", "gallery_layers")(_check_layers)

    @field_validator("representations")
    @classmethod
    def _unique(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError("list each representation once: tokens, keys, queries, values")
        return v


class ClusteringSection(_Strict):
    ks: list[Annotated[int, Field(ge=2, le=64)]] = Field([2, 4, 8, 16], min_length=1)
    normalize: bool = True
    n_iter: int = Field(30, ge=1, le=1000)
    # greedy k-means++ restarts; 1 is scikit-learn's default for k-means++ ("auto"), and the
    # atlas fits hundreds of small k-means per model
    n_init: int = Field(1, ge=1, le=20)
    # Centroids are fitted on a seeded uniform sample of at most this many tokens per cluster,
    # drawn from all images jointly; every token is then assigned. Lloyd passes over the tokens are
    # memory-bound, so the fit costs in proportion to the tokens it sees (bench/bench_kmeans.py
    # measures what the sample costs in objective and measures). 0 = fit on every token.
    train_tokens_per_cluster: int = Field(512, ge=0)


class AnalysesSection(_Strict):
    shift_test: bool = True
    blank_probe: bool = True
    k: int = Field(8, ge=2, le=64)  # K used by the label-based measures
    # content-only (tokens shuffled across positions) and position-only (per-position mean token)
    # references beside every positional measure
    references: bool = True


class UncertaintySection(_Strict):
    # random halves of the images (delete-d jackknife); 200 estimate a standard error to about 5%; 0 = no intervals
    resamples: int = Field(200, ge=0, le=100_000)
    seeds: int = Field(3, ge=1, le=10)  # k-means seeds: their spread is reported and added to intervals
    level: float = Field(0.95, gt=0.5, lt=1.0)  # coverage of every interval


class PropagationSection(_Strict):
    """``[evaluation.propagation]``: video object segmentation by label propagation (DINO's DAVIS
    protocol, :mod:`atlas.measures.propagation`); every parameter is stated on Methods."""

    dataset: Literal["davis", "folder", "camvid"]
    root: str = ""  # relative to the project root; missing folder = propagation skipped with a logged reason
    split: str = ""  # davis: the ImageSets/2017 list ("" = val)
    clip_length: int = Field(10, ge=2)  # camvid: labelled frames per clip
    max_sequences: int = Field(0, ge=0)  # 0 = all; otherwise the first N usable sequences
    max_frames: int = Field(0, ge=0)  # 0 = all; otherwise the first N frames of each sequence
    short_side: int = Field(480, ge=16, le=2048)  # frames resized (whole, no crop) to this short side, as DINO's 480p
    temperature: float = Field(0.1, gt=0.0)  # DINO 0.1; DINOv3's notebook 0.2
    top_k: int = Field(5, ge=1)
    radius: int = Field(12, ge=0)  # neighbourhood, in patches
    n_context: int = Field(7, ge=0)  # most recent frames beside the first
    selection_fraction: float = Field(0.25, gt=0.0, lt=0.9)  # sequences that only choose the leaderboard row
    licence: str = ""
    credit: str = ""


class EvaluationSection(_Strict):
    dataset: Literal["camvid", "suim", "suim6", "voc", "folder", "cocostuff27", "cityscapes27", "ade20k"] | None = None
    root: str = ""  # relative to the project root; missing folder = evaluation skipped with a logged reason
    split: str = ""  # the dataset's split (voc "val", cocostuff27 "val2017", ...); "" = its default
    image_list: str = ""  # file with one image name (stem) a line, e.g. STEGO's curated COCO-Stuff list
    max_images: int = Field(0, ge=0)  # 0 = all; otherwise the first N by name (or list order)
    class_names: list[str] = Field(default_factory=list)  # folder datasets: one name per class id
    class_names_file: str = ""  # ... or a file with one name a line
    ignore_index: int | None = None  # folder datasets: the mask value that means "no label" (default 255)
    foreground: list[str | int] = Field(default_factory=list)  # class names or ids; [] = the dataset's default
    over_clustering: Literal["majority", "hungarian"] = "majority"  # K = 2 x classes: cluster -> class rule
    group_regex: str = ""  # image name -> group (one capture group); "" = the dataset's default
    selection_fraction: float = Field(0.25, gt=0.0, lt=0.9)  # images that only choose the leaderboard row
    support_fraction: float = Field(0.5, gt=0.0, lt=1.0)  # of the other images: k-NN support (rest: queries)
    geometry: Literal["model", "stego"] = "model"  # "stego": 320 px short side + centre crop, as STEGO
    licence: str = ""  # shown on the Images page; "" = the format's known licence (folder: "not stated")
    credit: str = ""  # ditto, the dataset's authors / source
    propagation: PropagationSection | None = None  # [evaluation.propagation]: label propagation over video frames

    @field_validator("group_regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        if v:
            try:
                compiled = re.compile(v)
            except re.error as exc:
                raise ValueError(f"group_regex is not a valid regular expression ({exc})") from None
            if compiled.groups != 1:
                raise ValueError("group_regex needs exactly one capture group, e.g. \"^([^_]+)_\"")
        return v

    @model_validator(mode="after")
    def _one_source_of_names(self):
        if self.class_names and self.class_names_file:
            raise ValueError("give class_names or class_names_file, not both")
        return self


class ExecutorSection(_Strict):
    """How ``--executor local`` / ``slurm`` run the per-model jobs (command-line flags override)."""

    workers: int = Field(0, ge=0)  # local: jobs at a time; 0 = one per GPU (1 without GPUs)
    partition: str = ""  # slurm partition; "" = the cluster's default
    gpus_per_job: int = Field(0, ge=0)
    cpus_per_job: int = Field(0, ge=0)  # 0 = slurm's default; local: an equal share of the cores
    mem_gb: float = Field(0.0, ge=0.0)  # 0 = slurm's default
    time_min: int = Field(240, ge=1)  # a job running longer is stopped and reported as failed
    sbatch_args: dict[str, str | int] = Field(default_factory=dict)  # extra #SBATCH options, e.g. {account = "x"}
    log_dir: str = ""  # "" = <output_dir>/jobs


# timm keyword arguments the atlas sets itself, and the sizes an override must keep positive
_RESERVED_OVERRIDES = {"img_size": "set [images] resolution or resolutions", "num_classes": "the atlas drops the head itself",
                       "pretrained": "set weights", "pretrained_cfg": "set weights",
                       "pretrained_cfg_overlay": "set weights = \"checkpoint\"", "checkpoint_path": "set checkpoint"}
_POSITIVE_OVERRIDES = ("depth", "num_heads", "embed_dim", "patch_size", "mlp_ratio", "in_chans")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _check_slug(v: str) -> str:
    if v and not _SLUG.fullmatch(v):
        raise ValueError("slug must be lower-case letters, digits and single dashes, e.g. \"dinov2-vit-s-14\" "
                         "(it names files and URLs)")
    if len(v) > SLUG_MAX:
        raise ValueError(f"slug is {len(v)} characters long; give at most {SLUG_MAX} (it names files and URLs)")
    return v


class Backbone(_Strict):
    display_name: str = Field(min_length=1)
    timm_name: str = Field(min_length=1)
    weights: Literal["pretrained", "checkpoint", "random"] = "pretrained"
    checkpoint: str | None = None
    family: str = ""
    training: Training
    group: str | None = None
    slug: str = ""
    overrides: dict[str, int | float | bool | str] = Field(default_factory=dict)  # extra timm kwargs
    opt_in: bool = False  # e.g. 7B models: skipped unless named with --models

    _slug = field_validator("slug")(_check_slug)

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, v: dict) -> dict:
        for name, value in v.items():
            if name in _RESERVED_OVERRIDES:
                raise ValueError(f"overrides cannot set {name} ({_RESERVED_OVERRIDES[name]})")
            if name in _POSITIVE_OVERRIDES and (isinstance(value, bool) or not isinstance(value, int | float)
                                                or value <= 0):
                raise ValueError(f"overrides.{name} must be a positive number (got {value!r})")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.weights == "checkpoint" and not self.checkpoint:
            raise ValueError("weights = \"checkpoint\" needs checkpoint = \"path/to/file.safetensors\"")
        if self.weights != "checkpoint" and self.checkpoint:
            raise ValueError("checkpoint is set but weights is not \"checkpoint\"; set weights = \"checkpoint\"")
        if not self.slug:
            object.__setattr__(self, "slug", slugify(self.display_name, SLUG_MAX))
        return self

    @property
    def is_random_init(self) -> bool:
        return self.weights == "random"


class Comparison(_Strict):
    title: str = Field(min_length=1)
    kind: Literal["models", "representations", "scaling"] = "models"
    models: list[str] = Field(default_factory=list)  # slugs or display names; empty = all
    representation: Representation = "tokens"
    description: str = ""
    slug: str = ""

    _slug_ok = field_validator("slug")(_check_slug)

    @model_validator(mode="after")
    def _slug(self):
        if not self.slug:
            object.__setattr__(self, "slug", slugify(self.title, SLUG_MAX))
        return self


class AtlasConfig(_Strict):
    atlas: AtlasSection = AtlasSection()
    images: ImagesSection = ImagesSection()
    features: FeaturesSection = FeaturesSection()
    clustering: ClusteringSection = ClusteringSection()
    analyses: AnalysesSection = AnalysesSection()
    uncertainty: UncertaintySection = UncertaintySection()
    evaluation: EvaluationSection = EvaluationSection()
    executor: ExecutorSection = ExecutorSection()
    backbones: list[Backbone]
    comparisons: list[Comparison] = Field(default_factory=list)

    # Set by load_config (not part of the file).
    source_path: str = ""
    source_text: str = ""

    @model_validator(mode="after")
    def _unique_and_known(self):
        slugs = [b.slug for b in self.backbones]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"two backbones share the slug {dupes[0]!r}; give them different display_name or slug")
        names = {b.slug for b in self.backbones} | {b.display_name for b in self.backbones}
        for comp in self.comparisons:
            for m in comp.models:
                if m not in names:
                    raise ValueError(f"comparison {comp.title!r} names unknown model {m!r}; use a backbone slug or display_name")
        return self

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(self.source_text.encode()).hexdigest()[:16]

    @property
    def project_root(self) -> Path:
        # configs live in <root>/configs/; paths in a config are relative to the project root.
        p = Path(self.source_path).resolve().parent if self.source_path else Path.cwd()
        return p.parent if p.name == "configs" else p

    def resolve_path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.project_root / p)

    def model_slugs(self, wanted: list[str]) -> list[str]:
        return [b.slug for b in self.backbones if b.slug in wanted or b.display_name in wanted]

    def select_backbones(self, names: list[str] | None) -> list[Backbone]:
        """The backbones named by ``--models`` (slugs or display names), else every entry that is
        not opt-in (those are logged as skipped). Raises ConfigError, one line, for an unknown name."""
        if names:
            unknown = [n for n in names if not self.model_slugs([n])]
            if unknown:
                options = ", ".join(b.slug for b in self.backbones)
                raise ConfigError(f"--models: unknown model {unknown[0]!r}; choose from: {options}")
            chosen = self.model_slugs(names)
            return [b for b in self.backbones if b.slug in chosen]
        for b in self.backbones:
            if b.opt_in:
                log.info("skipped %s: opt-in entry (name it with --models %s)", b.display_name, b.slug)
        return [b for b in self.backbones if not b.opt_in]


def _format_error(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ""
    for part in first["loc"]:
        if isinstance(part, int):
            loc += f"[{part}]"
        elif part not in ("function-after[_check_layers()]",) and not str(part).startswith(("literal[", "list[", "function-")):
            loc += ("." if loc else "") + str(part)
    msg = first["msg"].replace("Value error, ", "")
    got = first.get("input")
    got_txt = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{path}: {loc or 'config'}: {msg}{got_txt}"


def parse_config(text: str, path: str = "<string>") -> AtlasConfig:
    """Parse and validate TOML text; raise ConfigError with one line on any problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "backbones" not in data:
        raise ConfigError(f"{path}: no [[backbones]] entries; add at least one backbone")
    try:
        return AtlasConfig(**data, source_path=str(path), source_text=text)
    except ValidationError as exc:
        raise ConfigError(_format_error(str(path), exc)) from None


def load_config(path: str | Path) -> AtlasConfig:
    """Load and validate one atlas config file (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config configs/demo.toml or another TOML file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # e.g. saved as Latin-1 or Windows-1252 ("Caf\xe9")
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); "
                          "save the file as UTF-8") from None
    # a byte-order mark (Windows Notepad writes one) only says "UTF-8", and tomllib refuses it
    return parse_config(text.removeprefix("\ufeff"), str(path))


def rel_depth(block: int, depth: int) -> float:
    """Relative depth of a block, ``(block + 1) / depth`` (the last block is 1.0), to 4 decimals.

    >>> rel_depth(5, 12)
    0.5
    """
    return round((block + 1) / depth, 4)


def resolve_layers(spec: LayerSpec, depth: int) -> list[int]:
    """Turn a layer spec into sorted block indices (0-based) for a model of ``depth`` blocks.

    Relative depth d maps to block ``round(d * depth) - 1`` (d = 1.0 is the last block).

    >>> resolve_layers([0.25, 0.5, 1.0], 12)
    [2, 5, 11]
    >>> resolve_layers("all", 3)
    [0, 1, 2]
    """
    if spec == "all":
        return list(range(depth))
    if all(isinstance(x, float) for x in spec):
        return sorted({max(0, min(depth - 1, round(x * depth) - 1)) for x in spec})
    bad = [x for x in spec if x >= depth]
    if bad:
        raise ConfigError(f"block {bad[0]} does not exist in a model of depth {depth}; use 0..{depth - 1} or relative depths")
    return sorted(set(spec))
