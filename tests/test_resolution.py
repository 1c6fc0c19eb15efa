"""The resolution axis (``[images] resolutions``) through the command line the user runs.

* Learned position embeddings carrying a planted pattern (smooth, strong): the positional
  measures find it at every resolution, the embeddings resampled by timm from the checkpoint's
  grid (the card says so); the control with zeroed position embeddings finds nothing at any.
* A RoPE model beside them: its card records RoPE evaluated at each grid, nothing resampled.
* A size that does not divide into patches (100 px, 16 px patches) is rounded to whole patches
  (96 px) and the card says what was asked for; one below 3 patches is skipped with its reason.
* A rebuild reuses every model at every resolution; the stored build round-trips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image

from atlas import cli
from atlas.config import ConfigError, load_config, parse_config
from atlas.pipeline.resolutions import model_resolutions
from atlas.pipeline.state import load_stored_atlas
from atlas.site.resolution import position_handling

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}
GRID = 14  # vit_small_patch16_224: the checkpoints' position grid


def _checkpoint(path: Path, planted: bool) -> str:
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, **TINY)
    with torch.no_grad():
        if planted:  # a smooth pattern of row and column (it survives bicubic resampling), far above content
            r, c = torch.meshgrid(torch.arange(GRID) + 0.5, torch.arange(GRID) + 0.5, indexing="ij")
            freqs = torch.arange(1, 9, dtype=torch.float32)
            waves = [torch.sin(np.pi * f * r / GRID) for f in freqs] + [torch.cos(np.pi * f * c / GRID) for f in freqs]
            pattern = torch.stack(waves * 2, dim=-1).reshape(GRID * GRID, 32)
            model.pos_embed[0, 1:] = 20 * pattern
        else:
            model.pos_embed.zero_()
    safetensors.torch.save_file(model.state_dict(), str(path))
    return str(path)


def _backbone(name: str, weights: str, timm_name: str = "vit_small_patch16_224") -> str:
    return f"""
[[backbones]]
display_name = "{name}"
timm_name = "{timm_name}"
{weights}
training = "supervised"
overrides = {{ depth = 2, embed_dim = 32, num_heads = 2 }}
"""


def _project(tmp: Path) -> Path:
    photos = tmp / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # coloured blobs at random places: no layout shared by the photos
        img = rng.integers(0, 60, size=(128, 128, 3)).astype(np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, 96, 2)
            img[y:y + 32, x:x + 32] = rng.integers(80, 255, 3)
        Image.fromarray(img).save(photos / f"p{i}.png")
    ckpt = tmp / "ckpt"
    ckpt.mkdir()
    backbones = (_backbone("Planted", f'weights = "checkpoint"\ncheckpoint = "{_checkpoint(ckpt / "p.safetensors", True)}"')
                 + _backbone("Control", f'weights = "checkpoint"\ncheckpoint = "{_checkpoint(ckpt / "c.safetensors", False)}"')
                 + _backbone("Rope", 'weights = "random"', "vit_small_patch16_dinov3"))
    config = tmp / "r.toml"
    config.write_text(f"""
[atlas]
title = "Resolution axis"
output_dir = "out"
[images]
sets = [{{ folder = "photos" }}]
resolutions = [64, 100, "native", 20]
[features]
layers = [1.0]
gallery_layers = [1.0]
representations = ["tokens", "queries", "keys"]  # queries and keys: the attention pictures
[clustering]
ks = [4]
[analyses]
k = 4
shift_test = false
[uncertainty]
resamples = 20
seeds = 1
{backbones}""", encoding="utf-8")
    return config


def _build(config: Path) -> int:
    return cli.main(["--config", str(config), "--docs-dir", str(config.parent / "docs"), "--no-site", "-q",
                     "--build-date", "2026-01-02"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resolution")
    config = _project(tmp)
    assert _build(config) == 0
    return config, load_stored_atlas(load_config(config))


def _runs(results, slug: str) -> dict[int, object]:
    return {m.card.input_size[0]: m for _, m in results.runs_of(slug)}


def _value(m, name: str) -> float:
    return next(r.value for r in m.measures if r.measure == name and r.representation == "tokens")


def test_planted_position_pattern_is_found_at_every_resolution(built):
    _, results = built
    planted, control = _runs(results, "planted"), _runs(results, "control")
    assert sorted(planted) == sorted(control) == [64, 96, 224]  # 100 px -> 96; native = 224; 20 px skipped
    for size in planted:
        assert _value(planted[size], "position_r2") > 0.9, size
        assert _value(planted[size], "positional_nce") > 0.9, size
        # the control's small-sample level (6 images, grids of 4 x 4 to 14 x 14 patches): measured 0.08-0.14
        assert _value(control[size], "position_r2") < 0.2, size
        assert _value(control[size], "positional_nce") < 0.25, size


def test_cards_record_how_positions_were_handled(built):
    _, results = built
    planted, rope = _runs(results, "planted"), _runs(results, "rope")
    # learned embeddings: resampled by timm from the checkpoint's 14 x 14 grid, except at its own size
    assert planted[64].card.position_grid_from == [GRID, GRID]
    assert planted[96].card.position_grid_from == [GRID, GRID]
    assert planted[224].card.position_grid_from is None
    assert "resampled from 14 × 14 to 4 × 4" in position_handling(planted[64].card)
    assert "not resampled" in position_handling(planted[224].card)
    # RoPE: nothing to resample at any size; its native size is its own (256 px)
    assert sorted(rope) == [64, 96, 256]
    for m in rope.values():
        assert m.card.pos_encoding == "RoPE" and m.card.position_grid_from is None
        assert "RoPE evaluated at the" in position_handling(m.card)
    assert [m.card.resolution for m in planted.values()] == ["64", "100", "native"]


def test_a_size_off_the_patch_grid_is_rounded_as_the_card_says(built):
    _, results = built
    m = _runs(results, "planted")[96]
    assert m.card.requested_size == [100, 100] and m.card.input_size == [96, 96]
    assert next(iter(m.label_maps.values())).shape[1:] == (6, 6)  # the maps are on the 6 x 6 grid
    assert "100 × 100 px asked for, rounded to whole 16 px patches" in position_handling(m.card)


def test_skipped_sizes_are_on_the_build_report(built):
    config, results = built
    reasons = {s.what: s.reason for s in results.skipped}
    assert "fewer than 3 patches" in reasons["resolution 20 of Planted"]
    report = (config.parent / "docs" / "build-report.md").read_text()
    assert "resolution 20 of Planted" in report


def test_build_report_covers_every_size(built):
    """The model totals count every size's run: so do the report's steps and stored sizes (they
    gave the main size's alone)."""
    import json

    config, results = built
    report = json.loads((config.parent / "docs" / "build-report.json").read_text())
    runs = {rid for m in results.models for rid, _ in results.runs_of(m.card.slug)}
    assert any("--" in rid for rid in runs)
    assert set(report["timings"]["models"]) == runs == set(report["features"])
    assert all(report["timings"]["models"][rid] for rid in runs)
    text = (config.parent / "docs" / "build-report.md").read_text()
    assert "| Planted at 96 × 96 px |" in text


def test_site_shows_the_axis(built):
    config, _ = built
    docs = config.parent / "docs"
    page = (docs / "compare" / "resolution.md").read_text()
    assert "Planted" in page and "Told apart" in page and "(paired, at " in page
    assert "64 px → 96 px (100 asked)" in page and "64 px → native, 224 px" in page  # each change names its sizes
    # the model's changes are one family: the Δ cell's title names the Bonferroni level over them
    rows = [r for r in page.split("<tr>") if r.startswith("<td><a") and ">Planted</a>" in r]
    assert rows and all(f"Bonferroni over this model&#39;s {len(rows)} changes" in r for r in rows), rows[:1]
    assert all(f", Bonferroni over {len(rows)} changes)</td>" in r for r in rows)  # the level in view, not only a title
    changes = json.loads((docs / "compare" / "resolution.json").read_text())["changes"]  # the summary as shown
    planted = [c for c in changes if c["model"] == "rope"]
    assert len(planted) == len(rows) and all(c["paired"] and c["lo"] <= c["delta"] <= c["hi"] for c in planted)
    assert [c["level"] for c in planted] == pytest.approx([1 - 0.05 / len(rows)] * len(rows))
    model = (docs / "models" / "planted.md").read_text()
    manifest = json.loads(model.split('<script type="application/json" id="gallery-data">')[1].split("</script>")[0])
    axis = next(a for a in manifest["axes"] if a["name"] == "resolution")
    assert axis["values"] == ["64", "100", "native"]
    assert "positions at" in model
    views = docs / "generated" / "views" / "models"
    main, other = ({f.name for f in (views / run).iterdir()} for run in ("rope", "rope--96x96"))
    assert any("-attention-heads-" in f for f in main) and any(f.endswith("-attention-mean-t1.png") for f in main)
    assert {"b1-keys-pca.png", "b1-queries-pca-fg.png", "b1-keys-k4.png"} <= main
    # another size: every cluster map, the PCA of tokens and the first prefix token's attention, no
    # more (a site's bytes are budgeted), and its gallery says why the rest is not there
    assert {"b1-keys-k4.png", "b1-tokens-pca.png", "b1-tokens-pca-fg.png", "b1-attention-mean-t0.png"} <= other
    assert not any("-attention-heads-" in f or "-t1." in f or "keys-pca" in f or "queries-pca" in f for f in other)
    assert "the PCA pictures are of tokens only" in (docs / "models" / "rope.md").read_text()


def test_each_size_keeps_the_replicates_its_changes_are_paired_on(built):
    """The resolution page's numbers (the deepest block's tokens) keep their replicates at every size,
    under one resampling of the same images, so each change has the interval of its paired difference."""
    from atlas.records import deepest_tokens_row, row_id
    from atlas.site.leaderboard import kept_uncertainty
    from atlas.site.resolution import size_change

    _, results = built
    runs = _runs(results, "planted")
    main, other = runs[64], runs[224]
    a, b = (deepest_tokens_row(m, "positional_nce") for m in (main, other))
    assert row_id(a) in main.uncertainties and row_id(b) in other.uncertainties
    kept = kept_uncertainty(main, a)
    assert kept.value == a.value and kept.interval((0.0, 1.0)) == (a.lo, a.hi)
    d = size_change(main, a, other, b)
    assert d["paired"] and d["value"] == pytest.approx(b.value - a.value) and d["lo"] <= d["value"] <= d["hi"]


def test_other_sizes_take_the_main_sizes_colours(built):
    """A run at another size renumbers its clusters to the main run's (one mapping per K): re-aligning
    its root map to the main's changes nothing, the planted position pattern keeps its colours across
    sizes (patches agree on the common grid well above the 1 in 4 of chance: 0.46 at 96 px, where
    a 4 x 4 and a 6 x 6 grid cut the pattern differently), and the cluster sizes follow. The PCA
    pictures' channels are reordered and flipped to the main size's likewise. The dominant-cluster
    map speaks the gallery's ids at every size: at each position without a tie it names the cluster
    most frequent there in the (aligned) label maps."""
    from atlas.clustering.align import align_to_reference, common_grid, resample_labels
    from atlas.pipeline.resolutions import align_picture_channels

    _, results = built
    runs = _runs(results, "planted")
    main = runs[64]
    for size, run in runs.items():
        dominant = next(p for p in run.figures["heatmaps"] if p["kind"] == "dominant" and p["representation"] == "keys")
        assert dominant["k"] == 4  # keys: aligned to the tokens' colours (the tokens' deepest map keeps its ids)
        maps = run.label_maps[f"b{dominant['block']}-keys-k4"]
        counts = np.stack([(maps == c).sum(axis=0) for c in range(4)])  # (4, h, w)
        untied = (counts == counts.max(axis=0)).sum(axis=0) == 1
        assert untied.mean() > 0.5, size
        assert np.array_equal(np.asarray(dominant["labels"])[untied], counts.argmax(axis=0)[untied]), size
    for size in (96, 224):
        other = runs[size]
        key = "b1-tokens-k4"
        assert align_to_reference(main.label_maps[key], other.label_maps[key], 4, 4).tolist() == [0, 1, 2, 3]
        grid = common_grid(main.label_maps[key].shape[1:], other.label_maps[key].shape[1:])
        agree = np.mean(resample_labels(main.label_maps[key], grid) == resample_labels(other.label_maps[key], grid))
        assert agree > 0.4, (size, agree)
        run = next(r for r in other.runs if (r.block, r.representation, r.k) == (1, "tokens", 4))
        assert run.sizes == np.bincount(other.label_maps[key].ravel(), minlength=4).tolist()
        for view in ("b1-tokens-pca", "b1-tokens-pca-fg"):  # the PCA colours follow the main size's too
            order, flip = align_picture_channels(main.pictures[view], other.pictures[view])
            assert order.tolist() == [0, 1, 2] and not flip.any(), (size, view)


def test_a_renumbered_recoloured_size_gets_the_main_sizes_colours_back():
    """Planted: another size's maps are the main's on twice the grid, their cluster ids permuted and
    their PCA channels reordered and flipped (the background of the foreground recipe black). After
    :func:`align_to_main` they are the main's again, every block and representation by one mapping."""
    from atlas.pipeline.resolutions import align_to_main
    from atlas.records import ClusterRun, ModelResult

    rng = np.random.default_rng(0)
    up = lambda a: np.repeat(np.repeat(a, 2, axis=1), 2, axis=2)  # noqa: E731  (N, h, w, ...) on twice the grid
    card = None  # the alignment reads maps, pictures and runs only
    maps = {f"b{b}-{r}-k4": rng.integers(0, 4, size=(3, 5, 5)).astype(np.int16) for b in (0, 1) for r in ("tokens", "keys")}
    pics = {f"b{b}-{r}-{v}": rng.integers(1, 256, size=(3, 5, 5, 3)).astype(np.uint8)
            for b in (0, 1) for r in ("tokens", "keys") for v in ("pca", "pca-fg")}
    for key in [k for k in pics if k.endswith("-fg")]:
        pics[key][:, 0] = 0  # background rows: black
    blank = rng.integers(0, 4, size=(5, 5))  # a blank-probe map and a dominant-cluster map of block 1 at K = 4
    dominant = rng.integers(0, 4, size=(5, 5))
    freq = rng.random((5, 5)).round(4)

    def heatmaps(ids, grid):
        return [{"kind": "blank", "z": grid(ids(blank)).tolist(), "labels": grid(ids(blank)).tolist(), "block": 1,
                 "representation": "keys", "k": 4},
                {"kind": "dominant", "z": grid(freq).tolist(), "labels": grid(ids(dominant)).tolist(), "block": 1,
                 "representation": "tokens", "k": 4}]

    def twice(a):
        return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)

    main = ModelResult(card=card, blocks=[0, 1], representations=["tokens", "keys"], ks=[4], label_maps=maps,
                       pictures=pics, figures={"heatmaps": heatmaps(lambda a: a, twice)})
    perm = np.array([2, 0, 3, 1])
    other_pics = {}
    for key, pic in pics.items():
        changed = 255 - pic[..., [1, 2, 0]]
        changed[pic.max(axis=-1) == 0] = 0
        other_pics[key] = up(changed)
    other = ModelResult(card=card, blocks=[0, 1], representations=["tokens", "keys"], ks=[4],
                        label_maps={k: up(perm[m]).astype(np.int16) for k, m in maps.items()}, pictures=other_pics,
                        runs=[ClusterRun(b, 1.0, r, 4, [0, 0, 0, 0], 0.0) for b in (0, 1) for r in ("tokens", "keys")],
                        figures={"heatmaps": heatmaps(lambda a: perm[a], twice)})
    assert align_to_main(other, main)
    for key, m in maps.items():
        assert np.array_equal(other.label_maps[key], up(m)), key
    assert other.figures["heatmaps"] == main.figures["heatmaps"]  # the maps of cluster ids beside the gallery too
    for key, pic in pics.items():
        assert np.array_equal(other.pictures[key], up(pic)), key
    assert other.runs[0].sizes == np.bincount(up(maps["b0-tokens-k4"]).ravel(), minlength=4).tolist()
    assert not align_to_main(other, main)  # aligned once, nothing to change (a reused run is checked so)
    # another aspect ratio shows another crop of each image: its colours are left as they are
    wide = ModelResult(card=card, blocks=[0, 1], representations=["tokens", "keys"], ks=[4],
                       label_maps={k: perm[np.concatenate([m, m[:, :, :2]], axis=2)].astype(np.int16)
                                   for k, m in maps.items()})
    before = {k: v.copy() for k, v in wide.label_maps.items()}
    assert not align_to_main(wide, main) and all(np.array_equal(wide.label_maps[k], v) for k, v in before.items())


def test_rebuild_reuses_every_resolution(built):
    config, _ = built
    assert _build(config) == 0
    again = load_stored_atlas(load_config(config))
    assert sorted(again.reused_models) == sorted(
        ["planted", "planted--96x96", "planted--224x224", "control", "control--96x96", "control--224x224",
         "rope", "rope--96x96", "rope--256x256"])


@pytest.mark.parametrize("entry, words", [
    ("[224.5]", "whole number of pixels"), ('["big"]', "whole number of pixels"), ("[4]", "between 8 and 4096"),
    ("[224, 224]", "listed twice")])
def test_bad_resolutions_are_one_line(entry, words):
    with pytest.raises(ConfigError) as err:
        parse_config(f"[images]\nresolutions = {entry}\n" + _backbone("M", 'weights = "random"'))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_main_resolution_below_three_patches_is_one_line(tmp_path, capsys):
    runs, skipped = model_resolutions([36, 48, 64], "m", "m", patch=16, native=(224, 224))
    assert [r.size for r in runs] == [(48, 48), (64, 64)] and not runs[0].main
    assert "fewer than 3 patches" in skipped[0].reason  # 2 x 2 patches: no interior for the border measures
    config = tmp_path / "c.toml"
    config.write_text('[atlas]\noutput_dir = "out"\n[images]\nresolutions = [20, 64]\n'
                      + _backbone("M", 'weights = "random"'), encoding="utf-8")
    assert _build(config) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resolution 20 of M" in err[0] and "main" in err[0], err
