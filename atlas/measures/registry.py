"""The measure registry: every number the atlas stores, described once.

Each :class:`Measure` says what a stored number is -- its key (``MeasureRow.measure``), title,
one-paragraph definition and formula (the Methods page prints them), what it is computed from,
the function that computes it, the page section it is shown in, which way is "more", its value
range, and its place on the leaderboard, the highlights and the scaling summary. The pipeline
copies :func:`measure_info` into the records, and the site places, titles, ranks and explains
every number from it; nothing is guessed from a measure's name.

Adding a measure: one :data:`REGISTRY` entry, its function, its planted-effect test.

Example
-------
>>> m = REGISTRY["position_r2"]
>>> m.title, m.section, m.direction, m.depends_on_k
('Position decodability (linear probe R², folds over images)', 'positional', 'bias', False)
>>> [k for k, m in REGISTRY.items() if m.leaderboard == 1]
['seg_miou']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .attention import attention_entropy, high_norm_attention, ring_attention
from .boundary import boundary_artifacts
from .knn import knn_probe
from .locality import similarity_structure
from .pca import pca_variance_share
from .positional import blank_input_structure, position_decodability, positional_clustering
from .propagation import j_and_f
from .pseudomasks import score_pseudo_masks
from .segmentation import evaluate_label_maps
from .shift import shift_curve
from .similarity import similarity_matrix

__all__ = ["Measure", "REGISTRY", "measure_info"]

#: What a measure is computed from. ``labels`` / ``labels+features``: the joint cluster maps of the
#: atlas images (the value depends on K); ``features`` / ``prefix``: their patch / prefix tokens;
#: ``blank labels``: cluster maps of the blank-input probes; ``shift pairs``: cluster maps of the
#: shift-test windows; ``human masks``: the labelled evaluation dataset; ``attention``: the prefix
#: tokens' attention rows from the block's queries and keys (:mod:`.attention`); ``video masks``: the
#: first mask of each video sequence propagated through its frames (:mod:`.propagation`).
Inputs = Literal["labels", "labels+features", "features", "prefix", "blank labels", "shift pairs", "human masks",
                 "attention", "video masks"]
Section = Literal["positional", "evaluation"]
#: ``bias``: higher = more positional / artifact bias; ``content``: higher = more content-following
#: (less positional bias); ``quality``: higher = closer to human masks; ``none``: no better or worse
#: (a slope, a norm ratio of prefix tokens).
Direction = Literal["bias", "content", "quality", "none"]

_K_INPUTS = ("labels", "labels+features", "blank labels", "shift pairs")


@dataclass(frozen=True)
class Measure:
    """One stored number: ``function(...)[result_key]`` and everything the site says about it."""

    title: str
    definition: str
    formula: str
    inputs: Inputs
    function: Callable[..., dict[str, Any]]
    result_key: str | int
    section: Section
    direction: Direction
    value_range: tuple[float | None, float | None]  # None = unbounded
    leaderboard: int | None = None  # column order on the segmentation-quality leaderboard
    highlight: int | None = None  # order of the highlight sentences (absent: none)
    summary: int | None = None  # column order of the scaling pages' family summary
    selected_by: str | None = None  # leaderboard: the (block, representation) chosen for this measure
    # delete-d jackknife: "random halves" (of the images, or of their groups), "leave-one-out" (images), or
    # "sequence halves" (random halves of the test sequences: label propagation)
    interval: str = "random halves"
    # the value is a statistic of the set of tokens, not of where each sits (within-image shuffles
    # leave it unchanged): its content-only reference would equal it by construction, so it has none
    position_free: bool = False
    # the value that means no effect where no content-only reference stands for it (a chance-corrected
    # score's 0); None: none stated
    no_effect: float | None = None

    @property
    def depends_on_k(self) -> bool:
        """Whether the value depends on the number of clusters K (stored with ``MeasureRow.k``)."""
        return self.inputs in _K_INPUTS

    @property
    def function_name(self) -> str:
        return f"{self.function.__module__}.{self.function.__name__}"


REGISTRY: dict[str, Measure] = {
    # ---------------------------------------------------------------- positional behaviour
    "positional_nce": Measure(
        "Positional clustering (chance-corrected NCE)",
        "How much the patch position determines the joint cluster: the share of the cluster entropy "
        "that knowing the position removes, corrected for the bias of few images by shuffling each "
        "image's labels over its own positions. 0 = the cluster ignores position, 1 = position fixes it. "
        "Photos share layouts (sky at the top), so read it with the blank-input probe and the shift test.",
        "nce = (R - R0) / (1 - R0), R = 1 - mean_p H(c | p) / H(c), R0 = R after within-image shuffles",
        "labels", positional_clustering, "nce", "positional", "bias", (None, 1.0), summary=1,
    ),
    "positional_ami": Measure(
        "Positional clustering (AMI of cluster vs position)",
        "Adjusted mutual information between a token's cluster and its patch position over all tokens "
        "(symmetric; saturates below 1 when there are fewer clusters than positions).",
        "AMI(c, p) over all tokens (equal to sklearn adjusted_mutual_info_score)",
        "labels", positional_clustering, "ami", "positional", "bias", (None, 1.0), highlight=1,
    ),
    "position_r2": Measure(
        "Position decodability (linear probe R², folds over images)",
        "How well a linear probe reads the (row, col) of a token, on images it was not fitted on. "
        "~0 without position information, 1 when a linear read-out recovers the position exactly.",
        "mean of R^2(row) and R^2(col): ridge on z-scored tokens (at most 4000, equally many per image), "
        "5-fold GroupKFold over images, penalty per target chosen from 33 values (trace(X^T X) / C * "
        "10^[-4..4]) by the pooled out-of-fold error, R^2 = 1 - SS_res / SS_tot on the pooled out-of-fold "
        "predictions",
        "features", position_decodability, "r2", "positional", "bias", (None, 1.0), highlight=2, summary=2,
    ),
    "positional_effect": Measure(
        "Positional effect (same-position minus different-position similarity)",
        "Cosine similarity of tokens at the same grid position in different images minus that of tokens "
        "at different positions, on dataset-mean-centred unit tokens: a shared per-position component.",
        "mean_p mean_{i!=j} u(i,p).u(j,p) - mean_{p!=q} mean_{i!=j} u(i,p).u(j,q), "
        "u = dataset-mean-centred unit tokens",
        "features", similarity_structure, "positional_effect", "positional", "bias", (-2.0, 2.0), interval="leave-one-out"
    ),
    "locality_d1": Measure(
        "Locality beyond position at distance 1",
        "Extra similarity of neighbouring tokens in one image over tokens at the same offset in two "
        "different images: what the image content adds to what the grid position explains.",
        "within(1) - across(1); within(d) = mean over pairs at Chebyshev distance d of u(i,p).u(i,q), "
        "across(d) = same with i != j",
        "features", similarity_structure, "locality_d1", "positional", "bias", (-2.0, 2.0), interval="leave-one-out"
    ),
    "locality_slope": Measure(
        "Locality decay with distance (slope)",
        "How fast the locality beyond position decays with distance, per patch (negative = local).",
        "least-squares slope of within(d) - across(d) over d = 1..4",
        "features", similarity_structure, "locality_slope", "positional", "none", (None, None), interval="leave-one-out"
    ),
    "border_ami": Measure(
        "Boundary: AMI of cluster vs outer patch ring",
        "Adjusted mutual information between a token's cluster and whether it sits on the outer ring of "
        "the patch grid: clusters that mark the image border.",
        "AMI(c, b) with b(p) = 1 on the outer ring of the patch grid",
        "labels+features", boundary_artifacts, "ami", "positional", "bias", (None, 1.0), highlight=3,
        summary=4,
    ),
    "border_max_enrichment": Measure(
        "Boundary: largest cluster enrichment on the outer ring",
        "The largest over-representation of one cluster on the border ring relative to the interior "
        "(1 = none), over clusters holding at least 1% of the tokens. The largest of K noisy ratios sits "
        "above 1 without any border effect (1.0-2.1 over 10 draws of 10 random 6 x 7 maps, K = 4): read it "
        "against its content-only reference.",
        "max_k ((n_kB + 1)/(n_B + K)) / ((n_kI + 1)/(n_I + K)) over clusters with >= 1% of tokens",
        "labels+features", boundary_artifacts, "max_enrichment", "positional", "bias", (0.0, None),
    ),
    "border_norm_ratio": Measure(
        "Boundary: token norm, outer ring / interior",
        "Mean token norm on the border ring over the mean norm inside (1 = no difference).",
        "mean_{b(p)=1} ||f(i,p)|| / mean_{b(p)=0} ||f(i,p)||",
        "features", boundary_artifacts, "norm_ratio", "positional", "bias", (0.0, None),
    ),
    "outlier_fraction": Measure(
        "High-norm outlier tokens (fraction of patches)",
        "Share of patch tokens whose norm lies more than 5 robust standard deviations above the median "
        "(the high-norm tokens of 'Vision Transformers Need Registers').",
        "mean [ (||f|| - median) / (1.4826 MAD) > 5 ] over all patch tokens",
        "features", boundary_artifacts, "outlier_fraction", "positional", "bias", (0.0, 1.0), position_free=True,
    ),
    "outlier_fraction_border": Measure(
        "High-norm outlier tokens on the outer ring (fraction)",
        "Share of border-ring tokens with an abnormally high norm.",
        "as outlier_fraction, over tokens with b(p) = 1",
        "features", boundary_artifacts, "outlier_fraction_border", "positional", "bias", (0.0, 1.0),
    ),
    "prefix_norm_ratio": Measure(
        "Prefix tokens (CLS, registers): norm / mean patch norm",
        "Mean norm of the prefix tokens (CLS, registers) over the mean patch-token norm.",
        "mean_t mean_i ||prefix(i,t)|| / mean_{i,p} ||f(i,p)||",
        "prefix", boundary_artifacts, "prefix_norm_ratio", "positional", "none", (0.0, None),
    ),
    "pca_top3_variance": Measure(
        "Variance share of the first three joint principal components",
        "How much of the patch features' variance the three colours of the PCA picture carry (one PCA "
        "over all images' patches). Near 3 / C for features without dominant directions; near 1 when "
        "a few directions (a foreground split, position, high-norm tokens) dominate the features.",
        "sum of the top-3 eigenvalues of the joint patch covariance / its trace; replicates: random "
        "halves of the images with the components held fixed",
        "features", pca_variance_share, "share", "positional", "none", (0.0, 1.0), position_free=True,
    ),
    "attention_entropy": Measure(
        "CLS attention entropy (normalised, mean over heads)",
        "How focused the first prefix token's (CLS's) attention is, from the block's own queries and keys: "
        "0 = all of it on one token, 1 = spread evenly over every token (prefix included).",
        "mean over heads and images of -sum_t a_t ln a_t / ln T, a = softmax(q_CLS . k_t * d^-1/2 + bias) "
        "over all T tokens",
        "attention", attention_entropy, "entropy", "positional", "none", (0.0, 1.0),
    ),
    "cls_ring_enrichment": Measure(
        "CLS attention on the outer patch ring (enrichment)",
        "The share of the CLS token's patch attention (head mean, renormalised over the patches) that falls "
        "on the outer ring of patches, over the ring's share of patches: 1 = no preference (chance), "
        "above 1 = the CLS reads the border (a boundary artifact link).",
        "mean_i sum_{p in ring} a_i(p) / sum_p a_i(p), divided by |ring| / (h w)",
        "attention", ring_attention, "enrichment", "positional", "bias", (0.0, None),
    ),
    "cls_high_norm_enrichment": Measure(
        "CLS attention on high-norm tokens (enrichment)",
        "The share of the CLS token's patch attention on the block's high-norm patch tokens (the "
        "boundary measure's outliers: norm above median + 5 MAD) over their share of patches: 1 = chance, "
        "above 1 = the CLS reads the artifact tokens (as in 'Vision Transformers Need Registers'). "
        "Undefined (blank) when the block has no high-norm token.",
        "mean_i sum_{p in S_i} a_i(p) / sum_p a_i(p), divided by mean_i |S_i| / (h w)",
        "attention", high_norm_attention, "enrichment", "positional", "bias", (0.0, None),
    ),
    "blank_position_score": Measure(
        "Blank-input probe: positional structure",
        "How consistently content-free inputs (constant colours, noise) get the same cluster map under "
        "the joint centroids: on such inputs any repeated map can only come from position.",
        "(A - A0) / (1 - A0), A = mean_p max_k #{i: c(i,p)=k} / M, A0 = A after within-image shuffles",
        "blank labels", blank_input_structure, "position_score", "positional", "bias", (None, 1.0),
        highlight=5, no_effect=0.0,
    ),
    "blank_autocorrelation": Measure(
        "Blank-input probe: spatial autocorrelation of cluster maps",
        "Spatial coherence of the cluster maps of content-free inputs: large regions rather than "
        "speckle.",
        "(B - B0) / (1 - B0), B = share of equal 4-neighbour labels, B0 = sum_k n_k(n_k-1) / (P(P-1))",
        "blank labels", blank_input_structure, "autocorrelation", "positional", "bias", (None, 1.0),
    ),
    "shift_content_fraction": Measure(
        "Shift test: share of tokens that follow content",
        "Whether cluster ids move with the image content or stay with the grid when the crop window "
        "moves by whole patches (1 = content, 0 = grid position; 0.5 = an even mix, or neither: the shift "
        "curve shows which), averaged over the shifts. The difference of the two agreements is measured "
        "in units of 1 - self, where self (each map's agreement with itself s patches away) is what a "
        "purely content- (or position-) following map scores in the other alignment on smooth photos; "
        "when a share a of the tokens follows content and the rest position, it is a.",
        "mean over shifts s of clip((1 + (content - position) / (1 - self)) / 2, 0, 1); "
        "content = mean[a[..., s:] == b[..., :w-s]], position = same-column agreement, "
        "self = mean[a[..., s:] == a[..., :w-s]] (and b)",
        "shift pairs", shift_curve, "content_fraction_mean", "positional", "content", (0.0, 1.0),
        highlight=4, summary=3,
    ),
    # ---------------------------------------------------------------- against human masks
    "seg_miou": Measure(
        "Matched mIoU vs human masks (STEGO protocol, K = classes)",
        "Joint k-means with K = number of classes; one Hungarian matching of clusters to classes on the "
        "confusion matrix accumulated over the test images; mean IoU over the classes with a non-empty union.",
        "mean_c TP_c / (TP_c + FP_c + FN_c) after Hungarian matching on the test images' confusion matrix",
        "human masks", evaluate_label_maps, "miou", "evaluation", "quality", (0.0, 1.0), leaderboard=1, summary=5,
    ),
    "seg_pixel_accuracy": Measure(
        "Matched pixel accuracy vs human masks (K = classes)",
        "Share of labelled pixels whose matched cluster is their class (same matching as the mIoU).",
        "sum_c TP_c / labelled pixels",
        "human masks", evaluate_label_maps, "pixel_accuracy", "evaluation", "quality", (0.0, 1.0), leaderboard=2,
        selected_by="seg_miou",
    ),
    "seg_miou_overcluster": Measure(
        "Over-clustering mIoU (K = 2 × classes)",
        "Joint k-means with twice as many clusters as classes; each cluster mapped to a class by the rule of "
        "[evaluation] over_clustering: its majority class (several clusters may share a class), or the "
        "Hungarian matching (surplus clusters count as wrong). Methods says which rule this build used.",
        "mIoU after mapping every cluster to argmax_c confusion[k, c] (majority) or by Hungarian matching",
        "human masks", evaluate_label_maps, "miou", "evaluation", "quality", (0.0, 1.0), leaderboard=4,
    ),
    "seg_coverage": Measure(
        "Fraction of labelled pixels scored (matched mIoU)",
        "Share of labelled pixels that fall in a matched cluster (below 1 when a cluster is left "
        "unmatched).",
        "scored labelled pixels / labelled pixels",
        "human masks", evaluate_label_maps, "coverage", "evaluation", "none", (0.0, 1.0),
        selected_by="seg_miou",
    ),
    "knn_miou_k10": Measure(
        "k-NN patch probe mIoU (k = 10)",
        "Each query patch takes the majority label of its 10 nearest support patches (cosine); mIoU "
        "over the query patches. Support and query images are disjoint sets of the test images; how they "
        "were split (by group, or in frame blocks where groups are too few) is stated beside each result and in "
        "Methods.",
        "mIoU of cosine 10-NN majority votes, patch labels = pixel majority per patch",
        "human masks", knn_probe, 10, "evaluation", "quality", (0.0, 1.0), leaderboard=3, summary=6,
    ),
    "pseudomask_miou": Measure(
        "DatUS²-inspired pseudo-mask mIoU (all pixels)",
        "Per image, spectral grouping of the last block's key affinity into segments; k-means over the "
        "segments' mean tokens; Hungarian-matched mIoU over all pixels (unassigned pixels count as wrong).",
        "mIoU of Hungarian-matched segment clusters, unassigned pixels counted as errors",
        "human masks", score_pseudo_masks, "miou", "evaluation", "quality", (0.0, 1.0), leaderboard=5,
    ),
    "pseudomask_coverage": Measure(
        "DatUS²-inspired pseudo-mask coverage",
        "Share of labelled pixels that the pseudo-masks assign to a segment.",
        "assigned labelled pixels / labelled pixels",
        "human masks", score_pseudo_masks, "coverage", "evaluation", "none", (0.0, 1.0),
    ),
    "propagation_jf": Measure(
        "Label propagation J&F (DAVIS protocol)",
        "Video object segmentation from the first frame's mask alone: each later frame's patches take the "
        "labels of their most similar patches in the first and the most recent frames (DINO's protocol: "
        "cosine similarity of L2-normalised patch features, softmax temperature, top-k neighbours within a "
        "spatial radius), upsampled to the mask and argmax-ed. J&F is the mean of region IoU (J) and boundary "
        "F-measure (F), each averaged over frames per object and over the objects of the test sequences. "
        "Methods states the parameters and the dataset's frame spacing beside the number.",
        "(J + F) / 2; J = mean over objects of mean_t IoU(pred_t = o, truth_t = o); F = same with the DAVIS "
        "boundary F-measure (tolerance 0.008 x image diagonal)",
        "video masks", j_and_f, "j_and_f", "evaluation", "quality", (0.0, 1.0), leaderboard=6,
        interval="sequence halves",
    ),
    "propagation_j": Measure(
        "Label propagation J (region IoU)",
        "The region part of J&F: intersection over union of each propagated object with its mask, averaged "
        "over the scored frames and then over the objects of the test sequences.",
        "mean over objects of mean_t |pred_t ∩ truth_t| / |pred_t ∪ truth_t| (1 when both are empty)",
        "video masks", j_and_f, "j", "evaluation", "quality", (0.0, 1.0), selected_by="propagation_jf",
        interval="sequence halves",
    ),
    "propagation_f": Measure(
        "Label propagation F (boundary F-measure)",
        "The boundary part of J&F: precision and recall of the object's boundary pixels matched within "
        "0.008 x the image diagonal (DAVIS), their harmonic mean, averaged like J.",
        "mean over objects of mean_t 2 P R / (P + R) of boundary pixels matched within ceil(0.008 x diagonal)",
        "video masks", j_and_f, "f", "evaluation", "quality", (0.0, 1.0), selected_by="propagation_jf",
        interval="sequence halves",
    ),
    "cka_full_vs_foreground": Measure(
        "Debiased CKA: full image vs foreground only",
        "Debiased linear CKA between the image embeddings of the full images and of the same images "
        "with the background filled. Debiased: about 0 for unrelated embeddings even with few images "
        "of many dimensions, where plain linear CKA is close to 1.",
        "CKA_u(X, Y) = HSIC_u(XX^T, YY^T) / sqrt(HSIC_u(XX^T, XX^T) HSIC_u(YY^T, YY^T)), "
        "HSIC_u the unbiased estimator (Song et al. 2012)",
        "human masks", similarity_matrix, "debiased_cka", "evaluation", "none", (None, 1.0),
    ),
    "cka_full_vs_background": Measure(
        "Debiased CKA: full image vs background only",
        "Debiased linear CKA between the image embeddings of the full images and of the same images "
        "with the foreground filled.",
        "CKA_u(X, Y), as for the foreground",
        "human masks", similarity_matrix, "debiased_cka", "evaluation", "none", (None, 1.0),
    ),
    "cka_centre_vs_random_occlusion": Measure(
        "Debiased CKA: centre-occluded vs random-occluded (control)",
        "Debiased linear CKA between embeddings of centre-occluded and randomly occluded images (a "
        "control with no semantic mask).",
        "CKA_u(X, Y), as for the foreground",
        "human masks", similarity_matrix, "debiased_cka", "evaluation", "none", (None, 1.0),
    ),
}


def _range_text(lo: float | None, hi: float | None) -> str:
    left = "(−∞" if lo is None else f"[{lo:g}"
    right = "∞)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


def measure_info() -> dict[str, dict[str, Any]]:
    """The registry as plain data for the records (``AtlasResults.measure_info``).

    >>> measure_info()["border_ami"]["range"]
    '(−∞, 1]'
    """
    out = {}
    for key, m in REGISTRY.items():
        info: dict[str, Any] = {
            "title": m.title, "definition": m.definition, "formula": m.formula, "inputs": m.inputs,
            "function": m.function_name, "section": m.section, "direction": m.direction,
            "range": _range_text(*m.value_range), "bounds": list(m.value_range), "depends_on_k": m.depends_on_k,
        }
        info["interval"] = m.interval
        if m.position_free:
            info["position_free"] = True
        if m.no_effect is not None:
            info["no_effect"] = m.no_effect
        for field in ("leaderboard", "highlight", "summary", "selected_by"):
            if getattr(m, field) is not None:
                info[field] = getattr(m, field)
        out[key] = info
    return out
