"""Video sequences with indexed masks, for label propagation (:mod:`atlas.measures.propagation`).

Every loader returns a :class:`VideoDataset`: sequences of frames (in time order) and their masks,
normalised to one convention: object ids ``1..K`` (0 = background), :data:`IGNORE` (255) where a
pixel has no label, masks the size of their frames (checked). The objects propagated and scored
in a sequence are those of its first mask (semi-supervised VOS: later objects cannot be given).

Formats (``load_videos(kind, root, **opts)``):

``davis``
    DAVIS 2017: ``JPEGImages/480p/<seq>/NNNNN.jpg`` + ``Annotations/480p/<seq>/NNNNN.png`` (palette
    PNGs whose index is the object id), sequences listed in ``ImageSets/2017/<split>.txt``
    (``split`` default ``val``; every sequence folder when the list is absent). Scored as DAVIS
    2017's evaluation scores it: neither the first nor the last frame, void (255) as background.
``folder``
    ``frames/<seq>/NAME.{jpg,png}`` + ``masks/<seq>/NAME.png``: any frame sequences with indexed
    masks (single-channel index PNGs, or palette / RGB PNGs in DAVIS's palette). Frames without a
    mask are propagated through and not scored; the first frame needs one.
``camvid``
    The CamVid layout of :mod:`atlas.inputs.datasets` (``images/`` + ``masks/``, names
    ``<sequence>_<frame number>``): the labelled frames of each sequence, cut into clips of
    ``clip_length`` frames; class ``c`` is object ``c + 1`` (semantic propagation), class 11
    (unlabelled) is ignored. Only labelled frames exist, so consecutive frames of a clip are
    :attr:`VideoSequence.frame_step` video frames apart (2 for the 0016E5 part of the SegNet
    redistribution).

A sequence that cannot be used is left out with a one-line reason in ``dataset.skipped`` (one
frame; an empty first mask; no scored frame with a mask; a mask and its frame of different sizes;
frame numbers that skip, i.e. missing frames; a mask without its frame; a palette or colours the
loader does not know), and the others are kept.

Example
-------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for sub in ("frames/a", "masks/a"):
...     (root / sub).mkdir(parents=True)
>>> for t in range(3):
...     Image.new("RGB", (8, 8)).save(root / f"frames/a/{t:05d}.png")
...     m = np.zeros((8, 8), np.uint8); m[2:4, t:t + 2] = 1
...     Image.fromarray(m).save(root / f"masks/a/{t:05d}.png")
>>> ds = load_videos("folder", root)
>>> seq = ds.sequences[0]
>>> seq.name, len(seq.frames), seq.objects, seq.masks().shape
('a', 3, [1], (3, 8, 8))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..records import SkippedItem
from .datasets import CAMVID_CLASSES, DatasetError
from .images import AtlasImage, ImageReadError, content_hash, read_rgb

__all__ = ["VideoSequence", "VideoDataset", "load_videos", "VIDEO_FORMATS", "IGNORE", "davis_palette"]

IGNORE = 255
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_NUMBER = re.compile(r"(\d+)$")


def davis_palette() -> np.ndarray:
    """(256, 3) uint8: the palette of DAVIS's annotations (PASCAL VOC's bit-interleaved colour map).

    >>> davis_palette()[:3].tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


class _Unusable(Exception):
    """Internal: one sequence cannot be used; the message is the reason."""


def _read_object_mask(path: Path) -> np.ndarray:
    """Object ids (H, W) of one mask file: single-channel indices as they are; palette PNGs by
    index when the palette of the indices used is DAVIS's; RGB in DAVIS's colours."""
    pal = davis_palette()
    with Image.open(path) as im:
        mode = im.mode
        if mode in ("L", "I", "I;16", "I;16B", "I;16L"):
            return np.array(im).astype(np.int64)
        if mode == "P":
            ids = np.array(im).astype(np.int64)
            colours = np.array(im.getpalette() or [], np.int64)[: 3 * 256].reshape(-1, 3)
            used = np.unique(ids)
            used = used[(used != IGNORE) & (used < len(colours))]
            wrong = [int(i) for i in used if not np.array_equal(colours[i], pal[i])]
            if wrong:
                raise _Unusable(f"{path.name}: palette index {wrong[0]} is {tuple(int(v) for v in colours[wrong[0]])}, "
                                f"not DAVIS's {tuple(int(v) for v in pal[wrong[0]])}; save the masks in DAVIS's palette "
                                "or as single-channel index PNGs")
            return ids
        if mode in ("RGB", "RGBA"):
            rgb = np.array(im.convert("RGB")).astype(np.int64)
            code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(pal)}
            ids = np.full(code.shape, -1, np.int64)
            for value in np.unique(code):
                if int(value) in table:
                    ids[code == value] = table[int(value)]
            if (ids < 0).any():
                v = int(code[ids < 0][0])
                raise _Unusable(f"{path.name}: colour {(v >> 16, (v >> 8) & 255, v & 255)} is not in DAVIS's palette; "
                                "save the masks in DAVIS's palette or as single-channel index PNGs")
            return ids
    raise _Unusable(f"{path.name}: a mask must be an index, palette or RGB PNG (PIL mode {mode!r})")


def _camvid_mask(path: Path) -> np.ndarray:
    """CamVid class c -> object c + 1; 11 (unlabelled) and anything else -> :data:`IGNORE`."""
    raw = _read_object_mask(path)
    return np.where(raw < len(CAMVID_CLASSES), raw + 1, IGNORE)


@dataclass
class VideoSequence:
    """One sequence: frames in time order and their masks (read from disk on each access).

    ``mask_paths[t]`` is None for a frame without a mask (propagated through, not scored);
    ``frame_step``: video frames between consecutive frames (from numbered names; 1 when unknown);
    ``scores_last``: whether the last frame is scored (DAVIS 2017's evaluation scores neither the
    first nor the last frame of a sequence).
    """

    name: str
    frames: list[AtlasImage]
    mask_paths: list[Path | None] = field(repr=False)
    objects: list[int]
    frame_step: int = 1
    _decode: object = field(default=_read_object_mask, repr=False, compare=False)
    scores_last: bool = True

    def masks(self) -> np.ndarray:
        """int64 (T, H, W) object ids; frames without a mask are all :data:`IGNORE`."""
        h, w = self.frames[0].height, self.frames[0].width
        return np.stack([np.full((h, w), IGNORE, np.int64) if p is None else self._decode(p)
                         for p in self.mask_paths])

    @property
    def scored(self) -> list[int]:
        """Indices of the frames after the first (and before the last, unless ``scores_last``) that
        have a mask: the scored frames."""
        return _scored(self.mask_paths, self.scores_last)


def _scored(mask_paths: list[Path | None], scores_last: bool) -> list[int]:
    end = len(mask_paths) - (not scores_last)
    return [t for t, p in enumerate(mask_paths[:end]) if t > 0 and p is not None]


@dataclass
class VideoDataset:
    """The usable sequences of one video dataset, and what was left out and why."""

    kind: str
    root: Path
    sequences: list[VideoSequence]
    skipped: list[SkippedItem] = field(default_factory=list)
    object_names: list[str] | None = None  # semantic datasets: the class of object id i is names[i - 1]

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def frames(self) -> list[AtlasImage]:
        """Every frame of every sequence, in order."""
        return [f for s in self.sequences for f in s.frames]

    @property
    def frame_step(self) -> int:
        """The largest step between consecutive frames of a sequence (1: consecutive video frames)."""
        return max((s.frame_step for s in self.sequences), default=1)


def _frame_image(path: Path, name: str) -> AtlasImage:
    img = read_rgb(path)
    return AtlasImage(name=name, source=str(path.name), licence="dataset", credit="", content_hash=content_hash(img),
                      width=img.width, height=img.height, loader=partial(read_rgb, path))


def _frame_step(stems: list[str]) -> int:
    """The step between the frame numbers at the end of ``stems`` (1 when they are not numbered);
    :class:`_Unusable` when the numbers skip (a frame is missing)."""
    numbers = [_NUMBER.search(s) for s in stems]
    if len(stems) < 2 or not all(numbers):
        return 1
    values = [int(m.group(1)) for m in numbers]
    steps = np.diff(values)
    step = int(steps.min())
    if step < 1:
        raise _Unusable(f"frame numbers repeat or go back ({stems[int(np.argmin(steps))]})")
    jumps = np.flatnonzero(steps != step)
    if jumps.size:
        j = int(jumps[0])
        raise _Unusable(f"frames missing between {stems[j]} and {stems[j + 1]} (numbers step by {step} elsewhere)")
    return step


def _sequence(name: str, frame_paths: list[Path], mask_paths: list[Path | None], decode,
              scores_last: bool = True) -> VideoSequence:
    """A checked sequence, or :class:`_Unusable` with the reason."""
    if len(frame_paths) < 2:
        raise _Unusable(f"{len(frame_paths)} frame: nothing to propagate to")
    if mask_paths[0] is None:
        raise _Unusable(f"the first frame {frame_paths[0].name} has no mask")
    if not _scored(mask_paths, scores_last):
        raise _Unusable("no frame after the first has a mask: nothing to score" if scores_last else
                        "no frame between the first and the last has a mask: nothing to score (DAVIS scores "
                        "neither)")
    step = _frame_step([p.stem for p in frame_paths])
    frames = []
    for p in frame_paths:
        try:
            frames.append(_frame_image(p, f"{name}/{p.stem}"))
        except ImageReadError as exc:
            raise _Unusable(f"frame {p.name}: {exc}") from None
    size = (frames[0].width, frames[0].height)
    objects: list[int] = []
    for t, (frame, mp) in enumerate(zip(frames, mask_paths)):
        if (frame.width, frame.height) != size:
            raise _Unusable(f"frame {frame_paths[t].name} is {frame.width}x{frame.height}, the first is {size[0]}x{size[1]}")
        if mp is None:
            continue
        try:
            mask = decode(mp)
        except _Unusable:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable mask is the sequence's reason
            raise _Unusable(f"mask {mp.name} unreadable ({type(exc).__name__})") from None
        if mask.shape != (size[1], size[0]):
            raise _Unusable(f"mask {mp.name} is {mask.shape[1]}x{mask.shape[0]} but its frame is {size[0]}x{size[1]}")
        if t == 0:
            objects = sorted(int(o) for o in np.unique(mask) if 0 < o != IGNORE)
            if not objects:
                raise _Unusable(f"the first mask {mp.name} holds no object")
    return VideoSequence(name, frames, mask_paths, objects, step, decode, scores_last)


def _frames_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS)


def _paired(name: str, frame_dir: Path, mask_dir: Path, decode, scores_last: bool = True) -> VideoSequence:
    """Frames of ``frame_dir`` with the same-stem masks of ``mask_dir`` (a mask without its frame:
    unusable, since a frame is missing)."""
    frame_paths = _frames_in(frame_dir)
    masks = {p.stem: p for p in (_frames_in(mask_dir) if mask_dir.is_dir() else []) if p.suffix.lower() == ".png"}
    orphans = sorted(set(masks) - {p.stem for p in frame_paths})
    if orphans:
        raise _Unusable(f"mask {masks[orphans[0]].name} has no frame (frame missing)")
    return _sequence(name, frame_paths, [masks.get(p.stem) for p in frame_paths], decode, scores_last)


def _davis(root: Path, split: str, clip_length: int):
    frames_root, masks_root = root / "JPEGImages" / "480p", root / "Annotations" / "480p"
    if not frames_root.is_dir():
        raise DatasetError(f"DAVIS frames folder not found: {frames_root}")
    listing = root / "ImageSets" / "2017" / f"{split or 'val'}.txt"
    if listing.is_file():
        names = [ln.strip() for ln in listing.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = sorted(p.name for p in frames_root.iterdir() if p.is_dir())
    return [(n, partial(_paired, n, frames_root / n, masks_root / n, _davis_mask, False)) for n in names]


def _davis_mask(path: Path) -> np.ndarray:
    """DAVIS's object ids, 255 (void) as background: DAVIS 2017's evaluation reads masks so."""
    ids = _read_object_mask(path)
    return np.where(ids == IGNORE, 0, ids)


def _folder(root: Path, split: str, clip_length: int):
    frames_root, masks_root = root / "frames", root / "masks"
    if not frames_root.is_dir():
        raise DatasetError(f"frames folder not found: {frames_root} (expected frames/<sequence>/ and masks/<sequence>/)")
    names = sorted(p.name for p in frames_root.iterdir() if p.is_dir())
    return [(n, partial(_paired, n, frames_root / n, masks_root / n, _read_object_mask)) for n in names]


def _camvid(root: Path, split: str, clip_length: int):
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DatasetError(f"CamVid images/ and masks/ folders not found in {root}")
    by_sequence: dict[str, list[Path]] = {}
    for p in _frames_in(images):
        by_sequence.setdefault(p.stem.split("_")[0], []).append(p)
    out = []
    length = clip_length or 10
    for seq, paths in sorted(by_sequence.items()):
        for c in range(len(paths) // length):
            clip = paths[c * length:(c + 1) * length]
            name = f"{seq}_{c + 1:02d}"
            mask_paths = [masks / f"{p.stem}.png" for p in clip]
            missing = [m for m in mask_paths if not m.is_file()]
            if missing:
                out.append((name, partial(_raise, f"mask {missing[0].name} not found")))
                continue
            out.append((name, partial(_sequence, name, clip, mask_paths, _camvid_mask)))
    return out


def _raise(reason: str):
    raise _Unusable(reason)


#: Formats: kind -> function(root, split, clip_length) giving [(sequence name, () -> VideoSequence)].
VIDEO_FORMATS = {"davis": _davis, "folder": _folder, "camvid": _camvid}


def load_videos(kind: str, root: str | Path, *, split: str = "", clip_length: int = 0, max_sequences: int = 0,
                max_frames: int = 0) -> VideoDataset:
    """Open the video dataset of format ``kind`` at ``root``.

    Parameters
    ----------
    kind : {"davis", "folder", "camvid"}
    root : path
        The dataset folder (layouts in the module docstring).
    split : str
        DAVIS: the ``ImageSets/2017`` list (default ``val``).
    clip_length : int
        CamVid: labelled frames per clip (default 10).
    max_sequences : int
        Keep only the first usable sequences (0 = all).
    max_frames : int
        Keep only the first frames of each sequence (0 = all).
    """
    if kind not in VIDEO_FORMATS:
        raise ValueError(f"unknown video dataset kind {kind!r}; choose one of {sorted(VIDEO_FORMATS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root not found: {root}")
    sequences, skipped = [], []
    for name, make in VIDEO_FORMATS[kind](root, split, clip_length):
        if max_sequences and len(sequences) >= max_sequences:
            break
        try:
            seq = make()
        except _Unusable as exc:
            skipped.append(SkippedItem(f"sequence {name}", str(exc)))
            continue
        if max_frames and len(seq.frames) > max_frames:
            seq.frames, seq.mask_paths = seq.frames[:max_frames], seq.mask_paths[:max_frames]
            seq.scores_last = True  # the cut's last frame is not the sequence's last, which DAVIS leaves out
            if not seq.scored:
                skipped.append(SkippedItem(f"sequence {name}", f"no scored frame among the first {max_frames}"))
                continue
        sequences.append(seq)
    if not sequences:
        reasons = "; ".join(f"{s.what}: {s.reason}" for s in skipped[:2])
        raise DatasetError(f"no usable sequence in {root}" + (f" ({reasons})" if reasons else ""))
    names = CAMVID_CLASSES if kind == "camvid" else None
    return VideoDataset(kind, root, sequences, skipped, names)
