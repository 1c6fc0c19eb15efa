"""Features stream through the analyses (atlas.features.stream): a budget that forces several
forward passes gives the same results, to the bit, as one pass; a default build writes no feature
file; the opt-in cache changes nothing either; a budget too small for one pair is one line.

The builds run through the command line on a tiny random-init model with every image set the
analyses stream: the atlas images, blank probes, shift windows (96 px: a 6 x 6 grid) and a
labelled folder dataset (the evaluation, its masking variants and pseudo-masks).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_hostile_inputs import _write_photos, error_line, project, run_cli

from atlas.features.stream import plan_chunks

EVALUATION = """
[evaluation]
dataset = "folder"
root = "labelled"
class_names = ["left", "right"]
foreground = ["right"]
"""


def _labelled(root: Path, n: int = 8) -> None:
    _write_photos(root / "labelled" / "images", [f"l{i}.png" for i in range(n)], size=96)
    (root / "labelled" / "masks").mkdir()
    for i in range(n):  # left part class 0, right part class 1
        mask = np.zeros((96, 96), np.uint8)
        mask[:, 40 + i:] = 1
        Image.fromarray(mask).save(root / "labelled" / "masks" / f"l{i}.png")


def _project(root: Path, features: str = "") -> Path:
    _labelled(root)
    config = project(root, evaluation=EVALUATION, features=features)
    text = config.read_text().replace("resolution = [64, 64]", "resolution = [96, 96]")
    config.write_text(text, encoding="utf-8")
    return config


def _stored(root: Path) -> dict[str, object]:
    """Every stored number and array of every model, less timings and how the features passed."""
    out: dict[str, object] = {}
    for folder in sorted((root / "out" / "state" / "models").iterdir()):
        result = json.loads((folder / "result.json").read_text())
        result.pop("timings"), result.pop("passes")
        out[f"{folder.name}/result.json"] = result
        for name in ("labels.npz", "pictures.npz"):
            with np.load(io.BytesIO((folder / name).read_bytes())) as z:
                out.update({f"{folder.name}/{name}/{k}": z[k] for k in sorted(z.files)})
    return out


def _passes(root: Path) -> dict:
    (folder,) = (root / "out" / "state" / "models").iterdir()
    return json.loads((folder / "result.json").read_text())["passes"]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def one_pass(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one")
    assert run_cli(_project(root), "--no-site") == 0
    return root


def test_one_pass_by_default_and_no_feature_file(one_pass):
    info = _passes(one_pass)
    assert info["passes"] == 1 and info["on_demand"] == 0 and info["cache"] is False
    assert info["feature_bytes"] > 0 and info["max_pair_bytes"] <= info["feature_bytes"]
    assert info["device"].startswith("cpu (")  # where this model's numbers were computed, on its report row
    assert f"| {info['device']} | 1 |" in (one_pass / "site_src" / "build-report.md").read_text()
    assert not (one_pass / "cache").exists()  # not even the folder
    assert not list(one_pass.rglob("*.safetensors"))


@pytest.mark.slow
def test_budget_forcing_three_passes_gives_the_same_results_to_the_bit(one_pass, tmp_path):
    """The budget holds the largest pair and little more: one pass per chunk of one or two pairs."""
    budget_gb = _passes(one_pass)["max_pair_bytes"] / 1e9
    config = _project(tmp_path, features=f"memory_gb = {budget_gb!r}")
    assert run_cli(config, "--no-site") == 0
    info = _passes(tmp_path)
    # every block is split here: the last block's pseudo-masks and masking variants (needing keys and
    # tokens of one block) are computed on demand, which changes no number either
    assert info["passes"] >= 3
    assert info["budget_bytes"] == round(budget_gb * 1e9)
    _assert_same(_stored(tmp_path), _stored(one_pass))
    report = (tmp_path / "site_src" / "build-report.md").read_text()
    assert f"{info['passes']} forward passes" in report


@pytest.mark.slow
def test_opt_in_cache_writes_features_and_changes_no_number(one_pass, tmp_path):
    config = _project(tmp_path, features="cache = true")
    assert run_cli(config, "--no-site") == 0
    entries = sorted((tmp_path / "cache").glob("*/*.safetensors"))
    assert entries and _passes(tmp_path)["cache"] is True
    _assert_same(_stored(tmp_path), _stored(one_pass))
    shutil.rmtree(tmp_path / "out")  # stored results gone: the features come from the cache this time
    before = {p: p.read_bytes() for p in entries}
    assert run_cli(config, "--no-site") == 0
    assert {p: p.read_bytes() for p in entries} == before  # read, not written again
    _assert_same(_stored(tmp_path), _stored(one_pass))


def test_budget_too_small_for_one_pair_is_one_line(tmp_path, capsys):
    config = _project(tmp_path, features="memory_gb = 1e-9")
    assert run_cli(config, "--no-site") == 2
    line = error_line(capsys)
    assert "memory_gb = 1e-09" in line and "set memory_gb to at least" in line
    assert not (tmp_path / "out" / "state" / "models").exists()


@pytest.mark.parametrize("budget", [5, 7, 9, 13, 20, 100])
def test_plan_chunks_packs_blocks_within_the_budget(budget):
    pairs = [(b, r) for b in range(4) for r in ("tokens", "keys")]
    sizes = {p: 2 + p[0] for p in pairs}  # deeper pairs larger (as with probes at sweep blocks)
    chunks = plan_chunks(pairs, sizes, budget=budget)
    assert [p for c in chunks for p in c] == pairs  # every pair once, in order
    assert all(sum(sizes[p] for p in c) <= budget for c in chunks)
    for b in range(4):  # a block that fits the budget is never split
        holding = [i for i, c in enumerate(chunks) for p in c if p[0] == b]
        assert len(set(holding)) == 1 or 2 * (2 + b) > budget
    # greedy packing of whole blocks: no two neighbouring chunks of whole blocks would fit into one
    whole = [c for c in chunks if sum(sizes[p] for p in c) and len({p[0] for p in c}) * 2 == len(c)]
    assert all(sum(sizes[p] for p in a + b) > budget for a, b in zip(whole, whole[1:]) if chunks.index(b) ==
               chunks.index(a) + 1)
    assert plan_chunks(pairs, sizes, None) == [pairs] and plan_chunks([], {}, 5) == []


def _devices():
    import torch

    return ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="needs a CUDA device"))]


@pytest.mark.parametrize("device", _devices())
def test_model_run_in_chunks_equals_one_pass_on_each_device(tmp_path, device):
    """The streaming itself, without the command line: one pass vs a budget of one pair, on the CPU
    and (where present) on a GPU, where the kept features live on the device."""
    import torch

    from atlas.config import parse_config
    from atlas.features.backbones import load_backbone
    from atlas.pipeline.inputs import load_images
    from atlas.pipeline.model_run import ModelRun

    _write_photos(tmp_path / "photos", [f"p{i}.png" for i in range(4)], size=96)
    cfg = parse_config(f"""
[images]
sets = [{{ folder = "{tmp_path / 'photos'}" }}]
resolution = [96, 96]
[features]
layers = [0.5, 1.0]
gallery_layers = [1.0]
representations = ["tokens", "keys", "queries"]
device = "{device}"
[clustering]
ks = [3]
[analyses]
k = 3
[uncertainty]
resamples = 10
seeds = 1
[[backbones]]
display_name = "tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
overrides = {{ depth = 2, embed_dim = 32, num_heads = 2 }}
""")
    images, _ = load_images(cfg)
    loaded = load_backbone(cfg.backbones[0], (96, 96), seed=0)
    dev = torch.device(device)
    whole = ModelRun(cfg, loaded, images, None, dev).run()
    chunked_run = ModelRun(cfg, loaded, images, None, dev, memory_bytes=_largest_pair(cfg, loaded, images, dev))
    chunked = chunked_run.run()
    assert whole.passes["passes"] == 1 and chunked.passes["passes"] >= 3
    assert chunked_run.stream.kept_bytes() == 0  # given back at the end of the run
    for field in ("measures", "references", "runs"):  # repr: exact for floats, and NaN equals NaN
        assert list(map(repr, getattr(chunked, field))) == list(map(repr, getattr(whole, field))), field
    for maps in ("label_maps", "pictures"):
        a, b = getattr(whole, maps), getattr(chunked, maps)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), maps


def _largest_pair(cfg, loaded, images, device) -> int:
    from atlas.pipeline.model_run import ModelRun

    probe = ModelRun(cfg, loaded, images, None, device)
    probe.stream.add("images", images)
    for label, imgs in probe.image_sets().items():
        probe.stream.add(label, imgs, [p for p in probe.pairs() if p[0] in probe.sweep])
    return max(probe.stream.pair_bytes(probe.pairs()).values())


def test_a_rebuild_with_nothing_changed_reuses_and_says_so(one_pass, tmp_path):
    root = tmp_path / "again"
    shutil.copytree(one_pass, root)
    report = (root / "site_src" / "build-report.md").read_text()
    assert "reused: stored results were current" not in report  # computed by that build
    assert run_cli(root / "configs" / "tiny.toml", "--no-site") == 0
    report = (root / "site_src" / "build-report.md").read_text()
    assert "reused: stored results were current" in report
