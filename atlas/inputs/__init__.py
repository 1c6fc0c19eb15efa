"""Inputs: the atlas image set (:mod:`.images`), its geometry (:mod:`.geometry`), the blank-input
probes (:mod:`.probes`) and labelled datasets with human masks (:mod:`.datasets`)."""
