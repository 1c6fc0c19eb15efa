"""Inputs: the atlas image set (:mod:`.images`; curated manifests and their download: :mod:`.manifest`), its geometry (:mod:`.geometry`), the blank-input
probes (:mod:`.probes`) and labelled datasets with human masks (:mod:`.datasets`)."""
