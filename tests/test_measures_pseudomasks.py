"""DatUS²-inspired pseudo-masks on planted piecewise-constant keys, with known scores."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from atlas.measures.pseudomasks import key_affinity, pseudo_masks, score_pseudo_masks, segment_image

GRID = (12, 12)
PATCH = 4  # ground-truth masks at 48 x 48 pixels


def _planted(seed=0, n_img=4, noise=0.1, island=False):
    """Three vertical bands per image, classes permuted per image; keys = prototype + noise."""
    rng = np.random.default_rng(seed)
    protos = np.eye(16)[:3] * 3.0
    regions, classes = [], []
    for i in range(n_img):
        perm = rng.permutation(3)
        band = np.repeat(np.arange(3), 4)[None, :].repeat(12, 0)
        cls = perm[band]
        if island and i == 0:
            cls = cls.copy()
            cls[6, 5] = cls[0, 0]  # a one-patch island of the first band's class inside band 1
        regions.append(band)
        classes.append(cls)
    classes = np.stack(classes)
    keys = protos[classes] + noise * rng.normal(size=(*classes.shape, 16))
    gts = [np.kron(c, np.ones((PATCH, PATCH), int)) for c in classes]
    return keys, classes, gts


def test_affinity_is_symmetric_knn_graph():
    keys, _, _ = _planted()
    A = key_affinity(keys[0], n_neighbors=5)
    assert A.shape == (144, 144) and np.allclose(A, A.T) and (A >= 0).all()
    assert ((A > 0).sum(1) >= 6).all()  # self + 5 neighbours, plus symmetrisation
    assert (key_affinity(keys[0], None) > 0).sum() > (A > 0).sum()


def test_segments_recover_planted_regions():
    keys, classes, _ = _planted()
    for k, c in zip(keys, classes):
        seg = segment_image(k, n_segments=3, n_neighbors=10, min_size=2)
        assert (seg >= 0).all() and seg.max() == 2
        assert adjusted_rand_score(c.ravel(), seg.ravel()) == 1.0


def test_pseudo_masks_score_100_percent():
    keys, classes, gts = _planted()
    pm = pseudo_masks(keys, n_pseudo=3, n_segments=3, min_size=2)
    assert pm.labels.shape == classes.shape and pm.coverage == 1.0
    assert len(pm.segment_class) == 12 and pm.segment_features.shape == (12, 16)
    assert adjusted_rand_score(classes.ravel(), pm.labels.ravel()) == 1.0  # consistent across images
    out = score_pseudo_masks(pm.labels, gts, n_pseudo=3, n_classes=3)
    h = out["hungarian"]
    assert h["miou"] == 1.0 and h["pixel_accuracy"] == 1.0 and h["coverage"] == 1.0


def test_the_same_segments_in_every_image_give_pseudo_classes_without_a_warning(recwarn):
    # the position baseline's case: every image has the same features, so fewer distinct
    # segments (3) than pseudo-classes (5); each distinct segment is one pseudo-class
    keys, classes, gts = _planted(n_img=1)
    keys, classes, gts = np.repeat(keys, 4, axis=0), np.repeat(classes, 4, axis=0), gts * 4
    pm = pseudo_masks(keys, n_pseudo=5, n_segments=3, min_size=2)
    assert not [w for w in recwarn if "distinct clusters" in str(w.message)]
    assert len(np.unique(pm.segment_class)) == 3
    assert adjusted_rand_score(classes.ravel(), pm.labels.ravel()) == 1.0
    assert score_pseudo_masks(pm.labels, gts, n_pseudo=5, n_classes=3)["hungarian"]["miou"] == 1.0


def test_small_segment_dropped_and_scored_as_wrong():
    keys, classes, gts = _planted(island=True)
    pm = pseudo_masks(keys, n_pseudo=3, n_segments=3, min_size=2)
    assert pm.labels[0, 6, 5] == -1 and (pm.labels >= 0).sum() == classes.size - 1
    out = score_pseudo_masks(pm.labels, gts, n_pseudo=3, n_classes=3)
    h = out["hungarian"]
    total = classes.size * PATCH * PATCH
    island = PATCH * PATCH
    c = classes[0, 6, 5]
    area_c = (classes == c).sum() * PATCH * PATCH
    assert h["coverage"] == pytest.approx(1 - island / total)
    assert h["pixel_accuracy"] == pytest.approx(1 - island / total)
    expected = np.ones(3)
    expected[c] = (area_c - island) / area_c  # island pixels are false negatives of class c
    np.testing.assert_allclose(h["per_class_iou"], expected)
    assert h["miou"] == pytest.approx(expected.mean())
    assert out["confusion"].shape == (4, 3) and out["confusion"][3].sum() == island


def test_ignore_pixels_and_features_argument():
    keys, classes, gts = _planted(seed=2)
    feats = np.concatenate([keys, np.zeros((*keys.shape[:3], 2))], axis=-1)
    pm = pseudo_masks(keys, n_pseudo=3, features=feats, n_segments=3, min_size=2, seed=2)
    assert pm.segment_features.shape[1] == 18
    gts = [np.where(np.arange(48)[None, :] < 8, 255, g) for g in gts]
    h = score_pseudo_masks(pm.labels, gts, 3, 3)["hungarian"]
    assert h["miou"] == 1.0 and h["n_pixels"] == 4 * 48 * 40


def test_validation_messages():
    keys, _, _ = _planted()
    with pytest.raises(ValueError, match="n_segments"):
        segment_image(keys[0], n_segments=1)
    with pytest.raises(ValueError, match=r"\(h, w, C\)"):
        segment_image(keys)
    with pytest.raises(ValueError, match="segments for n_pseudo"):
        pseudo_masks(keys[:1], n_pseudo=10, n_segments=3)
    with pytest.raises(ValueError, match="share"):
        pseudo_masks(keys, 3, features=keys[:, :5])


def test_keys_shuffled_over_positions_score_at_chance():
    """The control of the planted test above: the same keys shuffled over each image's positions
    carry the classes' content but no regions. Three equal classes labelled at random overlap
    each class by IoU (1/9) / (1/3 + 1/3 - 1/9) = 0.2, and that is what they score."""
    for seed in (0, 1):
        keys, classes, gts = _planted(seed=seed, n_img=8)
        rng = np.random.default_rng(100 + seed)
        shuffled = np.stack([k.reshape(-1, 16)[rng.permutation(k.shape[0] * k.shape[1])].reshape(k.shape)
                             for k in keys])
        pm = pseudo_masks(shuffled, n_pseudo=3, n_segments=3, min_size=2, seed=seed)
        h = score_pseudo_masks(pm.labels, gts, n_pseudo=3, n_classes=3)["hungarian"]
        assert 0.14 < h["miou"] < 0.26
