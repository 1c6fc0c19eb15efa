"""The Methods record carries ids and numbers; the site words it (issue 25, part 4).

* the record of a build with both evaluations holds no sentence outside the definitions the
  measure modules state beside their code (the PCA recipe, the attention normalisation);
* the control: the same check finds the sentences of the worded page;
* a reworded Methods page takes a render (``--render-only``, which computes nothing), and the
  stored record stays as it was.
"""

from __future__ import annotations

import math
from pathlib import Path

from test_intervals_grouped import evaluation
from test_propagation_build import project as video_project
from test_propagation_build import write_videos
from test_stored_results_integrity import _copy, built  # noqa: F401 - the module's built project
from test_hostile_inputs import run_cli

from atlas.config import load_config
from atlas.pipeline.methods import methods_record
from atlas.pipeline.propagation_run import PropagationRun
from atlas.site import methods as words

#: Where the record may hold words: the measure modules' own definitions (as measure_info does).
DEFINITIONS = {("pictures", "pca"), ("pictures", "attention_normalisation")}


def sentences(record, path=()) -> list[str]:
    """Paths of the strings in ``record`` that read as words (three or more words), definitions aside."""
    if path[:2] in DEFINITIONS:
        return []
    if isinstance(record, dict):
        return [p for k, v in record.items() for p in sentences(v, (*path, k))]
    if isinstance(record, (list, tuple)):
        return [p for i, v in enumerate(record) for p in sentences(v, (*path, i))]
    return ["/".join(map(str, path))] if isinstance(record, str) and len(record.split()) >= 3 else []


def test_the_record_of_a_build_with_both_evaluations_holds_ids_and_numbers(tmp_path):
    run = evaluation(tmp_path / "masks", 2, 30)  # too few groups: the contiguous-blocks fallback
    backbone = ('[[backbones]]\ndisplay_name = "M"\ntimm_name = "vit_small_patch16_224"\n'
                'weights = "random"\ntraining = "random"\n')
    config = video_project(tmp_path / "video", write_videos(tmp_path / "videos"), backbone)
    propagation = PropagationRun.from_config(load_config(config), [])
    record = methods_record(run.cfg, run.methods(), propagation.methods())
    assert set(record) >= {"extraction", "images", "clustering", "uncertainty", "evaluation", "propagation"}
    assert sentences(record) == []
    assert record["evaluation"]["split_kind"] == "contiguous blocks"
    assert record["propagation"]["temperature"] == 0.1 and record["propagation"]["sequences"] == 6
    # the control: the page the site makes of it is words
    worded = sentences(words.methods_sections(record))
    assert any(p.startswith("Evaluation against human masks/splits") for p in worded)
    assert any(p.startswith("Label propagation (video)/protocol") for p in worded)
    assert "contiguous frame blocks" in words.methods_sections(record)["Evaluation against human masks"]["splits"]
    # what a reader needs to redo it: the probe inputs, the k-means stopping rule and starts, and how
    # few distinct halves a few units have (5 units: 10, however many of the 200 halves are drawn)
    from atlas.inputs.probes import PROBE_NAMES

    assert record["probes"] == {"inputs": list(PROBE_NAMES)}
    assert (record["clustering"]["tol"], record["clustering"]["n_init"]) == (1e-4, 1)
    page = words.methods_sections(record)
    assert "constant-mean" in page["Blank-input probe"]["inputs"]
    assert "stopping once one lowers the objective by less than 0.0001" in page["Joint clustering"]["iterations"]
    units = record["evaluation"]["resampling"]["test"]["units"]
    assert f"{math.comb(units, units // 2)} distinct halves" in page["Evaluation against human masks"]["intervals"]


def test_a_reworded_methods_page_takes_a_render_not_a_build(built, tmp_path, monkeypatch):  # noqa: F811
    config = _copy(built, tmp_path)
    stored = next((tmp_path / "p").rglob("state/atlas.json"))
    record = stored.read_bytes()
    monkeypatch.setitem(words.SECTION_TITLES, "clustering", "Joint clustering, reworded")
    assert run_cli(config, "--no-site", "--render-only") == 0  # computes nothing, reads the stored records
    page = (tmp_path / "p" / "site_src" / "methods.md").read_text(encoding="utf-8")
    assert "## Joint clustering, reworded" in page and "**training tokens**: centroids fitted" in page
    assert stored.read_bytes() == record
    assert Path(config).is_file()
