"""One label resampler, one device resolver, one uncertainty-to-row helper (issue 25): each former
copy is planted here as it was and compared with what now stands in its place, and spied on to
show it goes through the one helper."""

import numpy as np
import pytest
import torch

import atlas.clustering.kmeans as kmeans
import atlas.features.device as device_mod
import atlas.inputs.datasets as datasets
from atlas.clustering.align import resample_labels
from atlas.measures.segmentation import upsample_labels
from atlas.measures.tensors import resolve_device
from atlas.measures.uncertainty import Uncertainty, quantile, row_fields


def _old_mask_for_size(mask, size):  # inputs.datasets.mask_for_size before (float arithmetic)
    H, W = size
    h, w = mask.shape
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return mask[rows[:, None], cols[None, :]]


@pytest.mark.parametrize("src, dst", [(14, 16), (16, 14), (14, 224), (16, 224), (37, 518), (37, 14), (224, 16)])
def test_label_resamplers_are_the_one(src, dst, monkeypatch):
    labels = np.random.default_rng(src * dst).integers(0, 27, (src, src + 3)).astype(np.uint8)
    size = (dst, dst + 5)
    want = _old_mask_for_size(labels, size)
    for got in (resample_labels(labels, size), datasets.mask_for_size(labels, size), upsample_labels(labels, size)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    calls = []
    monkeypatch.setattr(datasets, "resample_labels", lambda m, s: calls.append(s) or resample_labels(m, s))
    upsample_labels(labels, size)
    assert calls == [size]  # segmentation -> mask_for_size -> the one resampler


def _old_torch_device(device):  # clustering.kmeans._torch_device before
    return torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def test_device_resolvers_are_the_one(monkeypatch):
    for cuda in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        for dev in (None, "cpu", "cuda", torch.device("cpu")):
            assert resolve_device(dev, default="auto") == _old_torch_device(dev)
            assert kmeans.JointKMeans(2, device=dev)._resolved_device(np.zeros((2, 2))) == _old_torch_device(dev)
        x = torch.zeros(2)  # a tensor's device wins over the default
        assert kmeans.JointKMeans(2)._resolved_device(x) == x.device
        assert resolve_device(None) == torch.device("cpu")  # the measures' default: the CPU
        if not cuda:
            assert device_mod.pick_device("auto") == torch.device("mps" if device_mod.mps_available() else "cpu")
    calls = []
    monkeypatch.setattr(device_mod, "resolve_device", lambda *a, **kw: calls.append((a, kw)) or resolve_device(*a, **kw))
    assert device_mod.pick_device("cpu") == torch.device("cpu")
    assert calls == [(("cpu",), {"mps": True})]


def test_row_fields_is_the_old_rows():
    bounds = (0.0, 1.0)
    one, two, none, nan = Uncertainty(0.9), Uncertainty(0.9), Uncertainty(0.9), Uncertainty(0.9, centre="mean")
    one.add(0.98, np.array([0.9, 1.0, 0.95]))
    two.add(0.5, np.array([0.45, 0.5, 0.55]))
    two.add(0.52, np.array([0.5, 0.52, 0.56]))
    none.add(0.3)  # no replicates: no interval
    nan.add(float("nan"), np.array([0.1, 0.2]))
    for u in (one, two, none, nan):
        lo, hi = u.interval(bounds)
        finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        old = dict(value=u.value, lo=finite(lo), hi=finite(hi), seed_spread=u.seed_spread if len(u.points) > 1 else None)
        new = row_fields(u, bounds)
        assert new.keys() == old.keys() | {"se", "df"}
        assert all(new[k] == old[k] or (new[k] != new[k] and old[k] != old[k]) for k in old)
        se, df = u.spread()  # the se and df behind the interval, where it has one
        if old["lo"] is None:
            assert new["se"] is None and new["df"] is None
        else:
            assert new["se"] == se and new["df"] == df
            q = quantile(0.9, df)
            assert (max(u.value - q * se, 0.0), min(u.value + q * se, 1.0)) == pytest.approx((new["lo"], new["hi"]))
        assert row_fields(u, bounds, seed_spread=False)["seed_spread"] is None
    assert row_fields(two, bounds)["seed_spread"] == pytest.approx(0.02) and row_fields(one, bounds)["hi"] == 1.0


def test_rows_go_through_row_fields(monkeypatch):
    import atlas.pipeline.evaluation_baselines as eb

    calls = []
    monkeypatch.setattr(eb, "row_fields", lambda *a, **kw: calls.append(a) or row_fields(*a, **kw))
    u = Uncertainty()
    u.add(0.5, np.array([0.4, 0.6]))
    b = eb._baseline("seg_miou", "chance", u)
    assert len(calls) == 1 and (b.value, b.seed_spread) == (0.5, None) and b.lo < 0.5 < b.hi
