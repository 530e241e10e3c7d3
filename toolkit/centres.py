"""Spheres in another space: the distance of a point to the nearest mean of a partition of the training
points in that space (the raw pixels, the pretrained network's embedding, ...), as pure tensor functions.

The multi-sphere score measures in the embedding its encoder learned; these centres are not trained: each
is the mean of one cluster of the clusterer's partition of the training rows in the space named. With
FINCH's finest partition (a few training points a cluster) the nearest centre reads a space about as
well as the nearest training point does, from a fraction of the rows (docs/results.md): the many small
spheres of the method, where the k-NN distance keeps every training point.

A training row is its own cluster's member, so its distance to that mean is smaller than a new point's.
Its leave-one-out distance (the training scores a score column is standardised with) takes its own
centre without it: the mean of the other n - 1 members lies exactly n / (n - 1) times as far from the
row as the mean of all n. A row alone in its cluster has no own centre left and is measured against
the others.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .knn import KNN_CHUNK, nearest_sq_distances, sq_distances, sq_distances_less_query


def nearest_centre(query: Tensor, centres: Tensor) -> Tensor:
    """(N,) Euclidean distance of each row of ``query`` (N, D) to its nearest row of ``centres`` (K, D),
    by one matrix product (no loop: what a traced scorer records)."""
    nearest = sq_distances_less_query(query, centres).amin(dim=1, keepdim=True)
    return nearest_sq_distances(nearest, query)[:, 0].sqrt()


def nearest_centre_loo(rows: Tensor, labels: Tensor, centres: Tensor, chunk: int = KNN_CHUNK) -> Tensor:
    """(N,) :func:`nearest_centre` of the training ``rows`` (N, D) whose partition ``labels`` (N,) made
    ``centres`` (K, D, each its cluster's mean), each row's own centre taken without the row."""
    if rows.shape[0] != labels.shape[0] or labels.dim() != 1:
        raise ValueError(f"one label per row: got {tuple(labels.shape)} labels for {rows.shape[0]} rows")
    sizes = torch.bincount(labels, minlength=centres.shape[0]).to(rows.dtype)
    out = []
    for s in range(0, rows.shape[0], chunk):
        d2, lab = sq_distances(rows[s : s + chunk], centres), labels[s : s + chunk, None]
        n = sizes[lab]
        own = torch.where(n > 1, d2.gather(1, lab) * (n / (n - 1).clamp(min=1)) ** 2, float("inf"))
        out.append(d2.scatter(1, lab, own).min(dim=1).values.sqrt())
    return torch.cat(out) if out else rows.new_zeros(0)
