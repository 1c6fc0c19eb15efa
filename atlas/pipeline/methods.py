"""The Methods record: every setting of this build as ids and numbers, taken from the config and
the code that ran, so the Methods page cannot drift from what was computed. The site words it
(:mod:`atlas.site.methods`): rewording the page needs no build, only a render.

The definitions the measure modules state beside their code (the PCA picture recipe, the
attention maps' normalisation) travel with it. The measures' own words do not: the records carry
how each was computed (``AtlasResults.measure_info``), the site words it
(:mod:`atlas.site.measure_words`).
"""

from __future__ import annotations

from ..clustering.kmeans import TOL as KMEANS_TOL
from ..config import AtlasConfig
from ..inputs.probes import PROBE_NAMES
from ..measures.attention import NORMALISATION as ATTENTION_NORMALISATION
from ..measures.pca import RECIPE as PCA_RECIPE
from .inputs import SHIFT_IMAGES, SHIFTS
from .pictures import ATTENTION_IMAGES


def methods_record(cfg: AtlasConfig, eval_methods: dict | None, propagation_methods: dict | None = None,
                   n_images: int | None = None) -> dict:
    """The Methods record of a build of ``cfg``; ``eval_methods`` / ``propagation_methods``: the
    evaluations' own sections (``EvaluationRun.methods``, ``PropagationRun.methods``), or None;
    ``n_images``: the atlas's images (the shift test and the head grids take the first few of them)."""
    first = (lambda cap: cap) if n_images is None else (lambda cap: min(cap, n_images))
    f, c, u = cfg.features, cfg.clustering, cfg.uncertainty
    methods = {
        "extraction": {"layers": f.layers, "gallery_layers": f.gallery_layers, "precision": f.precision,
                       "memory_gb": f.memory_gb},
        # entries as configured: a size in pixels, [height, width], or "native"; the first is the main one
        "images": {"resolutions": [list(e) if isinstance(e, tuple) else e
                                   for e in cfg.images.requested_resolutions()],
                   "seed": cfg.atlas.seed},
        "pictures": {"pca": dict(PCA_RECIPE), "attention_normalisation": ATTENTION_NORMALISATION,
                     "attention_images": first(ATTENTION_IMAGES)},
        "clustering": {"normalize": c.normalize, "ks": list(c.ks), "n_iter": c.n_iter, "tol": KMEANS_TOL,
                       "n_init": c.n_init, "train_tokens_per_cluster": c.train_tokens_per_cluster or None,
                       "k": cfg.analyses.k},
        "shift": {"shifts": list(SHIFTS), "images": first(SHIFT_IMAGES)},
        "probes": {"inputs": list(PROBE_NAMES)},
        "uncertainty": {"level": u.level, "resamples": u.resamples, "seeds": u.seeds, "seed": cfg.atlas.seed},
        "references": bool(cfg.analyses.references),
    }
    if eval_methods:
        methods["evaluation"] = eval_methods
    if propagation_methods:
        methods["propagation"] = propagation_methods
    return methods
