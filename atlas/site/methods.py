"""The Methods page in words, from the build's Methods record (``AtlasResults.methods``: ids and
numbers, written by :mod:`atlas.pipeline.methods` and the evaluations).

Rewording a sentence here changes the page at the next render (``--render-only``) and computes
nothing. :func:`methods_sections` gives the page's sections in order, each a ``{key: words}``
dict (or one sentence); the other pages take single sentences from here (the resize policy, the
label-propagation protocol).

>>> record = {"images": {"resolutions": [224], "seed": 0}, "references": False}
>>> sections = methods_sections(record)
>>> list(sections), sections["References"]
(['Images', 'References'], 'off')
>>> sections["Images"]["resolution policy"][:51]
'Every image is resized with antialiased bicubic res'
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..config import resolution_label, resolution_size
from ..formatting import level_percent

#: The section titles, in page order, by record key.
SECTION_TITLES = {
    "extraction": "Extraction", "images": "Images", "pictures": "Pictures", "clustering": "Joint clustering",
    "shift": "Shift test", "probes": "Blank-input probe", "uncertainty": "Uncertainty", "references": "References",
    "evaluation": "Evaluation against human masks", "propagation": "Label propagation (video)",
}

#: How the resolution axis ([images] resolutions) runs, for Methods.
RESOLUTION_AXIS = {
    "resolution axis": "every model runs at each size on the same images with the same weights; \"native\" is the "
                       "model's pretrained input size from its timm config; a size below 3 patches a side, or one that "
                       "rounds to a size already run, is skipped for that model (build report)",
    "position embeddings at each size": "learned absolute embeddings are resampled by timm from the weights' own grid "
                                        "(bicubic, antialiased: resample_abs_pos_embed, as timm loads pretrained "
                                        "weights); random-init weights are drawn at the pretrained size and resampled "
                                        "the same way, so every size has the same weights; RoPE is evaluated at the "
                                        "new grid; each model card lists what was done at each size",
    "evaluations at each size": "the evaluation against human masks is run again at each size when it sees the "
                                "model's own input size ([evaluation] geometry = \"model\"); with STEGO's fixed 320 px "
                                "geometry, and for label propagation (frames at their own size), only at the main one",
    "pictures at each size": "the gallery's resolution selector shows every size's cluster maps, the PCA pictures "
                             "of tokens and the first prefix token's attention; the PCA pictures of the other "
                             "representations, the attention head grid and the other prefix tokens are at the "
                             "main resolution only (they would take the zoo's site over its 1 GB budget)",
    "leaderboard and comparisons": "at the main resolution (the first of the list); the Resolution page compares sizes",
}


def policy_sentence(images: dict[str, Any]) -> str:
    """How the images are resized, from the record's ``images`` section ("" when not recorded).

    >>> policy_sentence({"resolutions": ["native"]})[:60]
    'Every model runs at its native pretrained input size ([image'
    """
    requested = images.get("resolutions") or []
    if not requested:
        return ""
    # what ResizePolicy.apply does (its id: atlas.inputs.geometry.RESIZE_METHOD)
    resized = ("image is resized with antialiased bicubic resampling, keeping its aspect ratio, to the smallest "
               "size that covers {size}, then centre-cropped to {crop}.")
    if len(requested) == 1 and requested[0] != "native":
        h, w = resolution_size(requested[0])
        text = "Every " + resized.format(size=f"{h} × {w} pixels (height × width)", crop=f"exactly {h} × {w}")
    else:
        listed = ", ".join(resolution_label(e) for e in requested)
        text = ("Every model runs at its native pretrained input size ([images] resolutions = native): "
                if len(requested) == 1 else
                f"Every model runs at {len(requested)} input sizes ([images] resolutions = {listed}; the first "
                "is the main one); at each, ")
        text += "every " + resized.format(size="it", crop="it")
    return text + (" That size is first rounded per model to the nearest multiple of its patch size (halves round "
                   "up; e.g. 224 for /16 and /14 patches), so every image of a model shares one patch grid.")


def _extraction(r: dict[str, Any]) -> dict[str, str]:
    precision, memory = r.get("precision", "fp32"), r.get("memory_gb")
    return {
        "tokens": "output of transformer block b (the residual stream, before the final norm)",
        "tokens_normed": "the last block's output after the model's final norm (model.norm): the last-layer "
                         "features DINO users mean (DINOv2 x_norm_patchtokens, timm forward_features); last block "
                         "only, so its layer sweep is one point. Models whose final norm is applied after pooling "
                         "(timm fc_norm) have model.norm = identity: there it equals tokens",
        "queries / keys / values": "exactly the tensors the block's attention multiplies (after q/k norm and rotary "
                                   "position embedding where the model has them), heads concatenated: one vector per token",
        "prefix tokens": "CLS and register tokens are stored apart from the patch grid; used by the prefix-norm "
                         "measure and, as queries, by the attention pictures and measures",
        "layers (measures)": json.dumps(r.get("layers")),
        "layers (gallery)": json.dumps(r.get("gallery_layers")),
        "relative depth": "(b + 1) / depth; relative depth d selects block round(d * depth) - 1",
        "precision": ("fp32 on every device, TF32 off (exact up to the float16 storage)" if precision == "fp32"
                      else f"{precision} autocast (approximate: matrix products in {precision}; "
                           "an emulated-autocast test bounds the error against fp32)"),
        "storage": ("float16 in memory while the analyses run, never written (relative rounding ≤ 2⁻¹¹ of each "
                    "value); " + (f"at most {memory:g} GB at a time" if memory else "as much at a time as free "
                                  "memory holds") + ", the forward pass run again per chunk of blocks beyond that "
                    "(the same numbers to the bit)"),
    }


def _images(r: dict[str, Any]) -> dict[str, str]:
    return {"resolution policy": policy_sentence(r),
            "seed": f"{r.get('seed')}: the atlas seed, from which every random choice derives (random-init "
                    "weights, the blank probes' noise, the k-means seeds, the splits, the resampling halves, the "
                    "chance baseline)",
            **(RESOLUTION_AXIS if len(r.get("resolutions") or []) > 1 else {})}


def _pictures(r: dict[str, Any]) -> dict[str, str]:
    return {
        **{f"PCA → RGB, {k}": v for k, v in (r.get("pca") or {}).items()},
        "attention, tokens": "every prefix token (CLS first, then the registers) of every gallery block; the "
                             "gallery's attention picture is the first prefix token's head mean",
        "attention, computation": "softmax over all tokens of (q_p * head_dim^-1/2) . k_t (+ the block's relative "
                                  "position bias where its attention adds one), from the extracted queries and keys "
                                  "(after q/k norm and rotary embedding, read as stored: float16), heads split from "
                                  "the concatenated vector",
        "attention, normalisation": str(r.get("attention_normalisation", "")),
        "attention, colour": "each picture divided by its own most attended patch (0 = none, 1 = the most), then "
                             "Plotly's Inferno scale; the numbers (entropy, ring and high-norm shares) are on the "
                             "layer sweep",
        "attention, head grid": f"every head of the first {r.get('attention_images')} images; the head mean of every image",
    }


def _clustering(r: dict[str, Any]) -> dict[str, str]:
    train = r.get("train_tokens_per_cluster")
    return {
        "algorithm": "k-means (Lloyd, greedy k-means++ init) over the patch features of all images jointly; "
                     "Lloyd runs in faiss on the CPU and in torch on a GPU (each model's device is in the Build "
                     "report): a clustering is reproduced exactly on the same backend and device only",
        "L2-normalise before clustering": str(r.get("normalize")),
        "K": ", ".join(map(str, r.get("ks") or [])),
        "iterations": (f"at most {r.get('n_iter')}" + (f", stopping once one lowers the objective by less than "
                                                        f"{r['tol']:g} of it" if r.get("tol") else "")),
        **({"k-means++ starts": f"{r['n_init']}" + (" (the best objective kept)" if r["n_init"] > 1 else "")}
           if r.get("n_init") else {}),
        "training tokens": (f"centroids fitted on a seeded uniform sample of K x {train} tokens ({train} per cluster "
                            "on average), drawn from all images jointly; every token is then assigned to its "
                            "nearest centroid" if train else "every token"),
        "cluster order": "clusters sorted by size; colours aligned across blocks (deep to shallow chain), "
                         "representations (to tokens at the deepest gallery block), models (to the first model of "
                         "a comparison) and input sizes of the main size's aspect ratio (one renumbering per K "
                         "for all of a size's maps: its tokens' deepest gallery block to the main size's, counted "
                         "on the two grids' common grid; another aspect ratio crops another part of each image "
                         "and keeps its own colours) by Hungarian matching of the co-occurrence matrix; not across K: a colour at "
                         "another K is another cluster. The maps of cluster ids beside the gallery (dominant "
                         "cluster, blank-input probes, shift-test pairs; K for the measures) are renumbered with "
                         "the gallery's map of their block and representation, where the gallery has that K",
        "K for the measures": str(r.get("k")),
    }


def _shift(r: dict[str, Any]) -> dict[str, str]:
    shifts = r.get("shifts") or [0]
    return {"shifts (patches)": ", ".join(map(str, shifts)),
            "images": f"the first {r.get('images')} images, cover-resized to (H, W + {max(shifts)} patches); "
                      "window s starts s patches right of window 0; both assigned to the same centroids"}


def _probes(r: dict[str, Any]) -> dict[str, str]:
    names = r.get("inputs") or []
    return {"inputs": f"{len(names)} content-free images at each model's input size: " + ", ".join(names),
            "what they are": "constant colours (constant-mean is the normalisation mean, an all-zero input to "
                             "the model up to rounding); noise-uniform: independent uniform 0-255 per pixel and "
                             "channel; noise-gaussian: per-channel Gaussian with the normalisation's mean and std "
                             "(a near standard-normal input), each from its own stream of the atlas seed",
            "scoring": "assigned to the joint centroids of the atlas images' clustering; any map they share can "
                       "only come from position (blank-input measures)"}


def _reported_seeds(ev: dict[str, Any]) -> str:
    """`` a..b`` of the evaluation's reported k-means seeds (records before they were stored: none)."""
    seeds = ev.get("reported_seeds") or []
    return f" {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else (f" {seeds[0]}" if seeds else "")


def _uncertainty(r: dict[str, Any]) -> dict[str, str]:
    seed, seeds = r.get("seed", 0), r.get("seeds", 1)
    return {
        "level": f"{level_percent(r.get('level', 0.95))} intervals",
        "resampling": (f"delete-d jackknife over images (Shao & Wu 1989): {r['resamples']} random halves (drawn "
                       "with repeats: U units have C(U, floor(U/2)) distinct halves, given beside each evaluation's "
                       "units); every "
                       "measure is recomputed from per-image sums of the half (same code as the value); variance "
                       "(r / d) · mean (theta_half - mean)^2, interval value ± t·se with t Student's quantile at "
                       "U - 1 degrees of freedom (U resampling units: images, groups or frame blocks; for one seed's "
                       "value with the seed variance added, see k-means seeds), no interval "
                       "with fewer than 3 units or with more than 1 in 10 replicates undefined. Random halves, not the "
                       "bootstrap: duplicated images inflate chance-corrected scores (AMI, NCE) and bootstrap "
                       "percentile intervals missed the true AMI in a planted test"
                       if r.get("resamples") else "off (no intervals)"),
        "range of an interval": "an interval is clipped to its measure's range (an AMI never above 1; a share "
                                "within [0, 1]; a ratio or enrichment never below 0; each measure's range is on "
                                "its entry below): a bound at the end of the range may be a "
                                "clipped one, and the interval is then not symmetric about the value. The "
                                "records keep the se and degrees of freedom, from which the unclipped interval "
                                "is value ± t·se. [1.00, 1.00] at a range end: the replicates agreed to the digits shown",
        "k-means seeds": f"{seeds}: seeds {seed}..{seed + seeds - 1}; the value shown is seed {seed}'s for the "
                         "positional measures (their figures show that seed's clustering). The evaluation against "
                         f"human masks chooses its block with seed {seed} and reports the mean over the {seeds} "
                         "seeds after it (Evaluation, leaderboard, names them). For measures that depend on the "
                         "clustering the variance over seeds is added to the resampling variance (as it is for one "
                         "seed's value, over the number of seeds for a mean), and t takes the Welch-Satterthwaite "
                         "degrees of freedom of the sum (U - 1 and seeds - 1) with the seeds' term at its 95% upper "
                         "confidence bound, so that a seed spread small by chance does not buy the resampling's "
                         "degrees of freedom. In simulations with 3 seeds varying 10x the images' standard error, "
                         "95% intervals missed the truth 1.6% (one seed's value) and 4.0% (the mean) of the time, "
                         "99.89% intervals (the level of each pair in a ranking of 10 models) 0.06% and 0.14%; plain "
                         "Welch-Satterthwaite missed the latter 0.42% and 1.5% of the time. The seeds' spread "
                         "(max - min) is reported beside the interval",
        "what is resampled": "the atlas images (cluster counts, norms, outliers, prefix tokens); the position "
                             "probe's held-out images (the probes are not refitted); the blank-input probe "
                             "images (a fixed, designed set of constant and noise inputs, not a sample: their "
                             "interval says how much the number depends on which probe, not how it would vary "
                             "over other inputs); the shift-test images. The k-means centroids stay those fitted on all images "
                             "(the clustering's randomness enters through the seeds); atlas images are resampled "
                             "one by one, also when a manifest gives them groups",
        "jackknife": "positional effect and locality are means over pairs of images: leave-one-image-out "
                     "jackknife (dataset mean for centring held fixed), interval value ± t·se at N - 1 degrees "
                     "of freedom",
        "comparing with baselines": "the ▼ / ≈ flags read the interval of the model's number minus the "
                                    "baseline's, from the replicates both share: model and baseline are scored on "
                                    "the same images and the same resampling halves, and for clustered numbers "
                                    "seed i of the model is paired with seed i of the baseline (a baseline with "
                                    "one seed with every seed), so the variance is that of the difference. "
                                    "≈ when it reaches 0 (not shown to differ at the interval's level, which "
                                    "does not show the two are equal); ▼ when it lies under 0 at level "
                                    "1 - (1 - level) / m for the m simple baselines of the number (Bonferroni: a "
                                    "model equal to every baseline is marked ▼ in at most 1 - level of its "
                                    "numbers). A number without an interval, or a baseline without one, is "
                                    "compared by the overlap of the two intervals (or by the values)",
        "comparing models": "the leaderboards' tiers compare two models by the interval of their paired "
                            "difference: both are scored on the same test images (sequences) and halves, and "
                            "each model's chosen number keeps its replicates; k-means seeds pair by position "
                            "(the same seed for both) and the seed term is the variance of the per-seed "
                            "differences. A column of n models is ranked at the interval level family-wise: "
                            "each comparison is at 1 - (1 - level) / (n (n - 1) / 2), Bonferroni over all pairs "
                            "of models, not only over the n - 1 comparisons made, because the sorted numbers "
                            "choose which pairs those are (in a simulation of 25 models of equal skill, widening for "
                            "n - 1 comparisons still split a column in about 1 draw in 4, all pairs in 3 to 4 in 100). Where two numbers cannot "
                            "be paired (no replicates, other halves) their intervals at that level are compared "
                            "by overlap, a stricter test. "
                            "A shared rank does not show that two numbers are equal. Tiers are numbered densely "
                            "(1=, 1=, 2); each row is compared with its tier's first, so two rows of adjacent "
                            "tiers need not differ from each other. The resolution page pairs a model's two "
                            "input sizes the same way (the same images and halves at both), one unadjusted test "
                            "per row",
    }


def _references(on: Any) -> dict[str, str] | str:
    if not on:
        return "off"
    return {
        "content-only": "each image's tokens shuffled over its own positions (content kept, position removed), "
                        "clustered and measured like the model's tokens; none for the measures a shuffle within "
                        "an image cannot change (statistics of the set of tokens, so marked in their entries "
                        "below), whose reference would equal the value by construction",
        "position-only": "each token replaced by the mean over images of the tokens at its position (position "
                         "kept, content removed), clustered and measured like the model's tokens",
        "blank-input probe and shift test": "relative by construction: 0 = chance / grid-following, "
                                            "1 = identical maps / content-following (planted tests); the "
                                            "shift test's 0.5 = an even mix, or maps that follow neither",
    }


def split_rule(ev: dict[str, Any]) -> str:
    """How the evaluation's folds were made (its record: ``split_kind``, ``groups``, ``split_seed``).

    >>> split_rule({"split_kind": "groups", "groups": 6, "split_seed": 0})
    '6 groups, each whole in one fold (shuffled with seed 0)'
    >>> split_rule({"split_kind": "contiguous blocks", "groups": 1})
    'contiguous blocks of the images ordered by group (1 group) and name (numbers in names as numbers)'
    """
    n = ev.get("groups", 0)
    if ev.get("split_kind") == "groups":
        return f"{n} groups, each whole in one fold (shuffled with seed {ev.get('split_seed', 0)})"
    return (f"contiguous blocks of the images ordered by group ({n} group{'s' if n != 1 else ''}) and name "
            "(numbers in names as numbers)")


def units_rule(rule: dict[str, Any]) -> str:
    """The resampling units of an image set (``atlas.measures.uncertainty.resampling_units``' rule).

    A few units have few distinct halves (:func:`distinct_halves`): the random halves then repeat,
    and the count says how many differ.

    >>> units_rule({"unit": "frame blocks", "units": 4, "groups": 2})
    '4 contiguous blocks of frames (2 groups, too few to resample whole; frames in name order, numbers in names as \
numbers; 6 distinct halves)'
    >>> units_rule({"unit": "groups", "units": 12, "groups": 12}), units_rule({"unit": "images", "units": 5})
    ('12 groups (924 distinct halves)', 'images')
    """
    unit, n, g = rule.get("unit"), rule.get("units", 0), rule.get("groups", 0)
    if unit == "images":
        return "images"
    if unit == "groups":
        return f"{n} groups ({distinct_halves(n)})"
    return (f"{n} contiguous blocks of frames ({g} group{'s' if g != 1 else ''}, too few to resample whole; "
            f"frames in name order, numbers in names as numbers; {distinct_halves(n)})")


def distinct_halves(units: int) -> str:
    """How many distinct halves ``units`` resampling units have (each half keeps ``floor(U / 2)``
    of them, :func:`atlas.measures.uncertainty.half_samples`), in words.

    >>> distinct_halves(5), distinct_halves(40)
    ('10 distinct halves', 'more than 10^6 distinct halves')
    """
    count = math.comb(int(units), int(units) // 2) if units and units > 1 else 0
    return f"{count} distinct halves" if count <= 10**6 else "more than 10^6 distinct halves"


def evaluation_words(ev: dict[str, Any]) -> dict[str, Any]:
    """The evaluation-against-human-masks section in words."""
    stego = ev.get("geometry") == "stego"
    geometry = ("STEGO geometry: short side resized to 320 px, centre crop 320 x 320 (snapped to the patch size); "
                "the same weights with the position embeddings resampled for 320 px (timm's resampling, as "
                "for pretrained weights at another size)"
                if stego else "the model's own input size and centre crop (as the atlas images)")
    folds, res = ev.get("folds") or {}, ev.get("resampling") or {}
    classes = ev.get("classes") or []
    grouped_by = (f"the regular expression {ev['group_regex']}" if ev.get("group_regex") else "image")
    contiguous = ev.get("split_kind") != "groups"
    return {
        "dataset": f"{ev.get('dataset')}: {ev.get('images')} images, {len(classes)} classes ({', '.join(classes)}), "
                   f"ignore index {ev.get('ignore_index')}" + (f", split {ev['split']}" if ev.get("split") else "")
                   + (f", images listed in {ev['image_list']}" if ev.get("image_list") else "")
                   + (f", the first {ev['max_images']} by name" if ev.get("max_images") else ""),
        "geometry": f"{geometry}; masks follow with nearest-neighbour resampling; scores are on that crop "
                    "(no CRF, no flip averaging)",
        "splits": f"{'contiguous frame blocks' if contiguous else 'whole groups'}; grouped by {grouped_by}: "
                  f"{split_rule(ev)}. Selection {folds.get('selection')} images (only choose each model's "
                  f"leaderboard row), test {folds.get('test')} images (every reported number); k-NN support "
                  f"{folds.get('support')} and queries {folds.get('query')} of the test images"
                  + ("; too few groups to keep each whole, so a group can be on both sides of a fold boundary and "
                     "neighbouring frames meet there" if contiguous else ""),
        "split kind": str(ev.get("split_kind", "")),
        "split groups": {f: ", ".join(g) for f, g in (ev.get("fold_groups") or {}).items()},
        "matched mIoU (STEGO protocol)": "joint k-means (all images) with K = number of classes; cluster maps "
                                         "upsampled (nearest) to mask resolution; one Hungarian matching on the "
                                         "confusion matrix of the test images; mIoU = mean IoU over the classes "
                                         "with a non-empty union. The matching is fitted on the images it scores, "
                                         "as in STEGO (so that the numbers compare with the literature's): an "
                                         "exception to choosing nothing on scored data, which favours every model "
                                         "and baseline alike; the ceiling bounds it",
        "over-clustering": "K = 2 x classes; each cluster mapped to its class by the "
                           + ("Hungarian matching (surplus clusters count as wrong)"
                              if ev.get("over_clustering") == "hungarian" else "majority rule"),
        "k-NN patch probe": "patch label = majority of its pixels (patches mostly ignore are skipped); cosine "
                            f"k-NN with k in {ev.get('knn_ks')}, support -> query, one unweighted vote per "
                            "neighbour (ties: larger summed similarity; neighbours tied at the k-th similarity "
                            "share the remaining votes); mIoU over query patches. DINO's k-NN classifier weights "
                            "votes by exp(similarity / 0.07) instead. Its interval resamples the query images "
                            "with the support set fixed: it is conditional on that support set, which also "
                            "scored the block choice (support -> selection images)",
        "high-variance channel removal": "k-NN (k = 10) after dropping the top-m variance channels of the support "
                                         f"set, m in {ev.get('removal_ms')}; controls: z-scoring, PCA whitening",
        "similarity under masking": f"first {ev.get('similarity_images')} images in five variants "
                                    f"({', '.join(ev.get('variants') or [])}); foreground classes: "
                                    f"{', '.join(ev.get('foreground') or [])}; embedding = CLS token (mean of patch "
                                    "tokens when the model has none) of the last block; linear CKA, debiased linear "
                                    "CKA, SVCCA (99% variance) in the figure; the numbers with intervals are "
                                    "debiased CKA (with this few images plain linear CKA of unrelated embeddings is "
                                    "near 1); no better or worse direction, so not on the leaderboard",
        "pseudo-masks (DatUS²-inspired)": "per image, spectral grouping of the last block's key affinity, connected "
                                          "components, segments under 3 patches dropped; mean-pooled tokens per "
                                          "segment; k-means (K = classes) over all segments; scored over all pixels "
                                          "of the test images (unassigned pixels count as wrong), coverage reported. "
                                          "This follows DatUS² (Kumar et al. 2024) in outline only: DatUS² groups "
                                          "each image by Louvain communities of a graph of positive key dot "
                                          "products (their number not fixed; here spectral clustering into 5 groups "
                                          "of a 10-nearest-neighbour cosine graph), takes 8-connected components of "
                                          "more than 5 patches (here 4-connected, at least 3), describes a segment "
                                          "by the CLS token of its masked crop passed through the model again "
                                          "(here the mean of its patch tokens, no second pass), reduces them with "
                                          "PCA before k-means, and leaves unassigned pixels out of the score (here "
                                          "they count as wrong). The numbers are not comparable with DatUS²'s"
                                          + ("; the 6 SUIM classes are DatUS²'s" if str(ev.get("dataset")).lower() == "suim"
                                             else ""),
        "intervals": f"{level_percent(ev.get('level', 0.95))} intervals from {ev.get('resamples')} delete-d "
                     "jackknife replicates that each keep a random half of the resampling units (the matching redone "
                     "in every replicate, its mIoU over the classes present in that half) and "
                     f"{ev.get('seeds')} k-means seeds{_reported_seeds(ev)} (the variance of their mean added); "
                     "the seeds' own "
                     "spread is reported. The k-NN curves (mIoU against k, channel removal) carry the k-NN number's "
                     "intervals: the same query-image replicates, the support set fixed. "
                     "Frames of one group are not independent, so the units are the groups when there are at "
                     "least 10, otherwise contiguous blocks of frames in name order (numbers in names compared as "
                     "numbers; about sqrt(N) blocks of about sqrt(N) frames, none across two groups); images without "
                     "a group are units "
                     f"themselves. Test images: {units_rule(res.get('test') or {})}; k-NN query images: "
                     f"{units_rule(res.get('query') or {})}; CKA's {(res.get('similarity') or {}).get('images')} "
                     f"images: {units_rule(res.get('similarity') or {})}",
        "leaderboard": "each model's block and representation (and K) are chosen on the selection images by the "
                       "measure named in its column (pixel accuracy and coverage follow the mIoU's choice) with "
                       f"k-means seed {ev.get('selection_seed', 0)}; the value shown is on the test images, the "
                       f"mean over the k-means seeds{_reported_seeds(ev)}, not over the choosing seed: its "
                       "clustering, fitted on all images, covers the test images too, so its test value would "
                       "carry the luck that won the choice. Baselines choose their variant the same way. "
                       "Pseudo-masks use the last gallery block's keys by definition",
        "baselines": "chance (random cluster ids; k-NN: random features), constant (one cluster), colour (the "
                     "mean colour of each patch, z-scored; RGB or CIELAB, whichever scores better on the selection "
                     "images), position (Gaussian bumps of 1.5 patches at every grid position), colour + position "
                     "(the best on the selection images of four variants: RGB or CIELAB, with plain coordinates, "
                     "i.e. the patch colour in its range beside the patch centre's (y, x) as fractions of the grid, "
                     "or normalised ones, i.e. the z-scored colour and the position bumps, each part L2-normalised "
                     "so that both weigh alike under cosine similarity; each table names the variant it reports), "
                     "all through the same protocol, images, split, grid and K; ceiling = the ground "
                     "truth reduced to the patch grid (majority class per patch). k-NN is scored on patch labels, "
                     "so its ceiling is 1 by construction and not shown",
        "differences from STEGO's evaluation": "no CRF and no flip averaging; the geometry above; images limited "
                                               "by max_images / image_list; matching on the test images of this "
                                               "split, not the full split; clusters are assigned per patch and "
                                               "the cluster map upsampled (nearest), where STEGO upsamples the "
                                               "features (bilinear) and assigns each pixel; over-clustering is "
                                               "this atlas's rule (STEGO's code counts only pixels of the first "
                                               "K clusters)",
    }


def one_drive(p: dict[str, Any]) -> bool:
    """Whether the label propagation's sequences (its record ``p``) are clips of one drive (CamVid's),
    so that neighbouring ones are not independent units.

    >>> one_drive({"dataset": "camvid"}), one_drive({"dataset": "davis"}), one_drive({})
    (True, False, False)
    """
    return p.get("dataset") == "camvid"


def propagation_words(p: dict[str, Any]) -> dict[str, str]:
    """The label-propagation section in words (also the Label propagation page's protocol lines)."""
    frames, step, camvid = p.get("frames") or [0], p.get("frame_step", 1), one_drive(p)
    spacing = ("consecutive video frames" if step == 1 else
               f"frames {step} video frames apart (only labelled frames exist)")
    if camvid:
        spacing += (f"; CamVid's video is 30 Hz, so consecutive frames here are {step}/30 s apart "
                    "(the 0016E5 part of the SegNet redistribution is labelled at 15 Hz; most of CamVid is "
                    "labelled at 1 Hz), not DAVIS's 24 fps: read CamVid numbers with that gap in mind")
    h, w = (p.get("size") or [0, 0])[:2]
    selection = p.get("selection") or []
    return {
        "dataset": f"{p.get('dataset')}: {p.get('sequences')} sequences, {sum(frames)} frames ("
                   + (f"{min(frames)} each" if min(frames) == max(frames) else f"{min(frames)}-{max(frames)} a sequence")
                   + "); " + spacing
                   + (f"; CamVid's labelled frames cut into clips of {p.get('clip_length')}, each class one object "
                      "(semantic propagation), unlabelled pixels ignored" if camvid else ""),
        "protocol": "DINO's eval_video_segmentation.py: patch features of block b (CLS and registers dropped), "
                    f"L2-normalised; affinity exp(cosine / {p.get('temperature'):g}) to the first frame and the "
                    f"{p.get('n_context')} most recent frames; each patch keeps its top {p.get('top_k')} affinities "
                    f"within {p.get('radius')} patches (rows and columns); the context's soft labels averaged with "
                    "the normalised weights; upsampled (bilinear) to the mask size, each label's map rescaled to "
                    "[0, 1] over the frame (DINO's norm_mask), then argmax. The first mask "
                    "enters at the patch grid (nearest)",
        "temperature": f"{p.get('temperature'):g} (DINO's; DINOv3's notebook uses 0.2, which spreads the weights over "
                       "the top-k neighbours more evenly: numbers at the two temperatures are not comparable)",
        "geometry": f"frames resized whole to short side {p.get('short_side')} ({h} x {w} px), then rounded to "
                    "whole patches per model (each patch grid heads its baseline table on the label propagation "
                    "page), the model's position embeddings resampled to that grid (timm); masks "
                    "nearest-neighbour; J and F scored at the rounded size",
        "metrics": "per object (those of the first mask), J = region IoU and F = DAVIS's boundary F-measure "
                   "(its boundary map, half a pixel towards the origin, the image's edge no boundary; "
                   "tolerance 0.008 x the image diagonal), each averaged over the scored frames "
                   + ("(frames after the first and before the last, as DAVIS 2017's evaluation; void pixels "
                      "count as background, as there)" if p.get("dataset") == "davis" else
                      "(every frame after the first that has a mask; DAVIS 2017's evaluation also leaves out "
                      "the last frame of a sequence)")
                   + "; J&F = (J + F) / 2; pooled over the objects of the test sequences",
        "differences from DINO's evaluation": "J and F are scored at the frames' patch-rounded size above, "
                                              "against masks resampled to it (nearest); DINO argmaxes at "
                                              "480 px and DAVIS scores at the annotations' own size",
        "splits": f"sequences: selection {len(selection)} ({', '.join(selection)}; only choose each model's "
                  f"leaderboard block and representation), test {p.get('test')} (every reported number)"
                  + ("; the clips come from one drive, so neighbouring clips are not independent" if camvid else ""),
        "intervals": (f"{level_percent(p.get('level', 0.95))} intervals from {p.get('resamples')} random halves "
                      f"of the {p.get('test')} test sequences ({distinct_halves(p.get('test') or 0)}; delete-d "
                      "jackknife); deterministic, so no seeds"
                      if p.get("intervals") else "none (intervals off, or fewer than 2 test sequences)"),
        "baselines": "through the same scoring: zero motion (the first mask copied to every frame), colour "
                     "(z-scored per-patch mean RGB) and position (Gaussian bumps of 1.5 patches at every grid "
                     "position) through the same propagation, and the ceiling (every true mask reduced to the "
                     "patch grid by majority and upsampled, nearest)",
    }


_WORDS = {"extraction": _extraction, "images": _images, "pictures": _pictures, "clustering": _clustering,
          "shift": _shift, "probes": _probes, "uncertainty": _uncertainty, "references": _references,
          "evaluation": evaluation_words, "propagation": propagation_words}


def methods_sections(record: dict[str, Any]) -> dict[str, Any]:
    """The Methods page's sections in words, ``{title: {key: words} or one sentence}``, in page order;
    sections the record lacks are left out."""
    return {title: _WORDS[key](record[key]) for key, title in SECTION_TITLES.items() if key in record}
