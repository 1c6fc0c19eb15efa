"""Label propagation through the command line the user runs: planted videos and models whose
answer is known, the video loaders, and bad input.

* A synthetic video of two textured squares moving over a textured background, and a ViT whose
  tokens are each patch's mean colour (object identity: every block passes its input through):
  J&F near 1, far above copying the first mask (zero motion).
* The same video with its 16 px blocks shuffled in every frame (masks unchanged): J&F drops to
  the position baseline.
* A ViT whose tokens are its position embedding alone tracks nothing that moves: J&F equals
  zero motion's.
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
from atlas.inputs.datasets import DatasetError
from atlas.inputs.videos import IGNORE, davis_palette, load_videos
from atlas.measures.propagation import object_scores
from atlas.pipeline.propagation_run import PropagationRun

DATE = "2026-01-02"
SIZE, PATCH, FRAMES = 128, 16, 6
COLOURS = {0: (40, 60, 200), 1: (220, 40, 40), 2: (40, 200, 40)}  # background, object 1, object 2
TINY = {"depth": 2, "embed_dim": 32, "num_heads": 2}


def _video(seed: int, frames: int = FRAMES, shuffle: bool = False):
    """Frames (T, S, S, 3) uint8 and masks (T, S, S): square 1 moves right and square 2 left by one
    patch a frame, each a brightness texture on its own colour; ``shuffle``: every frame's 16 px
    blocks permuted (a new order per frame), the masks left as they are."""
    rng = np.random.default_rng(seed)
    r1, r2 = (int(v) * PATCH for v in rng.choice([0, 1], 2))
    masks = np.zeros((frames, SIZE, SIZE), np.uint8)
    for t in range(frames):
        masks[t, r1 + 16:r1 + 48, t * PATCH:t * PATCH + 32] = 1
        masks[t, r2 + 80:r2 + 112, 96 - t * PATCH:128 - t * PATCH] = 2
    palette = np.array([COLOURS[i] for i in range(3)], np.float64)
    texture = rng.uniform(0.7, 1.0, size=(frames, SIZE, SIZE, 1))
    photos = (palette[masks] * texture).astype(np.uint8)
    if shuffle:
        n = SIZE // PATCH
        for t in range(frames):
            blocks = photos[t].reshape(n, PATCH, n, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(n * n, PATCH, PATCH, 3)
            blocks = blocks[rng.permutation(n * n)]
            photos[t] = blocks.reshape(n, n, PATCH, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(SIZE, SIZE, 3)
    return photos, masks


def _save_mask(mask: np.ndarray, path: Path, mode: str = "L") -> None:
    im = Image.fromarray(mask.astype(np.uint8))
    if mode == "P":
        im = im.convert("P")
        im.putpalette(davis_palette().ravel().tolist())
    im.save(path)


def write_videos(root: Path, sequences: int = 6, shuffle: bool = False, layout: str = "folder",
                 mask_mode: str = "L") -> Path:
    """``sequences`` planted videos in the ``folder`` (frames/, masks/) or DAVIS layout."""
    frames_dir, masks_dir = ("frames", "masks") if layout == "folder" else ("JPEGImages/480p", "Annotations/480p")
    for s in range(sequences):
        photos, masks = _video(s, shuffle=shuffle)
        for sub in (frames_dir, masks_dir):
            (root / sub / f"seq{s}").mkdir(parents=True, exist_ok=True)
        for t, (photo, mask) in enumerate(zip(photos, masks)):
            Image.fromarray(photo).save(root / frames_dir / f"seq{s}" / f"{t:05d}.png")
            _save_mask(mask, root / masks_dir / f"seq{s}" / f"{t:05d}.png", mask_mode)
    return root


def _identity_checkpoint(path: Path) -> Path:
    """Tokens = the patch's mean (normalised) colour in channels 0..2, nothing else: no position
    embedding, and every block adds nothing to its input."""
    model = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY)
    sd = {k: torch.zeros_like(v) if k.startswith(("patch_embed", "pos_embed", "cls_token")) or
          k.endswith(("attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias")) else v
          for k, v in model.state_dict().items()}
    for c in range(3):
        sd["patch_embed.proj.weight"][c, c] = 1.0 / PATCH**2
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def _position_checkpoint(path: Path) -> Path:
    """Tokens = the position embedding alone: the patch embedding is zero, the blocks add nothing."""
    model = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY)
    torch.manual_seed(0)
    sd = {k: torch.zeros_like(v) if k.startswith("patch_embed") or
          k.endswith(("attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias")) else v
          for k, v in model.state_dict().items()}
    sd["pos_embed"] = torch.randn_like(sd["pos_embed"])
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def _backbone(name: str, checkpoint: Path) -> str:
    return f"""
[[backbones]]
display_name = "{name}"
timm_name = "vit_small_patch16_224"
weights = "checkpoint"
checkpoint = "{checkpoint}"
training = "supervised"
overrides = {{ depth = 2, embed_dim = 32, num_heads = 2 }}
"""


def project(tmp: Path, videos: Path, backbones: str, extra: str = "") -> Path:
    photos = tmp / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        Image.fromarray(_video(10 + i)[0][0]).save(photos / f"p{i}.png")
    config = tmp / "configs" / "p.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"""
[atlas]
title = "Propagation"
output_dir = "out"
[images]
sets = [{{ folder = "photos" }}]
resolution = [64, 64]
[features]
layers = [0.5, 1.0]
gallery_layers = [0.5, 1.0]
representations = ["tokens", "keys"]
[clustering]
ks = [2]
[analyses]
k = 2
shift_test = false
[uncertainty]
resamples = 20
seeds = 1
[evaluation.propagation]
dataset = "folder"
root = "{videos}"
short_side = {SIZE}
selection_fraction = 0.34
{extra}
{backbones}""", encoding="utf-8")
    return config


def build(config: Path) -> int:
    return cli.main(["--config", str(config), "--docs-dir", str(config.parents[1] / "docs"), "--no-site", "-q",
                     "--build-date", DATE])


def _numbers(docs: Path, slug: str) -> tuple[dict, dict]:
    """(block, representation, measure) -> value, and (measure, baseline) -> value, of a model page's JSON."""
    data = json.loads((docs / "models" / f"{slug}.json").read_text())
    rows = {(r["block"], r["representation"], r["measure"]): r["value"] for r in data["measures"]}
    return rows, {(b["measure"], b["name"]): b["value"] for b in data["baselines"]}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    videos = write_videos(tmp / "videos")
    (tmp / "videos" / "frames" / "zz-one-frame").mkdir()  # bad input beside good sequences: left out with its reason
    (tmp / "videos" / "masks" / "zz-one-frame").mkdir()
    photos, masks = _video(99, frames=1)
    Image.fromarray(photos[0]).save(tmp / "videos" / "frames" / "zz-one-frame" / "00000.png")
    _save_mask(masks[0], tmp / "videos" / "masks" / "zz-one-frame" / "00000.png")
    ckpts = tmp / "ckpt"
    ckpts.mkdir()
    config = project(tmp, videos, _backbone("Identity", _identity_checkpoint(ckpts / "identity.safetensors"))
                     + _backbone("Position", _position_checkpoint(ckpts / "position.safetensors")))
    assert build(config) == 0
    return tmp / "docs"


def test_identity_features_track_the_moving_squares(planted):
    rows, baselines = _numbers(planted, "identity")
    jf = rows[1, "tokens", "propagation_jf"]
    # J 0.93, F 0.86: DAVIS's F gives no free match along the frame's edge, which the squares touch
    assert jf > 0.85 and rows[1, "tokens", "propagation_j"] > 0.9, (jf, rows[1, "tokens", "propagation_j"])
    assert baselines["propagation_jf", "zero motion"] < 0.4  # the squares move: copying the first mask fails
    assert baselines["propagation_jf", "ceiling"] > 0.95  # patch-aligned squares: the grid loses nothing
    # the paired difference from each baseline (the same test sequences and halves) holds the difference of
    # the values; identity features clear zero motion by it
    data = json.loads((planted / "models" / "identity.json").read_text())
    row = next(r for r in data["measures"] if (r["block"], r["representation"], r["measure"]) == (1, "tokens",
                                                                                                  "propagation_jf"))
    assert set(row["versus"]) == {"zero motion", "colour", "position", "ceiling"}
    for name, d in row["versus"].items():
        assert d["value"] == pytest.approx(jf - baselines["propagation_jf", name]) and d["lo"] <= d["value"] <= d["hi"]
    assert row["versus"]["zero motion"]["lo"] > 0.3


def test_position_features_track_nothing_that_moves(planted):
    rows, baselines = _numbers(planted, "position")
    identity, _ = _numbers(planted, "identity")
    for b in (0, 1):
        jf = rows[b, "tokens", "propagation_jf"]
        assert abs(jf - baselines["propagation_jf", "zero motion"]) < 0.1, (b, jf)
        assert jf < identity[1, "tokens", "propagation_jf"] - 0.4


def test_page_report_and_leaderboard_show_propagation(planted):
    report = (planted / "build-report.md").read_text()
    assert "zz-one-frame" in report and "nothing to propagate" in report
    page = (planted / "compare" / "label-propagation.md").read_text()
    assert "zero motion" in page and "Identity" in page and "Position" in page
    methods = (planted / "methods.md").read_text()
    assert "exp(cosine / 0.1)" in methods and "DINOv3" in methods and "0.2" in methods
    data = json.loads((planted / "models" / "identity.json").read_text())
    pick = data["selected"]["propagation_jf"]
    n = pick["selection_sequences"]
    assert 1 <= n <= 3 and pick["selected_by"] == "propagation_jf"
    board = (planted / "compare" / "segmentation-quality.md").read_text()
    assert "Label propagation J&amp;F" in board and f"{n} selection sequences" in board
    shown = [line for line in page.splitlines() if line.startswith("<tr><td>seq")]
    assert len(shown) == 6 - n  # the per-sequence table lists the test sequences only
    # the chosen numbers keep their replicates, so the ranks compare the two models by their paired difference
    # (minus_compared is there only where the two pair)
    ranks = {m["slug"]: m for m in json.loads((planted / "compare" / "segmentation-quality.json").read_text())["models"]}
    assert (ranks["identity"]["rank"], ranks["position"]["rank"]) == (1, 2)
    gap = ranks["position"]["chosen"]["propagation_jf"]["minus_compared"]
    jf = {s: ranks[s]["chosen"]["propagation_jf"]["value"] for s in ranks}
    assert gap["model"] == "identity" and gap["lo"] <= gap["value"] <= gap["hi"] < -0.3
    assert gap["value"] == pytest.approx(jf["position"] - jf["identity"])
    assert gap["level"] == 0.95  # two models: one pair, nothing to widen for
    assert "this model minus Identity (paired; 95% interval)" in page
    assert "this model minus Identity (paired; 95% interval)" in board


def test_shuffled_features_drop_to_the_position_baseline(tmp_path, planted):
    videos = write_videos(tmp_path / "videos", shuffle=True)
    config = project(tmp_path, videos, _backbone("Identity", _identity_checkpoint(tmp_path / "identity.safetensors")))
    assert build(config) == 0
    rows, baselines = _numbers(tmp_path / "docs", "identity")
    tracked, _ = _numbers(planted, "identity")
    jf = rows[1, "tokens", "propagation_jf"]
    assert jf < tracked[1, "tokens", "propagation_jf"] - 0.4
    assert jf < baselines["propagation_jf", "position"] + 0.1, (jf, baselines)


def test_scoring_threads_give_the_numbers_of_one_thread(tmp_path, planted, monkeypatch):
    """J and F are scored on host threads while the next sequence is predicted: every number and
    baseline equals a one-thread build's, to the bit."""
    from atlas.pipeline import propagation_run

    numbers = {}
    for threads in (1, 3):
        monkeypatch.setattr(propagation_run, "SCORING_THREADS", threads)
        config = project(tmp_path / f"t{threads}", planted.parent / "videos",
                         _backbone("Identity", planted.parent / "ckpt" / "identity.safetensors"))
        assert build(config) == 0
        numbers[threads] = _numbers(tmp_path / f"t{threads}" / "docs", "identity")
    assert numbers[1] == numbers[3] and len(numbers[1][0]) >= 12
    assert numbers[1][0] == {k: v for k, v in _numbers(planted, "identity")[0].items() if k in numbers[1][0]}


def test_a_budget_that_splits_each_sequence_gives_the_same_numbers(tmp_path, planted):
    """Propagation passes the frames a sequence at a time, all pairs together, or a sequence's
    pairs in chunks when they do not fit [features] memory_gb: the numbers are those of one pass
    per sequence, to the bit, and the build report says how many passes it took."""
    numbers, passes = {}, {}
    for name, budget in (("whole", ""), ("split", "memory_gb = 5e-5\n")):
        config = project(tmp_path / name, planted.parent / "videos",
                         _backbone("Identity", planted.parent / "ckpt" / "identity.safetensors"))
        config.write_text(config.read_text().replace("[features]\n", "[features]\n" + budget))
        assert build(config) == 0
        docs = tmp_path / name / "docs"
        numbers[name] = _numbers(docs, "identity")
        passes[name] = json.loads((docs / "build-report.json").read_text())["features"]["identity"]["propagation"]
    assert numbers["whole"] == numbers["split"]
    assert passes["whole"]["passes"] == passes["whole"]["sequences"] == 6  # each sequence once, every pair
    assert passes["split"]["passes"] >= 2 * passes["split"]["sequences"]
    report = (tmp_path / "split" / "docs" / "build-report.md").read_text()
    assert f"{passes['split']['passes']} passes over its 6 sequences" in report


def test_models_of_one_frame_grid_share_the_baselines_they_would_compute(tmp_path, planted, monkeypatch):
    """In ``planted`` Position read Identity's baselines (same frames, size and patch); built alone it
    computes them, with the same record to the bit. A later model of that grid computes none."""
    calls = []
    real = PropagationRun.baselines
    monkeypatch.setattr(PropagationRun, "baselines", lambda self, st: calls.append(1) or real(self, st))
    ckpt = planted.parent / "ckpt"
    config = project(tmp_path, planted.parent / "videos", _backbone("Position", ckpt / "position.safetensors"))
    assert build(config) == 0 and len(calls) == 1

    def stored(root, slug):
        result = json.loads((root / "out" / "state" / "models" / slug / "result.json").read_text())
        result.pop("timings"), result.pop("passes")
        return result

    assert stored(tmp_path, "position") == stored(planted.parent, "position")
    config.write_text(config.read_text() + _backbone("Identity", ckpt / "identity.safetensors"), encoding="utf-8")
    assert build(config) == 0 and len(calls) == 1
    assert stored(tmp_path, "identity")["baselines"] == stored(tmp_path, "position")["baselines"]
    assert [p.name for p in (tmp_path / "out" / "state" / "baselines").iterdir()] == ["propagation-128x128-p16"]


# ---------------------------------------------------------------- loaders and bad input


def test_davis_layout_with_palette_masks_and_image_sets(tmp_path):
    root = write_videos(tmp_path, sequences=3, layout="davis", mask_mode="P")
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("seq2\nseq0\n")
    _, masks = _video(0)
    void = masks[1].copy()
    void[0, :3] = IGNORE
    _save_mask(void, root / "Annotations" / "480p" / "seq0" / "00001.png", "P")
    ds = load_videos("davis", root)
    assert [s.name for s in ds.sequences] == ["seq2", "seq0"]
    seq = ds.sequences[1]
    # DAVIS 2017's evaluation: void (255) is background, neither the first nor the last frame is scored
    assert np.array_equal(seq.masks(), masks) and seq.objects == [1, 2] and seq.frame_step == 1
    assert seq.scored == list(range(1, len(masks) - 1))
    # the control: the folder format scores every frame after the first
    folder = load_videos("folder", write_videos(tmp_path / "folder", sequences=1))
    assert folder.sequences[0].scored == list(range(1, len(masks)))


def _one_sequence(root: Path, name: str, frames: int = 3) -> tuple[Path, Path]:
    photos, masks = _video(0, frames=frames)
    f, m = root / "frames" / name, root / "masks" / name
    f.mkdir(parents=True)
    m.mkdir(parents=True)
    for t in range(frames):
        Image.fromarray(photos[t]).save(f / f"{t:05d}.png")
        _save_mask(masks[t], m / f"{t:05d}.png")
    return f, m


def test_each_bad_sequence_is_left_out_with_its_reason(tmp_path):
    _one_sequence(tmp_path, "good")
    _one_sequence(tmp_path, "one", frames=1)
    _, m = _one_sequence(tmp_path, "empty")
    _save_mask(np.zeros((SIZE, SIZE)), m / "00000.png")
    _, m = _one_sequence(tmp_path, "sizes")
    _save_mask(np.zeros((SIZE // 2, SIZE)), m / "00001.png")
    f, m = _one_sequence(tmp_path, "gap", frames=5)
    (f / "00003.png").unlink()
    (m / "00003.png").unlink()
    f, _ = _one_sequence(tmp_path, "orphan")
    (f / "00002.png").unlink()
    _, m = _one_sequence(tmp_path, "palette")
    odd = Image.fromarray(np.array(Image.open(m / "00000.png"))).convert("P")
    odd.putpalette([0, 0, 0, 12, 200, 7, 90, 90, 90] + [0] * 759)
    odd.save(m / "00000.png")
    _, m = _one_sequence(tmp_path, "unscored")
    for t in (1, 2):
        (m / f"{t:05d}.png").unlink()
    _, m = _one_sequence(tmp_path, "colours")
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[10:20, 10:20] = (1, 2, 3)
    Image.fromarray(rgb).save(m / "00000.png")
    ds = load_videos("folder", tmp_path)
    assert [s.name for s in ds.sequences] == ["good"]
    reasons = {s.what.removeprefix("sequence "): s.reason for s in ds.skipped}
    assert "nothing to propagate" in reasons["one"]
    assert "holds no object" in reasons["empty"]
    assert "64" in reasons["sizes"] and "but its frame is" in reasons["sizes"]
    assert "frames missing between 00002 and 00004" in reasons["gap"]
    assert "has no frame" in reasons["orphan"]
    assert "nothing to score" in reasons["unscored"]
    assert "palette index 1 is (12, 200, 7)" in reasons["palette"]
    assert "(1, 2, 3) is not in DAVIS's palette" in reasons["colours"]
    assert all("\n" not in r for r in reasons.values())


def test_no_usable_sequence_is_one_line_through_the_cli(tmp_path, capsys):
    _one_sequence(tmp_path / "videos", "one", frames=1)
    config = project(tmp_path, tmp_path / "videos", "\n[[backbones]]\ndisplay_name = \"Tiny\"\n"
                     "timm_name = \"vit_small_patch16_224\"\nweights = \"random\"\ntraining = \"random\"\n"
                     "overrides = { depth = 2, embed_dim = 32, num_heads = 2 }\n")
    assert build(config) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no usable sequence" in err and "nothing to propagate" in err, err
    with pytest.raises(DatasetError):
        load_videos("folder", tmp_path / "nowhere")


CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid not found at {CAMVID} (../shared/data)")
def test_camvid_sequences_are_clips_of_labelled_frames_two_video_frames_apart():
    ds = load_videos("camvid", CAMVID, clip_length=8, max_sequences=3)
    assert len(ds) == 3 and ds.frame_step == 2 and ds.object_names[0] == "Sky"
    seq = ds.sequences[0]
    masks = seq.masks()
    assert len(seq.frames) == 8 and masks.shape == (8, 360, 480)
    assert masks.min() >= 1 and set(np.unique(masks)) <= set(range(1, 12)) | {IGNORE}  # class c is object c + 1
    # copying the first mask scores below 1 on a moving camera, and exactly 1 on the first frame itself
    j, f = object_scores(np.broadcast_to(masks[:1], masks.shape)[1:], masks[1:], seq.objects, ignore=IGNORE)
    assert 0.3 < j.mean() < 1.0
    j0, f0 = object_scores(masks[:1], masks[:1], seq.objects, ignore=IGNORE)
    assert j0.mean() == 1.0 and f0.mean() == 1.0
