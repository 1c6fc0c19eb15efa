"""Content-free inputs of the blank-input probe: constant colours and noise.

On such inputs every spatial structure of the cluster maps can only come from the model's
position signal (:func:`atlas.measures.positional.blank_input_structure` scores it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .geometry import IMAGENET_MEAN, IMAGENET_STD, _check_positive_int
from .images import AtlasImage, memory_image

__all__ = ["PROBE_NAMES", "probe_images"]

#: The blank-input probe's inputs, in :func:`probe_images`' order.
PROBE_NAMES = ("constant-black", "constant-white", "constant-grey", "constant-mean", "constant-red",
               "constant-green", "constant-blue", "noise-uniform", "noise-gaussian")


def probe_images(
    size: tuple[int, int],
    *,
    seed: int = 0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> list[AtlasImage]:
    """Content-free inputs for the blank-input probe, as RGB images of ``size = (H, W)``.

    Constant images: ``constant-black``, ``constant-white``, ``constant-grey`` (128),
    ``constant-mean`` (the normalisation mean, so the model sees an all-zero input up to
    rounding), ``constant-red``, ``constant-green``, ``constant-blue``. Noise images:
    ``noise-uniform`` (independent uniform 0..255 per pixel and channel) and
    ``noise-gaussian`` (per-channel Gaussian with the normalisation ``mean`` and ``std``, so the
    normalised input is close to standard normal; clipped to 0..255). Each noise image has its
    own random stream derived from ``seed``.

    Returns
    -------
    list of AtlasImage
        In the order above, named as above (source ``"blank-input probe"``).

    Examples
    --------
    >>> probes = probe_images((32, 48), seed=0)
    >>> probes[0].name, probes[0].load().size
    ('constant-black', (48, 32))
    >>> tuple(p.name for p in probes) == PROBE_NAMES
    True
    """
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    height, width = size
    _check_positive_int(height, "height")
    _check_positive_int(width, "width")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    mean_a = np.asarray(mean, dtype=np.float64)
    std_a = np.asarray(std, dtype=np.float64)
    if mean_a.shape != (3,) or std_a.shape != (3,) or not np.all(std_a > 0):
        raise ValueError("mean and std must have 3 values on the [0, 1] scale, std positive")
    mean_rgb = tuple(int(v) for v in np.clip(np.rint(mean_a * 255), 0, 255))
    constants = [
        ("constant-black", (0, 0, 0)),
        ("constant-white", (255, 255, 255)),
        ("constant-grey", (128, 128, 128)),
        ("constant-mean", mean_rgb),
        ("constant-red", (255, 0, 0)),
        ("constant-green", (0, 255, 0)),
        ("constant-blue", (0, 0, 255)),
    ]
    pictures = [(name, Image.new("RGB", (width, height), colour)) for name, colour in constants]
    uniform = np.random.default_rng([int(seed), 0]).integers(0, 256, (height, width, 3), dtype=np.uint8)
    gauss = np.random.default_rng([int(seed), 1]).normal(mean_a * 255, std_a * 255, (height, width, 3))
    gauss = np.clip(np.rint(gauss), 0, 255).astype(np.uint8)
    pictures.append(("noise-uniform", Image.fromarray(uniform)))
    pictures.append(("noise-gaussian", Image.fromarray(gauss)))
    return [memory_image(name, pic, "blank-input probe") for name, pic in pictures]
