"""The atlas image set: which photos go in and how they are decoded.

Sources
-------
* :func:`load_embedded_set` -- a curated set of natural photographs that ship *inside* installed
  packages (scikit-image, scikit-learn, and matplotlib when it is installed). Nothing is
  downloaded: a photo whose file is not bundled with the installed package is skipped.
* :func:`load_image_folder` -- every image under a folder (recursive, sorted by relative path).

Every file goes through :func:`read_rgb`, which applies the EXIF orientation and converts any PIL
mode to 8-bit RGB (alpha composited over white, 16-bit data rescaled rather than clipped). A file
that cannot be used is never a crash: it is returned as a :class:`SkippedImage` with a one-line
reason and logged on the ``atlas.inputs.images`` logger.

Sizing is :mod:`atlas.inputs.geometry`; the content-free inputs of the blank-input probe are
:mod:`atlas.inputs.probes`.

Example
-------
>>> images, skipped = load_embedded_set(names=["chelsea"])
>>> images[0].load().size
(451, 300)
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import util as importlib_util
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atlas.records import ImageInfo, SkippedItem

__all__ = [
    "DEFAULT_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "EMBEDDED_NAMES",
    "AtlasImage",
    "ImageReadError",
    "SkippedImage",
    "content_hash",
    "load_embedded_set",
    "load_image_folder",
    "memory_image",
    "read_rgb",
]

logger = logging.getLogger(__name__)

#: Same default as ``PIL.Image.MAX_IMAGE_PIXELS`` (about 0.25 GB of 24-bit RGB).
DEFAULT_MAX_PIXELS = 89_478_485
#: File name endings that :func:`load_image_folder` treats as images (case-insensitive).
DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm")



class ImageReadError(Exception):
    """A file could not be used as an image; the message is a one-line reason."""


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtlasImage:
    """One image of an atlas image set: credit, identity, and a way to decode it again.

    Pixels are not kept in memory; :meth:`load` decodes them again (and checks they still hash
    to :attr:`content_hash`).

    Parameters
    ----------
    name : str
        Unique key within the set (embedded: e.g. ``"astronaut"``; folder: relative path).
    source : str
        Where the pixels come from, e.g. ``"skimage.data.astronaut()"``.
    licence, credit : str
        As documented by the source (never guessed).
    content_hash : str
        :func:`content_hash` of the decoded RGB pixels.
    width, height : int
        Original size after the EXIF orientation is applied.
    loader : callable
        Zero-argument callable returning the 8-bit RGB ``PIL.Image`` (picklable for the
        built-in sources).

    Examples
    --------
    >>> img = load_embedded_set(names=["coffee"])[0][0]
    >>> (img.width, img.height), img.load().mode
    ((600, 400), 'RGB')
    """

    name: str
    source: str
    licence: str
    credit: str
    content_hash: str
    width: int
    height: int
    loader: Callable[[], Image.Image] = field(repr=False, compare=False)

    def load(self) -> Image.Image:
        """Decode the image again as 8-bit RGB; raises :class:`ImageReadError` if it changed."""
        img = self.loader()
        if content_hash(img) != self.content_hash:
            raise ImageReadError(f"{self.name}: pixels changed since the image set was loaded")
        return img

    def info(self) -> ImageInfo:
        """The site record (:class:`atlas.records.ImageInfo`) for this image."""
        return ImageInfo(
            name=self.name,
            source=self.source,
            licence=self.licence,
            credit=self.credit,
            content_hash=self.content_hash,
            width=self.width,
            height=self.height,
        )


def memory_image(name: str, img: Image.Image, source: str, licence: str = "generated", credit: str = "") -> AtlasImage:
    """An :class:`AtlasImage` for pixels made in memory (probe inputs, shifted crops, dataset
    photos, masking variants): decoded again from a private copy.

    Examples
    --------
    >>> memory_image("grey", Image.new("RGB", (4, 3), (9, 9, 9)), "test").load().getpixel((0, 0))
    (9, 9, 9)
    """
    img = img.convert("RGB") if img.mode != "RGB" else img.copy()
    return AtlasImage(name=name, source=source, licence=licence, credit=credit, content_hash=content_hash(img),
                      width=img.width, height=img.height, loader=img.copy)


@dataclass(frozen=True)
class SkippedImage:
    """A candidate image that was left out, and the one-line reason."""

    path: str  # relative to the folder, or the embedded source string; never an absolute path
    reason: str

    def item(self) -> SkippedItem:
        """The build-report record (:class:`atlas.records.SkippedItem`)."""
        return SkippedItem(what=f"image {self.path}", reason=self.reason)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if text else type(exc).__name__
    return text[:200]


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")


def _composite_over_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _high_depth_grey_to_rgb(img: Image.Image) -> Image.Image:
    """Map 16-bit / 32-bit / float grey to 8 bits by scaling the value range (PIL would clip)."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = arr.astype(np.float64) / 257.0  # 65535 / 257 == 255 exactly
    else:
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        if img.mode == "I" and lo >= 0 and hi <= 65535:
            scaled = arr / 257.0  # PIL keeps 16-bit data in 32-bit "I" containers
        elif img.mode == "F" and lo >= 0 and hi <= 1:
            scaled = arr * 255.0
        else:  # no documented range: stretch what is there
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")  # mode inferred from the 2-D uint8 array ("L")


def _icc_to_srgb(img: Image.Image) -> Image.Image | None:
    """Colour-manage an RGB/CMYK image with an embedded non-sRGB ICC profile; None to skip."""
    icc = img.info.get("icc_profile")
    if not icc:
        return None
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(src).lower():
            return None  # already sRGB: keep the stored pixels exactly
        return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as exc:  # broken or unsupported profile: fall back to PIL's plain conversion
        logger.debug("ignoring ICC profile (%s)", _one_line(exc))
        return None


_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_grey_to_rgb(img)
    if mode in ("RGB", "CMYK"):
        managed = _icc_to_srgb(img)
        if managed is not None:
            return managed
    try:
        if mode in _ALPHA_MODES or "transparency" in img.info:  # incl. P/L/RGB with a transparent colour
            return _composite_over_white(img)
        return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV (a copy, detached from the file)
    except ValueError as exc:  # e.g. LAB, which PIL cannot convert without a colour profile
        raise ImageReadError(f"unsupported colour mode {mode!r} ({_one_line(exc)})") from None


def read_rgb(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode one file as an 8-bit RGB image, or raise :class:`ImageReadError` with the reason.

    The EXIF orientation is applied; alpha is composited over white; palette, grey, CMYK (with
    its ICC profile when it has one) and other modes are converted to RGB; 16-bit grey
    (``I;16*``) is scaled by 255/65535, 32-bit ``I`` data within [0, 65535] likewise, float
    ``F`` data within [0, 1] by 255, and other ``I``/``F`` data min-max stretched. Multi-frame
    files give their first frame.

    Parameters
    ----------
    path : path-like
        The file.
    max_pixels : int
        Images whose declared width * height exceeds this are refused before decoding
        (decompression-bomb guard). PIL's own hard limit, 2 * ``PIL.Image.MAX_IMAGE_PIXELS``,
        still applies on top of it.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, size after the EXIF orientation.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
    >>> Image.new("L", (4, 3), 7).save(p)
    >>> read_rgb(p).getpixel((0, 0))
    (7, 7, 7)
    """
    _check_max_pixels(max_pixels)
    path = Path(path)
    try:
        if not path.is_file():
            raise ImageReadError("not a regular file")
        if path.stat().st_size == 0:
            raise ImageReadError("empty file (0 bytes)")
        with warnings.catch_warnings():
            # Our max_pixels check below is the guard; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"too large: {width}x{height} = {width * height:,} pixels exceeds "
                        f"max_pixels={max_pixels:,}"
                    )
                im.load()
                try:
                    oriented = ImageOps.exif_transpose(im)
                except Exception as exc:  # junk EXIF should not cost a good photo
                    logger.warning("%s: EXIF orientation ignored (%s)", path, _one_line(exc))
                    oriented = im
                return _to_rgb(oriented)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"too large: {_one_line(exc)}") from None
    except UnidentifiedImageError:
        raise ImageReadError("not a recognised image format") from None
    except PermissionError:
        raise ImageReadError("permission denied") from None
    except Exception as exc:  # PIL decoders raise many types on corrupt data (OSError, SyntaxError, ...)
        raise ImageReadError(f"corrupt or truncated image data ({_one_line(exc)})") from None


def content_hash(img: Image.Image | np.ndarray) -> str:
    """SHA-256 (hex) of the decoded 8-bit RGB pixels and their shape.

    Independent of the file encoding: the same pixels saved as PNG or TIFF hash the same.

    Examples
    --------
    >>> a = Image.new("RGB", (2, 2), (1, 2, 3))
    >>> content_hash(a) == content_hash(np.asarray(a))
    True
    """
    if isinstance(img, Image.Image):
        if img.mode != "RGB":
            raise ValueError(f"content_hash needs an RGB image, got mode {img.mode!r}; use read_rgb")
        arr = np.asarray(img)
    else:
        arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"content_hash needs uint8 pixels of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    digest = hashlib.sha256(f"rgb8 {arr.shape[0]}x{arr.shape[1]}\n".encode())
    digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EmbeddedSpec:
    name: str
    package: str  # importable package holding the file
    filename: str  # path of the file inside that package's directory
    source: str
    licence: str
    credit: str


# Natural photographs only (no text, logos, micrographs or synthetic patterns). Licence and
# credit are what the shipping package documents (function docstrings / bundled README).
_EMBEDDED: tuple[_EmbeddedSpec, ...] = (
    _EmbeddedSpec(
        "astronaut", "skimage.data", "astronaut.png", "skimage.data.astronaut()",
        "public domain (no known copyright restrictions)",
        "NASA Great Images database; portrait of astronaut Eileen Collins",
    ),
    _EmbeddedSpec(
        "chelsea", "skimage.data", "chelsea.png", "skimage.data.chelsea()",
        "CC0", "Stefan van der Walt (photographer); Chelsea the cat",
    ),
    _EmbeddedSpec(
        "coffee", "skimage.data", "coffee.png", "skimage.data.coffee()",
        "CC0", "Rachel Michetti (photographer), courtesy of Pikolo Espresso Bar",
    ),
    _EmbeddedSpec(
        "rocket", "skimage.data", "rocket.jpg", "skimage.data.rocket()",
        "public domain (released by SpaceX)", "SpaceX; launch of DSCOVR on Falcon 9",
    ),
    _EmbeddedSpec(
        "camera", "skimage.data", "camera.png", "skimage.data.camera()",
        "CC0", "Lav Varshney (photographer); grey-level image",
    ),
    _EmbeddedSpec(
        "coins", "skimage.data", "coins.png", "skimage.data.coins()",
        "no known copyright restrictions", "Brooklyn Museum Collection; Greek coins from Pompeii",
    ),
    _EmbeddedSpec(
        "hubble_deep_field", "skimage.data", "hubble_deep_field.jpg", "skimage.data.hubble_deep_field()",
        "public domain (NASA)", "NASA / HubbleSite; Hubble eXtreme Deep Field",
    ),
    _EmbeddedSpec(
        "retina", "skimage.data", "retina.jpg", "skimage.data.retina()",
        "CC0 1.0", "Mikael Häggström (Wikimedia Commons); fundus photograph of a normal left eye",
    ),
    _EmbeddedSpec(
        "china", "sklearn.datasets.images", "china.jpg", 'sklearn.datasets.load_sample_image("china.jpg")',
        "CC BY 2.0", "danielbuechele (Flickr); retrieved by Robert Layton",
    ),
    _EmbeddedSpec(
        "flower", "sklearn.datasets.images", "flower.jpg", 'sklearn.datasets.load_sample_image("flower.jpg")',
        "CC BY 2.0",
        # scikit-learn's README names danielbuechele but links the photo to flickr.com/photos/vultilion.
        "Flickr user vultilion (scikit-learn's README attribution line names danielbuechele); "
        "retrieved by Robert Layton",
    ),
    _EmbeddedSpec(
        "grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
        'matplotlib.cbook.get_sample_data("grace_hopper.jpg")',
        "not stated in matplotlib's sample data", "matplotlib sample data; portrait of Grace Hopper",
    ),
)

_OPTIONAL_PACKAGES = frozenset({"matplotlib"})  # absent -> skipped silently (logged), not reported

#: Names accepted by :func:`load_embedded_set`, in set order.
EMBEDDED_NAMES: tuple[str, ...] = tuple(spec.name for spec in _EMBEDDED)


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, without importing the package itself."""
    try:
        spec = importlib_util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _add_image(
    images: list[AtlasImage],
    skipped: list[SkippedImage],
    seen: dict[str, str],
    *,
    name: str,
    path: Path,
    source: str,
    licence: str,
    credit: str,
    max_pixels: int,
) -> None:
    try:
        img = read_rgb(path, max_pixels=max_pixels)
    except ImageReadError as exc:
        _skip(skipped, name, str(exc))
        return
    digest = content_hash(img)
    if digest in seen:  # the same pixels twice would only weight one photo double
        _skip(skipped, name, f"duplicate of {seen[digest]} (identical pixels)")
        return
    seen[digest] = name
    images.append(
        AtlasImage(
            name=name, source=source, licence=licence, credit=credit, content_hash=digest,
            width=img.width, height=img.height, loader=partial(read_rgb, path, max_pixels=max_pixels),
        )
    )


def _skip(skipped: list[SkippedImage], what: str, reason: str) -> None:
    logger.warning("skipped image %s: %s", what, reason)
    skipped.append(SkippedImage(path=what, reason=reason))


def load_embedded_set(
    names: Sequence[str] | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[list[AtlasImage], list[SkippedImage]]:
    """The curated default photo set, read from files bundled with installed packages.

    Nothing is downloaded: scikit-image photos that its wheel does not bundle (it fetches those
    with pooch) are never used. A listed photo whose file is missing is reported as skipped;
    the matplotlib photo is left out silently (logged at INFO) when matplotlib is not installed.

    Parameters
    ----------
    names : sequence of str, optional
        Subset of :data:`EMBEDDED_NAMES` (kept in set order); all when omitted.
    max_pixels : int
        See :func:`read_rgb`.

    Returns
    -------
    images : list of AtlasImage
    skipped : list of SkippedImage

    Examples
    --------
    >>> images, skipped = load_embedded_set(names=["astronaut", "china"])
    >>> [(i.name, i.licence) for i in images]
    [('astronaut', 'public domain (no known copyright restrictions)'), ('china', 'CC BY 2.0')]
    """
    _check_max_pixels(max_pixels)
    if names is not None:
        if isinstance(names, str):
            raise ValueError("names must be a sequence of image names, not a single string")
        unknown = sorted(set(names) - set(EMBEDDED_NAMES))
        if unknown:
            raise ValueError(f"unknown embedded image(s) {unknown}; choose from {list(EMBEDDED_NAMES)}")
    wanted = set(EMBEDDED_NAMES if names is None else names)
    images: list[AtlasImage] = []
    skipped: list[SkippedImage] = []
    seen: dict[str, str] = {}
    for spec in _EMBEDDED:
        if spec.name not in wanted:
            continue
        top = spec.package.split(".")[0]
        pkg_dir = _package_dir(spec.package)
        if pkg_dir is None:
            if top in _OPTIONAL_PACKAGES:
                logger.info("embedded image %s left out: %s is not installed", spec.name, top)
            else:
                _skip(skipped, spec.source, f"{top} is not installed")
            continue
        path = pkg_dir / spec.filename
        if not path.is_file():
            _skip(skipped, spec.source, f"{spec.filename} is not bundled with the installed {top} "
                                        "(it would need a download)")
            continue
        _add_image(
            images, skipped, seen, name=spec.name, path=path, source=spec.source,
            licence=spec.licence, credit=spec.credit, max_pixels=max_pixels,
        )
    return images, skipped


def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        raise ValueError("extensions must be a sequence such as ('.jpg', '.png'), not a single string")
    out = []
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip(". "):
            raise ValueError(f"extensions must be non-empty strings such as '.jpg', got {ext!r}")
        out.append("." + ext.strip().lstrip(".").lower())
    if not out:
        raise ValueError("extensions must name at least one file ending, e.g. ('.jpg', '.png')")
    return tuple(out)


#: Files of an image folder without an image extension that are reported one by one; the rest
#: are one entry, so that the build report of a folder with a sidecar file per photo stays short.
MAX_OTHER_FILES_REPORTED = 20


def _list_files(folder: Path, extensions: tuple[str, ...]) -> tuple[list[tuple[str, Path]], list[str]]:
    """(relative path, path) of every candidate image, and the relative paths of the other files."""
    found, other = [], []
    # Symlinked folders are not followed (no cycles). Hidden files and folders are ignored without
    # a word: .DS_Store, .git/ and editors' files are no one's photos.
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for fname in files:
            if fname.startswith("."):
                continue
            path = Path(root) / fname
            rel = path.relative_to(folder).as_posix()
            if fname.lower().endswith(extensions):
                found.append((rel, path))
            else:
                other.append(rel)
    return sorted(found), sorted(other)


def _extension(name: str) -> str:
    suffix = Path(name).suffix
    return suffix.lower() if suffix else "none"


def _skip_other_files(skipped: list[SkippedImage], other: list[str]) -> None:
    """Report the files that were not read because of their extension: each of the first
    :data:`MAX_OTHER_FILES_REPORTED`, then one entry for the rest."""
    for rel in other[:MAX_OTHER_FILES_REPORTED]:
        _skip(skipped, rel, f"not an image file extension ({_extension(rel)})")
    rest = other[MAX_OTHER_FILES_REPORTED:]
    if rest:
        extensions = sorted({_extension(r) for r in rest})
        shown = ", ".join(extensions[:10]) + (f" and {len(extensions) - 10} more" if len(extensions) > 10 else "")
        _skip(skipped, f"{rest[0]} and {len(rest) - 1} more files", f"not image file extensions ({shown})")


def load_image_folder(
    folder: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    licence: str = "not stated (user-supplied folder)",
    credit: str = "",
) -> tuple[list[AtlasImage], list[SkippedImage]]:
    """Every image file under ``folder`` (recursive), sorted by relative path.

    Files whose name ends with one of ``extensions`` (case-insensitive) are candidates; other
    files are skipped with their extension as the reason (the first
    :data:`MAX_OTHER_FILES_REPORTED` one by one, the rest as one entry), and hidden (dot) files or
    folders are ignored. A candidate that cannot be decoded, is larger than ``max_pixels``, or
    repeats the pixels of an earlier file is skipped with a one-line reason. Image names and
    skipped paths are POSIX paths relative to ``folder``.

    Parameters
    ----------
    folder : path-like
        An existing directory.
    max_pixels : int
        See :func:`read_rgb`.
    extensions : iterable of str
        File endings, with or without the dot.
    licence, credit : str
        Recorded for every image of the folder.

    Returns
    -------
    images : list of AtlasImage
    skipped : list of SkippedImage

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (8, 8), "red").save(d / "a.png")
    >>> _ = (d / "b.jpg").write_text("not an image")
    >>> _ = (d / "notes.txt").write_text("a sidecar file")
    >>> images, skipped = load_image_folder(d)
    >>> [i.name for i in images], [(s.path, s.reason) for s in skipped]
    (['a.png'], [('b.jpg', 'not a recognised image format'), ('notes.txt', 'not an image file extension (.txt)')])
    """
    _check_max_pixels(max_pixels)
    exts = _normalise_extensions(extensions)
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder {str(folder)!r} does not exist or is not a directory")
    images: list[AtlasImage] = []
    skipped: list[SkippedImage] = []
    seen: dict[str, str] = {}
    candidates, other = _list_files(folder, exts)
    for rel, path in candidates:
        _add_image(
            images, skipped, seen, name=rel, path=path, source=f"image folder: {rel}",
            licence=licence, credit=credit, max_pixels=max_pixels,
        )
    _skip_other_files(skipped, other)
    return images, skipped
