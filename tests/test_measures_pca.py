"""Joint PCA-RGB maps: planted spatial patterns are what the maps show, in both modes; the fit is
sklearn's PCA; colours do not depend on image order and follow a reference block."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from atlas.measures.pca import align_components, apply_alignment, joint_pca_rgb, pca_variance_share
from atlas.measures.uncertainty import half_samples

N, H, W, C = 6, 10, 12, 32


def _corr(a, b) -> float:
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    return float(np.corrcoef(a, b)[0, 1])


def planted(seed=0, noise=0.2):
    """Features whose three strongest directions carry known spatial patterns (different in every
    image for the first, so it is content, not position): a per-image blob, a horizontal ramp, a
    vertical ramp, with decreasing variance."""
    rng = np.random.default_rng(seed)
    dirs = np.linalg.qr(rng.normal(size=(C, 3)))[0].T  # orthonormal directions
    yy, xx = np.mgrid[0:H, 0:W]
    blobs = np.stack([np.exp(-((yy - rng.integers(2, H - 2)) ** 2 + (xx - rng.integers(2, W - 2)) ** 2) / 10.0)
                      for _ in range(N)])
    ramps = (xx / (W - 1) - 0.5)[None].repeat(N, 0), (yy / (H - 1) - 0.5)[None].repeat(N, 0)
    patterns = [blobs * 10.0, ramps[0] * 4.0, ramps[1] * 2.5]
    feats = sum(p[..., None] * d for p, d in zip(patterns, dirs)) + noise * rng.normal(size=(N, H, W, C))
    return feats.astype(np.float32), patterns


def test_planted_patterns_are_the_three_colours():
    feats, patterns = planted()
    out = joint_pca_rgb(feats)
    for j, pattern in enumerate(patterns):
        assert abs(_corr(out["scores"][..., j], pattern)) > 0.9, j
        assert abs(_corr(out["rgb"][..., j], pattern)) > 0.9, j  # after clipping and scaling too
    # control: features without structure give no such colour
    noise = np.random.default_rng(1).normal(size=feats.shape).astype(np.float32)
    assert abs(_corr(joint_pca_rgb(noise)["scores"][..., 0], patterns[0])) < 0.3


def test_fit_is_sklearn_pca():
    feats, _ = planted()
    out = joint_pca_rgb(feats)
    ref = PCA(n_components=3, svd_solver="full").fit(feats.reshape(-1, C))
    np.testing.assert_allclose(out["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-4)
    # the same axes up to sign (the sign is ours: positive skew)
    np.testing.assert_allclose(np.abs(np.sum(out["components"] * ref.components_, axis=1)), 1.0, atol=1e-4)


def test_sign_rule_is_positive_skew_and_scaling_is_stated_percentiles():
    feats, patterns = planted()
    out = joint_pca_rgb(feats)
    s = out["scores"].reshape(-1, 3)
    assert (((s - s.mean(0)) ** 3).mean(0) > 0).all()
    assert _corr(out["scores"][..., 0], patterns[0]) > 0.9  # the blob (the long tail) is bright
    lo, hi = np.percentile(s, [1, 99], axis=0)
    np.testing.assert_allclose(out["scale"], np.stack([lo, hi]), rtol=1e-5)
    frac_saturated = (out["rgb"].reshape(-1, 3) == 255).mean(0)
    assert (frac_saturated <= 0.02).all() and (frac_saturated > 0).all()


def test_colours_do_not_depend_on_image_order():
    feats, _ = planted()
    perm = np.random.default_rng(3).permutation(N)
    for mode in ("all", "foreground"):
        a, b = joint_pca_rgb(feats, mode=mode), joint_pca_rgb(feats[perm], mode=mode)
        assert np.abs(a["rgb"][perm].astype(int) - b["rgb"].astype(int)).max() <= 1, mode


def test_foreground_mode_follows_the_published_recipe():
    """A first component separating a central object from a background that touches the border;
    inside the object, a ramp along another direction. Foreground = the object; the colours of the
    second PCA (on the object only) show the ramp; the background is black."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    obj = ((np.abs(yy - H / 2 + 0.5) < 3) & (np.abs(xx - W / 2 + 0.5) < 4))[None].repeat(N, 0)
    d_fg, d_ramp, d_bg = np.linalg.qr(rng.normal(size=(C, 3)))[0].T
    ramp = (xx / (W - 1) - 0.5)[None].repeat(N, 0)
    bg_texture = rng.normal(size=(N, H, W))
    feats = (obj[..., None] * 8.0 * d_fg + (obj * ramp)[..., None] * 3.0 * d_ramp
             + (~obj * bg_texture)[..., None] * 1.0 * d_bg + 0.2 * rng.normal(size=(N, H, W, C))).astype(np.float32)
    out = joint_pca_rgb(feats, mode="foreground")
    assert (out["foreground"] == obj).mean() > 0.98
    assert (out["rgb"][~out["foreground"]] == 0).all()
    fg = out["foreground"]
    assert abs(_corr(out["scores"][fg][:, 0], ramp[fg])) > 0.9
    # control: in "all" mode the first colour is the object/background split, not the ramp
    assert abs(_corr(joint_pca_rgb(feats)["scores"][..., 0], obj)) > 0.9


def test_alignment_follows_the_reference_block():
    """A neighbouring block = the same features rotated, slightly noisier: after alignment its
    colours equal the reference's (without alignment the order and signs may differ)."""
    feats, _ = planted()
    rng = np.random.default_rng(5)
    rotation = np.linalg.qr(rng.normal(size=(C, C)))[0]
    neighbour = (feats @ rotation.astype(np.float32) + 0.05 * rng.normal(size=feats.shape)).astype(np.float32)
    ref, other = joint_pca_rgb(feats), joint_pca_rgb(neighbour)
    # make the neighbour's raw components disagree with the reference on purpose
    shuffled = apply_alignment(other, np.array([2, 0, 1]), np.array([-1.0, 1.0, -1.0]))
    order, signs = align_components(ref["scores"], shuffled["scores"])
    aligned = apply_alignment(shuffled, order, signs)
    for j in range(3):
        assert _corr(aligned["scores"][..., j], ref["scores"][..., j]) > 0.95
    assert np.abs(aligned["rgb"].astype(int) - ref["rgb"].astype(int)).mean() < 8


@pytest.mark.parametrize("kind", ["plane", "isotropic"])
def test_variance_share(kind):
    rng = np.random.default_rng(0)
    if kind == "plane":  # all variance in a 2-d subspace: the first three PCs hold all of it
        feats = rng.normal(size=(N, H, W, 2)) @ rng.normal(size=(2, C))
        expected, tol = 1.0, 1e-6
    else:  # isotropic: about 3 / C (a little more: the top three of a sample's spectrum)
        feats = rng.normal(size=(40, H, W, C))
        expected, tol = 3 / C, 0.3 * 3 / C
    out = pca_variance_share(feats, weights=half_samples(len(feats), 8, 0))
    assert out["share"] == pytest.approx(expected, abs=tol)
    ones = pca_variance_share(feats, weights=np.ones((1, len(feats))))
    assert ones["replicates"]["share"][0] == pytest.approx(out["share"], rel=1e-9)
    assert out["replicates"]["share"].shape == (8,)


def test_invalid_arguments():
    feats, _ = planted()
    with pytest.raises(ValueError, match="mode"):
        joint_pca_rgb(feats, mode="dinov2")
    with pytest.raises(ValueError, match="n_components"):
        joint_pca_rgb(feats, n_components=C + 1)
