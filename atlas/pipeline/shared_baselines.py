"""Baselines computed once per geometry and shared by every model that has it.

A baseline of an evaluation (chance, colour, position, ... of :mod:`.evaluation_baselines`, and
those of label propagation) needs no model: its numbers depend on the dataset, the protocol, the
config's seeds and intervals, and the model's geometry only (input size and patch size, hence its
grid). Many models share a geometry -- every ViT-/16 of the zoo at 224 px -- so the first model of
a geometry computes them and stores them with the results (``state/baselines/<geometry>/``), under
a key that hashes all of that and the code; every later model of that geometry reads them, in the
same build, a later build or another job of the build. The model's own record still carries them:
the site reads nothing from here.

Without a store (benchmarks, tests of one protocol) every model computes its baselines.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from ..measures.uncertainty import Uncertainty
from ..records import Baseline, to_json
from .state import MODEL_STATE_VERSION, code_fingerprint, digest

if TYPE_CHECKING:
    from ..config import AtlasConfig
    from ..features.backbones import LoadedBackbone
    from .state import StateStore

log = logging.getLogger(__name__)

#: Baselines' uncertainties by measure and baseline name.
Paired = dict[str, dict[str, Uncertainty]]


def geometry_id(protocol: str, loaded: "LoadedBackbone") -> str:
    """The folder name of a protocol's baselines at a model's geometry, e.g. ``evaluation-224x224-p16``."""
    h, w = loaded.card.input_size
    return f"{protocol}-{h}x{w}-p{loaded.card.patch_size}"


def baselines_key(cfg: "AtlasConfig", protocol_key: str, loaded: "LoadedBackbone") -> str:
    """Everything a protocol's baselines at ``loaded``'s geometry depend on (``protocol_key``: the
    dataset's content and the protocol's settings, ``EvaluationRun.key`` / ``PropagationRun.key``)."""
    return digest({"v": MODEL_STATE_VERSION, "code": code_fingerprint(), "protocol": protocol_key,
                   "size": list(loaded.card.input_size), "patch": loaded.card.patch_size, "seed": cfg.atlas.seed,
                   "clustering": cfg.clustering.model_dump(), "uncertainty": cfg.uncertainty.model_dump()})


def shared_baselines(store: "StateStore | None", protocol: str, protocol_key: str, cfg: "AtlasConfig",
                     loaded: "LoadedBackbone", compute: Callable[[], tuple[list[Baseline], Any, Paired]]
                     ) -> tuple[list[Baseline], Any, Paired]:
    """``compute()``'s (baselines, JSON-able extra, their uncertainties ``{measure: {name:
    Uncertainty}}``) of ``protocol`` (``"evaluation"``, ``"propagation"``) for ``loaded``, read
    from ``store`` when a model of the same geometry stored them (under :func:`baselines_key`),
    otherwise computed and stored there. Both ways give the same records: the computed ones go
    through JSON as the stored ones do. The uncertainties keep the baselines' replicates, from
    which each model's rows get their paired differences (:func:`atlas.measures.uncertainty.versus`)."""
    if store is not None:
        geometry, key = geometry_id(protocol, loaded), baselines_key(cfg, protocol_key, loaded)
        data = store.load_baselines(geometry, key)
        if data is not None:
            log.info("%s: %s baselines at %s reused (computed for an earlier model of this geometry)",
                     loaded.card.display_name, protocol, geometry)
            return _read(data)
    t0 = time.perf_counter()
    baselines, extra, paired = compute()
    data = json.loads(json.dumps({"baselines": to_json(baselines), "extra": extra,
                                  "paired": {m: {n: u.state() for n, u in by.items()} for m, by in paired.items()}}))
    if store is not None:
        try:
            store.save_baselines(geometry, key, data)
            log.info("%s: %s baselines at %s computed in %.1f s, stored for the other models of this geometry",
                     loaded.card.display_name, protocol, geometry, time.perf_counter() - t0)
        except OSError as exc:  # a full disk, say: this model has its baselines; later ones compute theirs
            log.warning("%s: %s baselines at %s computed but not stored (%s); other models of this geometry "
                        "compute them again", loaded.card.display_name, protocol, geometry, exc)
    return _read(data)


def _read(data: dict) -> tuple[list[Baseline], Any, Paired]:
    paired = {m: {n: Uncertainty.from_state(u) for n, u in by.items()} for m, by in data.get("paired", {}).items()}
    return [Baseline(**b) for b in data["baselines"]], data["extra"], paired
