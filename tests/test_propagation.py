"""Label propagation (DINO's recipe, made for DAVIS) and the DAVIS metrics J and F: hand-computed cases,
an independent boundary matcher, and planted videos (identity features track, shuffled and
position-only features do not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from atlas.measures.propagation import (boundary_measure, j_and_f, object_scores, propagate_labels,
                                         region_similarity)


def test_region_similarity_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 pixels
    b[0:2, 1:3] = True  # 4 pixels, 2 shared
    assert region_similarity(a, b) == pytest.approx(2 / 6)
    assert region_similarity(a, a) == 1.0 and region_similarity(a & False, b & False) == 1.0


def _seg2bmap(seg):
    """DAVIS's ``_seg2bmap`` (davis2017-evaluation, metrics.py), line for line."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _reference_f(pred, truth, bound_th=0.008):
    """DAVIS's ``f_measure``: boundaries dilated by a disk (scipy's dilation for ``cv2.dilate``)."""
    from skimage.morphology import disk

    radius = np.ceil(bound_th * np.linalg.norm(truth.shape))
    bp, bt = _seg2bmap(pred), _seg2bmap(truth)
    p_dil = ndimage.binary_dilation(bp, structure=disk(radius).astype(bool))
    t_dil = ndimage.binary_dilation(bt, structure=disk(radius).astype(bool))
    n_p, n_t = bp.sum(), bt.sum()
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    precision, recall = (bp & t_dil).sum() / n_p, (bt & p_dil).sum() / n_t
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_measure_by_hand_and_against_davis_code():
    truth = np.zeros((100, 100), bool)
    truth[20:60, 20:60] = True
    assert boundary_measure(truth, truth) == 1.0
    assert boundary_measure(np.zeros_like(truth), truth) == 0.0
    assert boundary_measure(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    near = np.roll(truth, 1, axis=1)  # within the tolerance (ceil(0.008 x 141) = 2 px)
    far = np.roll(truth, 10, axis=1)
    assert boundary_measure(near, truth) == 1.0 and boundary_measure(far, truth) < 0.6
    rng = np.random.default_rng(0)
    for _ in range(20):
        blob = ndimage.gaussian_filter(rng.normal(size=(60, 80)), 4)
        other = ndimage.gaussian_filter(rng.normal(size=(60, 80)), 4)
        a, b = blob > 0, (0.7 * blob + 0.3 * other) > 0
        assert boundary_measure(a, b) == pytest.approx(_reference_f(a, b), abs=1e-12)


def _whole_frame_scores(pred, truth, objects, ignore):
    """J and F per object over the frames, each frame scored whole (no crop): the definition."""
    valid = truth != ignore
    filled = np.where(valid, truth, pred)
    js = [np.mean([region_similarity((p == o) & v, g == o) for p, g, v in zip(pred, truth, valid)]) for o in objects]
    fs = [np.mean([_reference_f(p == o, g == o) for p, g in zip(pred, filled)]) for o in objects]
    return np.array(js), np.array(fs)


def _objects_at_the_edges(rng, frames=3, h=40, w=56, k=3):
    """Ellipses that often cross the frame's edges, a shifted noisy prediction, ignored pixels."""
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((frames, h, w), int)
    for t in range(frames):
        for o in range(1, k + 1):
            cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
            ry, rx = rng.uniform(0.1, 0.6) * h, rng.uniform(0.1, 0.6) * w
            truth[t][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = o
    pred = np.roll(truth, tuple(rng.integers(-3, 4, 2)), axis=(1, 2))
    pred[rng.random(pred.shape) < 0.03] = rng.integers(0, k + 1)
    truth[rng.random(truth.shape) < 0.05] = 255
    return pred, truth


def test_scores_on_the_objects_box_equal_the_whole_frame(monkeypatch):
    """object_scores crops each frame to the object's box (plus one pixel): the same J and F as
    scoring whole frames, with objects on the frame's edges, absent objects and ignored pixels.
    The control: a box one pixel short of the objects' last row and column changes the scores,
    and the comparison sees it."""
    rng = np.random.default_rng(3)
    cases = [_objects_at_the_edges(rng) for _ in range(25)]
    for pred, truth in cases:
        js, fs = object_scores(pred, truth, [1, 2, 3, 4], ignore=255)  # object 4 is never there: 1, as DAVIS
        ref_j, ref_f = _whole_frame_scores(pred, truth, [1, 2, 3, 4], 255)
        assert js == pytest.approx(ref_j, abs=1e-12) and fs == pytest.approx(ref_f, abs=1e-12)
        assert js[3] == fs[3] == 1.0
    import atlas.measures.propagation as prop

    real = prop._box

    def short(a, b):
        box = real(a, b)
        return box and tuple(slice(sl.start, min(sl.stop, n + 1) - 2) for sl, n in zip(box, a.shape))

    monkeypatch.setattr(prop, "_box", short)
    assert any(not np.allclose(object_scores(p, t, [1, 2, 3], ignore=255)[1],
                               _whole_frame_scores(p, t, [1, 2, 3], 255)[1]) for p, t in cases)


def _video(frames=8, size=16, seed=0):
    """Two textured squares moving in opposite directions over a textured background: masks and
    per-patch (1 px patches) colours."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((frames, size, size), int)
    for t in range(frames):
        masks[t, 2:7, 1 + t:6 + t] = 1
        masks[t, 9:14, 10 - t:15 - t] = 2
    return masks, rng


def test_identity_features_track_and_shuffled_or_position_features_do_not():
    masks, rng = _video()
    t_count, h, w = masks.shape
    identity = np.eye(3)[masks] * 3 + 0.1 * rng.normal(size=(*masks.shape, 3))
    tracked = j_and_f(propagate_labels(identity, masks[0], radius=4)[1:], masks[1:])
    assert tracked["j_and_f"] > 0.9, tracked

    order = rng.permuted(np.tile(np.arange(h * w), (t_count, 1)), axis=1)
    shuffled = np.stack([f.reshape(h * w, -1)[o].reshape(h, w, -1) for f, o in zip(identity, order)])
    lost = j_and_f(propagate_labels(shuffled, masks[0], radius=4)[1:], masks[1:])
    assert lost["j_and_f"] < tracked["j_and_f"] - 0.3, lost

    position = np.broadcast_to(np.eye(h * w).reshape(1, h, w, h * w), (t_count, h, w, h * w))
    still = j_and_f(propagate_labels(position, masks[0], radius=4)[1:], masks[1:])
    copied = j_and_f(np.broadcast_to(masks[:1], masks[1:].shape), masks[1:])  # zero motion
    assert still["j_and_f"] == pytest.approx(copied["j_and_f"], abs=0.02) and still["j_and_f"] < 0.5, still


def _reference_propagation(feats, first_small, temperature=0.1, top_k=5, radius=12, n_context=7):
    """Soft labels at the patch grid as DINO's eval_video_segmentation.py writes them (out of place,
    the neighbourhood mask repeated per context frame), in numpy."""
    t_count, h, w, c = feats.shape
    x = feats.reshape(t_count, h * w, c) / np.linalg.norm(feats.reshape(t_count, h * w, c), axis=-1, keepdims=True)
    ys, xs = np.divmod(np.arange(h * w), w)
    near = (np.abs(ys[:, None] - ys[None]) <= radius) & (np.abs(xs[:, None] - xs[None]) <= radius)
    soft = [np.eye(first_small.max() + 1)[first_small.reshape(-1)]]
    for t in range(1, t_count):
        ctx = [0] + list(range(max(1, t - n_context), t))
        aff = np.exp(x[t] @ np.concatenate([x[i] for i in ctx]).T / temperature) * np.tile(near, (1, len(ctx)))
        threshold = np.sort(aff, axis=1)[:, -min(top_k, aff.shape[1])][:, None]
        aff = np.where(aff >= threshold, aff, 0.0)
        soft.append(aff / aff.sum(axis=1, keepdims=True) @ np.concatenate([soft[i] for i in ctx]))
    return np.stack(soft)


def _norm_mask(mask):
    """DINO's norm_mask (eval_video_segmentation.py), line for line, on one frame's (L, h, w) maps."""
    mask = mask.copy()
    for cnt in range(mask.shape[0]):
        mask_cnt = mask[cnt]
        if mask_cnt.max() > 0:
            mask_cnt = mask_cnt - mask_cnt.min()
            mask_cnt = mask_cnt / mask_cnt.max()
            mask[cnt] = mask_cnt
    return mask


@pytest.mark.parametrize("top_k, radius, n_context", [(5, 12, 7), (3, 2, 4), (1, 1, 2)])
def test_propagation_follows_dinos_reference(top_k, radius, n_context):
    """The in-place affinities (the neighbourhood broadcast over context frames) give DINO's labels."""
    rng = np.random.default_rng(3)
    h, w, frames = 7, 9, 11
    feats = rng.normal(size=(frames, h, w, 6))
    first = np.zeros((h, w), int)
    first[1:4, 2:6], first[4:7, 0:3] = 1, 2
    protocol = {"top_k": top_k, "radius": radius, "n_context": n_context}
    ours = propagate_labels(feats, first, **protocol)  # at the patch grid: the argmax of the soft labels
    soft = _reference_propagation(feats, first, **protocol).reshape(frames, h, w, -1).transpose(0, 3, 1, 2)
    reference = np.stack([_norm_mask(s).argmax(axis=0) for s in soft])
    assert np.array_equal(ours[1:], reference[1:])
    assert (reference[1:] != reference[:1]).any()  # the labels move: not a comparison of copies
    if top_k > 1:  # soft labels (top 1 gives one-hot ones): the rescaling decides some patches
        assert (reference[1:] != soft[1:].argmax(axis=1)).any()


@pytest.mark.parametrize("top_k, radius, n_context", [(5, 12, 7), (3, 2, 4), (1, 0, 7), (12, 3, 2)])
def test_one_shared_map_gives_the_labels_of_the_map_repeated(top_k, radius, n_context):
    """The position baseline's path: one (h w, h w) affinity matrix for every frame. Bumps tie
    across the repeated context frames (a patch's M copies share the top-k), random features do
    not; both give the labels of the map repeated frame by frame."""
    from atlas.measures.baselines import position_features

    h, w, frames = 8, 11, 12
    first = np.zeros((4 * h, 4 * w), int)
    first[5:20, 6:30], first[10:30, 2:9] = 1, 2
    noise = np.random.default_rng(0).normal(size=(1, h, w, 7)).astype(np.float32)
    changed = 0
    for one in (position_features(1, (h, w)), noise):
        protocol = {"top_k": top_k, "radius": radius, "n_context": n_context}
        repeated = propagate_labels(np.repeat(one, frames, axis=0), first, **protocol)
        shared = propagate_labels(one, first, n_frames=frames, **protocol)
        assert shared.shape == repeated.shape and np.array_equal(shared, repeated)
        changed += (repeated[1:] != repeated[:1]).sum()
    assert changed > 0  # the labels move from frame 0: the comparison is not of copies of the first mask


def test_a_shared_map_must_be_one_frame():
    with pytest.raises(ValueError, match="one frame"):
        propagate_labels(np.zeros((2, 4, 4, 3)), np.ones((4, 4), int), n_frames=5)


@pytest.mark.parametrize("features, mask, words", [
    (np.zeros((1, 4, 4, 3)), np.ones((4, 4), int), "T >= 2"),
    (np.zeros((3, 4, 4, 3)), np.zeros((4, 4), int), "no object"),
])
def test_bad_inputs_are_one_line(features, mask, words):
    with pytest.raises(ValueError, match=words):
        propagate_labels(features, mask)


def test_masks_of_another_size_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        j_and_f(np.zeros((2, 4, 4), int), np.ones((2, 5, 4), int))


def test_ignored_pixels_count_for_neither_j_nor_f_by_hand():
    truth = np.zeros((1, 20, 20), int)
    truth[0, 5:15, 5:10] = 1  # 50 pixels of the object
    truth[0, 5:15, 10:12] = 255  # unlabelled strip beside it
    pred = np.zeros_like(truth)
    pred[0, 5:15, 5:12] = 1  # the object and the strip: 70 pixels, 20 of them unlabelled
    j, f = object_scores(pred, truth, [1], ignore=255)
    assert j[0] == 1.0 and f[0] == 1.0  # what the truth cannot say is not held against the prediction
    j, f = object_scores(pred, truth, [1])  # without ignore: 50 / 70, and the strip's edge is off by 2 px
    assert j[0] == pytest.approx(50 / 70) and f[0] < 1.0
    pred[0, 5:15, 5:7] = 0  # 20 labelled pixels lost: 30 / 50
    j, _ = object_scores(pred, truth, [1], ignore=255)
    assert j[0] == pytest.approx(30 / 50)


def test_boundary_is_davis_seg2bmap_and_the_image_edge_is_none():
    from atlas.measures.propagation import _boundary

    rng = np.random.default_rng(1)
    for _ in range(10):
        m = ndimage.gaussian_filter(rng.normal(size=(30, 40)), 2) > 0
        assert np.array_equal(_boundary(m), _seg2bmap(m))
    square = np.zeros((6, 6), bool)
    square[3:, 3:] = True  # touches the bottom and right edges of the image
    rows, cols = np.nonzero(_boundary(square))
    # half a pixel towards the origin: the row and column above / left of the square, and no
    # boundary along the image's edge
    assert set(zip(rows.tolist(), cols.tolist())) == {(2, 2), (2, 3), (2, 4), (2, 5), (3, 2), (4, 2), (5, 2)}


def test_f_of_an_object_on_the_image_edge_is_davis_value():
    """Both masks run into the frame's bottom edge, which DAVIS does not count as boundary; the
    erosion boundary counted that shared edge as matched (0.739 here; DAVIS 0.645)."""
    truth = np.zeros((480, 854), bool)
    truth[300:, 200:400] = True
    pred = np.zeros_like(truth)
    pred[312:, 200:400] = True
    assert boundary_measure(pred, truth) == pytest.approx(_reference_f(pred, truth), abs=1e-12)
    assert boundary_measure(pred, truth) == pytest.approx(0.645, abs=0.001)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device visible"))])
def test_propagation_on_a_device_equals_the_host(device):
    masks, rng = _video()
    feats = np.eye(3)[masks] + 0.5 * rng.normal(size=(*masks.shape, 3))  # noisy: ties and near-ties are rare
    host = propagate_labels(feats, masks[0], radius=4)
    on_device = propagate_labels(torch.tensor(feats, dtype=torch.float32, device=device), masks[0], radius=4,
                                 device=device)
    assert (host != on_device).mean() < 0.002
