"""Baselines are computed once per geometry (atlas.pipeline.shared_baselines): a model whose input
size and patch size an earlier model had reads that model's stored baselines, and they are the
records it would have computed itself; another geometry, protocol, seed or damaged file computes
them again."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

from test_hostile_inputs import project, run_cli
from test_stream import EVALUATION, _labelled

import numpy as np
import pytest

from atlas.config import parse_config
from atlas.measures.uncertainty import Uncertainty, half_samples, jackknife
from atlas.pipeline import evaluation_run
from atlas.pipeline.shared_baselines import shared_baselines
from atlas.pipeline.state import StateStore
from atlas.records import Baseline

PATCH8 = """
[[backbones]]
display_name = "Tiny P8"
timm_name = "vit_small_patch8_224"
weights = "random"
training = "random"
overrides = { depth = 2, embed_dim = 32, num_heads = 2 }
"""


def _loaded(patch: int = 16, size=(96, 96), name: str = "m"):
    return SimpleNamespace(card=SimpleNamespace(input_size=size, patch_size=patch, display_name=name))


def test_one_computation_per_geometry_protocol_and_settings(tmp_path, caplog):
    store, calls = StateStore(tmp_path / "state"), []

    chance = Uncertainty()
    replicates = np.random.default_rng(0).uniform(0.1, 0.15, 20)
    replicates[3] = np.nan  # an undefined replicate goes through JSON too
    chance.add(0.125, replicates, *jackknife(half_samples(8, 20, seed=0)))
    assert np.isfinite(chance.interval()).all()

    def compute():
        calls.append(1)
        return ([Baseline(measure="seg_miou", name="chance", value=0.125, lo=0.1, hi=0.15)], {"per": [0.5, float("nan")]},
                {"seg_miou": {"chance": chance}})

    cfg, other_seed = parse_config(PATCH8), parse_config("[atlas]\nseed = 1\n" + PATCH8)
    first = shared_baselines(store, "evaluation", "data", cfg, _loaded(name="a"), compute)
    with caplog.at_level(logging.INFO, logger="atlas.pipeline.shared_baselines"):
        again = shared_baselines(store, "evaluation", "data", cfg, _loaded(name="b"), compute)
    assert len(calls) == 1 and "b: evaluation baselines at evaluation-96x96-p16 reused" in caplog.text
    assert again[0] == first[0] and json.dumps(again[1]) == json.dumps(first[1])
    for got in (first, again):  # the replicates the models' paired differences need, as computed
        u = got[2]["seg_miou"]["chance"]
        np.testing.assert_array_equal(u.replicates[0], chance.replicates[0])
        assert (u.points, u.factors, u.given_dfs, u.interval()) == (chance.points, chance.factors, chance.given_dfs,
                                                                    chance.interval())

    # a damaged file: one warning, moved aside, computed and stored again
    folder = tmp_path / "state" / "baselines" / "evaluation-96x96-p16"
    (folder / "baselines.json").write_text((folder / "baselines.json").read_text().replace("0.125", "0.9"))
    with caplog.at_level(logging.WARNING, logger="atlas.pipeline.state"):
        assert shared_baselines(store, "evaluation", "data", cfg, _loaded(), compute)[0] == first[0]
    assert len(calls) == 2 and "checksum mismatch" in caplog.text
    assert (folder.parent / "evaluation-96x96-p16.corrupt").is_dir()
    shared_baselines(store, "evaluation", "data", cfg, _loaded(), compute)
    assert len(calls) == 2

    # another geometry, protocol, dataset or seed computes them again
    for args in (("evaluation", "data", cfg, _loaded(patch=8)), ("evaluation", "data", cfg, _loaded(size=(96, 128))),
                 ("propagation", "data", cfg, _loaded()), ("evaluation", "other data", cfg, _loaded()),
                 ("evaluation", "data", other_seed, _loaded())):
        n = len(calls)
        shared_baselines(store, *args, compute)
        assert len(calls) == n + 1, args
    shared_baselines(None, "evaluation", "data", cfg, _loaded(), compute)  # no store: always computed
    assert len(calls) == 8


def test_baselines_that_cannot_be_stored_are_still_the_models(tmp_path, monkeypatch, caplog):
    """A full disk while storing the shared copy: the model keeps its baselines, one warning."""
    store = StateStore(tmp_path / "state")

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "save_baselines", full)
    record = [Baseline(measure="seg_miou", name="chance", value=0.25)]
    with caplog.at_level(logging.WARNING, logger="atlas.pipeline.shared_baselines"):
        got = shared_baselines(store, "evaluation", "data", parse_config(PATCH8), _loaded(), lambda: (record, None, {}))
    assert got == (record, None, {}) and "computed but not stored" in caplog.text


def _result(root: Path, slug: str) -> dict:
    return json.loads((root / "out" / "state" / "models" / slug / "result.json").read_text())


def _baselines(root: Path, slug: str) -> list:
    return _result(root, slug)["baselines"]


def _differences(root: Path, slug: str) -> dict:
    return {(m["block"], m["representation"], m["measure"], m["k"]): m["versus"] for m in _result(root, slug)["measures"]}


def _config(root: Path, models: list[str], extra_models: str = "") -> Path:
    config = project(root, models=models, evaluation=EVALUATION)
    config.write_text(config.read_text().replace("resolution = [64, 64]", "resolution = [96, 96]") + extra_models,
                      encoding="utf-8")
    return config


def test_a_model_of_a_known_geometry_reads_the_baselines_it_would_compute(tmp_path, monkeypatch, caplog):
    """Through the command line: Tiny A computes the evaluation baselines of 96 x 96 px, patch 16;
    a later build adds Tiny B (same geometry: reads them) and Tiny P8 (patch 8: computes its own).
    Tiny B built alone computes the same records."""
    calls = []
    real = evaluation_run.evaluation_baselines
    monkeypatch.setattr(evaluation_run, "evaluation_baselines",
                        lambda protocol, loaded, *a: calls.append(loaded.card.patch_size) or real(protocol, loaded, *a))
    shared = tmp_path / "shared"
    _labelled(shared)
    assert run_cli(_config(shared, ["Tiny A"]), "--no-site") == 0
    assert calls == [16]
    with caplog.at_level(logging.INFO, logger="atlas.pipeline.shared_baselines"):
        assert run_cli(_config(shared, ["Tiny A", "Tiny B"], PATCH8), "--no-site") == 0
    assert calls == [16, 8]  # Tiny A's results were stored: only Tiny P8 computed baselines
    assert "Tiny B: evaluation baselines at evaluation-96x96-p16 reused" in caplog.text
    assert sorted(p.name for p in (shared / "out" / "state" / "baselines").iterdir()) == [
        "evaluation-96x96-p16", "evaluation-96x96-p8"]

    alone = tmp_path / "alone"
    _labelled(alone)
    assert run_cli(_config(alone, ["Tiny B"]), "--no-site") == 0
    assert calls == [16, 8, 16]
    assert _baselines(shared, "tiny-b") == _baselines(alone, "tiny-b") == _baselines(shared, "tiny-a")
    # the paired differences from stored baselines are those from computed ones
    paired = _differences(shared, "tiny-b")
    assert paired == _differences(alone, "tiny-b")
    assert {n for v in paired.values() if v for n in v} >= {"chance", "colour", "position"}
    values = {(m["block"], m["representation"], m["measure"], m["k"]): m["value"] for m in _result(shared, "tiny-b")["measures"]}
    base = {(b["measure"], b["name"]): b["value"] for b in _baselines(shared, "tiny-b")}
    for key, differences in paired.items():  # each interval holds the difference of the two values
        for name, d in (differences or {}).items():
            assert d["lo"] <= d["value"] <= d["hi"] and d["se"] >= 0, (key, name)
            assert d["value"] == pytest.approx(values[key] - base[key[2], name]), (key, name)  # no seed undefined
    assert _baselines(shared, "tiny-p8") != _baselines(shared, "tiny-b")  # a 12 x 12 grid, not 6 x 6
    assert {b["name"] for b in _baselines(shared, "tiny-b")} >= {"chance", "colour", "position", "ceiling"}

