"""Input geometry: one fixed size per model, the shift-test windows, and the model's input tensor.

The measures need one fixed patch grid, so an image set is brought to one input size by a
:class:`ResizePolicy` (cover-resize, then centre-crop) after :func:`snap_to_patch_multiple` has
rounded the configured resolution to the model's patch size. :func:`shift_windows` cuts the
patch-shifted views of the shift test and :func:`to_tensor` normalises for a model.

Example
-------
>>> policy = ResizePolicy(*snap_to_patch_multiple((230, 230), 16))
>>> policy.size, policy.apply(Image.new("RGB", (640, 480))).size, policy.grid(16)
((224, 224), (224, 224), (14, 14))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is only needed by to_tensor; importing it lazily keeps this module light
    import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ResizePolicy", "shift_windows", "snap_to_patch_multiple", "to_tensor"]

# Same values as timm.data.IMAGENET_DEFAULT_MEAN / _STD (not imported: timm is heavy).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: How :meth:`ResizePolicy.apply` makes its pixels, as a readable id (in every feature cache key).
RESIZE_METHOD = "cover-bicubic-antialias+centre-crop"


def _check_positive_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


def snap_to_patch_multiple(size: tuple[int, int], patch: int) -> tuple[int, int]:
    """Round ``(H, W)`` to the nearest multiples of ``patch`` (halves round up; at least one patch).

    Examples
    --------
    >>> snap_to_patch_multiple((230, 500), 16)
    (224, 496)
    >>> snap_to_patch_multiple((5, 24), 16)
    (16, 32)
    """
    _check_positive_int(patch, "patch")
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    for s in size:
        _check_positive_int(s, "size entries")
    return tuple(max(patch, int(math.floor(s / patch + 0.5)) * patch) for s in size)  # type: ignore[return-value]


@dataclass(frozen=True)
class ResizePolicy:
    """Bring every image to one fixed ``(height, width)``: cover-resize, then centre-crop.

    The image is scaled (bicubic, antialiased when shrinking, aspect ratio kept) to the smallest
    size that covers ``height x width``, and the centre ``height x width`` is cut out.

    Examples
    --------
    >>> policy = ResizePolicy(224, 448)
    >>> policy.apply(Image.new("RGB", (300, 100))).size  # PIL sizes are (width, height)
    (448, 224)
    >>> policy.grid(16)
    (14, 28)
    """

    height: int
    width: int

    def __post_init__(self) -> None:
        _check_positive_int(self.height, "height")
        _check_positive_int(self.width, "width")

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (int(self.height), int(self.width))

    def grid(self, patch: int) -> tuple[int, int]:
        """Patch grid ``(rows, cols)``; ValueError when the size is not a multiple of ``patch``."""
        _check_positive_int(patch, "patch")
        if self.height % patch or self.width % patch:
            raise ValueError(
                f"input size {self.height}x{self.width} is not a multiple of patch {patch}; "
                f"use snap_to_patch_multiple(({self.height}, {self.width}), {patch})"
            )
        return (self.height // patch, self.width // patch)

    def apply(self, img: Image.Image, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Image.Image:
        """The resized and centre-cropped image, exactly ``height x width``.

        ``resample=Image.Resampling.NEAREST`` gives the same geometry for label masks.
        """
        w, h = img.size
        scale = max(self.height / h, self.width / w)
        rw, rh = max(self.width, round(w * scale)), max(self.height, round(h * scale))
        if (rw, rh) != (w, h):
            # PIL widens the bicubic kernel by the shrink factor, i.e. it antialiases.
            img = img.resize((rw, rh), resample)
        left, top = (rw - self.width) // 2, (rh - self.height) // 2
        return img.crop((left, top, left + self.width, top + self.height))

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        """A label mask (H, W) in the same geometry as :meth:`apply` gives its photo, pixel for pixel
        (PIL's nearest-neighbour resize and the same crop; ids are never blended).

        >>> ResizePolicy(2, 2).apply_mask(np.array([[0, 1, 1, 2]] * 4)).tolist()  # columns 1 and 3 of 4
        [[1, 2], [1, 2]]
        """
        return np.asarray(self.apply(Image.fromarray(np.asarray(mask).astype(np.int32)), Image.Resampling.NEAREST))

    @property
    def key(self) -> str:
        """What identifies the pixels this policy makes, in the feature cache's preprocessing key
        (the site words it, :func:`atlas.site.methods.policy_sentence`). A change to :meth:`apply`
        needs no new id here: this module's code is in the cache key too
        (:func:`atlas.features.extract.extraction_fingerprint`).

        >>> ResizePolicy(224, 448).key
        'cover-bicubic-antialias+centre-crop|224x448'
        """
        return f"{RESIZE_METHOD}|{self.height}x{self.width}"


def shift_windows(img: Image.Image, policy: ResizePolicy, patch: int, shifts: Sequence[int]) -> dict[int, Image.Image]:
    """``policy``-sized windows of one image for the shift test, whole patches apart.

    The image is cover-resized and centre-cropped to ``(H, W + max(shifts) * patch)`` and one
    ``H x W`` window is cut at ``x = s * patch`` for ``s`` in ``0`` and every shift: window ``s``
    lies ``s`` patches to the *right* of window 0, so its patch column ``x`` shows the content
    of window 0's column ``x + s`` -- the convention of :func:`atlas.measures.shift.shift_test`
    (``labels_a`` = window 0, ``labels_b`` = window ``s``). All windows come from one canvas, so
    they share one scale and window 0 serves every shift.

    Parameters
    ----------
    img : PIL.Image.Image
    policy : ResizePolicy
        Window size; must be a multiple of ``patch``.
    patch : int
        Model patch size in pixels.
    shifts : sequence of int
        Positive shifts in patches, each leaving an overlap (``s < W / patch``).

    Returns
    -------
    dict int -> PIL.Image.Image
        Window of every shift, and of ``0``, in increasing order.

    Examples
    --------
    >>> wide = Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3))
    >>> w = shift_windows(wide, ResizePolicy(32, 32), 8, [1, 2])
    >>> sorted(w), w[2].size
    ([0, 1, 2], (32, 32))
    >>> np.array_equal(np.asarray(w[2])[:, :16], np.asarray(w[0])[:, 16:])  # column x of s=2 = column x+2 of 0
    True
    """
    _check_positive_int(patch, "patch")
    rows, cols = policy.grid(patch)
    if not len(shifts):
        raise ValueError("shifts must name at least one shift (in patches), e.g. [1, 2, 3, 4]")
    for s in shifts:
        _check_positive_int(s, "shifts")
        if s >= cols:
            raise ValueError(f"a shift of {s} patches leaves no overlap on a {rows} x {cols} patch grid; "
                             f"keep every shift < {cols}")
    h, w = policy.size
    canvas = ResizePolicy(h, w + max(shifts) * patch).apply(img)
    return {s: canvas.crop((s * patch, 0, s * patch + w, h)) for s in sorted({0, *map(int, shifts)})}


def to_tensor(
    img: Image.Image, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """``(3, H, W)`` float32 tensor ``(pixel / 255 - mean) / std`` of an RGB image.

    ``mean`` and ``std`` are per channel on the [0, 1] scale (timm's ``pretrained_cfg``
    convention); the defaults are the ImageNet values.

    Examples
    --------
    >>> x = to_tensor(Image.new("RGB", (5, 4), (255, 0, 0)), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> tuple(x.shape), x[:, 0, 0].tolist()
    ((3, 4, 5), [1.0, -1.0, -1.0])
    """
    import torch

    if not isinstance(img, Image.Image) or img.mode != "RGB":
        got = img.mode if isinstance(img, Image.Image) else type(img).__name__
        raise ValueError(f"to_tensor needs an RGB PIL image, got {got!r}; use read_rgb or img.convert('RGB')")
    mean_a = np.asarray(mean, dtype=np.float32)
    std_a = np.asarray(std, dtype=np.float32)
    if mean_a.shape != (3,) or std_a.shape != (3,):
        raise ValueError(f"mean and std must have 3 values (R, G, B), got {list(mean)} and {list(std)}")
    if not np.all(std_a > 0):
        raise ValueError(f"std must be positive, got {list(std)}")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - mean_a) / std_a
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
