"""A random partition as a clusterer: the null control for pseudo-labels. With the sizes a real
clusterer found, it tells "several spheres fitted to real modes help" apart from "any split of the
data into that many spheres helps"."""

from __future__ import annotations

import numpy as np


class RandomPartition:
    """Labels drawn at random: ``sizes`` (one count per cluster, adding up to the number of points) or
    ``n_clusters`` clusters as equal as the count allows; seeded by ``random_state``."""

    def __init__(self, n_clusters: int | None = None, sizes: list[int] | None = None, random_state: int | None = 0):
        if (n_clusters is None) == (sizes is None):
            raise ValueError("random partition: give n_clusters=K or sizes=[n_0, n_1, ...], one of the two")
        if sizes is not None and (not sizes or not all(isinstance(s, int) and s > 0 for s in sizes)):
            raise ValueError(f"random partition sizes={sizes!r} must be a list of positive integers")
        if n_clusters is not None and (not isinstance(n_clusters, int) or n_clusters < 1):
            raise ValueError(f"random partition n_clusters={n_clusters!r} must be a positive integer")
        self.n_clusters, self.sizes, self.random_state = n_clusters, sizes, random_state

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        sizes = self.sizes
        if sizes is None:
            sizes = [n // self.n_clusters + (i < n % self.n_clusters) for i in range(self.n_clusters)]
        if sum(sizes) != n:
            raise ValueError(f"random partition sizes {list(sizes)} add up to {sum(sizes)}, not to the {n} points")
        labels = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        return np.random.default_rng(self.random_state).permutation(labels)
