"""One cluster for everything: Multi-Radius Deep SVDD with this clusterer is plain Deep SVDD."""

from __future__ import annotations

import numpy as np


class SingleCluster:
    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X), dtype=np.int64)
