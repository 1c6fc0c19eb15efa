"""STEGO-protocol scores: checked against sklearn/scipy and hand-computed answers."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix

from atlas.measures.segmentation import (
    accumulate_confusion,
    evaluate_label_maps,
    majority_scores,
    matched_scores,
    upsample_labels,
)


def _random_data(rng, n_img=4, shape=(12, 10), n_pred=5, n_cls=4, ignore=255):
    preds = [rng.integers(0, n_pred, shape) for _ in range(n_img)]
    gts = [np.where(rng.random(shape) < 0.1, ignore, rng.integers(0, n_cls, shape)) for _ in range(n_img)]
    return preds, gts


def test_confusion_matches_sklearn():
    rng = np.random.default_rng(0)
    preds, gts = _random_data(rng)
    conf = accumulate_confusion(preds, gts, 5, 4, 255)
    p = np.concatenate([x.ravel() for x in preds])
    g = np.concatenate([x.ravel() for x in gts])
    keep = g != 255
    ref = confusion_matrix(g[keep], p[keep], labels=range(5))[:4].T  # sklearn rows = truth
    np.testing.assert_array_equal(conf, ref)
    assert conf.sum() == keep.sum()


def test_hungarian_matches_independent_computation():
    rng = np.random.default_rng(1)
    for n_pred, n_cls in [(4, 4), (6, 4), (3, 5)]:
        preds, gts = _random_data(rng, n_pred=n_pred, n_cls=n_cls)
        conf = accumulate_confusion(preds, gts, n_pred, n_cls)
        out = matched_scores(conf)
        # independent: remap predictions with scipy's assignment, then sklearn confusion per class
        r, c = linear_sum_assignment(-conf)
        remap = np.full(n_pred, n_cls)  # unmatched -> a dummy class never equal to the truth
        remap[r] = c
        p = np.concatenate([remap[x].ravel() for x in preds])
        g = np.concatenate([x.ravel() for x in gts])
        keep = g != 255
        cm = confusion_matrix(g[keep], p[keep], labels=range(n_cls + 1))
        tp = np.diag(cm)[:n_cls]
        iou = tp / (cm[:n_cls].sum(1) + cm[:, :n_cls].sum(0) - tp)
        assert out["miou"] == pytest.approx(iou.mean())
        assert out["pixel_accuracy"] == pytest.approx(tp.sum() / keep.sum())
        assert out["coverage"] == 1.0
        # the Hungarian assignment maximises matched pixels
        assert conf[np.arange(n_pred)[out["assignment"] >= 0], out["assignment"][out["assignment"] >= 0]].sum() == conf[r, c].sum()


def test_permuted_labels_score_100():
    rng = np.random.default_rng(2)
    gts = [rng.integers(0, 6, (8, 8)) for _ in range(3)]
    perm = rng.permutation(6)
    out = matched_scores(accumulate_confusion([perm[g] for g in gts], gts, 6, 6))
    assert out["miou"] == 1.0 and out["pixel_accuracy"] == 1.0
    np.testing.assert_array_equal(perm[out["assignment"]], np.arange(6))  # assignment inverts perm


def test_known_answer_by_hand():
    # 1 x 8 image, classes 0/1; clusters 0, 1 and an extra cluster 2
    gt = np.array([[0, 0, 0, 0, 1, 1, 1, 1]])
    pred = np.array([[0, 0, 0, 1, 1, 1, 1, 2]])
    conf = accumulate_confusion([pred], [gt], 3, 2)
    assert conf.tolist() == [[3, 0], [1, 3], [0, 1]]
    h = matched_scores(conf)  # cluster0->0, cluster1->1, cluster2 unmatched (wrong)
    assert h["assignment"].tolist() == [0, 1, -1]
    # IoU0 = 3 / (3 + 0 + 1) ; IoU1 = 3 / (3 + 1 + 1)
    assert h["per_class_iou"].tolist() == pytest.approx([3 / 4, 3 / 5])
    assert h["miou"] == pytest.approx((3 / 4 + 3 / 5) / 2)
    assert h["pixel_accuracy"] == pytest.approx(6 / 8)
    m = majority_scores(conf)  # cluster2 -> class 1 as well
    assert m["assignment"].tolist() == [0, 1, 1]
    assert m["per_class_iou"].tolist() == pytest.approx([3 / 4, 4 / 5])
    assert m["pixel_accuracy"] == pytest.approx(7 / 8)


def test_one_matching_per_dataset_not_per_image():
    # image A: cluster 0 = class 0 ; image B: cluster 0 = class 1 (swapped). Per-image matching
    # would give 100 %; the dataset-level matching cannot.
    gt = np.array([[0, 0, 1, 1]])
    a, b = np.array([[0, 0, 1, 1]]), np.array([[1, 1, 0, 0]])
    out = matched_scores(accumulate_confusion([a, b], [gt, gt], 2, 2))
    assert out["pixel_accuracy"] == pytest.approx(0.5)
    assert out["miou"] == pytest.approx(1 / 3)  # each class: TP 2, FP 2, FN 2


def test_ignore_index_respected():
    gt = np.array([[0, 255, 1, 255]])
    pred = np.array([[0, 1, 1, 0]])
    conf = accumulate_confusion([pred], [gt], 2, 2, ignore_index=255)
    assert conf.sum() == 2 and matched_scores(conf)["miou"] == 1.0
    conf = accumulate_confusion([pred], [np.where(gt == 255, -1, gt)], 2, 2, ignore_index=-1)
    assert conf.sum() == 2


def test_absent_class_is_nan_and_left_out():
    gt = np.array([[0, 0, 1, 1]])
    out = matched_scores(accumulate_confusion([gt], [gt], 3, 3))
    assert np.isnan(out["per_class_iou"][2]) and out["miou"] == 1.0


def test_fewer_clusters_than_classes():
    gt = np.array([[0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 0, 1, 1, 1, 1]])
    out = matched_scores(accumulate_confusion([pred], [gt], 2, 3))
    # class 0 IoU 1; cluster 1 -> class 1 (tie with 2 broken by scipy, either way 2 / 4); other 0
    assert sorted(out["per_class_iou"].tolist()) == pytest.approx([0.0, 0.5, 1.0])
    assert out["miou"] == pytest.approx(0.5)


def test_unassigned_row_and_coverage():
    gt = np.array([[0, 0, 1, 1, 1, 1, 255, 255]])
    pred = np.array([[0, -1, 1, 1, -1, -1, 0, -1]])  # three labelled pixels unassigned
    out = evaluate_label_maps([pred], [gt], n_pred=2, n_classes=2)
    h = out["hungarian"]
    assert out["confusion"].shape == (3, 2)
    assert h["coverage"] == pytest.approx(3 / 6)
    assert h["pixel_accuracy"] == pytest.approx(3 / 6)
    assert h["per_class_iou"].tolist() == pytest.approx([1 / 2, 2 / 4])
    assert h["assignment"].tolist() == [0, 1, -1]
    # the unassigned row is never matched even when it is the biggest
    assert out["majority"]["assignment"][2] == -1


def test_upsample_and_evaluate_from_patch_grid():
    labels = np.array([[2, 0], [1, 1]])
    up = upsample_labels(labels, (4, 6))
    assert up.tolist() == [[2, 2, 2, 0, 0, 0]] * 2 + [[1] * 6] * 2
    gt = np.array([[0] * 3 + [1] * 3] * 2 + [[2] * 6] * 2)
    out = evaluate_label_maps([labels], [gt], n_pred=3, n_classes=3)
    assert out["hungarian"]["miou"] == 1.0 and out["hungarian"]["coverage"] == 1.0
    with pytest.raises(ValueError, match="integer"):
        upsample_labels(labels.astype(float), (4, 4))


def _pixel_definition(preds, gts, n_pred, n_cls, ignore=255):
    """The per-image confusions by the definition: every label map upsampled to its mask's pixels."""
    up = [upsample_labels(p, g.shape) for p, g in zip(preds, gts)]
    una = any((u < 0).any() for u in up)
    up = [np.where(u < 0, n_pred, u) for u in up]
    return np.stack([accumulate_confusion([u], [g], n_pred + una, n_cls, ignore) for u, g in zip(up, gts)]), una


def test_cell_counts_give_the_confusions_of_the_upsampled_pixels():
    """evaluate_label_maps sums each cell's class counts (MaskCounts) instead of upsampled pixels: the
    same confusions on grids that divide their masks, that do not, and that are finer than their
    masks (cells no pixel takes: their "unassigned" must not count), with ignored pixels."""
    from atlas.measures.segmentation import mask_counts

    rng = np.random.default_rng(3)
    cases = [((4, 5), [(8, 15), (12, 10)]), ((7, 6), [(20, 23), (9, 31)]), ((9, 8), [(5, 4), (3, 7)])]
    for grid, shapes in cases:
        for trial in range(20):
            gts = [np.where(rng.random(s) < 0.2, 255, rng.integers(0, 4, s)) for s in shapes]
            preds = [rng.integers(-1 if trial % 2 else 0, 5, grid) for _ in shapes]
            expected, una = _pixel_definition(preds, gts, 5, 4)
            counts = [mask_counts(g, grid, 4) for g in gts]
            for out in (evaluate_label_maps(preds, gts, 5, 4), evaluate_label_maps(preds, gts, 5, 4, counts=counts)):
                assert np.array_equal(out["per_image"], expected), (grid, trial)
                assert out["unassigned"] == (5 if una else None)
    # a finer grid than the mask: an unassigned cell that no pixel takes leaves coverage alone
    gt, pred = np.zeros((2, 2), int), np.zeros((4, 4), int)
    pred[0, 0] = -1  # upsampled to 2 x 2, the map takes cells (1, 1), (1, 3), (3, 1), (3, 3) only
    assert evaluate_label_maps([pred], [gt], 1, 1)["unassigned"] is None
    pred[1, 1] = -1
    assert evaluate_label_maps([pred], [gt], 1, 1)["hungarian"]["coverage"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="counts of a"):
        evaluate_label_maps([pred], [gt], 1, 1, counts=[mask_counts(gt, (2, 2), 1)])


def test_validation_messages():
    gt = np.zeros((2, 2), int)
    with pytest.raises(ValueError, match="upsample first"):
        accumulate_confusion([np.zeros((1, 2), int)], [gt], 2, 2)
    with pytest.raises(ValueError, match=r"predicted ids must be in 0\.\.1"):
        accumulate_confusion([np.full((2, 2), 2)], [gt], 2, 2)
    with pytest.raises(ValueError, match="mask ids"):
        accumulate_confusion([gt], [np.full((2, 2), 5)], 2, 2)
    with pytest.raises(ValueError, match="predictions but"):
        accumulate_confusion([gt, gt], [gt], 2, 2)


@pytest.mark.parametrize("rule", ["hungarian", "majority"])
def test_resampled_scores_equal_scoring_each_table(rule):
    """score_images scores all replicates at once; each must equal the one-table scorers."""
    from atlas.measures.segmentation import majority_scores, matched_scores, score_images

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (10, 8, 8))
    gt[0, 0, 0] = 255
    pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 7, gt.shape))
    pred[1, :2] = -1  # unassigned pixels: coverage < 1
    ev = evaluate_label_maps(list(pred), list(gt), 7, 5, 255)
    w = np.random.default_rng(1).multinomial(10, np.ones(10) / 10, 20).astype(float)
    out = score_images(ev["per_image"], rule, weights=w, unassigned=ev["unassigned"])["replicates"]
    one = matched_scores if rule == "hungarian" else majority_scores
    for b, weights in enumerate(w):
        ref = one(np.tensordot(weights, ev["per_image"], axes=(0, 0)).astype(np.int64), unassigned=ev["unassigned"])
        for key in ("miou", "pixel_accuracy", "coverage"):
            assert out[key][b] == pytest.approx(ref[key])
