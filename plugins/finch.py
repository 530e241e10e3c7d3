"""FINCH (Sarfraz et al., CVPR 2019) as a clusterer plugin, on top of the finch-clust package.

FINCH links every point to its first neighbour and takes the connected components as clusters, then
repeats on the cluster means, giving a hierarchy of partitions from fine to coarse. Which partition to
use is the ``level`` setting. The first-neighbour search of the first level is done here in chunks
with torch (no N x N matrix) and handed to finch-clust as its ``initial_rank``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

METRICS = ("euclidean", "cosine")


def first_neighbours(x: torch.Tensor, metric: str = "euclidean", chunk_size: int = 4096) -> torch.Tensor:
    """Index of each row's nearest other row, computed ``chunk_size`` rows at a time."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not supported; accepted: {METRICS}")
    x = x.float()
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    sq = (x * x).sum(1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], chunk_size):
        block = x[start : start + chunk_size]
        # squared euclidean up to the row's own constant; for unit vectors it orders like cosine distance
        d = sq[None, :] - 2.0 * block @ x.T
        rows = torch.arange(block.shape[0], device=x.device)
        d[rows, rows + start] = float("inf")  # never one's own neighbour
        out[start : start + block.shape[0]] = d.argmin(1)
    return out


class FinchClusterer:
    """FINCH partitions; ``fit_predict`` returns the partition at ``level`` (0 = finest, -1 = coarsest)."""

    def __init__(self, level: int = -1, distance: str = "euclidean", chunk_size: int = 4096) -> None:
        if distance not in METRICS:
            raise ValueError(f"FINCH distance={distance!r} is not supported; accepted: {METRICS}")
        self.level = level
        self.distance = distance
        self.chunk_size = chunk_size

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # finch-clust warns on import when pynndescent is absent
            warnings.simplefilter("ignore")
            from finch import FINCH

        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.shape[0] < 3:
            raise ValueError(f"FINCH needs at least 3 points, got {X.shape[0]}")
        rank = first_neighbours(torch.from_numpy(X), self.distance, self.chunk_size).numpy().astype(np.int32)
        partitions, n_clusters, _ = FINCH(
            X, initial_rank=rank, distance=self.distance, ensure_early_exit=False, verbose=False
        )
        self.partitions_ = np.asarray(partitions).reshape(X.shape[0], -1)
        self.n_clusters_per_level_ = list(n_clusters)
        n_levels = self.partitions_.shape[1]
        if not -n_levels <= self.level < n_levels:
            raise ValueError(
                f"FINCH level={self.level} does not exist: this data gave {n_levels} partitions with "
                f"{self.n_clusters_per_level_} clusters; use a level in [{-n_levels}, {n_levels - 1}]"
            )
        self.labels_ = self.partitions_[:, self.level].astype(np.int64)
        return self.labels_
