"""Measures: pure functions from cluster maps, features and human masks to numbers.

Positional behaviour: :mod:`.positional` (clustering vs position, the linear position probe, the
blank-input probe), :mod:`.locality` (positional effect and locality beyond position),
:mod:`.boundary` (border rings and high-norm tokens), :mod:`.shift` (the shift test);
:mod:`.summary` computes all of those that need one (block, representation) at once.
Against human masks: :mod:`.segmentation` (STEGO-matched mIoU), :mod:`.knn` (k-NN patch probe,
high-variance channel removal), :mod:`.similarity` (CKA / SVCCA under masking),
:mod:`.pseudomasks` (DatUS²-inspired pseudo-masks), :mod:`.propagation` (video label propagation,
DAVIS J and F).
Every stored number is described once in :mod:`.registry`.
"""
