"""Features: timm backbones and their weights (:mod:`.backbones`), exact extraction of tokens and
attention q/k/v (:mod:`.extractor`), image sets through a model (:mod:`.extract`), features kept in
memory a chunk of blocks at a time while their analyses run (:mod:`.stream`), the opt-in
content-addressed feature cache (:mod:`.cache`) and device choice (:mod:`.device`)."""
