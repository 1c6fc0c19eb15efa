"""Clustering: joint k-means over the patch tokens of all images (:mod:`.kmeans`) and consistent
cluster colours across blocks, representations and models (:mod:`.align`)."""
