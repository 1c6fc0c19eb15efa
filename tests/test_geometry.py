"""Tests for atlas.inputs.geometry: snapping, the resize policy, the shift-test windows, tensors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from atlas.inputs.geometry import ResizePolicy, shift_windows, snap_to_patch_multiple, to_tensor
from atlas.measures.shift import shift_test
from atlas.site.methods import policy_sentence


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------
# Sizing
# ------------------------------------------------------------------------------------------


def test_snap_to_patch_multiple():
    assert snap_to_patch_multiple((224, 224), 16) == (224, 224)
    assert snap_to_patch_multiple((230, 500), 16) == (224, 496)
    assert snap_to_patch_multiple((232, 7), 16) == (240, 16)  # half rounds up; minimum one patch
    assert snap_to_patch_multiple((518, 518), 14) == (518, 518)
    with pytest.raises(ValueError, match="patch must be a positive int"):
        snap_to_patch_multiple((224, 224), 0)
    with pytest.raises(ValueError, match="size entries"):
        snap_to_patch_multiple((224, -1), 16)


@pytest.mark.parametrize("src_wh", [(640, 427), (300, 451), (10, 7), (224, 224), (2000, 50)])
@pytest.mark.parametrize("hw", [(224, 224), (224, 448), (336, 112)])
def test_resize_policy_output_size(src_wh, hw):
    policy = ResizePolicy(*hw)
    out = policy.apply(Image.fromarray(_noise(src_wh[1], src_wh[0])))
    assert out.size == (hw[1], hw[0])


def test_resize_policy_centre_crop_and_identity():
    arr = _noise(100, 300)
    out = ResizePolicy(100, 100).apply(Image.fromarray(arr))  # height already matches: crop only
    assert np.array_equal(np.asarray(out), arr[:, 100:200])
    same = ResizePolicy(100, 300).apply(Image.fromarray(arr))
    assert np.array_equal(np.asarray(same), arr)
    # A flat image stays flat through resampling (no ringing at a constant).
    flat = ResizePolicy(32, 48).apply(Image.new("RGB", (500, 90), (10, 20, 30)))
    assert set(map(tuple, np.asarray(flat).reshape(-1, 3).tolist())) == {(10, 20, 30)}


def test_resize_policy_grid_key_and_validation():
    policy = ResizePolicy(224, 448)
    assert policy.size == (224, 448) and policy.grid(16) == (14, 28)
    assert policy.key != ResizePolicy(448, 224).key and policy.key == ResizePolicy(224, 448).key
    text = policy_sentence({"resolutions": [[224, 448]]})  # the site's words for it
    assert "covers 224 × 448 pixels (height × width), then centre-cropped to exactly 224 × 448." in text
    with pytest.raises(ValueError, match="not a multiple of patch 10"):
        policy.grid(10)
    with pytest.raises(ValueError, match="height must be a positive int"):
        ResizePolicy(0, 10)
    with pytest.raises(ValueError, match="width must be a positive int"):
        ResizePolicy(10, 2.5)


@pytest.mark.parametrize("shifts", [[1, 2, 3, 4], [2], [5]])
def test_shift_windows_content_relation(shifts):
    patch, policy = 8, ResizePolicy(32, 48)
    windows = shift_windows(Image.fromarray(_noise(90, 130)), policy, patch, shifts)
    assert sorted(windows) == sorted({0, *shifts})
    base = np.asarray(windows[0])
    for s in shifts:
        win = np.asarray(windows[s])
        assert win.shape == (32, 48, 3)
        # window s lies s patches right of window 0: its column x shows window 0's column x + s
        assert np.array_equal(win[:, : 48 - s * patch], base[:, s * patch:])
        assert not np.array_equal(win, base)


def _patch_ids(img: Image.Image, patch: int) -> np.ndarray:
    """One id per patch, equal for equal pixel content: a perfectly content-following "model"."""
    a = np.asarray(img)
    h, w = a.shape[0] // patch, a.shape[1] // patch
    blocks = a.reshape(h, patch, w, patch, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, -1)
    _, ids = np.unique(blocks.reshape(h * w, -1), axis=0, return_inverse=True)
    return ids.reshape(h, w)


def test_shift_windows_follow_the_shift_test_convention():
    """Planted: ids that follow content exactly must score content = 1 through the windows the
    build makes; ids that follow the grid must score position = 1 (the twin this replaced shifted
    the other way and scored content 0.0)."""
    patch, policy = 8, ResizePolicy(32, 48)
    for seed in range(3):
        windows = shift_windows(Image.fromarray(_noise(90, 130, seed)), policy, patch, [1, 2, 3])
        # ids must be shared between windows: label every patch of all windows in one vocabulary
        allw = np.concatenate([np.asarray(windows[s]) for s in (0, 1, 2, 3)], axis=1)
        ids = _patch_ids(Image.fromarray(allw), patch)
        ids = {s: ids[:, i * 6:(i + 1) * 6][None] for i, s in enumerate((0, 1, 2, 3))}
        for s in (1, 2, 3):
            content = shift_test(ids[0], ids[s], s)
            assert content["content"] == 1.0 and content["content_fraction_adjusted"] == 1.0
        grid = np.arange(4 * 6).reshape(1, 4, 6)  # a pure position code: same id per grid cell
        position = shift_test(grid, grid, 2)
        assert position["position"] == 1.0 and position["content_fraction_adjusted"] == 0.0


def test_shift_windows_validation():
    img = Image.fromarray(_noise(90, 130))
    policy = ResizePolicy(32, 48)
    with pytest.raises(ValueError, match="leaves no overlap"):
        shift_windows(img, policy, 8, [6])
    with pytest.raises(ValueError, match="not a multiple of patch"):
        shift_windows(img, policy, 7, [1])
    with pytest.raises(ValueError, match="shifts must be a positive int"):
        shift_windows(img, policy, 8, [1.5])
    with pytest.raises(ValueError, match="shifts must be a positive int"):
        shift_windows(img, policy, 8, [0])
    with pytest.raises(ValueError, match="at least one shift"):
        shift_windows(img, policy, 8, [])


def test_to_tensor():
    import torch

    x = to_tensor(Image.new("RGB", (5, 4), (255, 0, 51)), mean=(0.5, 0.5, 0.2), std=(0.5, 0.25, 0.1))
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 4, 5)
    assert torch.allclose(x[:, 2, 3], torch.tensor([1.0, -2.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match="needs an RGB PIL image"):
        to_tensor(Image.new("L", (2, 2)))
    with pytest.raises(ValueError, match="3 values"):
        to_tensor(Image.new("RGB", (2, 2)), mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="std must be positive"):
        to_tensor(Image.new("RGB", (2, 2)), std=(0.5, 0.0, 0.5))
