"""FINCH (Sarfraz et al., CVPR 2019) as a clusterer plugin, with every neighbour search in chunks.

FINCH links every point to its first (nearest) neighbour and takes the connected components as the
clusters of the first partition; it then repeats on the cluster means, giving a hierarchy from fine to
coarse, and stops when a level would merge everything into one cluster or merge no more than one pair.
This is the same hierarchy as the finch-clust package (the tests compare them partition by partition),
but no step builds an N x N matrix: the first neighbours of each level are computed ``chunk_size`` rows
at a time with torch, on any device, so 60,000 MNIST embeddings cluster in seconds and little memory.

Which partition ``fit_predict`` returns is the ``level`` setting:

- an integer: that level (0 = finest, -1 = coarsest);
- ``"auto"``: the finest level whose clusters all have at least ``min_cluster_size`` points (a cluster
  that small gives an unstable radius quantile); the coarsest level when no level qualifies;
- with ``n_clusters`` set, ``level`` is ignored: starting from the coarsest level that still has at least
  that many clusters, the closest pair of cluster means is merged until ``n_clusters`` remain (FINCH's
  own rule for a requested number of clusters).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from toolkit.svdd import cluster_means

METRICS = ("euclidean", "cosine")


def first_neighbours(
    x: Tensor, metric: str = "euclidean", chunk_size: int = 512, tile_cols: int = 2048
) -> tuple[Tensor, Tensor]:
    """Index of each row's nearest other row and the squared euclidean distance to it (of unit vectors
    for ``cosine``). Exact, computed in ``chunk_size`` x ``tile_cols`` tiles that stay in cache: memory
    O(chunk_size x tile_cols), never N x N, and no pass over a large matrix in main memory."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not supported; accepted: {METRICS}")
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    n = x.shape[0]
    sq = (x * x).sum(1)
    xt = x.T.contiguous()
    idx = torch.empty(n, dtype=torch.long, device=x.device)
    dist = torch.empty(n, dtype=x.dtype, device=x.device)
    for r0 in range(0, n, chunk_size):
        block = x[r0 : r0 + chunk_size]
        rows = torch.arange(block.shape[0], device=x.device)
        best = torch.full((block.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
        arg = torch.zeros(block.shape[0], dtype=torch.long, device=x.device)
        for c0 in range(0, n, tile_cols):
            # ||b - x_j||^2 up to the row's own constant ||b||^2, which does not change the argmin
            d = torch.addmm(sq[None, c0 : c0 + tile_cols], block, xt[:, c0 : c0 + tile_cols], alpha=-2.0)
            own = rows + (r0 - c0)
            mine = (own >= 0) & (own < d.shape[1])
            d[rows[mine], own[mine]] = float("inf")  # a point is never its own neighbour
            v, a = d.min(1)
            better = v < best
            best = torch.where(better, v, best)
            arg = torch.where(better, a + c0, arg)
        idx[r0 : r0 + block.shape[0]] = arg
        dist[r0 : r0 + block.shape[0]] = (best + sq[r0 : r0 + block.shape[0]]).clamp(min=0)
    return idx, dist


def _components(neighbour: Tensor) -> np.ndarray:
    """Connected components of the graph i -> neighbour[i] (FINCH's first-neighbour adjacency)."""
    m = neighbour.shape[0]
    graph = csr_matrix((np.ones(m, dtype=np.float32), (np.arange(m), neighbour.cpu().numpy())), shape=(m, m))
    return connected_components(graph, directed=True, connection="weak")[1]


def finch_partitions(x: Tensor, metric: str = "euclidean", chunk_size: int = 512) -> list[Tensor]:
    """Every FINCH partition of the rows of ``x``, finest first, each an (N,) tensor of labels."""
    labels = torch.as_tensor(_components(first_neighbours(x, metric, chunk_size)[0]), device=x.device)
    partitions = [labels]
    while True:
        k = int(labels.max()) + 1
        if k < 2:
            break
        merged = torch.as_tensor(
            _components(first_neighbours(cluster_means(x, labels, k), metric, chunk_size)[0]), device=x.device
        )
        new = merged[labels]
        k_new = int(new.max()) + 1
        if k_new == 1 or k - k_new <= 1:  # FINCH's stopping rule: everything merged, or almost nothing
            break
        partitions.append(new)
        labels = new
    return partitions


def merge_to(x: Tensor, labels: Tensor, n_clusters: int, metric: str, chunk_size: int) -> Tensor:
    """Merge the closest pair of cluster means, one pair at a time, until ``n_clusters`` remain."""
    labels = torch.unique(labels, return_inverse=True)[1]
    k = int(labels.max()) + 1
    while k > n_clusters:
        nn, d = first_neighbours(cluster_means(x, labels, k), metric, chunk_size)
        a = int(d.argmin())
        b = int(nn[a])
        labels = torch.where(labels == max(a, b), min(a, b), labels)
        labels = torch.where(labels > max(a, b), labels - 1, labels)
        k -= 1
    return labels


def choose_level(partitions: list[Tensor], min_cluster_size: int) -> int:
    """The finest level whose clusters all have >= ``min_cluster_size`` points, else the coarsest."""
    for level, labels in enumerate(partitions):
        if int(torch.bincount(labels).min()) >= min_cluster_size:
            return level
    return len(partitions) - 1


class FinchClusterer:
    """FINCH with a chunked first-neighbour search; see the module docstring for the partition rules."""

    def __init__(
        self,
        level: int | str = -1,
        n_clusters: int | None = None,
        min_cluster_size: int = 10,
        distance: str = "euclidean",
        chunk_size: int = 512,
        device: str = "cpu",
    ) -> None:
        if distance not in METRICS:
            raise ValueError(f"FINCH distance={distance!r} is not supported; accepted: {METRICS}")
        if not (level == "auto" or (isinstance(level, int) and not isinstance(level, bool))):
            raise ValueError(f"FINCH level={level!r} must be an integer (0 = finest, -1 = coarsest) or 'auto'")
        if n_clusters is not None and (not isinstance(n_clusters, int) or n_clusters < 1):
            raise ValueError(f"FINCH n_clusters={n_clusters!r} must be a positive integer or None")
        self.level, self.n_clusters, self.min_cluster_size = level, n_clusters, min_cluster_size
        self.distance, self.chunk_size, self.device = distance, chunk_size, device

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=self.device)
        if x.shape[0] < 3:
            raise ValueError(f"FINCH needs at least 3 points, got {x.shape[0]}")
        parts = finch_partitions(x, self.distance, self.chunk_size)
        self.n_clusters_per_level_ = [int(p.max()) + 1 for p in parts]
        n_levels = len(parts)
        if self.n_clusters is not None:
            above = [i for i, k in enumerate(self.n_clusters_per_level_) if k >= self.n_clusters]
            start = above[-1] if above else 0
            self.level_ = start
            labels = merge_to(x, parts[start], self.n_clusters, self.distance, self.chunk_size)
        else:
            if self.level == "auto":
                self.level_ = choose_level(parts, self.min_cluster_size)
            elif -n_levels <= self.level < n_levels:
                self.level_ = self.level % n_levels
            else:
                raise ValueError(
                    f"FINCH level={self.level} does not exist: this data gave {n_levels} partitions with "
                    f"{self.n_clusters_per_level_} clusters; use a level in [{-n_levels}, {n_levels - 1}] or 'auto'"
                )
            labels = parts[self.level_]
        self.partitions_ = torch.stack(parts, 1).cpu().numpy()
        self.labels_ = labels.cpu().numpy().astype(np.int64)
        return self.labels_
