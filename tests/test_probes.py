"""Tests for atlas.inputs.probes: the blank-input probe images."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.inputs.geometry import to_tensor
from atlas.inputs.probes import probe_images


def test_probe_images():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    probes = probe_images((32, 48), seed=3, mean=mean, std=std)
    names = [p.name for p in probes]
    assert len(set(names)) == len(names)
    assert {"constant-black", "constant-white", "constant-grey", "constant-mean", "noise-uniform", "noise-gaussian"} <= set(names)
    assert all(p.load().mode == "RGB" and p.load().size == (48, 32) for p in probes)
    assert all(p.source == "blank-input probe" for p in probes)
    by = {p.name: p.load() for p in probes}
    assert by["constant-mean"].getpixel((0, 0)) == (124, 116, 104)
    assert float(to_tensor(by["constant-mean"], mean, std).abs().max()) < 0.01
    g = to_tensor(by["noise-gaussian"], mean, std)
    assert abs(float(g.mean())) < 0.1 and 0.8 < float(g.std()) < 1.1
    u = np.asarray(by["noise-uniform"])
    assert u.min() < 10 and u.max() > 245
    again = {p.name: p.load() for p in probe_images((32, 48), seed=3, mean=mean, std=std)}
    other = {p.name: p.load() for p in probe_images((32, 48), seed=4, mean=mean, std=std)}
    assert np.array_equal(np.asarray(again["noise-uniform"]), u)
    assert not np.array_equal(np.asarray(other["noise-uniform"]), u)
    assert not np.array_equal(np.asarray(other["noise-gaussian"]), np.asarray(by["noise-gaussian"]))
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        probe_images((8, 8), seed=-1)
    with pytest.raises(ValueError, match="height must be a positive int"):
        probe_images((0, 8))
