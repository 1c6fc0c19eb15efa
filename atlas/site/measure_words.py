"""What the site says about each stored measure, and how it reads it: title, definition, formula,
which way is "more", and its place on the leaderboard, the highlights and the scaling summary.

The records carry how a number was computed (:func:`atlas.measures.registry.measure_info`: ids
and numbers); :func:`with_words` lays these words over them at every render. Rewording a measure
here changes the pages at the next ``--render-only`` and recomputes nothing: the site is outside
the code fingerprint.

Example
-------
>>> from atlas.measures.registry import measure_info
>>> info = with_words(measure_info())
>>> info["border_ami"]["title"], info["border_ami"]["range"]
('Boundary: AMI of cluster vs outer patch ring', '(−∞, 1]')
>>> [k for k, w in WORDS.items() if w.leaderboard == 1]
['seg_miou']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MeasureWords", "WORDS", "with_words"]

#: ``bias``: higher = more positional / artifact bias; ``locality``: higher = neighbouring tokens more
#: alike than their positions explain; ``content``: higher = more content-following (less positional
#: bias); ``quality``: higher = closer to human masks; ``none``: no better or worse (a slope, a norm
#: ratio of prefix tokens).
Direction = Literal["bias", "locality", "content", "quality", "none"]


@dataclass(frozen=True)
class MeasureWords:
    """How the site names, explains, orders and reads one measure of the registry."""

    title: str
    definition: str
    formula: str
    direction: Direction
    leaderboard: int | None = None  # column order on the segmentation-quality leaderboard
    highlight: int | None = None  # order of the highlight sentences (absent: none)
    summary: int | None = None  # column order of the scaling pages' family summary
    # the value that means no effect where no content-only reference stands for it (a chance-corrected
    # score's 0); None: none stated
    no_effect: float | None = None


_FIELDS = tuple(f.name for f in dataclasses.fields(MeasureWords))

WORDS: dict[str, MeasureWords] = {
    # ---------------------------------------------------------------- positional behaviour
    "positional_nce": MeasureWords(
        "Positional clustering (chance-corrected NCE)",
        "How much the patch position determines the joint cluster: the share of the cluster entropy "
        "that knowing the position removes, corrected for the bias of few images by shuffling each "
        "image's labels over its own positions. 0 = the cluster ignores position, 1 = position fixes it. "
        "Photos share layouts (sky at the top), so read it with the blank-input probe and the shift test.",
        "nce = (R - R0) / (1 - R0), R = 1 - mean_p H(c | p) / H(c), R0 = R after within-image shuffles",
        "bias", summary=1,
    ),
    "positional_ami": MeasureWords(
        "Positional clustering (AMI of cluster vs position)",
        "Adjusted mutual information between a token's cluster and its patch position over all tokens "
        "(symmetric; saturates below 1 when there are fewer clusters than positions).",
        "AMI(c, p) over all tokens (equal to sklearn adjusted_mutual_info_score)",
        "bias", highlight=1,
    ),
    "position_r2": MeasureWords(
        "Position decodability (linear probe R², folds over images)",
        "How well a linear probe reads the (row, col) of a token, on images it was not fitted on. "
        "~0 without position information, 1 when a linear read-out recovers the position exactly.",
        "mean of R^2(row) and R^2(col): ridge on z-scored tokens (at most 4000, equally many per image), "
        "5-fold GroupKFold over images, penalty per target chosen from 33 values (trace(X^T X) / C * "
        "10^[-4..4]) by the pooled out-of-fold error, R^2 = 1 - SS_res / SS_tot on the pooled out-of-fold "
        "predictions",
        "bias", highlight=2, summary=2,
    ),
    "positional_effect": MeasureWords(
        "Positional effect (same-position minus different-position similarity)",
        "Cosine similarity of tokens at the same grid position in different images minus that of tokens "
        "at different positions, on dataset-mean-centred unit tokens: a shared per-position component.",
        "mean_p mean_{i!=j} u(i,p).u(j,p) - mean_{p!=q} mean_{i!=j} u(i,p).u(j,q), "
        "u = dataset-mean-centred unit tokens",
        "bias",
    ),
    "locality_d1": MeasureWords(
        "Locality beyond position at distance 1",
        "Extra similarity of neighbouring tokens in one image over tokens at the same offset in two "
        "different images: what the image content adds to what the grid position explains.",
        "within(1) - across(1); within(d) = mean over pairs at Chebyshev distance d of u(i,p).u(i,q), "
        "across(d) = same with i != j",
        "locality",
    ),
    "locality_slope": MeasureWords(
        "Locality decay with distance (slope per patch)",
        "How fast the locality beyond position decays with distance, per patch (negative = local).",
        "least-squares slope of within(d) - across(d) over d = 1..4",
        "none",
    ),
    "border_ami": MeasureWords(
        "Boundary: AMI of cluster vs outer patch ring",
        "Adjusted mutual information between a token's cluster and whether it sits on the outer ring of "
        "the patch grid: clusters that mark the image border.",
        "AMI(c, b) with b(p) = 1 on the outer ring of the patch grid",
        "bias", highlight=3, summary=4,
    ),
    "border_max_enrichment": MeasureWords(
        "Boundary: largest cluster enrichment on the outer ring",
        "The largest over-representation of one cluster on the border ring relative to the interior "
        "(1 = none), over clusters holding at least 1% of the tokens. The largest of K noisy ratios sits "
        "above 1 without any border effect (1.0-2.1 over 10 draws of 10 random 6 x 7 maps, K = 4): read it "
        "against its content-only reference.",
        "max_k ((n_kB + 1)/(n_B + K)) / ((n_kI + 1)/(n_I + K)) over clusters with >= 1% of tokens",
        "bias",
    ),
    "border_norm_ratio": MeasureWords(
        "Boundary: token norm, outer ring / interior",
        "Mean token norm on the border ring over the mean norm inside (1 = no difference).",
        "mean_{b(p)=1} ||f(i,p)|| / mean_{b(p)=0} ||f(i,p)||",
        "bias",
    ),
    "outlier_fraction": MeasureWords(
        "High-norm outlier tokens (fraction of patches)",
        "Share of patch tokens whose norm lies more than 5 robust standard deviations above the median "
        "(the high-norm tokens of 'Vision Transformers Need Registers').",
        "mean [ (||f|| - median) / (1.4826 MAD) > 5 ] over all patch tokens",
        "bias",
    ),
    "outlier_fraction_border": MeasureWords(
        "High-norm outlier tokens on the outer ring (fraction)",
        "Share of border-ring tokens with an abnormally high norm.",
        "as outlier_fraction, over tokens with b(p) = 1",
        "bias",
    ),
    "prefix_norm_ratio": MeasureWords(
        "Prefix tokens (CLS, registers): norm / mean patch norm",
        "Mean norm of the prefix tokens (CLS, registers) over the mean patch-token norm.",
        "mean_t mean_i ||prefix(i,t)|| / mean_{i,p} ||f(i,p)||",
        "none",
    ),
    "pca_top3_variance": MeasureWords(
        "Variance share of the first three joint principal components",
        "How much of the patch features' variance the three colours of the PCA picture carry (one PCA "
        "over all images' patches). Near 3 / C for features without dominant directions; near 1 when "
        "a few directions (a foreground split, position, high-norm tokens) dominate the features.",
        "sum of the top-3 eigenvalues of the joint patch covariance / its trace; replicates: random "
        "halves of the images with the components held fixed",
        "none",
    ),
    "attention_entropy": MeasureWords(
        "CLS attention entropy (normalised, mean over heads)",
        "How focused the first prefix token's (CLS's) attention is, from the block's own queries and keys: "
        "0 = all of it on one token, 1 = spread evenly over every token (prefix included).",
        "mean over heads and images of -sum_t a_t ln a_t / ln T, a = softmax(q_CLS . k_t * d^-1/2 + bias) "
        "over all T tokens",
        "none",
    ),
    "cls_ring_enrichment": MeasureWords(
        "CLS attention on the outer patch ring (enrichment)",
        "The share of the CLS token's patch attention (head mean, renormalised over the patches) that falls "
        "on the outer ring of patches, over the ring's share of patches: 1 = no preference (chance), "
        "above 1 = the CLS reads the border (a boundary artifact link).",
        "mean_i sum_{p in ring} a_i(p) / sum_p a_i(p), divided by |ring| / (h w)",
        "bias",
    ),
    "cls_high_norm_enrichment": MeasureWords(
        "CLS attention on high-norm tokens (enrichment)",
        "The share of the CLS token's patch attention on the block's high-norm patch tokens (the "
        "boundary measure's outliers: norm above median + 5 × 1.4826 MAD, five robust standard deviations) "
        "over their share of patches: 1 = chance, "
        "above 1 = the CLS reads the artifact tokens (as in 'Vision Transformers Need Registers'). "
        "Undefined (blank) when the block has no high-norm token.",
        "mean_i sum_{p in S_i} a_i(p) / sum_p a_i(p), divided by mean_i |S_i| / (h w)",
        "bias",
    ),
    "blank_position_score": MeasureWords(
        "Blank-input probe: positional structure",
        "How consistently content-free inputs (constant colours, noise) get the same cluster map under "
        "the joint centroids: on such inputs any repeated map can only come from position.",
        "(A - A0) / (1 - A0), A = mean_p max_k #{i: c(i,p)=k} / M, A0 = A after within-image shuffles",
        "bias", highlight=5, no_effect=0.0,
    ),
    "blank_autocorrelation": MeasureWords(
        "Blank-input probe: spatial autocorrelation of cluster maps",
        "Spatial coherence of the cluster maps of content-free inputs: large regions rather than "
        "speckle.",
        "(B - B0) / (1 - B0), B = share of equal 4-neighbour labels, B0 = sum_k n_k(n_k-1) / (P(P-1))",
        "bias",
    ),
    "shift_content_fraction": MeasureWords(
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
        "content", highlight=4, summary=3,
    ),
    # ---------------------------------------------------------------- against human masks
    "seg_miou": MeasureWords(
        "Matched mIoU vs human masks (STEGO protocol, K = classes)",
        "Joint k-means with K = number of classes; one Hungarian matching of clusters to classes on the "
        "confusion matrix accumulated over the test images; mean IoU over the classes with a non-empty union.",
        "mean_c TP_c / (TP_c + FP_c + FN_c) after Hungarian matching on the test images' confusion matrix",
        "quality", leaderboard=1, summary=5,
    ),
    "seg_pixel_accuracy": MeasureWords(
        "Matched pixel accuracy vs human masks (K = classes)",
        "Share of labelled pixels whose matched cluster is their class (same matching as the mIoU).",
        "sum_c TP_c / labelled pixels",
        "quality", leaderboard=2,
    ),
    "seg_miou_overcluster": MeasureWords(
        "Over-clustering mIoU (K = 2 × classes)",
        "Joint k-means with twice as many clusters as classes; each cluster mapped to a class by the rule of "
        "[evaluation] over_clustering: its majority class (several clusters may share a class), or the "
        "Hungarian matching (surplus clusters count as wrong). Methods says which rule this build used.",
        "mIoU after mapping every cluster to argmax_c confusion[k, c] (majority) or by Hungarian matching",
        "quality", leaderboard=4,
    ),
    "seg_coverage": MeasureWords(
        "Fraction of labelled pixels scored (matched mIoU)",
        "Share of labelled pixels that fall in a matched cluster (below 1 when a cluster is left "
        "unmatched).",
        "scored labelled pixels / labelled pixels",
        "none",
    ),
    "knn_miou_k10": MeasureWords(
        "k-NN patch probe mIoU (k = 10)",
        "Each query patch takes the majority label of its 10 nearest support patches (cosine); mIoU "
        "over the query patches. Support and query images are disjoint sets of the test images; how they "
        "were split (by group, or in frame blocks where groups are too few) is stated beside each result and in "
        "Methods.",
        "mIoU of cosine 10-NN majority votes, patch labels = pixel majority per patch",
        "quality", leaderboard=3, summary=6,
    ),
    "pseudomask_miou": MeasureWords(
        "DatUS²-inspired pseudo-mask mIoU (all pixels)",
        "Per image, spectral grouping of the last block's key affinity into segments; k-means over the "
        "segments' mean tokens; Hungarian-matched mIoU over all pixels (unassigned pixels count as wrong).",
        "mIoU of Hungarian-matched segment clusters, unassigned pixels counted as errors",
        "quality", leaderboard=5,
    ),
    "pseudomask_coverage": MeasureWords(
        "DatUS²-inspired pseudo-mask coverage",
        "Share of labelled pixels that the pseudo-masks assign to a segment.",
        "assigned labelled pixels / labelled pixels",
        "none",
    ),
    "propagation_jf": MeasureWords(
        "Label propagation J&F (DINO's recipe)",
        "Video object segmentation from the first frame's mask alone: each later frame's patches take the "
        "labels of their most similar patches in the first and the most recent frames (DINO's protocol: "
        "cosine similarity of L2-normalised patch features, softmax temperature, top-k neighbours within a "
        "spatial radius), upsampled to the mask and argmax-ed. J&F is the mean of region IoU (J) and boundary "
        "F-measure (F), each averaged over frames per object and over the objects of the test sequences. "
        "Methods states the parameters and the dataset's frame spacing beside the number.",
        "(J + F) / 2; J = mean over objects of mean_t IoU(pred_t = o, truth_t = o); F = same with the DAVIS "
        "boundary F-measure (tolerance 0.008 x image diagonal)",
        "quality", leaderboard=6,
    ),
    "propagation_j": MeasureWords(
        "Label propagation J (region IoU)",
        "The region part of J&F: intersection over union of each propagated object with its mask, averaged "
        "over the scored frames and then over the objects of the test sequences.",
        "mean over objects of mean_t |pred_t ∩ truth_t| / |pred_t ∪ truth_t| (1 when both are empty)",
        "quality",
    ),
    "propagation_f": MeasureWords(
        "Label propagation F (boundary F-measure)",
        "The boundary part of J&F: precision and recall of the object's boundary pixels matched within "
        "0.008 x the image diagonal (DAVIS), their harmonic mean, averaged like J.",
        "mean over objects of mean_t 2 P R / (P + R) of boundary pixels matched within ceil(0.008 x diagonal)",
        "quality",
    ),
    "cka_full_vs_foreground": MeasureWords(
        "Debiased CKA: full image vs foreground only",
        "Debiased linear CKA between the image embeddings of the full images and of the same images "
        "with the background filled. Debiased: about 0 for unrelated embeddings even with few images "
        "of many dimensions, where plain linear CKA is close to 1.",
        "CKA_u(X, Y) = HSIC_u(XX^T, YY^T) / sqrt(HSIC_u(XX^T, XX^T) HSIC_u(YY^T, YY^T)), "
        "HSIC_u the unbiased estimator (Song et al. 2012)",
        "none",
    ),
    "cka_full_vs_background": MeasureWords(
        "Debiased CKA: full image vs background only",
        "Debiased linear CKA between the image embeddings of the full images and of the same images "
        "with the foreground filled.",
        "CKA_u(X, Y), as for the foreground",
        "none",
    ),
    "cka_centre_vs_random_occlusion": MeasureWords(
        "Debiased CKA: centre-occluded vs random-occluded (control)",
        "Debiased linear CKA between embeddings of centre-occluded and randomly occluded images (a "
        "control with no semantic mask).",
        "CKA_u(X, Y), as for the foreground",
        "none",
    ),
}


def with_words(info: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each measure's stored facts (``AtlasResults.measure_info``) with its words from :data:`WORDS`.

    The words of this code win over any a record of an older build carries; a measure this code
    has no words for keeps what its record holds (the site then names it by its key).

    >>> with_words({"x": {"section": "positional"}})
    {'x': {'section': 'positional'}}
    >>> w = with_words({"seg_miou": {"title": "old", "highlight": 9, "ranked": True}})["seg_miou"]
    >>> w["title"], "highlight" in w, w["ranked"]
    ('Matched mIoU vs human masks (STEGO protocol, K = classes)', False, True)
    """
    out = {}
    for key, facts in info.items():
        words = WORDS.get(key)
        if words is None:
            out[key] = dict(facts)
            continue
        merged = {k: v for k, v in facts.items() if k not in _FIELDS}
        merged.update({k: v for k, v in dataclasses.asdict(words).items() if v is not None})
        out[key] = merged
    return out
