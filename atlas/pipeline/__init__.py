"""The pipeline: config -> image set -> per-model runs (extraction, joint clustering, measures,
evaluation) -> comparisons -> stored records (``build/<config>/state``).

:mod:`.build` orchestrates; :mod:`.inputs` makes the image set, blank probes and shift windows;
:mod:`.model_run` runs one model; :mod:`.evaluation_run` scores it against human masks;
:mod:`.comparisons` aligns models side by side; :mod:`.state` keys and stores results;
:mod:`.methods` records the settings as ids and numbers (the site words them, :mod:`atlas.site.methods`,
as it makes the highlight sentences, :mod:`atlas.site.highlights`).
"""


class BuildError(RuntimeError):
    """A build problem phrased as one line that says what to do."""
