"""What the pipeline hands to the site: plain records, JSON-serialisable except for label maps and photos.

Data flows one way: config -> backbones -> features (transient) -> clustering and measures -> *these
records* (stored under ``build/<config>/state``) -> figures, maps and pages -> site. The site layer
never touches models or features: everything it shows is in these records. Label maps and photos
are numpy arrays (the site colours them into gallery images); :func:`to_json` leaves them out and
the pipeline stores them beside the JSON in ``.npz`` files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RANDOM_INIT_LABEL = "random init — architecture baseline"
#: The ``representation`` of the CLS-attention measures' rows (one per block, of no representation).
ATTENTION_ROWS = "attention"
_ARRAYS = {"arrays": True}  # field metadata: numpy arrays, stored in .npz files, not in JSON


#: Picture views beside the cluster maps: joint PCA-RGB over all patches, and the DINOv2
#: foreground recipe (:mod:`atlas.measures.pca`).
PCA_VIEWS = ("pca", "pca-fg")


def picture_key(block: int, representation: str, view: str) -> str:
    """Key of a PCA-RGB picture stack in ``ModelResult.pictures`` (uint8 (N, h, w, 3)).

    >>> picture_key(5, "keys", "pca")
    'b5-keys-pca'
    """
    if view not in PCA_VIEWS:
        raise ValueError(f"unknown picture view {view!r}; choose from {PCA_VIEWS}")
    return f"b{int(block)}-{representation}-{view}"


def attention_key(block: int, what: str = "mean") -> str:
    """Key of a block's prefix-token attention maps in ``ModelResult.pictures``: ``mean`` (N, P,
    h, w), the head mean of every image; ``heads`` (n, P, heads, h, w), every head of the first
    images. Float16 attention mass per patch (rows sum to 1 over all tokens, prefix included).

    >>> attention_key(11, "heads")
    'b11-attention-heads'
    """
    if what not in ("mean", "heads"):
        raise ValueError(f"what must be 'mean' or 'heads', got {what!r}")
    return f"b{int(block)}-attention-{what}"


def map_key(block: int, representation: str, k: int) -> str:
    """Key of one label map stack in ``ModelResult.label_maps``.

    >>> map_key(5, "keys", 8)
    'b5-keys-k8'
    """
    return f"b{int(block)}-{representation}-k{int(k)}"


def photo_key(content_hash: str, size: tuple[int, int] | list[int]) -> str:
    """Key of one photo in ``AtlasResults.photos``: the image at a model input size ``(H, W)``.

    >>> photo_key("ab12", (224, 224))
    'ab12@224x224'
    """
    return f"{content_hash}@{int(size[0])}x{int(size[1])}"


def thumbnail_key(content_hash: str) -> str:
    """Key of an Images-page thumbnail in ``AtlasResults.photos`` (whole image, at most 256 px).

    >>> thumbnail_key("ab12")
    'ab12@thumb'
    """
    return f"{content_hash}@thumb"


def run_id(slug: str, size: tuple[int, int] | list[int], main: bool) -> str:
    """Where a model's results at input ``size`` are kept (stored folder, site view files): its
    ``slug`` at the main resolution, ``slug--HxW`` at the others of ``[images] resolutions``
    (slugs never hold two dashes in a row).

    >>> run_id("vit-s", (320, 320), False)
    'vit-s--320x320'
    """
    return slug if main else f"{slug}--{size[0]}x{size[1]}"


def to_json(record: Any) -> Any:
    """``dataclasses.asdict`` without the array fields (label maps, photos)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_json(getattr(record, f.name)) for f in dataclasses.fields(record)
                if not f.metadata.get("arrays")}
    if isinstance(record, dict):
        return {k: to_json(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    return record


@dataclass
class ImageInfo:
    """One image of the atlas image set, as credited on the site."""

    name: str
    source: str
    licence: str
    credit: str = ""
    content_hash: str = ""
    width: int = 0  # original size
    height: int = 0


@dataclass
class DatasetCredit:
    """A labelled dataset the evaluations used, as credited on the Images page."""

    name: str  # e.g. "CamVid"
    kind: str  # loader kind ([evaluation] dataset)
    images: int  # usable samples
    licence: str
    credit: str
    url: str = ""


@dataclass
class SkippedItem:
    """Something the build left out, and why (shown on the build report)."""

    what: str
    reason: str


def precision_label(precision: str) -> str:
    """How features were computed: ``fp32 (TF32 off)`` or ``bf16 autocast`` (model card, build log)."""
    return "fp32 (TF32 off)" if precision == "fp32" else f"{precision} autocast"


@dataclass
class ModelCard:
    """Static facts about one backbone (one row of the models table)."""

    slug: str
    display_name: str
    timm_name: str
    family: str
    training: str  # contrastive / masked-image-modelling / both / supervised / random
    group: str | None
    params: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    num_prefix_tokens: int
    num_registers: int
    has_cls: bool
    pos_encoding: str
    mean: list[float]
    std: list[float]
    input_size: list[int]  # [H, W] actually fed to the model in this atlas
    pretrained_input_size: list[int]
    weights_source: str  # pretrained / checkpoint / random
    provenance: str  # hub tag + file hash, checkpoint hash, or RANDOM_INIT_LABEL
    is_random_init: bool
    layer_scale: float | None = None  # median |gamma| of the blocks' LayerScale; None without it
    precision: str = "fp32"  # extraction: fp32 (exact, TF32 off), or fp16 / bf16 autocast
    # the resolution axis ([images] resolutions): the entry as configured ("224", "native"), the
    # size it asked for before rounding to whole patches, and the grid the weights' learned position
    # embeddings were resampled from by timm (None: not resampled, or no learned absolute ones)
    resolution: str = ""
    requested_size: list[int] = field(default_factory=list)
    position_grid_from: list[int] | None = None

    @property
    def random_label(self) -> str:
        return RANDOM_INIT_LABEL if self.is_random_init else ""


@dataclass
class ClusterRun:
    """One joint k-means fit: (model, block, representation, K) over all images.

    Its aligned label maps are ``ModelResult.label_maps[map_key(block, representation, k)]``.
    """

    block: int
    rel_depth: float
    representation: str
    k: int
    sizes: list[int]  # tokens per (aligned) cluster id
    inertia: float


@dataclass
class MeasureRow:
    """One number of a measure: long format, one row per (block, representation, measure).

    ``measure`` is a key of the measure registry (:mod:`atlas.measures.registry`), whose entry
    (copied into ``AtlasResults.measure_info``) says how it is computed and on which page section
    it goes; the site's words for it (:mod:`atlas.site.measure_words`) give its title and
    definition. Each distinct ``measure`` becomes one layer-sweep plot (x = relative depth, one
    line per representation, and per K when rows carry several).

    ``lo`` / ``hi``: the interval (bootstrap over images, pooled over k-means seeds, or jackknife;
    the registry says which); ``seed_spread``: max - min of the value over k-means seeds (None for
    measures that do not depend on the clustering). ``reference``: "" for the model's own number;
    in ``ModelResult.references`` the name of the reference token set. ``versus``: for a number
    with baselines (``ModelResult.baselines`` of its measure), ``{baseline name: {"value", "lo",
    "hi", "se", "df"}}``: the number minus that baseline, from the replicates both share (the same
    images and halves, :func:`atlas.measures.uncertainty.paired_difference`), its interval and the
    standard error and degrees of freedom behind it; None without them. ``se`` / ``df``: the
    standard error and degrees of freedom behind ``lo`` / ``hi`` (``df`` None: the normal
    quantile), so that the site and readers can give the interval at another level (``value ±
    quantile(level, df) * se``, clipped to the measure's range), e.g. widened for a choice; None
    where there is no interval.
    """

    block: int
    rel_depth: float
    representation: str
    measure: str
    value: float
    k: int | None = None
    lo: float | None = None
    hi: float | None = None
    seed_spread: float | None = None
    reference: str = ""
    versus: dict[str, dict[str, Any]] | None = None
    se: float | None = None
    df: float | None = None


@dataclass
class Baseline:
    """A reference score of an evaluation measure that needs no model: chance, constant, colour,
    position, colour + position, or the patch-resolution ceiling, on the same images, split, grid
    and protocol as the model's numbers (``lo`` / ``hi``: its interval).

    ``variant``: for a baseline with simple variants, the id of the one reported (the best on the
    selection images): ``colour`` one of ``rgb``, ``lab``; ``colour + position`` one of
    ``rgb+plain``, ``lab+plain``, ``rgb+normalised``, ``lab+normalised`` (colour space +
    coordinates, :data:`atlas.measures.baselines.COLOUR_POSITION_VARIANTS`); ``""`` for none."""

    measure: str
    name: str
    value: float
    lo: float | None = None
    hi: float | None = None
    seed_spread: float | None = None
    variant: str = ""
    grid: list[int] | None = None  # (rows, columns, patch px) when not the model's own grid (label propagation)
    se: float | None = None  # behind lo / hi, as MeasureRow's
    df: float | None = None


@dataclass
class ModelResult:
    """Everything shown on one model page.

    ``label_maps``: aligned cluster ids of every gallery run, ``{map_key(b, rep, k): int16 array
    (N images, h, w)}`` in the order of ``AtlasResults.images``.

    ``figures`` holds extra analysis payloads (:mod:`atlas.pipeline.payloads`): ids and numbers,
    drawn generically by the site, which names them by their ``kind``
    (:mod:`atlas.site.figure_words`):

    - ``figures["heatmaps"]``: list of ``{"id", "kind", "z": 2D list (rows x cols), "block",
      "representation", "image" (optional image name), "labels" (optional 2D list, e.g. cluster
      ids, shown on hover), "x_labels" / "y_labels" (optional lists of ids: categorical axes, e.g.
      masking variants)}`` plus the ids the kind's title names. Hover shows image, patch row/col
      (or the x/y labels), value and label.
    - ``figures["curves"]``: list of ``{"id", "kind", "x": list, "series": {series id: y list},
      "block", "representation"}``, and for curves of scores with intervals ``"lo"`` and ``"hi"``
      (``{series id: bound list}``, None where a point has none).

    A payload of no known kind is drawn from its own fields (``title``, ``zlabel``,
    ``colorscale``, ``xaxis``, ``yaxis``, ``bounds``, ``section``).

    ``id`` must be unique within the model; the figure anchor is ``fig-<slug of id>``.
    """

    card: ModelCard
    blocks: list[int]
    representations: list[str]
    ks: list[int]
    runs: list[ClusterRun] = field(default_factory=list)
    measures: list[MeasureRow] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # extra analysis payloads by name
    timings: dict[str, float] = field(default_factory=dict)
    # positional references (content-only, position-only tokens) at every block and representation
    references: list[MeasureRow] = field(default_factory=list)
    # evaluation baselines of this model's grid
    baselines: list[Baseline] = field(default_factory=list)
    # leaderboard choices: {measure: {"block", "representation", "k", "selection_value", "selected_by" (the
    # measure maximised), "selection_images"}} or {..., "fixed_by_method": True}; the site words the rule
    selected: dict[str, dict[str, Any]] = field(default_factory=dict)
    # {row_id: Uncertainty.state()}: the replicates of the numbers compared across records, paired
    # replicate by replicate (the same images and halves): each leaderboard choice (chosen_row) and
    # each measure's deepest tokens row (deepest_tokens_row: the resolution page). Not every row's:
    # a few hundred numbers each.
    uncertainties: dict[str, dict[str, Any]] = field(default_factory=dict)
    # how the features went through the analyses (atlas.features.stream): {"passes", "pairs",
    # "feature_bytes", "budget_bytes" (None: no limit), "on_demand", "cache"}
    passes: dict[str, Any] = field(default_factory=dict)
    label_maps: dict[str, np.ndarray] = field(default_factory=dict, metadata=_ARRAYS)
    # PCA-RGB pictures and prefix-token attention maps of the gallery blocks (picture_key,
    # attention_key); aligned like the cluster colours
    pictures: dict[str, np.ndarray] = field(default_factory=dict, metadata=_ARRAYS)


def recount_sizes(runs: list[ClusterRun], label_maps: dict[str, np.ndarray]) -> None:
    """Each run's ``sizes`` counted again in the ids of its label maps (after they were renumbered)."""
    for run in runs:
        key = map_key(run.block, run.representation, run.k)
        if key in label_maps:
            run.sizes = [int(x) for x in np.bincount(label_maps[key].ravel(), minlength=run.k)]


def row_id(row: MeasureRow) -> str:
    """One number's id in its model's record: ``seg_miou/11/tokens/8`` (measure, block,
    representation, K)."""
    return f"{row.measure}/{row.block}/{row.representation}/{row.k}"


def chosen_row(m: ModelResult, name: str) -> MeasureRow | None:
    """The model's row of ``name`` at the (block, representation, K) chosen for the leaderboard
    (``ModelResult.selected``), or None."""
    pick = m.selected.get(name)
    if not pick:
        return None
    return next((r for r in m.measures if r.measure == name and r.block == pick["block"]
                 and r.representation == pick["representation"] and (pick.get("k") is None or r.k == pick["k"])), None)


def deepest_tokens_row(m: ModelResult, name: str) -> MeasureRow | None:
    """The model's number of ``name`` by a rule chosen on no data, the same at every input size: the
    deepest block that has it, representation ``tokens``, the smallest K (the resolution page)."""
    rows = [r for r in m.measures if r.measure == name and r.representation == "tokens"]
    if not rows:
        return None
    deepest = max(r.block for r in rows)
    return min((r for r in rows if r.block == deepest), key=lambda r: (r.k is None, r.k or 0))


def compared_rows(m: ModelResult) -> list[MeasureRow]:
    """The rows whose replicates the record keeps (``ModelResult.uncertainties``)."""
    names = dict.fromkeys(r.measure for r in m.measures)
    rows = [chosen_row(m, n) for n in m.selected] + [deepest_tokens_row(m, n) for n in names]
    return [r for r in rows if r is not None]


@dataclass
class ComparisonResult:
    """Same images side by side across models (or representations) at matched relative depth.

    ``panels``: one dict per matched relative depth (the page's depth slider)::

        {"rel_depth": 0.5, "representation": "keys",      # representation optional
         "columns": [                                     # same column order in every panel
             {"model": "<model slug>", "representation": "keys", "block": 5,
              "label": "optional column header",          # default: model name (+ rep)
              "maps": "<key of label_maps>"},
         ]}

    ``label_maps[key]``: int16 cluster ids (N images, h, w) of one column, in the order of
    ``AtlasResults.images``, colours already aligned across the columns of a panel.

    ``measures``: long rows ``{"model", "representation", "measure", "rel_depth", "block",
    "value"}`` overlaid across models, one plot per measure. Left empty, the site overlays the
    ``ModelResult.measures`` of ``models`` restricted to ``representations``.
    """

    slug: str
    title: str
    kind: str  # models / representations / scaling
    description: str
    models: list[str]  # model slugs
    rel_depths: list[float]
    representations: list[str]
    k: int
    panels: list[dict[str, Any]] = field(default_factory=list)
    measures: list[dict[str, Any]] = field(default_factory=list)
    label_maps: dict[str, np.ndarray] = field(default_factory=dict, metadata=_ARRAYS)


@dataclass
class AtlasResults:
    title: str
    atlas_version: str
    config_name: str
    config_text: str
    config_hash: str
    build_date: str
    seed: int
    environment: dict[str, str]
    device: str
    images: list[ImageInfo]
    skipped: list[SkippedItem]
    models: list[ModelResult]
    comparisons: list[ComparisonResult]
    methods: dict[str, Any]  # the Methods record: settings as ids and numbers (atlas.pipeline.methods)
    timings: dict[str, float]
    site_url: str = ""
    # a published version (--publish): its name, and the URL of the alias (e.g. latest) that follows
    # later versions; site_url is then the version's own URL, which citations name
    published_version: str = ""
    latest_url: str = ""
    licence: str = ""  # of the atlas's data ([atlas] licence: SPDX id or URL; "" = not stated)
    doi: str = ""  # of this version ([atlas] doi or --doi), e.g. 10.5281/zenodo.1234567
    description: str = ""  # one paragraph for the home page (config [atlas] description)
    interval_level: float = 0.95  # coverage of every interval ([uncertainty] level)
    code_hash: str = ""  # sha256 of the computation's code (atlas.pipeline.state.code_fingerprint)
    kmeans_seeds: int | None = None  # k-means seeds of every k-dependent number ([uncertainty] seeds; None: not recorded)
    datasets: list[DatasetCredit] = field(default_factory=list)  # evaluation datasets (Images page)
    overview_image: str = ""  # image of the Home overview matrix ("" = the first image)
    # How each measure was computed, by raw ``MeasureRow.measure`` name, from the measure registry
    # (:func:`atlas.measures.registry.measure_info`): ``{"inputs", "function", "section", "range",
    # "bounds", "depends_on_k", "interval", "ranked", "position_free", "selected_by"}``, ids and
    # numbers. ``section`` places the plot on the model page ("clusters", "positional",
    # "evaluation"; default "clusters"). The site lays its words over them at render
    # (:func:`atlas.site.measure_words.with_words`: title, definition, formula, direction, orders);
    # a record of an older build may carry words of its own, which the site's replace. CSV/JSON
    # downloads and figure anchors keep the raw name.
    measure_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    # bytes of each model's stored results (label maps, pictures, numbers), by run id (the model's
    # slug at the main resolution, ``slug--HxW`` at the others: :func:`run_id`)
    stored_bytes: dict[str, int] = field(default_factory=dict)
    # run ids whose stored results were current: this build computed nothing for them
    reused_models: list[str] = field(default_factory=list)
    # the resolution axis ([images] resolutions): its labels, the main one first, and every model
    # at the other resolutions (``models`` holds the main one); ``card.resolution`` names each
    resolutions: list[str] = field(default_factory=list)
    resolution_runs: list[ModelResult] = field(default_factory=list)

    # Photos at each model's input size, ``{photo_key(content_hash, (H, W)): uint8 (H, W, 3)}``,
    # and the Images page thumbnails, ``{thumbnail_key(content_hash): uint8 (h, w, 3)}``.
    photos: dict[str, np.ndarray] = field(default_factory=dict, metadata=_ARRAYS)

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    def runs_of(self, slug: str) -> list[tuple[str, ModelResult]]:
        """A model at each resolution of the axis as ``(run id, result)``, the main one first."""
        main = [m for m in self.models if m.card.slug == slug]
        return [(slug, m) for m in main] + [(run_id(slug, m.card.input_size, False), m)
                                            for m in self.resolution_runs if m.card.slug == slug]
