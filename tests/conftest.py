"""Shared test fixtures.

``synthetic_results`` is a TEST FIXTURE ONLY: every value in it is synthetic (made-up models,
measures and images), built to exercise the site layer quickly and without any model weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from atlas.pipeline import payloads
from atlas.records import (
    PCA_VIEWS,
    RANDOM_INIT_LABEL,
    AtlasResults,
    Baseline,
    ClusterRun,
    ComparisonResult,
    DatasetCredit,
    ImageInfo,
    MeasureRow,
    ModelCard,
    ModelResult,
    SkippedItem,
    attention_key,
    map_key,
    photo_key,
    picture_key,
    thumbnail_key,
)


def _photo(seed: int, size: int = 112) -> np.ndarray:
    """A synthetic 'photo': smooth gradients and a disc, different per seed."""
    y, x = np.mgrid[0:size, 0:size] / size
    r = 0.5 + 0.5 * np.sin(6 * x + seed)
    g = 0.5 + 0.5 * np.cos(5 * y + 2 * seed)
    b = ((x - 0.3 - 0.1 * seed) ** 2 + (y - 0.5) ** 2 < 0.05).astype(float)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def _labels(seed: int, block: int, k: int, grid: int = 14) -> np.ndarray:
    y, x = np.mgrid[0:grid, 0:grid]
    return ((x * (block + 1) // grid + y * (seed + 1) // grid + seed) % k).astype(np.int16)


def _pictures(blocks, reps, n_images: int, seed: int, grid: int = 14, heads: int = 6) -> dict[str, np.ndarray]:
    """PCA-RGB pictures of every (block, representation) and CLS attention maps of every block."""
    rng = np.random.default_rng(seed)
    out = {}
    for b in blocks:
        for rep in reps:
            for view in PCA_VIEWS:
                out[picture_key(b, rep, view)] = rng.integers(0, 256, (n_images, grid, grid, 3), dtype=np.uint8)
        rows = rng.dirichlet(np.ones(1 + grid * grid), size=(n_images, 1, heads))[..., 1:]
        out[attention_key(b, "heads")] = rows.reshape(n_images, 1, heads, grid, grid).astype(np.float16)
        out[attention_key(b, "mean")] = out[attention_key(b, "heads")].mean(axis=2)
    return out


def make_synthetic_results(docs: Path | None = None, *, display_names: dict[str, str] | None = None,
                           build_date: str = "2025-01-02", comparisons: bool = True) -> AtlasResults:
    """Synthetic AtlasResults (label maps and photos in memory; the site draws the gallery).

    ``docs`` is accepted for symmetry with the real build and not used.
    """
    names = {"dino": "DINO ViT-S/16", "mae": "MAE ViT-B/16", "rand": "ViT-S/16"}
    names.update(display_names or {})
    image_names = ["sky-and-disc", "red waves", "blue_field", "dusk"]
    images = [ImageInfo(name=n, source=f"synthetic://test/{i}", licence="CC0-1.0",
                        credit="synthetic test image" if i else "", content_hash=f"{i:064x}", width=112, height=112)
              for i, n in enumerate(image_names)]
    photos = {}
    for i, img in enumerate(images):  # 112-px photos stand in for the 224-px model inputs
        photos[photo_key(img.content_hash, (224, 224))] = _photo(i)
        photos[thumbnail_key(img.content_hash)] = _photo(i)

    specs = [
        ("dino-vit-s16", names["dino"], "dino", "contrastive", False),
        ("mae-vit-b16", names["mae"], "mae", "masked-image-modelling", False),
        ("vit-s16-random", names["rand"], "vit", "random", True),
    ]
    blocks, reps, ks = [2, 5, 8, 11], ["tokens", "keys"], [4, 8]
    models = []
    for mi, (slug, name, family, training, random_init) in enumerate(specs):
        card = ModelCard(
            slug=slug, display_name=name, timm_name=f"vit_small_patch16_224.{family}", family=family,
            training=training, group=None, params=22_000_000 + mi * 64_000_000, patch_size=16,
            embed_dim=384, depth=12, num_heads=6, num_prefix_tokens=1, num_registers=0, has_cls=True,
            pos_encoding="RoPE" if random_init else "learned absolute", mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225], layer_scale=1e-5 if random_init else None,
            input_size=[224, 224], pretrained_input_size=[224, 224],
            weights_source="random" if random_init else "pretrained",
            provenance=RANDOM_INIT_LABEL if random_init else f"hf-hub:timm/{family}@abc123 sha256:{mi:08x}",
            is_random_init=random_init)
        runs, label_maps = [], {}
        for b in blocks:
            for rep in reps:
                for k in ks:
                    label_maps[map_key(b, rep, k)] = np.stack([_labels(ii + mi, b, k) for ii in range(len(images))])
                    sizes = [int(50 + 40 * math.sin(c + b + mi)) + 60 for c in range(k)]
                    runs.append(ClusterRun(block=b, rel_depth=(b + 1) / 12, representation=rep, k=k,
                                           sizes=sizes, inertia=1000.0 / (b + 1)))
        measures, figures, references, baselines, selected = [], {}, [], [], {}
        if slug != "mae-vit-b16":  # one model without measures: "not computed" sections
            for b in blocks:
                for rep in reps:
                    d = (b + 1) / 12
                    measures.append(MeasureRow(b, d, rep, "position decodability (R²)",
                                               0.9 - 0.5 * d + 0.05 * mi - 0.1 * (rep == "keys")))
                    measures.append(MeasureRow(b, d, rep, "mIoU vs human masks", 0.2 + 0.3 * d * (1 - mi / 3) + 0.04 * (rep == "keys"),
                                               k=8))
                    for k in ks:
                        measures.append(MeasureRow(b, d, rep, "cluster size entropy", 0.5 + 0.1 * k * d - 0.1 * (rep == "keys") + 0.03 * mi, k=k))
                    # raw measure names with readable titles in AtlasResults.measure_info
                    nce = 0.6 - 0.4 * d + 0.1 * mi
                    measures.append(MeasureRow(b, d, rep, "positional_nce", nce, lo=nce - 0.04, hi=nce + 0.04,
                                               seed_spread=0.01))
                    references.append(MeasureRow(b, d, rep, "positional_nce", 0.01, reference="content-only"))
                    references.append(MeasureRow(b, d, rep, "positional_nce", 0.97, reference="position-only"))
                    seg = 0.1 + 0.4 * d * (1 - mi / 3) + 0.05 * (rep == "keys")
                    measures.append(MeasureRow(b, d, rep, "seg_miou", seg, k=8, lo=seg - 0.03, hi=seg + 0.03))
                    if rep == "tokens":
                        measures.append(MeasureRow(b, d, rep, "knn_miou_k10", 0.3 + 0.2 * d - 0.1 * mi))
            z = [[math.sin(r / 3) * math.cos(c / 4) for c in range(14)] for r in range(14)]
            figures = {
                "heatmaps": [{"id": "token-norm", "title": "Mean token norm", "z": z, "block": 11,
                              "representation": "tokens", "image": "sky-and-disc",
                              "labels": [[(r + c) % 4 for c in range(14)] for r in range(14)],
                              "zlabel": "norm"}],
                "curves": [{"id": "locality", "title": "Attention distance", "x": [0, 1, 2, 3],
                            "series": {"tokens": [1, 2, 3, 4], "keys": [2, 2.5, 3, 3.2]},
                            "xaxis": "block index", "yaxis": "patches"}],
            }
            blank = [[(r // 4 + c // 5) % 3 for c in range(14)] for r in range(14)]
            figures["heatmaps"].append({"id": "blank-grey-tokens", "title": "Blank-input probe (grey), block 11 "
                                        "tokens: cluster map", "z": blank, "labels": blank, "block": 11,
                                        "representation": "tokens", "zlabel": "cluster", "image": "grey"})
            measures.append(MeasureRow(11, 1.0, "keys", "pseudomask_miou", 0.18, lo=0.16, hi=0.2))
            baselines.append(Baseline("pseudomask_miou", "colour", 0.25, 0.23, 0.27))
            variants = ["full", "foreground_only", "background_only"]
            figures["heatmaps"].append(payloads.masking_matrix(
                "linear_cka", [[1.0 if i == j else 0.5 + 0.1 * (i + j) for j in range(3)] for i in range(3)],
                variants, 11))
            baselines += [Baseline("seg_miou", "chance", 0.05, 0.04, 0.06),
                          Baseline("seg_miou", "position", 0.21, 0.18, 0.24),
                          Baseline("seg_miou", "ceiling", 0.62, 0.6, 0.64), Baseline("knn_miou_k10", "position", 0.33)]
            rule = {"selected_by": "seg_miou", "selection_images": 2}
            selected = {"seg_miou": {"block": 11, "representation": "keys", "k": 8, **rule, "selection_value": 0.5},
                        "knn_miou_k10": {"block": 11, "representation": "tokens", "k": None, **rule},
                        "mIoU vs human masks": {"block": 8, "representation": "keys", "k": 8, **rule}}
        pictures = _pictures(blocks, reps, len(images), mi) if slug == "dino-vit-s16" else {}
        models.append(ModelResult(card=card, blocks=blocks, representations=reps, ks=ks, runs=runs,
                                  measures=measures, figures=figures,
                                  timings={"extract": 1.5 + mi, "cluster": 0.5}, label_maps=label_maps,
                                  references=references, baselines=baselines, selected=selected,
                                  pictures=pictures))

    comps = []
    if comparisons:
        panels, comp_maps = [], {}
        for b in (2, 5, 11):
            cols = []
            for m in models:
                key = f"d{b:03d}-{m.card.slug}"
                comp_maps[key] = m.label_maps[map_key(b, "tokens", 8)]
                cols.append({"model": m.card.slug, "representation": "tokens", "block": b, "maps": key})
            panels.append({"rel_depth": (b + 1) / 12, "columns": cols})
        comps.append(ComparisonResult(
            slug="ssl-vs-random", title="SSL vs random init", kind="models",
            description="Same images through every model, blocks matched by relative depth.",
            models=[m.card.slug for m in models], rel_depths=[p["rel_depth"] for p in panels],
            representations=["tokens"], k=8, panels=panels, label_maps=comp_maps))
        comps.append(ComparisonResult(
            slug="vit-scaling", title="ViT scaling: S to B", kind="scaling",
            description="One family at growing sizes (synthetic), blocks matched by relative depth.",
            models=[m.card.slug for m in reversed(models)], rel_depths=[0.25, 0.5, 1.0],
            representations=["tokens"], k=8))

    return AtlasResults(
        title="SSL ViT Atlas (synthetic test build)",
        atlas_version="0.1.0-test",
        config_name="synthetic.yaml",
        config_text="# synthetic test config\nmodels: [dino, mae, random]\nks: [4, 8]\nnote: \"a <b> & ``` fence\"\n",
        config_hash="f" * 64,
        build_date=build_date,
        seed=0,
        environment={"python": "3.11", "torch": "0.0-test", "timm": "0.0-test"},
        device="cpu (synthetic)",
        images=images,
        skipped=[SkippedItem(what="model eva02 (synthetic)", reason="weights not available offline")],
        models=models,
        comparisons=comps,
        methods={  # the Methods record: ids and numbers (atlas.pipeline.methods), worded by atlas.site.methods
            "images": {"resolutions": ["native"], "seed": 0},
            "clustering": {"normalize": True, "ks": [4, 8], "n_iter": 30, "train_tokens_per_cluster": None, "k": 8},
            "uncertainty": {"level": 0.95, "resamples": 200, "seeds": 3, "seed": 0},
            "references": True,
        },
        timings={"total": 12.5, "render": 0.7},
        kmeans_seeds=3,
        # the registry's measures: their stored facts (the site adds its words, atlas.site.measure_words);
        # the raw names: measures the site has no words for (shown by their record's own, if any)
        measure_info={
            "positional_nce": {"section": "positional", "bounds": [None, 1.0]},
            "position decodability (R²)": {"section": "positional", "direction": "bias"},
            "seg_miou": {"section": "evaluation", "bounds": [0, 1], "ranked": True},
            "pseudomask_miou": {"section": "evaluation", "bounds": [0, 1], "ranked": True},
            "knn_miou_k10": {"section": "evaluation", "bounds": [0, 1], "ranked": True},
            "mIoU vs human masks": {"section": "evaluation", "direction": "quality", "leaderboard": 7},
        },
        photos=photos,
        datasets=[DatasetCredit(name="CamVid", kind="camvid", images=40, licence="CC BY-NC 4.0",
                                credit="Brostow et al. (synthetic test entry)", url="https://example.org/camvid")],
    )


@pytest.fixture
def synthetic_results(tmp_path: Path) -> AtlasResults:
    """Synthetic AtlasResults (the site renders into ``tmp_path / "site_src"``)."""
    return make_synthetic_results(tmp_path / "site_src")
