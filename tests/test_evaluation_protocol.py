"""The evaluation protocol as the build runs it (``EvaluationRun``), on a planted labelled dataset:
baselines, ceiling, leak-free splits, selection on held-out images, intervals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.clustering.kmeans import cluster_features
from atlas.config import parse_config
from atlas.inputs.geometry import ResizePolicy
from atlas.inputs.splits import grouped_split
from atlas.measures.baselines import patch_majority, position_features
from atlas.measures.knn import knn_probe
from atlas.measures.uncertainty import Uncertainty
from atlas.pipeline import BuildError
from atlas.pipeline.evaluation_run import EvaluationRun
from atlas.pipeline.model_run import kmeans_settings
from atlas.site.methods import evaluation_words

SIZE, PATCH, CLASSES = 64, 8, ["sky", "ground", "object"]
N_SEQ, FRAMES = 10, 4


def write_dataset(root, n_seq: int = N_SEQ, frames: int = FRAMES) -> None:
    """Street-like scenes: sky above a horizon, ground below, one object per sequence that moves a
    pixel per frame; colours vary per sequence (so colour alone is not perfect)."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for s in range(n_seq):
        horizon = int(rng.integers(20, 44))
        oy, ox, size = int(rng.integers(8, 40)), int(rng.integers(8, 40)), int(rng.integers(10, 20))
        palette = rng.integers(40, 215, (3, 3))
        for f in range(frames):
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[horizon:] = 1
            mask[oy:oy + size, ox + f:ox + f + size] = 2
            img = palette[mask] + rng.integers(-12, 12, (SIZE, SIZE, 3))
            name = f"seq{s:02d}_{f:03d}"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"{name}.png")
            Image.fromarray(mask).save(root / "masks" / f"{name}.png")


CONFIG = """
[evaluation]
dataset = "folder"
root = "{root}"
class_names = ["sky", "ground", "object"]
group_regex = "^(seq\\\\d+)_"
[uncertainty]
resamples = 200
seeds = 2
[[backbones]]
display_name = "stub"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
"""


class StubRun:
    """A FeatureProvider (what EvaluationRun reads features through) with planted features instead
    of a model."""

    def __init__(self, cfg, features_of):
        self.cfg, self.features_of = cfg, features_of
        card = SimpleNamespace(depth=1, display_name="stub", has_cls=False)
        self.loaded = SimpleNamespace(card=card, grid=(SIZE // PATCH,) * 2, policy=ResizePolicy(SIZE, SIZE))
        self.stream = SimpleNamespace(add=lambda *args: None)  # planted features need no forward pass

    def load(self, images, b, r):
        return self.features_of(images), None

    def cluster(self, features, k, seed=None):
        return cluster_features(features, k, **kmeans_settings(self.cfg, k, seed))

    def features(self, images, b, r):  # as ModelRun.features on the CPU: the loaded arrays
        return self.load(images, b, r)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_dataset(root)
    cfg = parse_config(CONFIG.format(root=root))
    return EvaluationRun.from_config(cfg, [])


def _masks(protocol):
    return [np.asarray(m) for m in protocol._masks]


def _score(protocol, features_of, figures=None):
    scoring = protocol.start(StubRun(protocol.cfg, features_of), blocks=[0], reps=["tokens"])  # the build's own path
    scored = protocol.finish(scoring, {} if figures is None else figures)  # (on the CPU: features stay numpy arrays)
    rows = {r.measure: r for r in scored.rows}
    baselines = {(b.measure, b.name): b for b in scored.baselines}
    return rows, baselines, scored.selected, {(r.measure, r.block, r.representation, r.k): u for r, u in scored.uncertain}


def test_splits_are_grouped_and_disjoint(protocol):
    folds = protocol.split.folds
    assert protocol.split.kind == "groups" and protocol.split.n_groups == N_SEQ
    groups = {f: {protocol.split.groups[i] for i in idx} for f, idx in folds.items()}
    assert not (groups["selection"] & groups["support"]) and not (groups["support"] & groups["query"])
    assert sorted(np.concatenate(list(folds.values())).tolist()) == list(range(N_SEQ * FRAMES))


@pytest.mark.filterwarnings("ignore:only 3 distinct clusters")  # K = 2 x classes on 3 distinct points
def test_perfect_features_reach_the_ceiling_and_pure_position_the_position_baseline(protocol):
    grid = (SIZE // PATCH,) * 2
    truth = patch_majority(_masks(protocol), grid)
    perfect, base = _score(protocol, lambda imgs: np.eye(3, dtype=np.float32)[np.maximum(truth, 0)])[:2]
    assert perfect["seg_miou"].value == pytest.approx(base["seg_miou", "ceiling"].value, abs=1e-9)
    assert perfect["seg_pixel_accuracy"].value == pytest.approx(base["seg_pixel_accuracy", "ceiling"].value, abs=1e-9)
    assert base["seg_miou", "ceiling"].value > base["seg_miou", "position"].value > base["seg_miou", "chance"].value
    rng = np.random.default_rng(5)
    noisy_position = lambda imgs: (position_features(len(imgs), grid)  # noqa: E731
                                   + 0.02 * rng.normal(size=(len(imgs), *grid, grid[0] * grid[1]))).astype(np.float32)
    pos, base = _score(protocol, noisy_position)[:2]
    b = base["seg_miou", "position"]
    assert pos["seg_miou"].value <= b.hi + 1e-9  # a pure-position feature set scores no higher
    assert pos["seg_miou"].value >= b.lo - 0.05
    assert pos["knn_miou_k10"].value == pytest.approx(base["knn_miou_k10", "position"].value, abs=0.05)


def test_every_number_has_an_interval_and_the_selection_is_held_out(protocol):
    grid = (SIZE // PATCH,) * 2
    truth = patch_majority(_masks(protocol), grid)
    rng = np.random.default_rng(6)
    feats = lambda imgs: (np.eye(3)[np.maximum(truth, 0)] + 0.8 * rng.normal(size=(*truth.shape, 3))).astype(np.float32)  # noqa: E731
    rows, baselines, selected, uncertain = _score(protocol, feats)
    for r in rows.values():
        assert r.lo is not None and r.lo <= r.value <= r.hi, r
    for b in baselines.values():
        assert b.lo is None or b.lo <= b.value <= b.hi
    assert rows["seg_miou"].seed_spread is not None and rows["knn_miou_k10"].seed_spread is None
    assert selected["seg_miou"]["representation"] == "tokens" and selected["seg_miou"]["selected_by"] == "seg_miou"
    assert selected["seg_miou"]["selection_images"] > 0
    assert selected["seg_pixel_accuracy"]["block"] == selected["seg_miou"]["block"]  # one choice for both
    for name in ("seg_miou", "knn_miou_k10"):  # each row hands its uncertainty on (the record keeps the chosen ones')
        r = rows[name]
        kept = Uncertainty.from_state(uncertain[name, r.block, r.representation, r.k].state())
        assert kept.value == r.value and kept.interval((0.0, 1.0)) == (r.lo, r.hi)
    assert len(uncertain["seg_miou", rows["seg_miou"].block, "tokens", rows["seg_miou"].k].points) == 2  # seeds
    names = {b.name for b in baselines.values()}
    assert names == {"chance", "constant", "colour", "position", "colour + position", "ceiling"}


def test_knn_curves_carry_the_intervals_of_the_knn_number(protocol):
    """The curve's k = 10 point is the leaderboard's k-NN number, interval included; channel removal
    at m = 0 without a control is that probe again, so it has the same value and interval."""
    grid = (SIZE // PATCH,) * 2
    truth = patch_majority(_masks(protocol), grid)
    rng = np.random.default_rng(7)
    feats = lambda imgs: (np.eye(3)[np.maximum(truth, 0)] + 0.8 * rng.normal(size=(*truth.shape, 3))).astype(np.float32)  # noqa: E731
    figures: dict = {}
    row = _score(protocol, feats, figures)[0]["knn_miou_k10"]
    curves = {c["kind"]: c for c in figures["curves"]}
    knn, removal = curves["knn-k"], curves["channel-removal"]
    at10 = knn["x"].index(10)
    assert (knn["series"]["miou"][at10], knn["lo"]["miou"][at10], knn["hi"]["miou"][at10]) == pytest.approx(
        (row.value, row.lo, row.hi), abs=1e-5)
    assert (removal["series"]["none"][0], removal["lo"]["none"][0], removal["hi"]["none"][0]) == pytest.approx(
        (row.value, row.lo, row.hi), abs=1e-5)
    for curve in (knn, removal):
        for name, values in curve["series"].items():
            for v, lo, hi in zip(values, curve["lo"][name], curve["hi"][name]):
                assert v is None or lo < v < hi, (curve["kind"], name)  # noisy features: a real width


def test_each_mask_is_counted_once_per_model_for_all_its_label_maps(protocol, monkeypatch):
    """Every label map of a model (its pairs, Ks and seeds, and its baselines') is scored against the
    masks' cell counts, made once per mask and grid, and dropped when the model is finished."""
    from atlas.pipeline import evaluation_run

    calls, real = [], evaluation_run.mask_counts
    monkeypatch.setattr(evaluation_run, "mask_counts", lambda *a: calls.append(a[1]) or real(*a))
    rng = np.random.default_rng(7)
    rows, baselines = _score(protocol, lambda imgs: rng.normal(size=(len(imgs), 8, 8, 4)).astype(np.float32))[:2]
    assert len(baselines) > 10 and "seg_miou" in rows
    assert calls == [(SIZE // PATCH,) * 2] * len(protocol.samples)
    assert protocol._counts is None


def test_a_leaky_split_scores_near_duplicates_higher_than_the_grouped_split(protocol):
    """Features with no relation to the label across sequences, near-identical within one: only a
    split that puts frames of one sequence on both sides can score them well."""
    names = [s.name for s in protocol.samples]
    grid = (SIZE // PATCH,) * 2
    labels = patch_majority(_masks(protocol), grid)
    rng = np.random.default_rng(7)
    seq = np.array([int(n[3:5]) for n in names])
    per_sequence = rng.normal(size=(N_SEQ, *grid, 16))
    feats = per_sequence[seq] + 0.01 * rng.normal(size=(len(names), *grid, 16))
    fractions = {"support": 0.5, "query": 0.5}
    scores = {}
    for kind, regex in (("leaky", None), ("grouped", protocol.group_regex)):
        folds = grouped_split(names, fractions, regex, seed=0).folds
        s, q = folds["support"], folds["query"]
        scores[kind] = knn_probe(feats[s], labels[s], feats[q], labels[q], (1,), 3)[1]
    assert scores["leaky"] > scores["grouped"] + 0.3, scores


def test_folder_datasets_need_a_named_foreground(tmp_path):
    write_dataset(tmp_path, n_seq=4, frames=1)
    skipped = []
    run = EvaluationRun.from_config(parse_config(CONFIG.format(root=tmp_path)), skipped)
    assert run.dataset.foreground == []
    assert any("similarity under masking" in s.what and "[evaluation] foreground" in s.reason for s in skipped)


def test_evaluation_config_errors_are_one_line(tmp_path):
    write_dataset(tmp_path, n_seq=2, frames=2)
    text = CONFIG.format(root=tmp_path).replace('class_names = ["sky", "ground", "object"]\n', "")
    with pytest.raises(BuildError, match=r"^\[evaluation\] folder at .*class_names") as exc:
        EvaluationRun.from_config(parse_config(text), [])
    assert "\n" not in str(exc.value)
    bad = CONFIG.format(root=tmp_path).replace('class_names = ["sky", "ground", "object"]',
                                                'class_names = ["sky"]\nclass_names_file = "x.txt"')
    with pytest.raises(Exception, match="class_names or class_names_file"):
        parse_config(bad)


def test_config_options_reach_the_dataset(tmp_path):
    write_dataset(tmp_path, n_seq=3, frames=2)
    (tmp_path / "names.txt").write_text("sky\nground\nobject\n")
    (tmp_path / "list.txt").write_text("seq01_000\nseq00_001\nseq02_000\nseq02_001\n")
    text = CONFIG.format(root=tmp_path).replace(
        'class_names = ["sky", "ground", "object"]',
        f'class_names_file = "{tmp_path / "names.txt"}"\nimage_list = "{tmp_path / "list.txt"}"\n'
        'foreground = ["object"]\nover_clustering = "hungarian"')
    run = EvaluationRun.from_config(parse_config(text), [])
    assert [s.name for s in run.samples] == ["seq01_000", "seq00_001", "seq02_000", "seq02_001"]
    assert run.dataset.class_names == CLASSES and run.dataset.foreground == [2]
    methods = run.methods()
    assert methods["over_clustering"] == "hungarian" and methods["image_list"] == str(tmp_path / "list.txt")
    words = evaluation_words(methods)
    assert "Hungarian matching" in words["over-clustering"] and "images listed in" in words["dataset"]
    assert methods["split_kind"] == "contiguous blocks"  # 3 groups cannot fill 3 folds whole
    assert "contiguous blocks" in words["splits"]


def test_stego_geometry_runs_the_model_at_320(tmp_path):
    from atlas.features.backbones import load_backbone

    write_dataset(tmp_path, n_seq=4, frames=1)
    cfg = parse_config(CONFIG.format(root=tmp_path).replace('[uncertainty]', 'geometry = "stego"\n[uncertainty]')
                       .replace('training = "random"', 'training = "random"\noverrides = { depth = 1, embed_dim = 32, '
                                                       'num_heads = 2 }'))
    loaded = load_backbone(cfg.backbones[0], (224, 224), seed=0)
    seen = EvaluationRun.from_config(cfg, []).geometry(loaded)
    assert seen.card.input_size == [320, 320] and seen.weights_hash == loaded.weights_hash
    small, big = loaded.model.state_dict(), seen.model.state_dict()
    assert big["pos_embed"].shape[1] == 1 + 20 * 20  # resampled, not re-drawn
    assert all(torch.equal(small[k], big[k]) for k in small if k != "pos_embed")


def test_the_evaluation_key_follows_the_class_names_file(tmp_path):
    """The config names classes.txt by path only: editing the file (other classes, another order,
    another foreground) must make stored scores and baselines stale."""
    write_dataset(tmp_path, n_seq=4, frames=1)
    config = CONFIG.format(root=tmp_path).replace('class_names = ["sky", "ground", "object"]\n', "")

    def key(names: str, foreground: str = 'foreground = ["object"]\n') -> str:
        (tmp_path / "classes.txt").write_text(names)
        return EvaluationRun.from_config(parse_config(config.replace("[uncertainty]", foreground + "[uncertainty]")),
                                         []).key

    first = key("sky\nground\nobject\n")
    assert key("sky\nground\nobject\n") == first  # the same file, the same key
    assert key("ground\nsky\nobject\n") != first
    assert key("sky\nground\nobject\nroad\n") != first
    assert key("sky\nground\nobject\n", 'foreground = ["sky"]\n') != first


def test_stored_cka_numbers_are_debiased(protocol):
    """The stored CKA rows (and the colour baseline's, which goes through the same method) are
    debiased CKA: 16 unrelated embeddings of 384 dimensions score about 0, not the ~0.95 of plain
    linear CKA; an embedding and a noisy copy of it score high. Intervals come with them."""
    from atlas.measures.similarity import VARIANTS, debiased_linear_cka, linear_cka

    rng = np.random.default_rng(0)
    n = len(protocol.resampling["similarity"][0])
    full = rng.normal(size=(n, 384)) * np.linspace(3, 0.1, 384)
    emb = {v: rng.normal(size=(n, 384)) * np.linspace(3, 0.1, 384) for v in VARIANTS}
    emb["full"], emb["foreground_only"] = full, full + 0.3 * rng.normal(size=full.shape)
    scores = protocol.cka_scores(emb)
    unrelated = scores["cka_full_vs_background"]
    assert linear_cka(full, emb["background_only"]) > 0.8  # what the stored number was before
    assert unrelated.value == pytest.approx(debiased_linear_cka(full, emb["background_only"]), abs=1e-9)
    assert abs(unrelated.value) < 0.3 and scores["cka_full_vs_foreground"].value > 0.8
    lo, hi = unrelated.interval((None, 1.0))
    assert lo < unrelated.value < hi
