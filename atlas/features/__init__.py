"""Features: timm backbones and their weights (:mod:`.backbones`), exact extraction of tokens and
attention q/k/v (:mod:`.extractor`), the content-addressed feature cache (:mod:`.cache`) and the
streaming of image sets through a model into it (:mod:`.extract`); device choice (:mod:`.device`);
features kept on the device from extraction to the analyses (:mod:`.resident`)."""
