"""The Methods record: every setting of this build, written from the config and the code that ran,
so the Methods page cannot drift from what was computed. (Each measure's definition comes from
the measure registry, through ``AtlasResults.measure_info``.)"""

from __future__ import annotations

import json

from ..config import AtlasConfig
from ..measures.attention import NORMALISATION as ATTENTION_NORMALISATION
from ..measures.pca import RECIPE as PCA_RECIPE
from .inputs import SHIFT_IMAGES, SHIFTS
from .pictures import ATTENTION_IMAGES


#: How the resolution axis ([images] resolutions) runs, for Methods.
RESOLUTION_AXIS = {
    "resolution axis": "every model runs at each size on the same images with the same weights; \"native\" is the "
                       "model's pretrained input size from its timm config; a size below 2 patches a side, or one that "
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


def methods_record(cfg: AtlasConfig, policy_text: str, eval_methods: dict | None,
                   propagation_methods: dict | None = None) -> dict:
    c, u = cfg.clustering, cfg.uncertainty
    methods = {
        "Extraction": {
            "tokens": "output of transformer block b (the residual stream, before the final norm)",
            "tokens_normed": "the last block's output after the model's final norm (model.norm): the last-layer "
                             "features DINO users mean (DINOv2 x_norm_patchtokens, timm forward_features); last block "
                             "only, so its layer sweep is one point. Models whose final norm is applied after pooling "
                             "(timm fc_norm) have model.norm = identity: there it equals tokens",
            "queries / keys / values": "exactly the tensors the block's attention multiplies (after q/k norm and rotary "
                                       "position embedding where the model has them), heads concatenated: one vector per token",
            "prefix tokens": "CLS and register tokens are stored apart from the patch grid and used only by the prefix-norm measure",
            "layers (measures)": json.dumps(cfg.features.layers),
            "layers (gallery)": json.dumps(cfg.features.gallery_layers),
            "relative depth": "(b + 1) / depth; relative depth d selects block round(d * depth) - 1",
            "precision": ("fp32 on every device, TF32 off (exact up to the float16 storage)" if cfg.features.precision == "fp32"
                          else f"{cfg.features.precision} autocast (approximate: matrix products in {cfg.features.precision}; "
                               "an emulated-autocast test bounds the error against fp32)"),
            "storage": ("float16 in memory while the analyses run, never written (relative rounding ≤ 2⁻¹¹ of each "
                        "value); " + (f"at most {cfg.features.memory_gb:g} GB at a time" if cfg.features.memory_gb
                                     else "as much at a time as free memory holds") + ", the forward pass run again "
                        "per chunk of blocks beyond that (the same numbers to the bit)"),
        },
        "Images": {"resolution policy": policy_text, "seed": str(cfg.atlas.seed),
                   **(RESOLUTION_AXIS if len(cfg.images.requested_resolutions()) > 1 else {})},
        "Pictures": {
            **{f"PCA → RGB, {k}": v for k, v in PCA_RECIPE.items()},
            "attention, tokens": "every prefix token (CLS first, then the registers) of every gallery block; the "
                                 "gallery's attention picture is the first prefix token's head mean",
            "attention, computation": "softmax over all tokens of (q_p * head_dim^-1/2) . k_t (+ the block's relative "
                                      "position bias where its attention adds one), from the extracted queries and keys "
                                      "(after q/k norm and rotary embedding), heads split from the concatenated vector",
            "attention, normalisation": ATTENTION_NORMALISATION,
            "attention, colour": "each picture divided by its own most attended patch (0 = none, 1 = the most), then "
                                 "Plotly's Inferno scale; the numbers (entropy, ring and high-norm shares) are on the "
                                 "layer sweep",
            "attention, head grid": f"every head of the first {ATTENTION_IMAGES} images; the head mean of every image",
        },
        "Joint clustering": {
            "algorithm": "k-means (Lloyd, k-means++ init) over the patch features of all images jointly",
            "L2-normalise before clustering": str(c.normalize),
            "K": ", ".join(map(str, c.ks)),
            "iterations": str(c.n_iter),
            "training tokens": (f"centroids fitted on a seeded uniform sample of at most {c.train_tokens_per_cluster} tokens "
                                "per cluster (K x that many), drawn from all images jointly; every token is then "
                                "assigned to its nearest centroid" if c.train_tokens_per_cluster else "every token"),
            "cluster order": "clusters sorted by size; colours aligned across blocks (deep to shallow chain), "
                             "representations (to tokens at the deepest gallery block) and models (to the first model of "
                             "a comparison) by Hungarian matching of the co-occurrence matrix",
            "K for the measures": str(cfg.analyses.k),
        },
        "Shift test": {"shifts (patches)": ", ".join(map(str, SHIFTS)),
                       "images": f"the first {SHIFT_IMAGES} images, cover-resized to (H, W + {max(SHIFTS)} patches); "
                                 "window s starts s patches right of window 0; both assigned to the same centroids"},
        "Uncertainty": {
            "level": f"{u.level:.0%} intervals",
            "resampling": (f"delete-d jackknife over images (Shao & Wu 1989): {u.resamples} random halves; every "
                           "measure is recomputed from per-image sums of the half (same code as the value); variance "
                           "(r / d) · mean (theta_half - mean)^2, interval value ± z·se. Random halves, not the "
                           "bootstrap: duplicated images inflate chance-corrected scores (AMI, NCE) and bootstrap "
                           "percentile intervals missed the true AMI in a planted test"
                           if u.resamples else "off (no intervals)"),
            "k-means seeds": f"{u.seeds}: seeds {cfg.atlas.seed}..{cfg.atlas.seed + u.seeds - 1}; the value shown is "
                             f"seed {cfg.atlas.seed}'s for the positional measures (their figures show that seed's "
                             "clustering) and the mean over seeds for the evaluation against human masks (the seed "
                             "is not chosen with the block); for measures that depend on the clustering the variance of the "
                             "value over seeds is added to the resampling variance, and the seeds' spread "
                             "(max - min) is reported beside the interval",
            "what is resampled": "the atlas images (cluster counts, norms, outliers, prefix tokens); the position "
                                 "probe's held-out images (the probes are not refitted); the blank-input probe "
                                 "images; the shift-test images",
            "jackknife": "positional effect and locality are means over pairs of images: leave-one-image-out "
                         "jackknife (dataset mean for centring held fixed), normal interval value ± z·se",
        },
        "References": {
            "content-only": "each image's tokens shuffled over its own positions (content kept, position removed), "
                            "clustered and measured like the model's tokens",
            "position-only": "each token replaced by the mean over images of the tokens at its position (position "
                             "kept, content removed), clustered and measured like the model's tokens",
            "blank-input probe and shift test": "relative by construction: 0 = chance / grid-following, "
                                                "1 = identical maps / content-following (planted tests)",
        } if cfg.analyses.references else "off",
    }
    if eval_methods:
        methods["Evaluation against human masks"] = eval_methods
    if propagation_methods:
        methods["Label propagation (video)"] = propagation_methods
    return methods
